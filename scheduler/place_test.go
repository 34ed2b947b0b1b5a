package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/armada-orchestrator/armada/fsm"
)

// TestFit places one queued ship on one node that differs from a fitting
// one in a single respect, and checks that it is placed exactly when the
// node fits, or given the reason why not.
func TestFit(t *testing.T) {
	type tc struct {
		name   string
		node   func(n *fsm.Node)
		cons   []fsm.Constraint
		port   int    // the port the ship gets when placed
		reason string // when not placed
	}
	c := func(label, op, value string) []fsm.Constraint {
		return []fsm.Constraint{{Label: label, Op: op, Value: value}}
	}
	const (
		notAlive  = "no alive node; 1 node checked"
		noLabels  = "no node matches the node selector and constraints; 1 node checked"
		noMem     = "no node with 512 MB memory free; 1 node checked"
		noCPU     = "no node with 500 MHz CPU free; 1 node checked"
		noPorts   = "no node with 1 free ports; 1 node checked"
		firstPort = 30000
	)
	cases := []tc{
		{name: "fits", port: firstPort},
		{name: "dead", node: func(n *fsm.Node) { n.Status = fsm.NodeDead }, reason: notAlive},
		{name: "suspect", node: func(n *fsm.Node) { n.Status = fsm.NodeSuspect }, reason: notAlive},
		{name: "left", node: func(n *fsm.Node) { n.Status = fsm.NodeLeft }, reason: notAlive},
		{name: "draining", node: func(n *fsm.Node) { n.Drain = true }, reason: "every node is draining; 1 node checked"},
		{name: "not a worker", node: func(n *fsm.Node) { n.Worker = false }, reason: "no node runs ships; 1 node checked"},
		{name: "selector value differs", node: func(n *fsm.Node) { n.Labels["disk"] = "hdd" }, reason: noLabels},
		{name: "selector label missing", node: func(n *fsm.Node) { delete(n.Labels, "disk") }, reason: noLabels},
		{name: "= matches", cons: c("zone", "=", "a"), port: firstPort},
		{name: "== matches", cons: c("zone", "==", "a"), port: firstPort},
		{name: "= differs", cons: c("zone", "=", "b"), reason: noLabels},
		{name: "= label missing", cons: c("rack", "=", "r1"), reason: noLabels},
		{name: "!= differs", cons: c("zone", "!=", "b"), port: firstPort},
		{name: "!= equal", cons: c("zone", "!=", "a"), reason: noLabels},
		{name: "!= label missing", cons: c("rack", "!=", "r1"), port: firstPort},
		{name: "in listed", cons: c("zone", "in", "b,a"), port: firstPort},
		{name: "in not listed", cons: c("zone", "in", "b,c"), reason: noLabels},
		{name: "in label missing", cons: c("rack", "in", "r1,r2"), reason: noLabels},
		{name: "in is not a substring match", cons: c("zone", "in", "aa,b"), reason: noLabels},
		{name: "not_in not listed", cons: c("zone", "not_in", "b,c"), port: firstPort},
		{name: "not_in listed", cons: c("zone", "not_in", "c,a"), reason: noLabels},
		{name: "not_in label missing", cons: c("rack", "not_in", "r1"), port: firstPort},
		{name: "exists", cons: c("zone", "exists", ""), port: firstPort},
		{name: "exists missing", cons: c("rack", "exists", ""), reason: noLabels},
		{name: "not_exists missing", cons: c("rack", "not_exists", ""), port: firstPort},
		{name: "not_exists present", cons: c("zone", "not_exists", ""), reason: noLabels},
		{name: "every constraint must hold", cons: append(c("zone", "=", "a"), c("rack", "exists", "")...), reason: noLabels},
		{name: "constraints and selector both hold", cons: append(c("zone", "=", "a"), c("rack", "not_exists", "")...), port: firstPort},
		{name: "constraint holds but selector not", node: func(n *fsm.Node) { n.Labels["disk"] = "hdd" }, cons: c("zone", "=", "a"), reason: noLabels},
		{name: "cpu exactly free", node: func(n *fsm.Node) { n.Allocated.CPUMHz = 500 }, port: firstPort},
		{name: "cpu short by one", node: func(n *fsm.Node) { n.Allocated.CPUMHz = 501 }, reason: noCPU},
		{name: "cpu capacity short", node: func(n *fsm.Node) { n.Capacity.CPUMHz = 499 }, reason: noCPU},
		{name: "memory exactly free", node: func(n *fsm.Node) { n.Allocated.MemoryMB = 512 }, port: firstPort},
		{name: "memory short by one", node: func(n *fsm.Node) { n.Allocated.MemoryMB = 513 }, reason: noMem},
		{name: "over-committed node", node: func(n *fsm.Node) { n.Allocated.MemoryMB = 2000 }, reason: noMem},
		{name: "one port used by a ship", node: func(n *fsm.Node) { n.UsedPorts = []int{30000} }, port: 30001},
		{name: "one port used on the host", node: func(n *fsm.Node) { n.HostPorts = []int{30000} }, port: 30001},
		{name: "both ports taken", node: func(n *fsm.Node) { n.UsedPorts, n.HostPorts = []int{30000}, []int{30001} }, reason: noPorts},
		{name: "a port taken twice still leaves one", node: func(n *fsm.Node) { n.UsedPorts, n.HostPorts = []int{30000}, []int{30000} }, port: 30001},
		{name: "taken ports outside the range", node: func(n *fsm.Node) { n.UsedPorts, n.HostPorts = []int{29999}, []int{30002, 40000} }, port: firstPort},
		{name: "no ports range", node: func(n *fsm.Node) { n.PortsRange = "" }, reason: noPorts},
		{name: "malformed ports range", node: func(n *fsm.Node) { n.PortsRange = "30001-30000" }, reason: noPorts},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := mkNode("n1", 1000, 1024)
			n.PortsRange = "30000-30001"
			n.Labels = map[string]string{"zone": "a", "disk": "ssd"}
			if tc.node != nil {
				tc.node(n)
			}
			bp := mkBP("web", 1, 500, 512, "http")
			bp.NodeSelector = map[string]string{"disk": "ssd"}
			f := mkFleet("web", 1, bp)
			if tc.cons != nil {
				f.Placement = &fsm.Placement{Strategy: fsm.StrategySpread, Constraints: tc.cons}
			}
			s := mkShip("web-1", "web", bp, fsm.ShipQueued, "")
			p := Make(mkInput([]*fsm.Node{n}, []*fsm.Fleet{f}, []*fsm.Ship{s}, bp))
			if len(p.Create) != 0 || len(p.Stop) != 0 || len(p.Lost) != 0 {
				t.Fatalf("unexpected fleet actions:\n%s", dumpPlan(p))
			}
			places, pending := allPlaces(p), allPending(p)
			if tc.reason == "" {
				want := []fsm.Place{{Ship: "web-1", Node: "n1", Ports: []int{tc.port}}}
				if !slices.EqualFunc(places, want, placeEqual) || len(pending) != 0 {
					t.Fatalf("want %v placed, got:\n%s", want, dumpPlan(p))
				}
				return
			}
			if len(places) != 0 {
				t.Fatalf("placed on an unfit node:\n%s", dumpPlan(p))
			}
			if got := pending["web-1"]; got != tc.reason {
				t.Fatalf("pending reason %q, want %q", got, tc.reason)
			}
		})
	}
}

