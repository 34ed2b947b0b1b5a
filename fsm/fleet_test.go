package fsm

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// validFleet returns a small valid fleet with fresh slices and pointers.
func validFleet() *Fleet {
	return &Fleet{
		Name:     "game",
		Replicas: 10,
		Versions: []FleetVersion{{Blueprint: "web", Version: 1, Weight: 9}, {Blueprint: "web", Version: 2, Weight: 1}},
		Placement: &Placement{Strategy: StrategyPack, Constraints: []Constraint{
			{Label: "region", Op: "in", Value: "eu,us"},
			{Label: "gpu", Op: "not_exists"},
		}},
		Buffer: &Buffer{Ready: 2, Min: 1, Max: 5},
		Update: &Update{MaxParallel: 2, DrainLB: true, AutoRollback: true},
	}
}

func mutateFleet(fn func(f *Fleet)) *Fleet {
	f := validFleet()
	fn(f)
	return f
}

func TestValidateFleetAcceptsAndDefaults(t *testing.T) {
	t.Run("complete fleet is unchanged", func(t *testing.T) {
		f := validFleet()
		if e := ValidateFleet(f); e != nil {
			t.Fatalf("ValidateFleet: %v", e)
		}
		requireEqual(t, "validated", f, validFleet())
	})
	t.Run("single version weight 0 becomes 1", func(t *testing.T) {
		f := &Fleet{Name: "g", Versions: []FleetVersion{{Blueprint: "web"}}}
		if e := ValidateFleet(f); e != nil {
			t.Fatalf("ValidateFleet: %v", e)
		}
		requireEqual(t, "versions", f.Versions, []FleetVersion{{Blueprint: "web", Weight: 1}})
		if f.Placement != nil || f.Buffer != nil || f.Update != nil || f.Strategy() != StrategySpread {
			t.Fatalf("defaults added: %s (strategy %s)", jsonString(f), f.Strategy())
		}
	})
	t.Run("empty strategy becomes spread", func(t *testing.T) {
		f := mutateFleet(func(f *Fleet) { f.Placement.Strategy = "" })
		if e := ValidateFleet(f); e != nil {
			t.Fatalf("ValidateFleet: %v", e)
		}
		if f.Placement.Strategy != StrategySpread || f.Strategy() != StrategySpread {
			t.Fatalf("strategy %q", f.Placement.Strategy)
		}
		if validFleet().Strategy() != StrategyPack {
			t.Fatal("Strategy() ignores the placement")
		}
	})
	t.Run("limits are inclusive", func(t *testing.T) {
		f := mutateFleet(func(f *Fleet) {
			f.Replicas = MaxReplicas
			f.Versions = nil
			for i := range MaxVersions {
				f.Versions = append(f.Versions, FleetVersion{Blueprint: "b" + itoa(i), Weight: 1_000_000})
			}
			f.Placement.Constraints = nil
			for range MaxConstraints {
				f.Placement.Constraints = append(f.Placement.Constraints, Constraint{Label: "a", Op: "exists"})
			}
			f.Buffer = &Buffer{Ready: MaxReplicas, Min: MaxReplicas, Max: MaxReplicas}
			f.Update.MaxParallel = MaxReplicas
		})
		if e := ValidateFleet(f); e != nil {
			t.Fatalf("ValidateFleet: %v", e)
		}
		if e := ValidateFleet(mutateFleet(func(f *Fleet) { f.Replicas = 0; f.Name = long63() })); e != nil {
			t.Fatalf("0 replicas, 63-char name: %v", e)
		}
	})
	t.Run("multiple versions keep zero weights when the sum is positive", func(t *testing.T) {
		f := mutateFleet(func(f *Fleet) { f.Versions[1].Weight = 0 })
		if e := ValidateFleet(f); e != nil {
			t.Fatalf("ValidateFleet: %v", e)
		}
		if f.Versions[1].Weight != 0 || f.Versions[0].Weight != 9 {
			t.Fatalf("weights changed: %s", jsonString(f.Versions))
		}
	})
}

