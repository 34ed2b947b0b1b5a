package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

func threeNodes() []*fsm.Node {
	return []*fsm.Node{mkNode("n1", 100000, 100000), mkNode("n2", 100000, 100000), mkNode("n3", 100000, 100000)}
}

func TestWeightsCreate(t *testing.T) {
	v1, v2 := mkBP("web", 1, 10, 10), mkBP("web", 2, 10, 10)
	f := &fsm.Fleet{Name: "web", Replicas: 10, Versions: []fsm.FleetVersion{
		{Blueprint: "web", Version: 1, Weight: 90}, {Blueprint: "web", Version: 2, Weight: 10},
	}}
	p := Make(mkInput(threeNodes(), []*fsm.Fleet{f}, nil, v1, v2))
	want := map[string]int{"web/web/v1": 9, "web/web/v2": 1}
	if got := creates(p); fmt.Sprint(got) != fmt.Sprint(want) || len(p.Create) != 2 {
		t.Fatalf("creates %v, want %v\n%s", got, want, dumpPlan(p))
	}
	if len(p.Stop)+len(p.Place)+len(p.Lost)+len(p.Purge) != 0 {
		t.Fatalf("unexpected actions:\n%s", dumpPlan(p))
	}
	// Partly there: only the shortfall is created.
	ships := []*fsm.Ship{
		mkShip("web-a", "web", v1, fsm.ShipReady, "n1"),
		mkShip("web-b", "web", v1, fsm.ShipQueued, ""),
		mkShip("web-c", "web", v2, fsm.ShipAllocated, "n2"),
	}
	stoppingV1 := mkShip("web-d", "web", v1, fsm.ShipStopping, "n1")
	stoppingV1.Desired = fsm.DesireStop
	ended := mkShip("web-e", "web", v1, fsm.ShipFailed, "n1")
	p = Make(mkInput(threeNodes(), []*fsm.Fleet{f}, append(ships, stoppingV1, ended), v1, v2))
	if got := creates(p); fmt.Sprint(got) != fmt.Sprint(map[string]int{"web/web/v1": 7}) {
		t.Fatalf("creates %v, want 7 of v1 (stopping and ended ships do not count)\n%s", got, dumpPlan(p))
	}
}

// TestWeightsShift: 90/10 → 50/50 over 9+1 live ships makes the fewest
// changes: 4 of v2 created, 4 of v1 stopped.
func TestWeightsShift(t *testing.T) {
	v1, v2 := mkBP("web", 1, 10, 10), mkBP("web", 2, 10, 10)
	f := &fsm.Fleet{Name: "web", Replicas: 10, Versions: []fsm.FleetVersion{
		{Blueprint: "web", Version: 1, Weight: 50}, {Blueprint: "web", Version: 2, Weight: 50},
	}}
	var ships []*fsm.Ship
	nodes := threeNodes()
	for i := range 9 {
		ships = append(ships, mkShip(fmt.Sprintf("web-v1-%d", i), "web", v1, fsm.ShipReady, nodes[i%3].Name))
	}
	ships = append(ships, mkShip("web-v2-0", "web", v2, fsm.ShipReady, "n1"))
	p := Make(mkInput(nodes, []*fsm.Fleet{f}, ships, v1, v2))
	if got := creates(p); fmt.Sprint(got) != fmt.Sprint(map[string]int{"web/web/v2": 4}) {
		t.Fatalf("creates %v, want 4 of v2\n%s", got, dumpPlan(p))
	}
	stop := stopped(p, fsm.StopSurplus)
	if len(stop) != 4 || len(p.Stop) != 1 {
		t.Fatalf("want one surplus stop of 4 ships\n%s", dumpPlan(p))
	}
	for _, id := range stop {
		if !strings.HasPrefix(id, "web-v1-") {
			t.Fatalf("stopped %s, not a v1 ship", id)
		}
	}
	// A version dropped from the fleet is all surplus.
	f.Versions = f.Versions[1:]
	p = Make(mkInput(nodes, []*fsm.Fleet{f}, ships, v1, v2))
	if got := stopped(p, fsm.StopSurplus); len(got) != 9 || !strings.HasPrefix(got[0], "web-v1-") {
		t.Fatalf("want all 9 v1 ships stopped, got %v", got)
	}
	if got := creates(p); fmt.Sprint(got) != fmt.Sprint(map[string]int{"web/web/v2": 9}) {
		t.Fatalf("creates %v", got)
	}
}

