package fsm

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// bpPut prepares a blueprint with the test key, failing the test on error.
func bpPut(tb testing.TB, bp *Blueprint, now int64) *BlueprintPut {
	tb.Helper()
	c, err := PrepareBlueprint(testKey, bp)
	if err != nil {
		tb.Fatalf("PrepareBlueprint: %v", err)
	}
	c.Now = now
	return c
}

func blueprintPutCases() []cmdCase {
	init := &ClusterInit{ClusterID: "c", Key: testKey}
	v1 := validBlueprint()
	v1Secret := validBlueprint()
	v1Secret.Secrets = map[string]string{"TOKEN": "hunter2"}
	v2 := validBlueprint()
	v2.Resources.MemoryMB = 128
	mustPrep := func(bp *Blueprint, now int64) *BlueprintPut {
		c, err := PrepareBlueprint(testKey, bp)
		if err != nil {
			panic(err)
		}
		c.Now = now
		return c
	}
	return []cmdCase{
		{
			name:  "first version",
			setup: []Command{init},
			cmd:   mustPrep(v1Secret, 1000),
			check: func(t *testing.T, h *harness, r *Result) {
				want := validBlueprint()
				want.Version, want.Created, want.SecretNames = 1, 1000, []string{"TOKEN"}
				want.Health = &Health{Type: "http", Port: "http", Path: "/healthz", Interval: Duration(5 * time.Second), Timeout: Duration(2 * time.Second), Failures: 3}
				requireEqual(t, "result", r.Blueprint, want)
				h.view(func(v *View) {
					bp, ok := v.Blueprint("web", 0)
					if !ok {
						t.Fatal("latest missing")
					}
					requireEqual(t, "latest", bp, want)
					bp1, _ := v.Blueprint("web", 1)
					requireEqual(t, "v1", bp1, want)
					info, _ := v.BlueprintInfo("web")
					requireEqual(t, "info", info, &BlueprintInfo{Name: "web", Latest: 1, Versions: []int{1}, Created: 1000, Updated: 1000})
					sec, err := v.BlueprintSecrets("web", 1)
					if err != nil {
						t.Fatal(err)
					}
					requireEqual(t, "secrets", sec, map[string]string{"TOKEN": "hunter2"})
				})
				// The plaintext never reaches the state.
				if bytes.Contains(snapshotBytes(t, h.s), []byte("hunter2")) {
					t.Fatal("plaintext secret in the state")
				}
				h.requireChanges(2, ch("blueprint", "web", "put"))
			},
		},
		{
			name:  "changed spec is the next version",
			setup: []Command{init, mustPrep(v1, 1000)},
			cmd:   mustPrep(v2, 2000),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Blueprint.Version != 2 || r.Blueprint.Created != 2000 {
					t.Fatalf("result %s", jsonString(r.Blueprint))
				}
				h.view(func(v *View) {
					old, _ := v.Blueprint("web", 1)
					latest, _ := v.Blueprint("web", 0)
					if old.Resources.MemoryMB != 64 || latest.Resources.MemoryMB != 128 || latest.Version != 2 {
						t.Fatalf("v1 %s latest %s", jsonString(old), jsonString(latest))
					}
					info, _ := v.BlueprintInfo("web")
					requireEqual(t, "info", info, &BlueprintInfo{Name: "web", Latest: 2, Versions: []int{1, 2}, Created: 1000, Updated: 2000})
					if _, ok := v.Blueprint("web", 3); ok {
						t.Fatal("version 3 exists")
					}
				})
			},
		},
		{
			name:  "identical re-put keeps the version and changes nothing",
			setup: []Command{init, mustPrep(v1Secret, 1000)},
			cmd:   mustPrep(v1Secret, 5000), // fresh nonce, same secrets
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Blueprint.Version != 1 || r.Blueprint.Created != 1000 {
					t.Fatalf("result %s", jsonString(r.Blueprint))
				}
				h2 := newHarness(t)
				h2.ok(init)
				h2.ok(mustPrep(v1Secret, 1000))
				// The sealed bytes differ (random nonce): compare views.
				a, b := readFullView(t, h.s), readFullView(t, h2.s)
				a.Index = b.Index
				requireEqual(t, "state after identical re-put", a, b)
				h.requireChanges(3)
			},
		},
		{
			name:  "re-put with defaults spelled out is identical",
			setup: []Command{init, mustPrep(v1, 1000)},
			cmd: func() Command {
				bp := validBlueprint()
				bp.Health.Interval, bp.Health.Timeout, bp.Health.Failures = Duration(5e9), Duration(2e9), 3
				return mustPrep(bp, 3000)
			}(),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Blueprint.Version != 1 {
					t.Fatalf("version %d", r.Blueprint.Version)
				}
			},
		},
		{
			name:  "changed secret value is a new version",
			setup: []Command{init, mustPrep(v1Secret, 1000)},
			cmd: func() Command {
				bp := validBlueprint()
				bp.Secrets = map[string]string{"TOKEN": "hunter3"}
				return mustPrep(bp, 2000)
			}(),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Blueprint.Version != 2 {
					t.Fatalf("version %d", r.Blueprint.Version)
				}
				h.view(func(v *View) {
					s1, err1 := v.BlueprintSecrets("web", 1)
					s2, err2 := v.BlueprintSecrets("web", 0)
					if err1 != nil || err2 != nil || s1["TOKEN"] != "hunter2" || s2["TOKEN"] != "hunter3" {
						t.Fatalf("secrets %v %v %v %v", s1, err1, s2, err2)
					}
				})
			},
		},
		{
			name:  "dropping secrets is a new version",
			setup: []Command{init, mustPrep(v1Secret, 1000)},
			cmd:   mustPrep(v1, 2000),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Blueprint.Version != 2 || r.Blueprint.SecretNames != nil {
					t.Fatalf("result %s", jsonString(r.Blueprint))
				}
			},
		},
		{
			name:  "plaintext secrets are rejected",
			setup: []Command{init, mustPrep(v1, 1000)},
			cmd:   &BlueprintPut{Spec: *v1Secret, Now: 2000},
			code:  ErrInvalid, field: "secrets",
		},
		{
			name:  "invalid spec names the field",
			setup: []Command{init, mustPrep(v1, 1000)},
			cmd: func() Command {
				bp := validBlueprint()
				bp.Ports[0].Protocol = "sctp"
				return &BlueprintPut{Spec: *bp, Now: 2000}
			}(),
			code: ErrInvalid, field: "ports[0].protocol",
		},
		{
			name: "invalid name",
			cmd: func() Command {
				bp := validBlueprint()
				bp.Name = "Web"
				return &BlueprintPut{Spec: *bp}
			}(),
			code: ErrInvalid, field: "name",
		},
		{
			name: "put validates and fills defaults itself",
			cmd: &BlueprintPut{Spec: Blueprint{
				Name: "raw", Unit: "[Service]\nExecStart=/bin/true\n",
				Ports:  []Port{{Name: "p"}},
				Health: &Health{Type: "http", Port: "p"},
			}, Now: 7},
			check: func(t *testing.T, h *harness, r *Result) {
				h.view(func(v *View) {
					bp, _ := v.Blueprint("raw", 0)
					requireEqual(t, "defaults", bp.Ports, []Port{{Name: "p", Protocol: "tcp"}})
					requireEqual(t, "health", bp.Health, &Health{Type: "http", Port: "p", Path: "/", Interval: Duration(5e9), Timeout: Duration(2e9), Failures: 3})
				})
			},
		},
	}
}