func TestValidateFleetErrors(t *testing.T) {
	manyVersions := make([]FleetVersion, MaxVersions+1)
	for i := range manyVersions {
		manyVersions[i] = FleetVersion{Blueprint: "b" + itoa(i), Weight: 1}
	}
	manyCons := make([]Constraint, MaxConstraints+1)
	for i := range manyCons {
		manyCons[i] = Constraint{Label: "a", Op: "exists"}
	}
	for _, tc := range []struct {
		name  string
		f     *Fleet
		field string
	}{
		{"empty name", mutateFleet(func(f *Fleet) { f.Name = "" }), "name"},
		{"upper-case name", mutateFleet(func(f *Fleet) { f.Name = "Game" }), "name"},
		{"name too long", mutateFleet(func(f *Fleet) { f.Name = long63() + "z" }), "name"},
		{"negative replicas", mutateFleet(func(f *Fleet) { f.Replicas = -1 }), "replicas"},
		{"too many replicas", mutateFleet(func(f *Fleet) { f.Replicas = MaxReplicas + 1 }), "replicas"},
		{"no versions", mutateFleet(func(f *Fleet) { f.Versions = nil }), "versions"},
		{"too many versions", mutateFleet(func(f *Fleet) { f.Versions = manyVersions }), "versions"},
		{"version without blueprint", mutateFleet(func(f *Fleet) { f.Versions[1].Blueprint = "" }), "versions[1].blueprint"},
		{"bad blueprint name", mutateFleet(func(f *Fleet) { f.Versions[0].Blueprint = "Web" }), "versions[0].blueprint"},
		{"negative version", mutateFleet(func(f *Fleet) { f.Versions[1].Version = -1 }), "versions[1].version"},
		{"negative weight", mutateFleet(func(f *Fleet) { f.Versions[0].Weight = -1 }), "versions[0].weight"},
		{"weight too large", mutateFleet(func(f *Fleet) { f.Versions[1].Weight = 1_000_001 }), "versions[1].weight"},
		{"all weights zero", mutateFleet(func(f *Fleet) { f.Versions[0].Weight, f.Versions[1].Weight = 0, 0 }), "versions"},
		{"unknown strategy", mutateFleet(func(f *Fleet) { f.Placement.Strategy = "binpack" }), "placement.strategy"},
		{"too many constraints", mutateFleet(func(f *Fleet) { f.Placement.Constraints = manyCons }), "placement.constraints"},
		{"constraint without label", mutateFleet(func(f *Fleet) { f.Placement.Constraints[1].Label = "" }), "placement.constraints[1].label"},
		{"unknown op", mutateFleet(func(f *Fleet) { f.Placement.Constraints[0].Op = "~" }), "placement.constraints[0].op"},
		{"empty op", mutateFleet(func(f *Fleet) { f.Placement.Constraints[1].Op = "" }), "placement.constraints[1].op"},
		{"bad value", mutateFleet(func(f *Fleet) { f.Placement.Constraints[0].Value = "eu,u s" }), "placement.constraints[0].value"},
		{"bad value for =", mutateFleet(func(f *Fleet) { f.Placement.Constraints[0] = Constraint{Label: "a", Op: "=", Value: "a/b"} }), "placement.constraints[0].value"},
		{"value for exists", mutateFleet(func(f *Fleet) { f.Placement.Constraints[1].Value = "x" }), "placement.constraints[1].value"},
		{"buffer min above max", mutateFleet(func(f *Fleet) { f.Buffer = &Buffer{Min: 3, Max: 2} }), "buffer.max"},
		{"buffer negative min", mutateFleet(func(f *Fleet) { f.Buffer = &Buffer{Min: -1, Max: 2} }), "buffer.max"},
		{"buffer max too large", mutateFleet(func(f *Fleet) { f.Buffer = &Buffer{Max: MaxReplicas + 1} }), "buffer.max"},
		{"buffer ready above max", mutateFleet(func(f *Fleet) { f.Buffer = &Buffer{Ready: 3, Max: 2} }), "buffer.ready"},
		{"buffer negative ready", mutateFleet(func(f *Fleet) { f.Buffer = &Buffer{Ready: -1, Max: 2} }), "buffer.ready"},
		{"negative max_parallel", mutateFleet(func(f *Fleet) { f.Update.MaxParallel = -1 }), "update.max_parallel"},
		{"max_parallel too large", mutateFleet(func(f *Fleet) { f.Update.MaxParallel = MaxReplicas + 1 }), "update.max_parallel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ValidateFleet(tc.f)
			if e == nil {
				t.Fatalf("accepted %s", jsonString(tc.f))
			}
			if e.Code != ErrInvalid || e.Field != tc.field || e.Message == "" {
				t.Fatalf("error %s/%q %q, want field %q", e.Code, e.Field, e.Message, tc.field)
			}
		})
	}
}