// TestScaleDown stops exactly the surplus, the least advanced ships first,
// never an allocated one.
func TestScaleDown(t *testing.T) {
	bp := mkBP("web", 1, 10, 10)
	type tc struct {
		name     string
		states   []string // of the 10 ships, in id order
		replicas int
		want     []string // states of the stopped ships, sorted
	}
	rep := func(s string, n int) []string { return slices.Repeat([]string{s}, n) }
	cat := func(ss ...[]string) []string { return slices.Concat(ss...) }
	Q, S, St, R, A := fsm.ShipQueued, fsm.ShipScheduled, fsm.ShipStarting, fsm.ShipReady, fsm.ShipAllocated
	cases := []tc{
		{"one of each stage", cat(rep(A, 2), rep(R, 3), rep(St, 2), rep(S, 2), rep(Q, 1)), 2, cat(rep(Q, 1), rep(R, 3), rep(S, 2), rep(St, 2))},
		{"queued first", cat(rep(R, 2), rep(St, 2), rep(S, 3), rep(Q, 3)), 2, cat(rep(Q, 3), rep(S, 3), rep(St, 2))},
		{"starting before ready", cat(rep(R, 5), rep(St, 5)), 2, cat(rep(R, 3), rep(St, 5))},
		{"never allocated", cat(rep(A, 9), rep(R, 1)), 2, rep(R, 1)},
		{"all allocated", rep(A, 10), 2, nil},
		{"to zero", cat(rep(A, 2), rep(R, 8)), 0, rep(R, 8)},
		{"scale up is no stop", rep(R, 10), 12, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ships []*fsm.Ship
			byID := map[string]*fsm.Ship{}
			for i, st := range tc.states {
				node := fmt.Sprintf("n%d", i%3+1)
				if st == fsm.ShipQueued {
					node = ""
				}
				s := mkShip(fmt.Sprintf("web-%02d", i), "web", bp, st, node)
				ships = append(ships, s)
				byID[s.ID] = s
			}
			in := mkInput(threeNodes(), []*fsm.Fleet{mkFleet("web", tc.replicas, bp)}, ships, bp)
			p := Make(in)
			var got []string
			for _, id := range stopped(p, fsm.StopSurplus) {
				got = append(got, byID[id].State)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("stopped states %v, want %v\n%s", got, tc.want, dumpPlan(p))
			}
			if len(p.Stop) > 1 || len(stopped(p, fsm.StopDrain)) != 0 {
				t.Fatalf("stops:\n%s", dumpPlan(p))
			}
			if tc.replicas > len(tc.states) {
				if c := creates(p)["web/web/v1"]; c != tc.replicas-len(tc.states) {
					t.Fatalf("created %d", c)
				}
			} else if len(p.Create) != 0 {
				t.Fatalf("created on scale down:\n%s", dumpPlan(p))
			}
		})
	}
}

// TestScaleDownSpreadTieBreak: among ships of the same stage, a spread
// fleet loses those on the nodes with most of its ships.
func TestScaleDownSpreadTieBreak(t *testing.T) {
	bp := mkBP("web", 1, 10, 10)
	ships := []*fsm.Ship{
		mkShip("web-1", "web", bp, fsm.ShipReady, "n1"),
		mkShip("web-2", "web", bp, fsm.ShipReady, "n1"),
		mkShip("web-3", "web", bp, fsm.ShipReady, "n1"),
		mkShip("web-4", "web", bp, fsm.ShipReady, "n2"),
	}
	p := Make(mkInput(threeNodes(), []*fsm.Fleet{mkFleet("web", 3, bp)}, ships, bp))
	if got := stopped(p, fsm.StopSurplus); len(got) != 1 || got[0] == "web-4" {
		t.Fatalf("want one ship of n1 stopped, got %v", got)
	}
}