func placeEqual(a, b fsm.Place) bool {
	return a.Ship == b.Ship && a.Node == b.Node && slices.Equal(a.Ports, b.Ports)
}

// unfitNodes are nodes that each fail one test for a 500 MHz / 512 MB /
// one-port ship with node selector disk=ssd and constraint zone != bad.
func unfitNodes() []*fsm.Node {
	mk := func(name string, f func(n *fsm.Node)) *fsm.Node {
		n := mkNode(name, 1000, 1024)
		n.Labels = map[string]string{"disk": "ssd", "zone": "good"}
		f(n)
		return n
	}
	return []*fsm.Node{
		mk("a-dead", func(n *fsm.Node) { n.Status = fsm.NodeDead }),
		mk("b-suspect", func(n *fsm.Node) { n.Status = fsm.NodeSuspect }),
		mk("b2-left", func(n *fsm.Node) { n.Status = fsm.NodeLeft }),
		mk("c-drain", func(n *fsm.Node) { n.Drain = true }),
		mk("d-server-only", func(n *fsm.Node) { n.Worker = false }),
		mk("e-hdd", func(n *fsm.Node) { n.Labels["disk"] = "hdd" }),
		mk("f-bad-zone", func(n *fsm.Node) { n.Labels["zone"] = "bad" }),
		mk("g-no-memory", func(n *fsm.Node) { n.Allocated.MemoryMB = 600 }),
		mk("h-no-cpu", func(n *fsm.Node) { n.Allocated.CPUMHz = 600 }),
		mk("i-no-ports", func(n *fsm.Node) { n.PortsRange, n.HostPorts = "30000-30000", []int{30000} }),
	}
}