const fleetYAML = `name: game
replicas: 10
versions:
  - {blueprint: web, version: 1, weight: 9}
  - {blueprint: web, version: 2, weight: 1}
placement:
  strategy: pack
  constraints:
    - {label: region, op: in, value: "eu,us"}
    - {label: gpu, op: not_exists}
buffer: {ready: 2, min: 1, max: 5}
update: {max_parallel: 2, drain_lb: true, auto_rollback: true}
`

func TestParseFleet(t *testing.T) {
	for name, doc := range map[string]string{"yaml": fleetYAML, "json": jsonString(validFleet())} {
		t.Run(name, func(t *testing.T) {
			f, err := ParseFleet([]byte(doc))
			if err != nil {
				t.Fatalf("ParseFleet: %v", err)
			}
			requireEqual(t, "parsed", f, validFleet())
			if e := ValidateFleet(f); e != nil {
				t.Fatalf("ValidateFleet: %v", e)
			}
		})
	}
	for _, tc := range []struct{ name, doc, field, msg string }{
		{"unknown top-level field", "name: x\nnmae: y\n", "nmae", "unknown field"},
		{"unknown version field", "name: x\nversions: [{blueprint: a, vers: 1}]\n", "vers", "unknown field"},
		{"unknown placement field", "name: x\nplacement: {strat: pack}\n", "strat", "unknown field"},
		{"unknown buffer field", "name: x\nbuffer: {size: 1}\n", "size", "unknown field"},
		{"generation is not an input typo", "name: x\ngeneratoin: 1\n", "generatoin", "unknown field"},
		{"replicas not a number", "name: x\nreplicas: lots\n", "replicas", "int"},
		{"weight not a number", "versions: [{weight: x}]\n", "versions.weight", "int"},
		{"versions not a list", "versions: web\n", "versions", "[]fsm.FleetVersion"},
		{"two documents", "name: x\n---\nname: y\n", FieldBody, "trailing data"},
		{"duplicate key", "name: x\nname: y\n", FieldBody, "already set"},
		{"not a document", "{", FieldBody, "YAML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFleet([]byte(tc.doc))
			if err == nil {
				t.Fatalf("parsed %s", jsonString(f))
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			if e.Code != ErrInvalid || e.Field != tc.field || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("error %s/%q %q, want field %q and message containing %q", e.Code, e.Field, e.Message, tc.field, tc.msg)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		replicas int
		weights  []int
		want     []int
	}{
		{10, []int{90, 10}, []int{9, 1}},
		{10, []int{1, 1, 1}, []int{4, 3, 3}},
		{11, []int{1, 1, 1}, []int{4, 4, 3}},
		{1, []int{1, 1}, []int{1, 0}}, // ties go to the earlier version
		{1, []int{1, 2}, []int{0, 1}}, // the larger remainder wins
		{3, []int{1, 1, 1, 1}, []int{1, 1, 1, 0}},
		{0, []int{1, 1}, []int{0, 0}},
		{5, []int{0, 0}, []int{0, 0}},
		{5, []int{0, 1, 0}, []int{0, 5, 0}}, // a zero weight gets nothing
		{7, []int{3, 0, 1}, []int{5, 0, 2}}, // 5.25 and 1.75
		{5, []int{}, []int{}},
		{100_000, []int{1_000_000, 1, 999_999}, []int{50_000, 0, 50_000}},
		{7, []int{7}, []int{7}},
	} {
		got := Split(tc.replicas, tc.weights)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Split(%d, %v) = %v, want %v", tc.replicas, tc.weights, got, tc.want)
		}
	}
}

// TestSplitProperties checks Split on random inputs: the counts add up to
// the replicas, each is the floor or the ceiling of its exact share, a zero
// weight gets nothing, and the result depends only on the inputs.
func TestSplitProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		n := 1 + rng.IntN(MaxVersions)
		weights := make([]int, n)
		total := 0
		for j := range weights {
			switch rng.IntN(4) {
			case 0:
				weights[j] = 0
			case 1:
				weights[j] = 1 + rng.IntN(3)
			default:
				weights[j] = rng.IntN(1_000_001)
			}
			total += weights[j]
		}
		if total == 0 {
			weights[rng.IntN(n)] = 1
			total = 1
		}
		replicas := rng.IntN(20)
		if i%3 == 0 {
			replicas = rng.IntN(MaxReplicas + 1)
		}
		got := Split(replicas, weights)
		if len(got) != n {
			t.Fatalf("Split(%d, %v) has %d counts", replicas, weights, len(got))
		}
		sum := 0
		for j, c := range got {
			sum += c
			// floor(share) <= c <= ceil(share), in integers.
			lo := replicas * weights[j] / total
			hi := lo
			if replicas*weights[j]%total != 0 {
				hi++
			}
			if c < lo || c > hi {
				t.Fatalf("Split(%d, %v) = %v: count %d is not within 1 of its share %d/%d", replicas, weights, got, j, replicas*weights[j], total)
			}
			if weights[j] == 0 && c != 0 {
				t.Fatalf("Split(%d, %v) = %v: zero weight %d got %d", replicas, weights, got, j, c)
			}
		}
		if sum != replicas {
			t.Fatalf("Split(%d, %v) = %v adds up to %d", replicas, weights, got, sum)
		}
		if again := Split(replicas, weights); !slices.Equal(again, got) {
			t.Fatalf("Split is not deterministic: %v then %v", got, again)
		}
	}
}