// TestScaleDownKeepsSpread: scaling a spread fleet of 3+3 ships on two
// nodes down to 2 should keep one ship on each node ("so the fleet stays
// spread", plan.go pickSurplus). pickSurplus counts ships per node once,
// before choosing, so every ship ties and the newest four go, three of
// them from the same node.
func TestScaleDownKeepsSpread(t *testing.T) {
	bp := mkBP("web", 1, 10, 10)
	var ships []*fsm.Ship
	for i := range 6 {
		node := "n1"
		if i >= 3 {
			node = "n2"
		}
		ships = append(ships, mkShip(fmt.Sprintf("web-%d", i), "web", bp, fsm.ShipReady, node))
	}
	p := Make(mkInput(threeNodes(), []*fsm.Fleet{mkFleet("web", 2, bp)}, ships, bp))
	stop := stopped(p, fsm.StopSurplus)
	left := map[string]int{}
	for _, s := range ships {
		if !slices.Contains(stop, s.ID) {
			left[s.Node]++
		}
	}
	if len(stop) != 4 || left["n1"] != 1 || left["n2"] != 1 {
		t.Errorf("BUG (plan.go pickSurplus: perNode is not updated as victims are chosen): stopping %v leaves ships per node %v, want n1:1 n2:1", stop, left)
	}
}

// TestScaleDownNewestFirst: among equal ships the newest is stopped. Ship
// ids are "<fleet>-<id in base 36>" (fsm ShipCreate), so comparing ids as
// strings puts web-z (id 35) after web-10 (id 36).
func TestScaleDownNewestFirst(t *testing.T) {
	bp := mkBP("web", 1, 10, 10)
	older := mkShip("web-z", "web", bp, fsm.ShipQueued, "")  // id 35
	newer := mkShip("web-10", "web", bp, fsm.ShipQueued, "") // id 36
	older.Created, newer.Created = t0.Add(-2*time.Minute).UnixMilli(), t0.Add(-time.Minute).UnixMilli()
	in := mkInput(threeNodes(), []*fsm.Fleet{mkFleet("web", 1, bp)}, []*fsm.Ship{older, newer}, bp)
	p := Make(in)
	if got := stopped(p, fsm.StopSurplus); !slices.Equal(got, []string{"web-10"}) {
		t.Errorf("BUG (plan.go pickSurplus: \"newest first\" compares ids as strings): stopped %v, want the newest [web-10]", got)
	}
}

// TestPlanDoesNotPlaceShipsItStops: a queued ship that the plan stops as
// surplus should not also be placed: its placement holds memory that
// another fleet's ship needs, which is then told there is no room.
func TestPlanDoesNotPlaceShipsItStops(t *testing.T) {
	a, b := mkBP("a", 1, 10, 512), mkBP("b", 1, 10, 512)
	ships := []*fsm.Ship{
		mkShip("a-1", "a", a, fsm.ShipQueued, ""),
		mkShip("a-2", "a", a, fsm.ShipQueued, ""),
		mkShip("b-1", "b", b, fsm.ShipQueued, ""),
	}
	fleets := []*fsm.Fleet{mkFleet("a", 1, a), mkFleet("b", 1, b)}
	p := Make(mkInput([]*fsm.Node{mkNode("n1", 1000, 1024)}, fleets, ships, a, b))
	stop := stopped(p, fsm.StopSurplus)
	if !slices.Equal(stop, []string{"a-2"}) {
		t.Fatalf("stopped %v, want [a-2]", stop)
	}
	var placed []string
	for _, pl := range allPlaces(p) {
		placed = append(placed, pl.Ship)
	}
	slices.Sort(placed)
	if !slices.Equal(placed, []string{"a-1", "b-1"}) {
		t.Errorf("BUG (place.go placeQueued places ships plan.go stops in the same plan): placed %v, want [a-1 b-1]\n%s", placed, dumpPlan(p))
	}
}