func unfitInput(nodes []*fsm.Node, ships int) *Input {
	bp := mkBP("web", 1, 500, 512, "http")
	bp.NodeSelector = map[string]string{"disk": "ssd"}
	f := mkFleet("web", ships, bp)
	f.Placement = &fsm.Placement{Constraints: []fsm.Constraint{{Label: "zone", Op: "!=", Value: "bad"}}}
	return mkInput(nodes, []*fsm.Fleet{f}, queuedShips("web", "web", bp, ships), bp)
}

// TestFitPicksTheOnlyFittingNode: among nodes that each fail one check, the
// ships go to the one that fits, as many as fit on it.
func TestFitPicksTheOnlyFittingNode(t *testing.T) {
	good := mkNode("z-good", 1000, 1024)
	good.Labels = map[string]string{"disk": "ssd", "zone": "good"}
	p := Make(unfitInput(append(unfitNodes(), good), 3))
	places := allPlaces(p)
	if len(places) != 2 {
		t.Fatalf("want 2 placements (the good node fits two), got:\n%s", dumpPlan(p))
	}
	for _, pl := range places {
		if pl.Node != "z-good" {
			t.Fatalf("placed on %s:\n%s", pl.Node, dumpPlan(p))
		}
	}
	want := "no node fits; 11 nodes checked (3 not alive, 1 draining, 1 not running ships, 2 not matching the node selector and constraints, 2 without 512 MB memory free, 1 without 500 MHz CPU free, 1 without 1 free ports)"
	if got := allPending(p)["web-02"]; got != want {
		t.Fatalf("reason\n got %q\nwant %q", got, want)
	}
}

// TestUnfitReasonBreakdown: the reason leads with the commonest obstacle
// and lists the others.
func TestUnfitReasonBreakdown(t *testing.T) {
	p := Make(unfitInput(unfitNodes(), 1))
	want := "no node fits; 10 nodes checked (3 not alive, 1 draining, 1 not running ships, 2 not matching the node selector and constraints, 1 without 512 MB memory free, 1 without 500 MHz CPU free, 1 without 1 free ports)"
	if got := allPending(p)["web-00"]; got != want {
		t.Fatalf("reason\n got %q\nwant %q", got, want)
	}
	if len(allPlaces(p)) != 0 {
		t.Fatalf("placed:\n%s", dumpPlan(p))
	}
	p = Make(unfitInput(nil, 1))
	if got := allPending(p)["web-00"]; got != "no nodes in the cluster" {
		t.Fatalf("reason without nodes %q", got)
	}
}