func TestFleetDesired(t *testing.T) {
	f := validFleet()
	requireEqual(t, "desired", f.Desired(), []int{9, 1})
	// 4 retired ships (occupied ships of versions no longer run) leave 6 to split.
	requireEqual(t, "desired after 4 retired", f.DesiredAfter(4), []int{5, 1})
	requireEqual(t, "desired after 12 retired", f.DesiredAfter(12), []int{0, 0})
	if !f.Runs("web", 1) || f.Runs("web", 3) || f.Runs("api", 1) {
		t.Fatalf("Runs wrong for %+v", f.Versions)
	}
	if f.DesiredOf("web", 1, 0) != 9 || f.DesiredOf("web", 2, 0) != 1 || f.DesiredOf("web", 3, 0) != 0 || f.DesiredOf("api", 1, 0) != 0 || f.DesiredOf("web", 0, 0) != 0 {
		t.Fatal("DesiredOf does not match Desired")
	}
}

func TestMatch(t *testing.T) {
	labels := map[string]string{"region": "eu", "disk": "ssd"}
	for _, tc := range []struct {
		name string
		sel  map[string]string
		cons []Constraint
		want bool
	}{
		{"nothing", nil, nil, true},
		{"selector", map[string]string{"region": "eu"}, nil, true},
		{"selector mismatch", map[string]string{"region": "us"}, nil, false},
		{"selector missing key", map[string]string{"zone": "a"}, nil, false},
		{"=", nil, []Constraint{{Label: "disk", Op: "=", Value: "ssd"}}, true},
		{"==", nil, []Constraint{{Label: "disk", Op: "==", Value: "hdd"}}, false},
		{"= missing", nil, []Constraint{{Label: "zone", Op: "=", Value: ""}}, false},
		{"!=", nil, []Constraint{{Label: "disk", Op: "!=", Value: "hdd"}}, true},
		{"!= equal", nil, []Constraint{{Label: "disk", Op: "!=", Value: "ssd"}}, false},
		{"!= missing", nil, []Constraint{{Label: "zone", Op: "!=", Value: "a"}}, true},
		{"in", nil, []Constraint{{Label: "region", Op: "in", Value: "us,eu"}}, true},
		{"in is not a substring match", nil, []Constraint{{Label: "region", Op: "in", Value: "europe,e"}}, false},
		{"in missing", nil, []Constraint{{Label: "zone", Op: "in", Value: "a"}}, false},
		{"not_in", nil, []Constraint{{Label: "region", Op: "not_in", Value: "us,ap"}}, true},
		{"not_in listed", nil, []Constraint{{Label: "region", Op: "not_in", Value: "us,eu"}}, false},
		{"not_in missing", nil, []Constraint{{Label: "zone", Op: "not_in", Value: "a"}}, true},
		{"exists", nil, []Constraint{{Label: "disk", Op: "exists"}}, true},
		{"exists missing", nil, []Constraint{{Label: "gpu", Op: "exists"}}, false},
		{"not_exists", nil, []Constraint{{Label: "gpu", Op: "not_exists"}}, true},
		{"not_exists present", nil, []Constraint{{Label: "disk", Op: "not_exists"}}, false},
		{"unknown op", nil, []Constraint{{Label: "disk", Op: "~"}}, false},
		{"all must hold", map[string]string{"region": "eu"}, []Constraint{{Label: "disk", Op: "exists"}, {Label: "gpu", Op: "exists"}}, false},
	} {
		if got := Match(labels, tc.sel, tc.cons); got != tc.want {
			t.Errorf("%s: Match = %v", tc.name, got)
		}
	}
}