func TestLost(t *testing.T) {
	bp := mkBP("web", 1, 10, 10)
	setup := func(status string, since time.Duration) ([]*fsm.Node, []*fsm.Ship) {
		nodes := threeNodes()
		nodes[1].Status, nodes[1].StatusSince = status, t0.Add(-since).UnixMilli()
		var ships []*fsm.Ship
		for i := range 6 {
			ships = append(ships, mkShip(fmt.Sprintf("web-%d", i), "web", bp, fsm.ShipReady, nodes[i%3].Name))
		}
		return nodes, ships
	}
	t.Run("dead past the grace", func(t *testing.T) {
		nodes, ships := setup(fsm.NodeDead, 3*time.Second)
		p := Make(mkInput(nodes, []*fsm.Fleet{mkFleet("web", 6, bp)}, ships, bp))
		if len(p.Lost) != 1 || p.Lost[0].Node != "n2" || !strings.HasPrefix(p.Lost[0].Reason, "node n2 is dead, down since ") {
			t.Fatalf("lost:\n%s", dumpPlan(p))
		}
		if got := creates(p); got["web/web/v1"] != 2 || len(p.Create) != 1 {
			t.Fatalf("want 2 replacements, got:\n%s", dumpPlan(p))
		}
		if len(p.Stop) != 0 {
			t.Fatalf("stops:\n%s", dumpPlan(p))
		}
	})
	t.Run("suspect past the grace", func(t *testing.T) {
		nodes, ships := setup(fsm.NodeSuspect, 10*time.Second)
		p := Make(mkInput(nodes, []*fsm.Fleet{mkFleet("web", 6, bp)}, ships, bp))
		if len(p.Lost) != 1 || p.Lost[0].Node != "n2" || creates(p)["web/web/v1"] != 2 {
			t.Fatalf("plan:\n%s", dumpPlan(p))
		}
	})
	t.Run("exactly the grace", func(t *testing.T) {
		nodes, ships := setup(fsm.NodeDead, 2*time.Second)
		p := Make(mkInput(nodes, []*fsm.Fleet{mkFleet("web", 6, bp)}, ships, bp))
		if len(p.Lost) != 1 {
			t.Fatalf("plan:\n%s", dumpPlan(p))
		}
	})
	t.Run("dead within the grace", func(t *testing.T) {
		nodes, ships := setup(fsm.NodeDead, 1900*time.Millisecond)
		requireEmpty(t, Make(mkInput(nodes, []*fsm.Fleet{mkFleet("web", 6, bp)}, ships, bp)))
	})
	t.Run("gone from the state", func(t *testing.T) {
		nodes, ships := setup(fsm.NodeAlive, time.Hour)
		nodes = slices.Delete(nodes, 1, 2)
		p := Make(mkInput(nodes, []*fsm.Fleet{mkFleet("web", 6, bp)}, ships, bp))
		if len(p.Lost) != 1 || p.Lost[0].Node != "n2" || p.Lost[0].Reason != "node n2 is gone" || creates(p)["web/web/v1"] != 2 {
			t.Fatalf("plan:\n%s", dumpPlan(p))
		}
	})
	t.Run("dead without ships", func(t *testing.T) {
		nodes, ships := setup(fsm.NodeDead, time.Hour)
		ships = slices.DeleteFunc(ships, func(s *fsm.Ship) bool { return s.Node == "n2" })
		requireEmpty(t, Make(mkInput(nodes, []*fsm.Fleet{mkFleet("web", 4, bp)}, ships, bp)))
	})
	t.Run("dead with only ended ships", func(t *testing.T) {
		nodes, ships := setup(fsm.NodeDead, time.Hour)
		for _, s := range ships {
			if s.Node == "n2" {
				s.State = fsm.ShipLostState
				s.Updated = t0.UnixMilli()
			}
		}
		requireEmpty(t, Make(mkInput(nodes, []*fsm.Fleet{mkFleet("web", 4, bp)}, ships, bp)))
	})
	t.Run("two dead nodes in name order", func(t *testing.T) {
		nodes, ships := setup(fsm.NodeDead, time.Hour)
		nodes[2].Status, nodes[2].StatusSince = fsm.NodeLeft, t0.Add(-time.Minute).UnixMilli()
		p := Make(mkInput(nodes, []*fsm.Fleet{mkFleet("web", 6, bp)}, ships, bp))
		if len(p.Lost) != 2 || p.Lost[0].Node != "n2" || p.Lost[1].Node != "n3" || creates(p)["web/web/v1"] != 4 {
			t.Fatalf("plan:\n%s", dumpPlan(p))
		}
	})
}