// TestUnplaceableReason is the example of the brief: three nodes with 256
// MB free and a ship that wants 512 MB. The reason is sent once: a ship
// that already carries it gets no Pending entry.
func TestUnplaceableReason(t *testing.T) {
	bp := mkBP("big", 1, 100, 512)
	var nodes []*fsm.Node
	for _, name := range []string{"n1", "n2", "n3"} {
		n := mkNode(name, 4000, 1024)
		n.Allocated.MemoryMB = 768
		nodes = append(nodes, n)
	}
	ships := queuedShips("big", "big", bp, 2)
	in := mkInput(nodes, []*fsm.Fleet{mkFleet("big", 2, bp)}, ships, bp)
	p := Make(in)
	pending := allPending(p)
	const prefix = "no node with 512 MB memory free; 3 nodes checked"
	if len(pending) != 2 {
		t.Fatalf("want 2 pending, got:\n%s", dumpPlan(p))
	}
	for id, r := range pending {
		if !strings.HasPrefix(r, prefix) {
			t.Fatalf("reason of %s = %q, want prefix %q", id, r, prefix)
		}
	}
	if len(allPlaces(p)) != 0 {
		t.Fatalf("placed:\n%s", dumpPlan(p))
	}
	if len(p.Place) != 1 {
		t.Fatalf("want one ShipPlace carrying the reasons, got %d", len(p.Place))
	}

	// One ship already has the reason: only the other gets it.
	ships[0].Reason = pending["big-00"]
	ships[1].Reason = "an older reason"
	p = Make(mkInput(nodes, []*fsm.Fleet{mkFleet("big", 2, bp)}, ships, bp))
	pending = allPending(p)
	if _, again := pending["big-00"]; again || len(pending) != 1 || !strings.HasPrefix(pending["big-01"], prefix) {
		t.Fatalf("want only big-01 re-sent, got:\n%s", dumpPlan(p))
	}

	// Both have it: the plan is empty.
	ships[1].Reason = ships[0].Reason
	requireEmpty(t, Make(mkInput(nodes, []*fsm.Fleet{mkFleet("big", 2, bp)}, ships, bp)))
}

