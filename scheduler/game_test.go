package scheduler

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

func withBuffer(f *fsm.Fleet, ready, lo, hi int) *fsm.Fleet {
	f.Buffer = &fsm.Buffer{Ready: ready, Min: lo, Max: hi}
	return f
}

func TestBufferScalesToOccupiedPlusReady(t *testing.T) {
	bp := mkBP("game", 1, 100, 64)
	n := mkNode("n1", 10000, 10000)
	ships := []*fsm.Ship{
		mkShip("g-1", "g", bp, fsm.ShipAllocated, "n1"),
		mkShip("g-2", "g", bp, fsm.ShipAllocated, "n1"),
		mkShip("g-3", "g", bp, fsm.ShipReserved, "n1"),
		mkShip("g-4", "g", bp, fsm.ShipReady, "n1"),
	}
	for _, tc := range []struct {
		name                    string
		replicas, ready, lo, hi int
		want                    int // 0: no scale
		creates                 int
	}{
		{"3 occupied + 3 spare", 4, 3, 0, 100, 6, 2},
		{"capped at max", 4, 3, 0, 5, 5, 1},
		{"at least min", 4, 0, 7, 10, 7, 3},
		{"already right", 6, 3, 0, 100, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := withBuffer(mkFleet("g", tc.replicas, bp), tc.ready, tc.lo, tc.hi)
			p := Make(mkInput([]*fsm.Node{n}, []*fsm.Fleet{f}, ships, bp))
			switch {
			case tc.want == 0 && len(p.Scale) != 0:
				t.Fatalf("scaled:\n%s", dumpPlan(p))
			case tc.want != 0 && (len(p.Scale) != 1 || p.Scale[0].Replicas != tc.want || p.Scale[0].Name != "g"):
				t.Fatalf("want scale to %d:\n%s%+v", tc.want, dumpPlan(p), p.Scale)
			}
			// The creates already follow the new replicas.
			if got := creates(p)["g/game/v1"]; got != tc.creates {
				t.Fatalf("creates %d, want %d:\n%s", got, tc.creates, dumpPlan(p))
			}
			if got := p.Commands(); len(p.Scale) > 0 && got[0] != fsm.Command(p.Scale[0]) {
				t.Fatalf("scale is not applied first: %T", got[0])
			}
		})
	}
}

func TestOccupiedShipsAreNeverStoppedBySurplusOrDrain(t *testing.T) {
	bp := mkBP("game", 1, 100, 64)
	n1, n2 := mkNode("n1", 10000, 10000), mkNode("n2", 10000, 10000)
	n1.Drain = true
	ships := []*fsm.Ship{
		mkShip("g-1", "g", bp, fsm.ShipAllocated, "n1"),
		mkShip("g-2", "g", bp, fsm.ShipReserved, "n2"),
		mkShip("g-3", "g", bp, fsm.ShipReady, "n2"),
		mkShip("g-4", "g", bp, fsm.ShipAllocated, "n2"),
	}
	p := Make(mkInput([]*fsm.Node{n1, n2}, []*fsm.Fleet{mkFleet("g", 0, bp)}, ships, bp))
	if got := stopped(p, fsm.StopSurplus); !slices.Equal(got, []string{"g-3"}) {
		t.Fatalf("surplus stops %v:\n%s", got, dumpPlan(p))
	}
	if got := stopped(p, fsm.StopDrain); len(got) != 0 {
		t.Fatalf("drain stops %v:\n%s", got, dumpPlan(p))
	}
}

func TestFailingVersionBacksOff(t *testing.T) {
	bp := mkBP("game", 1, 100, 64)
	n := mkNode("n1", 10000, 10000)
	failed := func(id string, ago time.Duration) *fsm.Ship {
		s := mkShip(id, "g", bp, fsm.ShipFailed, "n1")
		s.Updated = t0.Add(-ago).UnixMilli()
		return s
	}
	for _, tc := range []struct {
		name   string
		ships  []*fsm.Ship
		create bool
		next   time.Duration // recheck after t0 when held back
	}{
		{"no failures", nil, true, 0},
		{"one failure 2s ago: 1s backoff passed", []*fsm.Ship{failed("f1", 2*time.Second)}, true, 0},
		{"one failure just now: wait 1s", []*fsm.Ship{failed("f1", 0)}, false, time.Second},
		{"three failures, last 1s ago: wait 4s from it", []*fsm.Ship{failed("f1", 20*time.Second), failed("f2", 5*time.Second), failed("f3", time.Second)}, false, 3 * time.Second},
		{"failures older than the retention do not count", []*fsm.Ship{failed("f1", 11*time.Minute)}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Make(mkInput([]*fsm.Node{n}, []*fsm.Fleet{mkFleet("g", 1, bp)}, tc.ships, bp))
			if got := creates(p)["g/game/v1"] == 1; got != tc.create {
				t.Fatalf("create %v, want %v:\n%s", got, tc.create, dumpPlan(p))
			}
			if !tc.create && !p.Recheck.Equal(t0.Add(tc.next)) {
				t.Fatalf("recheck at %v, want %v", p.Recheck.Sub(t0), tc.next)
			}
		})
	}
	if got := backoff(40, t0); !got.Equal(t0.Add(backoffMax)) {
		t.Fatalf("40 failures back off %v", got.Sub(t0))
	}
}

func TestReservationsEnd(t *testing.T) {
	bp := mkBP("game", 1, 100, 64)
	n := mkNode("n1", 10000, 10000)
	over := mkShip("g-1", "g", bp, fsm.ShipReserved, "n1")
	over.ReservedUntil = t0.UnixMilli()
	later := mkShip("g-2", "g", bp, fsm.ShipReserved, "n1")
	later.ReservedUntil = t0.Add(5 * time.Second).UnixMilli()
	p := Make(mkInput([]*fsm.Node{n}, []*fsm.Fleet{mkFleet("g", 2, bp)}, []*fsm.Ship{over, later}, bp))
	if len(p.SDK) != 1 || p.SDK[0].Ship != "g-1" || p.SDK[0].Op != fsm.SDKUnreserve {
		t.Fatalf("plan %+v\n%s", p.SDK, dumpPlan(p))
	}
	if !p.Recheck.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("recheck %v", p.Recheck)
	}
}

// A rolling update under allocations: the allocated ships of the old
// version count towards the replicas, so the fleet does not grow.
func TestRollingUpdateCountsAllocatedOldShips(t *testing.T) {
	v1, v2 := mkBP("game", 1, 100, 64), mkBP("game", 2, 100, 64)
	n := mkNode("n1", 100000, 100000)
	var ships []*fsm.Ship
	for i := range 10 {
		ships = append(ships, mkShip(fmt.Sprintf("g-%02d", i), "g", v1, fsm.ShipAllocated, "n1"))
	}
	ships = append(ships, mkShip("g-ready", "g", v1, fsm.ShipReady, "n1"))
	p := Make(mkInput([]*fsm.Node{n}, []*fsm.Fleet{mkFleet("g", 12, v2)}, ships, v1, v2))
	if got := creates(p); got["g/game/v2"] != 2 || len(got) != 1 {
		t.Fatalf("creates %v, want 2 of v2:\n%s", got, dumpPlan(p))
	}
	if got := stopped(p, fsm.StopSurplus); !slices.Equal(got, []string{"g-ready"}) {
		t.Fatalf("surplus stops %v, want the ready v1 ship only", got)
	}
}