func TestDrain(t *testing.T) {
	bp := mkBP("web", 1, 10, 10)
	nodes := func() []*fsm.Node {
		ns := append(threeNodes(), mkNode("d", 100000, 100000))
		ns[3].Drain = true
		return ns
	}
	f := mkFleet("web", 3, bp)
	t.Run("ships on a draining node are replaced first", func(t *testing.T) {
		ships := []*fsm.Ship{
			mkShip("web-1", "web", bp, fsm.ShipReady, "n1"),
			mkShip("web-2", "web", bp, fsm.ShipReady, "n2"),
			mkShip("web-3", "web", bp, fsm.ShipReady, "d"),
		}
		p := Make(mkInput(nodes(), []*fsm.Fleet{f}, ships, bp))
		if creates(p)["web/web/v1"] != 1 || len(p.Stop) != 0 {
			t.Fatalf("want one replacement and no stop:\n%s", dumpPlan(p))
		}
	})
	t.Run("replacement placed but not ready", func(t *testing.T) {
		for _, st := range []string{fsm.ShipQueued, fsm.ShipScheduled, fsm.ShipStarting} {
			node := "n3"
			if st == fsm.ShipQueued {
				node = ""
			}
			ships := []*fsm.Ship{
				mkShip("web-1", "web", bp, fsm.ShipReady, "n1"),
				mkShip("web-2", "web", bp, fsm.ShipReady, "n2"),
				mkShip("web-3", "web", bp, fsm.ShipReady, "d"),
				mkShip("web-4", "web", bp, st, node),
			}
			p := Make(mkInput(nodes(), []*fsm.Fleet{f}, ships, bp))
			if len(p.Create) != 0 || len(p.Stop) != 0 {
				t.Fatalf("%s replacement: want no create and no stop:\n%s", st, dumpPlan(p))
			}
		}
	})
	for _, st := range []string{fsm.ShipReady, fsm.ShipAllocated} {
		t.Run("replacement "+st, func(t *testing.T) {
			ships := []*fsm.Ship{
				mkShip("web-1", "web", bp, fsm.ShipReady, "n1"),
				mkShip("web-2", "web", bp, fsm.ShipAllocated, "n2"),
				mkShip("web-3", "web", bp, fsm.ShipReady, "d"),
				mkShip("web-4", "web", bp, st, "n3"),
			}
			p := Make(mkInput(nodes(), []*fsm.Fleet{f}, ships, bp))
			if len(p.Create) != 0 || len(stopped(p, fsm.StopSurplus)) != 0 || !slices.Equal(stopped(p, fsm.StopDrain), []string{"web-3"}) {
				t.Fatalf("want web-3 stopped for drain:\n%s", dumpPlan(p))
			}
		})
	}
	t.Run("other versions do not count", func(t *testing.T) {
		v2 := mkBP("web", 2, 10, 10)
		f2 := &fsm.Fleet{Name: "web", Replicas: 4, Versions: []fsm.FleetVersion{{Blueprint: "web", Version: 1, Weight: 1}, {Blueprint: "web", Version: 2, Weight: 1}}}
		ships := []*fsm.Ship{
			mkShip("web-1", "web", bp, fsm.ShipReady, "n1"),
			mkShip("web-2", "web", bp, fsm.ShipReady, "d"),
			mkShip("web-3", "web", v2, fsm.ShipReady, "n2"),
			mkShip("web-4", "web", v2, fsm.ShipReady, "n3"),
		}
		p := Make(mkInput(nodes(), []*fsm.Fleet{f2}, ships, bp, v2))
		if len(p.Stop) != 0 || creates(p)["web/web/v1"] != 1 || len(p.Create) != 1 {
			t.Fatalf("want a v1 replacement and no stop:\n%s", dumpPlan(p))
		}
	})
	t.Run("several ships of a draining node", func(t *testing.T) {
		ships := []*fsm.Ship{
			mkShip("web-1", "web", bp, fsm.ShipReady, "d"),
			mkShip("web-2", "web", bp, fsm.ShipStarting, "d"),
			mkShip("web-3", "web", bp, fsm.ShipQueued, ""),
			mkShip("web-4", "web", bp, fsm.ShipReady, "n1"),
			mkShip("web-5", "web", bp, fsm.ShipReady, "n2"),
		}
		p := Make(mkInput(nodes(), []*fsm.Fleet{f}, ships, bp))
		if len(p.Stop) != 0 || len(p.Create) != 0 {
			t.Fatalf("want no stop while 2 of 3 are ready:\n%s", dumpPlan(p))
		}
		ships[2].State, ships[2].Node = fsm.ShipReady, "n3"
		p = Make(mkInput(nodes(), []*fsm.Fleet{f}, ships, bp))
		if !slices.Equal(stopped(p, fsm.StopDrain), []string{"web-1", "web-2"}) || len(p.Create) != 0 {
			t.Fatalf("want both ships of d stopped:\n%s", dumpPlan(p))
		}
	})
	t.Run("ships without a fleet stop at once", func(t *testing.T) {
		lone := mkShip("lone-1", "", bp, fsm.ShipReady, "d")
		kept := mkShip("lone-2", "", bp, fsm.ShipReady, "n1")
		p := Make(mkInput(nodes(), nil, []*fsm.Ship{lone, kept}, bp))
		if !slices.Equal(stopped(p, fsm.StopDrain), []string{"lone-1"}) {
			t.Fatalf("plan:\n%s", dumpPlan(p))
		}
	})
	t.Run("no new ships on a draining node", func(t *testing.T) {
		ns := nodes()
		ns = []*fsm.Node{ns[3]}
		p := Make(mkInput(ns, []*fsm.Fleet{f}, queuedShips("web", "web", bp, 3), bp))
		if len(allPlaces(p)) != 0 || !strings.HasPrefix(allPending(p)["web-00"], "every node is draining") {
			t.Fatalf("plan:\n%s", dumpPlan(p))
		}
	})
}