// Fleet commands.

func fleetPut(name string, replicas int, versions ...FleetVersion) *FleetPut {
	return &FleetPut{Spec: Fleet{Name: name, Replicas: replicas, Versions: versions}, Now: 10}
}

// webFleet is the fleet "game" of replicas ships of the latest web.
func webFleet(replicas int) *FleetPut {
	return fleetPut("game", replicas, FleetVersion{Blueprint: "web"})
}

// webV2 is a second version of the web blueprint.
func webV2() *BlueprintPut {
	bp := validBlueprint()
	bp.Resources.MemoryMB = 128
	return &BlueprintPut{Spec: *bp, Now: 2}
}

func (h *harness) fleet(name string) (*Fleet, bool) {
	var f *Fleet
	var ok bool
	h.view(func(v *View) { f, ok = v.Fleet(name) })
	return f, ok
}

func fleetPutCases() []cmdCase {
	bp := &BlueprintPut{Spec: *validBlueprint(), Now: 1}
	return []cmdCase{
		{
			name:  "new fleet pins the latest version",
			setup: []Command{bp, webV2()},
			cmd:   webFleet(3),
			check: func(t *testing.T, h *harness, r *Result) {
				want := &Fleet{Name: "game", Replicas: 3, Versions: []FleetVersion{{Blueprint: "web", Version: 2, Weight: 1}}, Generation: 1, Created: 10, Updated: 10}
				requireEqual(t, "result", r.Fleet, want)
				f, ok := h.fleet("game")
				if !ok {
					t.Fatal("fleet missing")
				}
				requireEqual(t, "stored", f, want)
				h.requireChanges(3, ch("fleet", "game", "put"))
			},
		},
		{
			name:  "explicit version and defaults",
			setup: []Command{bp, webV2()},
			cmd: &FleetPut{Spec: Fleet{Name: "game", Replicas: 10, Versions: []FleetVersion{
				{Blueprint: "web", Version: 1, Weight: 9}, {Blueprint: "web", Weight: 1},
			}, Placement: &Placement{}}, Now: 10},
			check: func(t *testing.T, h *harness, r *Result) {
				f, _ := h.fleet("game")
				requireEqual(t, "versions", f.Versions, []FleetVersion{{Blueprint: "web", Version: 1, Weight: 9}, {Blueprint: "web", Version: 2, Weight: 1}})
				requireEqual(t, "placement", f.Placement, &Placement{Strategy: StrategySpread})
				requireEqual(t, "desired", f.Desired(), []int{9, 1})
			},
		},
		{
			name:  "unchanged re-put keeps the generation and changes nothing",
			setup: []Command{bp, webFleet(3)},
			cmd: func() Command {
				c := webFleet(3)
				c.Now, c.Spec.Generation, c.Spec.Created = 99, 7, 7 // state-owned: ignored
				return c
			}(),
			check: func(t *testing.T, h *harness, r *Result) {
				want := &Fleet{Name: "game", Replicas: 3, Versions: []FleetVersion{{Blueprint: "web", Version: 1, Weight: 1}}, Generation: 1, Created: 10, Updated: 10}
				requireEqual(t, "result", r.Fleet, want)
				f, _ := h.fleet("game")
				requireEqual(t, "stored", f, want)
				h.requireChanges(3)
				// Spelled out as stored, it is the same fleet too.
				h.ok(&FleetPut{Spec: *want, Now: 100})
				h.requireChanges(4)
			},
		},
		{
			name:  "change bumps the generation",
			setup: []Command{bp, webFleet(3)},
			cmd: func() Command {
				c := webFleet(3)
				c.Spec.Buffer, c.Now = &Buffer{Ready: 1, Max: 2}, 50
				return c
			}(),
			check: func(t *testing.T, h *harness, r *Result) {
				f, _ := h.fleet("game")
				if f.Generation != 2 || f.Created != 10 || f.Updated != 50 || f.Buffer == nil || r.Fleet.Generation != 2 {
					t.Fatalf("fleet %s", jsonString(f))
				}
				h.requireChanges(3, ch("fleet", "game", "put"))
				h.ok(webV2())
				// Version 0 means the latest: now version 2.
				h.ok(webFleet(3))
				f, _ = h.fleet("game")
				if f.Generation != 3 || f.Versions[0].Version != 2 || f.Buffer != nil {
					t.Fatalf("fleet after a new blueprint version %s", jsonString(f))
				}
			},
		},
		{
			name:  "fleets listed by name",
			setup: []Command{bp, fleetPut("b", 1, FleetVersion{Blueprint: "web"})},
			cmd:   fleetPut("a", 1, FleetVersion{Blueprint: "web"}),
			check: func(t *testing.T, h *harness, r *Result) {
				var names []string
				h.view(func(v *View) {
					for _, f := range v.Fleets() {
						names = append(names, f.Name)
					}
				})
				requireEqual(t, "names", names, []string{"a", "b"})
			},
		},
		{name: "unknown blueprint", setup: []Command{bp}, cmd: fleetPut("game", 1, FleetVersion{Blueprint: "web", Weight: 1}, FleetVersion{Blueprint: "api", Weight: 1}), code: ErrInvalid, field: "versions[1].blueprint"},
		{name: "missing version", setup: []Command{bp}, cmd: fleetPut("game", 1, FleetVersion{Blueprint: "web", Version: 2}), code: ErrInvalid, field: "versions[0].version"},
		{name: "duplicate version", setup: []Command{bp, webV2()}, cmd: fleetPut("game", 1, FleetVersion{Blueprint: "web", Version: 1, Weight: 1}, FleetVersion{Blueprint: "web", Version: 1, Weight: 1}), code: ErrInvalid, field: "versions[1]"},
		{name: "version 0 is the latest, listed twice", setup: []Command{bp, webV2()}, cmd: fleetPut("game", 1, FleetVersion{Blueprint: "web", Version: 2, Weight: 1}, FleetVersion{Blueprint: "web", Weight: 1}), code: ErrInvalid, field: "versions[1]"},
		{name: "invalid name", setup: []Command{bp}, cmd: fleetPut("Game", 1, FleetVersion{Blueprint: "web"}), code: ErrInvalid, field: "name"},
		{name: "invalid weight", setup: []Command{bp}, cmd: fleetPut("game", 1, FleetVersion{Blueprint: "web", Weight: -1}), code: ErrInvalid, field: "versions[0].weight"},
		{
			name:  "rejected change keeps the old fleet",
			setup: []Command{bp, webFleet(3)},
			cmd:   fleetPut("game", 5, FleetVersion{Blueprint: "nope"}),
			code:  ErrInvalid, field: "versions[0].blueprint",
			check: func(t *testing.T, h *harness, r *Result) {
				if f, _ := h.fleet("game"); f.Replicas != 3 || f.Generation != 1 {
					t.Fatalf("fleet %s", jsonString(f))
				}
			},
		},
	}
}

