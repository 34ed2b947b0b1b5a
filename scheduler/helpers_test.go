package scheduler

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// t0 is the planning time of the hand-written inputs.
var t0 = time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)

// mkNode is an alive, non-draining worker with an empty ports range of 100
// ports, alive since an hour before t0.
func mkNode(name string, cpu, mem int64) *fsm.Node {
	return &fsm.Node{
		Name: name, Worker: true, Status: fsm.NodeAlive,
		Capacity:    fsm.Resources{CPUMHz: cpu, MemoryMB: mem},
		PortsRange:  "30000-30099",
		StatusSince: t0.Add(-time.Hour).UnixMilli(),
	}
}

// mkBP is a blueprint version needing cpu/mem and one port per name.
func mkBP(name string, version int, cpu, mem int64, ports ...string) *fsm.Blueprint {
	bp := &fsm.Blueprint{Name: name, Version: version, Resources: fsm.Resources{CPUMHz: cpu, MemoryMB: mem}}
	for _, p := range ports {
		bp.Ports = append(bp.Ports, fsm.Port{Name: p, Protocol: "tcp"})
	}
	return bp
}

// mkFleet is a fleet of one blueprint version.
func mkFleet(name string, replicas int, bp *fsm.Blueprint) *fsm.Fleet {
	return &fsm.Fleet{Name: name, Replicas: replicas, Versions: []fsm.FleetVersion{{Blueprint: bp.Name, Version: bp.Version, Weight: 1}}}
}

// mkShip is a live ship of bp in state on node ("" for queued).
func mkShip(id, fleet string, bp *fsm.Blueprint, state, node string) *fsm.Ship {
	return &fsm.Ship{
		ID: id, Fleet: fleet, Blueprint: bp.Name, Version: bp.Version,
		State: state, Desired: fsm.DesireRun, Node: node, Resources: bp.Resources,
		Created: t0.Add(-time.Minute).UnixMilli(), Updated: t0.Add(-time.Minute).UnixMilli(),
	}
}

// queuedShips makes n queued ships of a fleet named prefix-00, prefix-01...
func queuedShips(prefix, fleet string, bp *fsm.Blueprint, n int) []*fsm.Ship {
	var out []*fsm.Ship
	for i := range n {
		out = append(out, mkShip(fmt.Sprintf("%s-%02d", prefix, i), fleet, bp, fsm.ShipQueued, ""))
	}
	return out
}

// mkInput builds an Input at t0: the queue is the queued live ships in the
// order given, and blueprints are looked up among bps.
func mkInput(nodes []*fsm.Node, fleets []*fsm.Fleet, ships []*fsm.Ship, bps ...*fsm.Blueprint) *Input {
	m := map[verKey]*fsm.Blueprint{}
	for _, b := range bps {
		m[verKey{b.Name, b.Version}] = b
	}
	var q []*fsm.Ship
	for _, s := range ships {
		if s.State == fsm.ShipQueued && s.Live() {
			q = append(q, s)
		}
	}
	return &Input{
		Now: t0, LostGrace: 2 * time.Second, Retention: 10 * time.Minute,
		Nodes: nodes, Fleets: fleets, Ships: ships, Queued: q,
		Blueprint: func(name string, v int) (*fsm.Blueprint, bool) {
			b, ok := m[verKey{name, v}]
			return b, ok
		},
	}
}

// allPlaces flattens the plan's placements.
func allPlaces(p *Plan) []fsm.Place {
	var out []fsm.Place
	for _, c := range p.Place {
		out = append(out, c.Places...)
	}
	return out
}

// allPending flattens the plan's pending reasons by ship.
func allPending(p *Plan) map[string]string {
	out := map[string]string{}
	for _, c := range p.Place {
		for _, pd := range c.Pending {
			out[pd.Ship] = pd.Reason
		}
	}
	return out
}

// perNode counts placements per node.
func perNode(places []fsm.Place) map[string]int {
	out := map[string]int{}
	for _, pl := range places {
		out[pl.Node]++
	}
	return out
}

// stopped lists the ships a plan stops for why, sorted.
func stopped(p *Plan, why string) []string {
	var out []string
	for _, c := range p.Stop {
		if c.Why == why {
			out = append(out, c.Ships...)
		}
	}
	sort.Strings(out)
	return out
}

// creates sums the plan's ShipCreate counts by fleet/blueprint/version.
func creates(p *Plan) map[string]int {
	out := map[string]int{}
	for _, c := range p.Create {
		out[fmt.Sprintf("%s/%s/v%d", c.Fleet, c.Blueprint, c.Version)] += c.Count
	}
	return out
}

func sortedStrings(s ...string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// dumpPlan renders a plan for failure messages.
func dumpPlan(p *Plan) string {
	s := ""
	for _, l := range p.Lost {
		s += fmt.Sprintf("  lost %s (%s)\n", l.Node, l.Reason)
	}
	for _, c := range p.Scale {
		s += fmt.Sprintf("  scale %s to %d\n", c.Name, c.Replicas)
	}
	for _, c := range p.Create {
		s += fmt.Sprintf("  create %d of %s %s v%d\n", c.Count, c.Fleet, c.Blueprint, c.Version)
	}
	for _, c := range p.Stop {
		s += fmt.Sprintf("  stop %s %v\n", c.Why, c.Ships)
	}
	for _, c := range p.Place {
		for _, pl := range c.Places {
			s += fmt.Sprintf("  place %s on %s ports %v\n", pl.Ship, pl.Node, pl.Ports)
		}
		for _, pd := range c.Pending {
			s += fmt.Sprintf("  pending %s: %s\n", pd.Ship, pd.Reason)
		}
	}
	for _, c := range p.SDK {
		s += fmt.Sprintf("  %s %s\n", c.Op, c.Ship)
	}
	for _, c := range p.Purge {
		s += fmt.Sprintf("  purge %v\n", c.Ships)
	}
	for _, r := range p.Reasons {
		s += "  # " + r + "\n"
	}
	return s
}

func requireEmpty(t *testing.T, p *Plan) {
	t.Helper()
	if !p.Empty() {
		t.Fatalf("plan not empty:\n%s", dumpPlan(p))
	}
}