func TestPurge(t *testing.T) {
	bp := mkBP("web", 1, 10, 10)
	mk := func(id, state string, age time.Duration) *fsm.Ship {
		s := mkShip(id, "web", bp, state, "n1")
		s.Updated = t0.Add(-age).UnixMilli()
		if s.Ended() || state == fsm.ShipStopping {
			s.Desired = fsm.DesireStop
		}
		return s
	}
	ships := []*fsm.Ship{
		mk("old-stopped", fsm.ShipStopped, 11*time.Minute),
		mk("old-failed", fsm.ShipFailed, time.Hour),
		mk("old-lost", fsm.ShipLostState, 10*time.Minute),
		mk("old-lost-held", fsm.ShipLostState, time.Hour), // its node may still run it
		mk("new-stopped", fsm.ShipStopped, 9*time.Minute),
		mk("new-lost", fsm.ShipLostState, time.Second),
		mk("old-ready", fsm.ShipReady, time.Hour),
		mk("old-stopping", fsm.ShipStopping, time.Hour),
	}
	ships[2].Released = true
	ships[6].Desired = fsm.DesireRun
	in := mkInput(threeNodes(), []*fsm.Fleet{mkFleet("web", 1, bp)}, ships, bp)
	p := Make(in)
	if len(p.Purge) != 1 || !slices.Equal(sortedStrings(p.Purge[0].Ships...), []string{"old-failed", "old-lost", "old-stopped"}) {
		t.Fatalf("plan:\n%s", dumpPlan(p))
	}
	if cmds := p.Commands(); cmds[len(cmds)-1] != fsm.Command(p.Purge[0]) {
		t.Fatal("purge is not the last command")
	}
	in.Retention = 0
	requireEmpty(t, Make(in))
}