func blueprintDeleteCases() []cmdCase {
	v2 := validBlueprint()
	v2.Resources.CPUMHz = 200
	other := validBlueprint()
	other.Name = "web2"
	setup := []Command{
		&BlueprintPut{Spec: *validBlueprint(), Now: 1},
		&BlueprintPut{Spec: *v2, Now: 2},
		&BlueprintPut{Spec: *other, Now: 3},
	}
	return []cmdCase{
		{
			name:  "deletes every version",
			setup: setup,
			cmd:   &BlueprintDelete{Name: "web"},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != 2 {
					t.Fatalf("deleted %d", r.Deleted)
				}
				h.view(func(v *View) {
					for _, ver := range []int{0, 1, 2} {
						if _, ok := v.Blueprint("web", ver); ok {
							t.Fatalf("version %d survived", ver)
						}
					}
					if _, ok := v.BlueprintInfo("web"); ok {
						t.Fatal("info survived")
					}
					if _, err := v.BlueprintSecrets("web", 0); err == nil {
						t.Fatal("secrets of a deleted blueprint")
					}
					if bps := v.Blueprints(); len(bps) != 1 || bps[0].Name != "web2" {
						t.Fatalf("blueprints %s", jsonString(bps))
					}
				})
				for _, rec := range dumpDB(t, h.s) {
					if len(rec.Path) == 1 && rec.Path[0] == string(bBPVersions) && rec.Key != nil && string(rec.Key[:4]) == "web\x00" {
						t.Fatalf("version record left: %s", rec)
					}
				}
				h.requireChanges(4, ch("blueprint", "web", "delete"))
				// A new blueprint of that name starts over.
				r2 := h.ok(&BlueprintPut{Spec: *validBlueprint(), Now: 9})
				if r2.Blueprint.Version != 1 {
					t.Fatalf("version after re-create: %d", r2.Blueprint.Version)
				}
			},
		},
		{
			name:  "used by a fleet",
			setup: append(setup, fleetPut("game", 2, FleetVersion{Blueprint: "web2", Weight: 1}, FleetVersion{Blueprint: "web", Version: 1, Weight: 1})),
			cmd:   &BlueprintDelete{Name: "web"},
			code:  ErrConflict, field: "name",
			check: func(t *testing.T, h *harness, r *Result) {
				if !strings.Contains(r.Err.Message, `fleet "game"`) {
					t.Fatalf("message %q does not name the fleet", r.Err.Message)
				}
				h.reject(&BlueprintDelete{Name: "web2"}, ErrConflict, "name")
				// Once the fleet stops using it, it can go.
				h.ok(fleetPut("game", 2, FleetVersion{Blueprint: "web2"}))
				h.ok(&BlueprintDelete{Name: "web"})
				h.reject(&BlueprintDelete{Name: "web2"}, ErrConflict, "name")
				h.ok(&FleetDelete{Name: "game"})
				h.ok(&BlueprintDelete{Name: "web2"})
			},
		},
		{
			name:  "a live ship without a fleet holds its blueprint",
			setup: append(setup, &ShipCreate{Blueprint: "web", Count: 1}),
			cmd:   &BlueprintDelete{Name: "web"},
			code:  ErrConflict, field: "name",
		},
		{
			name:  "an ended ship without a fleet does not",
			setup: append(setup, &ShipCreate{Blueprint: "web", Count: 1}, &ShipStop{Ships: []string{"web-4"}, Why: StopUser}),
			cmd:   &BlueprintDelete{Name: "web"},
		},
		{name: "missing", setup: setup, cmd: &BlueprintDelete{Name: "nope"}, code: ErrNotFound, field: "name"},
		{name: "name prefix is not a match", setup: setup, cmd: &BlueprintDelete{Name: "we"}, code: ErrNotFound, field: "name"},
	}
}