func TestSpreadAndPack(t *testing.T) {
	bp := mkBP("web", 1, 100, 100)
	equalNodes := func(capShips int64) []*fsm.Node {
		var out []*fsm.Node
		for _, name := range []string{"n1", "n2", "n3"} {
			out = append(out, mkNode(name, 100*capShips, 100*capShips))
		}
		return out
	}
	run := func(t *testing.T, nodes []*fsm.Node, strategy string, existing []*fsm.Ship) map[string]int {
		t.Helper()
		f := mkFleet("web", 6, bp)
		f.Placement = &fsm.Placement{Strategy: strategy}
		ships := append(existing, queuedShips("web", "web", bp, 6-countFleet(existing, "web"))...)
		p := Make(mkInput(nodes, []*fsm.Fleet{f}, ships, bp))
		if len(p.Create)+len(p.Stop) != 0 {
			t.Fatalf("unexpected fleet actions:\n%s", dumpPlan(p))
		}
		if len(allPending(p)) != 0 {
			t.Fatalf("unexpected pending:\n%s", dumpPlan(p))
		}
		return perNode(allPlaces(p))
	}
	check := func(t *testing.T, got map[string]int, want map[string]int) {
		t.Helper()
		for _, n := range []string{"n1", "n2", "n3"} {
			if got[n] != want[n] {
				t.Fatalf("placements per node %v, want %v", got, want)
			}
		}
	}
	t.Run("spread 6 over 3 equal nodes", func(t *testing.T) {
		check(t, run(t, equalNodes(100), fsm.StrategySpread, nil), map[string]int{"n1": 2, "n2": 2, "n3": 2})
	})
	t.Run("spread is the default", func(t *testing.T) {
		check(t, run(t, equalNodes(100), "", nil), map[string]int{"n1": 2, "n2": 2, "n3": 2})
	})
	t.Run("pack 6 over 3 equal nodes", func(t *testing.T) {
		check(t, run(t, equalNodes(100), fsm.StrategyPack, nil), map[string]int{"n1": 6})
	})
	t.Run("pack with room for 3 per node", func(t *testing.T) {
		check(t, run(t, equalNodes(3), fsm.StrategyPack, nil), map[string]int{"n1": 3, "n2": 3})
	})
	t.Run("pack fills the most loaded node first", func(t *testing.T) {
		nodes := equalNodes(100)
		nodes[1].Allocated = fsm.Resources{CPUMHz: 5000, MemoryMB: 1000} // n2: 50% cpu
		nodes[2].Allocated = fsm.Resources{CPUMHz: 1000, MemoryMB: 3000} // n3: 30% memory
		check(t, run(t, nodes, fsm.StrategyPack, nil), map[string]int{"n2": 6})
	})
	t.Run("pack overflows from the most loaded to the next", func(t *testing.T) {
		nodes := equalNodes(4)                                       // 4 ships each
		nodes[2].Allocated = fsm.Resources{CPUMHz: 200, MemoryMB: 0} // n3: room for 2 more, 50% loaded
		nodes[1].Allocated = fsm.Resources{CPUMHz: 100, MemoryMB: 0} // n2: room for 3 more, 25% loaded
		check(t, run(t, nodes, fsm.StrategyPack, nil), map[string]int{"n3": 2, "n2": 3, "n1": 1})
	})
	t.Run("spread counts the fleet's ships already on the nodes", func(t *testing.T) {
		nodes := equalNodes(100)
		existing := []*fsm.Ship{
			mkShip("web-x1", "web", bp, fsm.ShipReady, "n1"),
			mkShip("web-x2", "web", bp, fsm.ShipStarting, "n1"),
			// Other fleets' ships do not count, nor stopping ones.
			mkShip("db-1", "db", bp, fsm.ShipReady, "n2"),
			mkShip("db-2", "db", bp, fsm.ShipReady, "n2"),
			mkShip("db-3", "db", bp, fsm.ShipReady, "n2"),
		}
		stopping := mkShip("web-old", "web", bp, fsm.ShipStopping, "n3")
		stopping.Desired = fsm.DesireStop
		existing = append(existing, stopping)
		nodes[0].Allocated = fsm.Resources{CPUMHz: 200, MemoryMB: 200}
		nodes[1].Allocated = fsm.Resources{CPUMHz: 300, MemoryMB: 300}
		nodes[2].Allocated = fsm.Resources{CPUMHz: 100, MemoryMB: 100}
		check(t, run(t, nodes, fsm.StrategySpread, existing), map[string]int{"n2": 2, "n3": 2})
	})
	t.Run("spread breaks ties by load", func(t *testing.T) {
		nodes := equalNodes(100)
		nodes[0].Allocated = fsm.Resources{CPUMHz: 5000, MemoryMB: 0}
		nodes[2].Allocated = fsm.Resources{CPUMHz: 0, MemoryMB: 10}
		bp1 := mkBP("web", 1, 100, 100)
		f := mkFleet("web", 1, bp1)
		p := Make(mkInput(nodes, []*fsm.Fleet{f}, queuedShips("web", "web", bp1, 1), bp1))
		if pl := allPlaces(p); len(pl) != 1 || pl[0].Node != "n2" {
			t.Fatalf("want the ship on the least loaded n2:\n%s", dumpPlan(p))
		}
	})
}

func countFleet(ships []*fsm.Ship, fleet string) int {
	n := 0
	for _, s := range ships {
		if s.Fleet == fleet && s.Live() && s.State != fsm.ShipStopping {
			n++
		}
	}
	return n
}