func fleetScaleCases() []cmdCase {
	setup := []Command{&BlueprintPut{Spec: *validBlueprint(), Now: 1}, webFleet(3)}
	return []cmdCase{
		{
			name:  "scale",
			setup: setup,
			cmd:   &FleetScale{Name: "game", Replicas: 7, Now: 20},
			check: func(t *testing.T, h *harness, r *Result) {
				want := &Fleet{Name: "game", Replicas: 7, Versions: []FleetVersion{{Blueprint: "web", Version: 1, Weight: 1}}, Generation: 2, Created: 10, Updated: 20}
				requireEqual(t, "result", r.Fleet, want)
				f, _ := h.fleet("game")
				requireEqual(t, "stored", f, want)
				h.requireChanges(3, ch("fleet", "game", "put"))
			},
		},
		{
			name:  "same replicas changes nothing",
			setup: setup,
			cmd:   &FleetScale{Name: "game", Replicas: 3, Now: 20},
			check: func(t *testing.T, h *harness, r *Result) {
				if f, _ := h.fleet("game"); f.Generation != 1 || f.Updated != 10 || r.Fleet.Replicas != 3 {
					t.Fatalf("fleet %s", jsonString(f))
				}
				h.requireChanges(3)
			},
		},
		{
			name:  "scale to zero",
			setup: setup,
			cmd:   &FleetScale{Name: "game", Replicas: 0, Now: 20},
			check: func(t *testing.T, h *harness, r *Result) {
				if f, _ := h.fleet("game"); f.Replicas != 0 || f.Generation != 2 {
					t.Fatalf("fleet %s", jsonString(f))
				}
			},
		},
		{name: "missing", setup: setup, cmd: &FleetScale{Name: "nope", Replicas: 1}, code: ErrNotFound, field: "name"},
		{name: "negative", setup: setup, cmd: &FleetScale{Name: "game", Replicas: -1}, code: ErrInvalid, field: "replicas"},
		{name: "too many", setup: setup, cmd: &FleetScale{Name: "game", Replicas: MaxReplicas + 1}, code: ErrInvalid, field: "replicas"},
	}
}