// TestCommandsOrder: lost, create, stop, place, purge.
func TestCommandsOrder(t *testing.T) {
	bp := mkBP("web", 1, 10, 10)
	nodes := append(threeNodes(), mkNode("d", 1000, 1000), mkNode("x", 1000, 1000))
	nodes[3].Drain = true
	nodes[4].Status, nodes[4].StatusSince = fsm.NodeDead, t0.Add(-time.Hour).UnixMilli()
	old := mkShip("web-old", "web", bp, fsm.ShipStopped, "n1")
	old.Desired, old.Updated = fsm.DesireStop, t0.Add(-time.Hour).UnixMilli()
	ships := []*fsm.Ship{
		mkShip("web-1", "web", bp, fsm.ShipReady, "x"),
		mkShip("web-2", "web", bp, fsm.ShipQueued, ""),
		mkShip("lone", "", bp, fsm.ShipReady, "d"),
		mkShip("other-1", "other", bp, fsm.ShipReady, "n1"),
		old,
	}
	fleets := []*fsm.Fleet{mkFleet("web", 2, bp), mkFleet("other", 0, bp)}
	p := Make(mkInput(nodes, fleets, ships, bp))
	var kinds []string
	for _, c := range p.Commands() {
		kinds = append(kinds, fmt.Sprintf("%T", c))
	}
	want := []string{"*fsm.ShipLost", "*fsm.ShipCreate", "*fsm.ShipStop", "*fsm.ShipStop", "*fsm.ShipPlace", "*fsm.ShipPurge"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("commands %v, want %v\n%s", kinds, want, dumpPlan(p))
	}
	if p.Empty() || len(p.Reasons) == 0 {
		t.Fatal("a plan with commands must not be empty and must say why")
	}
}

// TestMakeDoesNotChangeItsInput: Make reads the state, it never writes it.
func TestMakeDoesNotChangeItsInput(t *testing.T) {
	bp := mkBP("web", 1, 100, 100, "http")
	nodes := threeNodes()
	nodes[0].UsedPorts, nodes[0].HostPorts = []int{30000}, []int{30001}
	ships := queuedShips("web", "web", bp, 5)
	in := mkInput(nodes, []*fsm.Fleet{mkFleet("web", 5, bp)}, ships, bp)
	before := fmt.Sprintf("%+v %+v", derefNodes(nodes), derefShips(ships))
	p1 := Make(in)
	if after := fmt.Sprintf("%+v %+v", derefNodes(nodes), derefShips(ships)); after != before {
		t.Fatalf("input changed:\n%s\n%s", before, after)
	}
	if p2 := Make(in); dumpPlan(p1) != dumpPlan(p2) {
		t.Fatalf("plans differ:\n%s\n%s", dumpPlan(p1), dumpPlan(p2))
	}
}

func derefNodes(ns []*fsm.Node) []fsm.Node {
	var out []fsm.Node
	for _, n := range ns {
		out = append(out, *n)
	}
	return out
}

func derefShips(ss []*fsm.Ship) []fsm.Ship {
	var out []fsm.Ship
	for _, s := range ss {
		out = append(out, *s)
	}
	return out
}