// TestPorts: every placement gets one port per blueprint port, from its
// node's range, never one taken, never the same twice on a node across the
// plan (and across groups); a node whose range is used up is skipped.
func TestPorts(t *testing.T) {
	full := mkNode("a-full", 10000, 10000)
	full.PortsRange, full.UsedPorts, full.HostPorts = "100-103", []int{100, 101}, []int{102, 103}
	b := mkNode("b", 10000, 10000)
	b.PortsRange, b.UsedPorts, b.HostPorts = "200-209", []int{201, 205}, []int{203, 999}
	c := mkNode("c", 10000, 10000)
	c.PortsRange = "300-305"
	nodes := []*fsm.Node{full, b, c}

	web := mkBP("web", 1, 10, 10, "http", "admin", "metrics")
	dns := mkBP("dns", 1, 10, 10, "udp53")
	ships := append(queuedShips("web", "web", web, 5), queuedShips("dns", "dns", dns, 3)...)
	in := mkInput(nodes, []*fsm.Fleet{mkFleet("web", 5, web), mkFleet("dns", 3, dns)}, ships, web, dns)
	p := Make(in)
	places := allPlaces(p)

	taken := map[string]map[int]bool{}
	for _, n := range nodes {
		taken[n.Name] = map[int]bool{}
		for _, port := range append(slices.Clone(n.UsedPorts), n.HostPorts...) {
			taken[n.Name][port] = true
		}
	}
	byName := map[string]*fsm.Node{"a-full": full, "b": b, "c": c}
	for _, pl := range places {
		want := 3
		if strings.HasPrefix(pl.Ship, "dns") {
			want = 1
		}
		if len(pl.Ports) != want {
			t.Fatalf("%s got %d ports, want %d", pl.Ship, len(pl.Ports), want)
		}
		lo, hi, err := fsm.ParsePortsRange(byName[pl.Node].PortsRange)
		if err != nil {
			t.Fatal(err)
		}
		for _, port := range pl.Ports {
			if port < lo || port > hi {
				t.Fatalf("%s: port %d outside %s", pl.Ship, port, byName[pl.Node].PortsRange)
			}
			if taken[pl.Node][port] {
				t.Fatalf("%s: port %d on %s is taken\n%s", pl.Ship, port, pl.Node, dumpPlan(p))
			}
			taken[pl.Node][port] = true
		}
	}
	// b has 7 free ports: two web ships (6 ports) and one dns ship; c has
	// 6: two web ships. The fifth web ship and two dns ships wait.
	got := perNode(places)
	if got["a-full"] != 0 {
		t.Fatalf("placed on the node without free ports:\n%s", dumpPlan(p))
	}
	if len(places) != 5 || got["b"] != 3 || got["c"] != 2 {
		t.Fatalf("placements %v:\n%s", got, dumpPlan(p))
	}
	wantPorts := map[string][]int{
		"web-00": {200, 202, 204}, // lowest free first
		"web-01": {300, 301, 302},
		"web-02": {206, 207, 208},
		"web-03": {303, 304, 305},
		"dns-00": {209},
	}
	for _, pl := range places {
		if w := wantPorts[pl.Ship]; !slices.Equal(pl.Ports, w) {
			t.Fatalf("%s got ports %v on %s, want %v\n%s", pl.Ship, pl.Ports, pl.Node, w, dumpPlan(p))
		}
	}
	pending := allPending(p)
	if r := pending["web-04"]; !strings.HasPrefix(r, "no node with 3 free ports; 3 nodes checked") {
		t.Fatalf("web-04 reason %q", r)
	}
	if r := pending["dns-01"]; !strings.HasPrefix(r, "no node with 1 free ports; 3 nodes checked") {
		t.Fatalf("dns-01 reason %q\n%s", r, dumpPlan(p))
	}
}