func fleetDeleteCases() []cmdCase {
	return []cmdCase{
		{
			name:  "stops queued ships at once and placed ones through their worker",
			setup: gameWorld(placeCmd(place(g7, "n1", 20000))), // index 8
			cmd:   &FleetDelete{Name: "game", Now: 30},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 3 || r.Fleet == nil || r.Fleet.Name != "game" {
					t.Fatalf("result %s", jsonString(r))
				}
				if _, ok := h.fleet("game"); ok {
					t.Fatal("fleet still present")
				}
				for _, id := range []string{g9, gb} {
					s := h.ship(id)
					if s.State != ShipStopped || s.Desired != DesireStop || s.Reason != "fleet deleted" || s.Item != 0 || s.Updated != 30 {
						t.Fatalf("queued ship after delete: %s", jsonString(s))
					}
				}
				s := h.ship(g7)
				if s.State != ShipStopping || s.Desired != DesireStop || s.Node != "n1" || s.Item != 0 {
					t.Fatalf("placed ship after delete: %s", jsonString(s))
				}
				if q := h.queue(SchedulerQueue); len(q) != 0 {
					t.Fatalf("scheduler queue %s", jsonString(q))
				}
				if q := h.queue(WorkerQueue("n1")); len(q) != 0 {
					t.Fatalf("worker queue %s", jsonString(q))
				}
				// The stopping ship holds its node until the worker reports.
				if n := h.mustNode("n1"); n.Ships != 1 || n.Allocated != (Resources{CPUMHz: 100, MemoryMB: 64}) {
					t.Fatalf("node %s", jsonString(n))
				}
				h.ok(report("n1", g7, ShipStopped))
				if n := h.mustNode("n1"); n.Ships != 0 || n.Allocated != (Resources{}) || n.UsedPorts != nil {
					t.Fatalf("node after stop %s", jsonString(n))
				}
				// The blueprint is free again.
				h.ok(&BlueprintDelete{Name: "web"})
			},
		},
		{
			name:  "ended and stopping ships are left alone",
			setup: gameWorld(placeCmd(place(g7, "n1", 20000)), &ShipStop{Ships: []string{g7, g9}, Why: StopUser, Reason: "bye", Now: 20}),
			cmd:   &FleetDelete{Name: "game", Now: 30},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 1 {
					t.Fatalf("count %d", r.Count)
				}
				if s := h.ship(g7); s.Reason != "bye" || s.Updated != 20 {
					t.Fatalf("stopping ship touched: %s", jsonString(s))
				}
				if s := h.ship(g9); s.Reason != "bye" || s.Updated != 20 {
					t.Fatalf("stopped ship touched: %s", jsonString(s))
				}
			},
		},
		{name: "missing", setup: gameWorld(), cmd: &FleetDelete{Name: "nope"}, code: ErrNotFound, field: "name"},
		{name: "deleted twice", setup: gameWorld(&FleetDelete{Name: "game"}), cmd: &FleetDelete{Name: "game"}, code: ErrNotFound, field: "name"},
	}
}

func TestApplyFleetPut(t *testing.T)    { runCmdCases(t, fleetPutCases()) }
func TestApplyFleetScale(t *testing.T)  { runCmdCases(t, fleetScaleCases()) }
func TestApplyFleetDelete(t *testing.T) { runCmdCases(t, fleetDeleteCases()) }