// TestPortsShipsWithoutPorts: a ship without ports needs no ports range.
func TestPortsShipsWithoutPorts(t *testing.T) {
	n := mkNode("n1", 1000, 1000)
	n.PortsRange = ""
	bp := mkBP("batch", 1, 10, 10)
	p := Make(mkInput([]*fsm.Node{n}, []*fsm.Fleet{mkFleet("batch", 3, bp)}, queuedShips("batch", "batch", bp, 3), bp))
	places := allPlaces(p)
	if len(places) != 3 {
		t.Fatalf("want 3 placed:\n%s", dumpPlan(p))
	}
	for _, pl := range places {
		if len(pl.Ports) != 0 {
			t.Fatalf("ports given to a ship without ports: %v", pl.Ports)
		}
	}
}

// TestMaxPerPlan: placements are split into ShipPlace commands of at most
// MaxPerPlan, with the pending reasons in the last.
func TestMaxPerPlan(t *testing.T) {
	bp := mkBP("web", 1, 10, 10, "http")
	huge := mkBP("huge", 1, 10, 1<<20)
	nodes := []*fsm.Node{mkNode("n1", 10000, 10000), mkNode("n2", 10000, 10000)}
	ships := append(queuedShips("web", "web", bp, 5), queuedShips("huge", "huge", huge, 1)...)
	fleets := []*fsm.Fleet{mkFleet("web", 5, bp), mkFleet("huge", 1, huge)}
	for _, tc := range []struct {
		max   int
		sizes []int
	}{
		{0, []int{5}},
		{-1, []int{5}},
		{1, []int{1, 1, 1, 1, 1}},
		{2, []int{2, 2, 1}},
		{5, []int{5}},
		{6, []int{5}},
		{100, []int{5}},
	} {
		t.Run(fmt.Sprint(tc.max), func(t *testing.T) {
			in := mkInput(nodes, fleets, ships, bp, huge)
			in.MaxPerPlan = tc.max
			p := Make(in)
			var sizes []int
			seen := map[string]bool{}
			for i, c := range p.Place {
				sizes = append(sizes, len(c.Places))
				for _, pl := range c.Places {
					if seen[pl.Ship] {
						t.Fatalf("%s placed twice", pl.Ship)
					}
					seen[pl.Ship] = true
				}
				if last := i == len(p.Place)-1; (len(c.Pending) > 0) != last {
					t.Fatalf("command %d of %d has %d pending", i, len(p.Place), len(c.Pending))
				}
			}
			if !slices.Equal(sizes, tc.sizes) || len(seen) != 5 {
				t.Fatalf("ShipPlace sizes %v, want %v", sizes, tc.sizes)
			}
			// Applied in any order, the commands place the same ships: each
			// ship's ports stay distinct on its node across commands.
			ports := map[string]map[int]string{}
			for _, pl := range allPlaces(p) {
				if ports[pl.Node] == nil {
					ports[pl.Node] = map[int]string{}
				}
				for _, port := range pl.Ports {
					if other, dup := ports[pl.Node][port]; dup {
						t.Fatalf("port %d on %s given to %s and %s", port, pl.Node, other, pl.Ship)
					}
					ports[pl.Node][port] = pl.Ship
				}
			}
		})
	}
}

// TestPlaceSkipsMissingBlueprint: a queued ship whose blueprint version is
// gone is neither placed nor given a reason, and does not stop the others.
func TestPlaceSkipsMissingBlueprint(t *testing.T) {
	bp := mkBP("web", 1, 10, 10)
	gone := mkBP("gone", 3, 10, 10)
	ships := []*fsm.Ship{mkShip("gone-1", "", gone, fsm.ShipQueued, ""), mkShip("web-1", "", bp, fsm.ShipQueued, "")}
	p := Make(mkInput([]*fsm.Node{mkNode("n1", 100, 100)}, nil, ships, bp))
	places := allPlaces(p)
	if len(places) != 1 || places[0].Ship != "web-1" || len(allPending(p)) != 0 {
		t.Fatalf("plan:\n%s", dumpPlan(p))
	}
}
