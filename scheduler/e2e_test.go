package scheduler

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// e2e drives a real state machine with the scheduler's plans, as the
// leader's loop does, and lets the state machine re-check every command.
type e2e struct {
	t     testing.TB
	s     *fsm.State
	idx   uint64
	now   time.Time
	cfg   Config
	cache *fsm.ShipCache // carried from plan to plan, as Run does
}

func newE2E(t testing.TB) *e2e {
	t.Helper()
	s, err := fsm.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := &e2e{t: t, s: s, now: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC), cache: &fsm.ShipCache{}}
	c.cfg = Config{LostGrace: 2 * time.Second, Retention: 10 * time.Minute, MaxPerPlan: 4, Now: func() time.Time { return c.now }}
	c.cfg.defaults()
	return c
}

// apply stamps c with the current time, as the leader does, and applies it
// at the next index.
func (c *e2e) apply(cmd fsm.Command) *fsm.Result {
	c.t.Helper()
	c.idx++
	fsm.Stamp(cmd, c.now)
	r := c.s.Apply(c.idx, fsm.Encode(cmd))
	if r == nil {
		c.t.Fatalf("Apply %T returned nil", cmd)
	}
	return r
}

func (c *e2e) ok(cmd fsm.Command) *fsm.Result {
	c.t.Helper()
	r := c.apply(cmd)
	if r.Err != nil {
		c.t.Fatalf("%T rejected: %v", cmd, r.Err)
	}
	return r
}

func (c *e2e) plan() *Plan {
	c.t.Helper()
	p, index, err := makePlan(c.s, &c.cfg, c.cache)
	if err != nil {
		c.t.Fatal(err)
	}
	if index != c.idx {
		c.t.Fatalf("planned at index %d, state at %d", index, c.idx)
	}
	// The cached ships must be what a fresh read gives.
	fresh, _, err := makePlan(c.s, &c.cfg, &fsm.ShipCache{})
	if err != nil {
		c.t.Fatal(err)
	}
	if a, b := dumpPlan(p), dumpPlan(fresh); a != b {
		c.t.Fatalf("plan from the cached ships differs from a fresh one:\n%s\nfresh:\n%s", a, b)
	}
	return p
}

// converge applies plans until one is empty and returns how many it
// applied. Every command must be accepted as it is: a placement the state
// machine refuses means the plan was wrong.
func (c *e2e) converge() int {
	c.t.Helper()
	for i := range 20 {
		p := c.plan()
		if p.Empty() {
			return i
		}
		for _, cmd := range p.Commands() {
			r := c.apply(cmd)
			if r.Err != nil {
				c.t.Fatalf("pass %d: %T rejected: %v\n%s", i, cmd, r.Err, dumpPlan(p))
			}
			switch cmd := cmd.(type) {
			case *fsm.ShipPlace:
				if r.Count != len(cmd.Places) {
					c.t.Fatalf("pass %d: %d of %d placements accepted\n%s\nships: %s", i, r.Count, len(cmd.Places), dumpPlan(p), c.dumpShips())
				}
			case *fsm.ShipStop:
				if r.Count != len(cmd.Ships) {
					c.t.Fatalf("pass %d: %d of %d %s stops accepted\n%s", i, r.Count, len(cmd.Ships), cmd.Why, dumpPlan(p))
				}
			case *fsm.ShipCreate:
				if r.Count != cmd.Count {
					c.t.Fatalf("pass %d: %d of %d ships created\n%s", i, r.Count, cmd.Count, dumpPlan(p))
				}
			}
		}
		c.checkState()
	}
	c.t.Fatalf("no convergence after 20 plans; last:\n%s", dumpPlan(c.plan()))
	return 0
}

func (c *e2e) view(fn func(v *fsm.View)) {
	c.t.Helper()
	if err := c.s.View(func(v *fsm.View) error { fn(v); return nil }); err != nil {
		c.t.Fatal(err)
	}
}

func (c *e2e) ships(fleet string) []*fsm.Ship {
	var out []*fsm.Ship
	c.view(func(v *fsm.View) { out = v.Ships(fsm.ShipFilter{Fleet: fleet}) })
	return out
}

func (c *e2e) nodes() map[string]*fsm.Node {
	out := map[string]*fsm.Node{}
	c.view(func(v *fsm.View) {
		for _, n := range v.Nodes() {
			out[n.Name] = n
		}
	})
	return out
}

func (c *e2e) dumpShips() string {
	var b strings.Builder
	for _, s := range c.ships("") {
		fmt.Fprintf(&b, "\n  %s %s/%s on %q ports %v reason %q", s.ID, s.State, s.Desired, s.Node, s.Ports, s.Reason)
	}
	return b.String()
}

// checkState checks every node's books against its ships: allocations
// within capacity and equal to the sum of the ships holding resources,
// each port held once, in range and not a host port.
func (c *e2e) checkState() {
	c.t.Helper()
	nodes := c.nodes()
	alloc := map[string]fsm.Resources{}
	ports := map[string]map[int]string{}
	for _, s := range c.ships("") {
		// Lost ships hold until released: their node may still run them.
		if s.Node == "" || s.State == fsm.ShipQueued || (s.Ended() && !(s.State == fsm.ShipLostState && !s.Released)) {
			continue
		}
		r := alloc[s.Node]
		r.CPUMHz += s.Resources.CPUMHz
		r.MemoryMB += s.Resources.MemoryMB
		alloc[s.Node] = r
		n := nodes[s.Node]
		lo, hi, err := fsm.ParsePortsRange(n.PortsRange)
		if err != nil {
			c.t.Fatal(err)
		}
		if ports[s.Node] == nil {
			ports[s.Node] = map[int]string{}
		}
		for name, p := range s.Ports {
			if other, dup := ports[s.Node][p]; dup {
				c.t.Fatalf("port %d of %s held by %s and %s", p, s.Node, other, s.ID)
			}
			ports[s.Node][p] = s.ID
			if p < lo || p > hi || slices.Contains(n.HostPorts, p) {
				c.t.Fatalf("%s port %s=%d on %s (range %s, host %v)", s.ID, name, p, s.Node, n.PortsRange, n.HostPorts)
			}
		}
	}
	for name, n := range nodes {
		if n.Allocated != alloc[name] {
			c.t.Fatalf("%s allocated %+v, ships hold %+v", name, n.Allocated, alloc[name])
		}
		if n.Allocated.CPUMHz > n.Capacity.CPUMHz || n.Allocated.MemoryMB > n.Capacity.MemoryMB {
			c.t.Fatalf("%s over-committed: %+v of %+v", name, n.Allocated, n.Capacity)
		}
		if len(n.UsedPorts) != len(ports[name]) {
			c.t.Fatalf("%s used ports %v, ships hold %v", name, n.UsedPorts, ports[name])
		}
	}
}

// running counts the fleet's live, counted ships per node and checks that
// they are all placed.
func (c *e2e) running(fleet string) map[string]int {
	c.t.Helper()
	out := map[string]int{}
	for _, s := range c.ships(fleet) {
		if !s.Live() || s.State == fsm.ShipStopping {
			continue
		}
		if s.State == fsm.ShipQueued || s.Node == "" {
			c.t.Fatalf("%s not placed: %s", s.ID, c.dumpShips())
		}
		out[s.Node]++
	}
	return out
}

// report has every live ship of a node report state (or, for ships asked
// to stop, stopped), as its worker would.
func (c *e2e) report(node, state string) {
	c.t.Helper()
	var reps []fsm.Report
	for _, s := range c.ships("") {
		if s.Node != node || s.Ended() {
			continue
		}
		st := state
		if s.Desired == fsm.DesireStop {
			st = fsm.ShipStopped
		}
		reps = append(reps, fsm.Report{Ship: s.ID, State: st})
	}
	if len(reps) > 0 {
		c.ok(&fsm.ShipReport{Node: node, Reports: reps})
	}
}

func e2eNode(name, zone, tier string) fsm.Node {
	return fsm.Node{
		Name: name, Address: "10.0.0." + name[1:], Role: fsm.RoleWorker, Worker: true, Status: fsm.NodeAlive,
		Labels:   map[string]string{"zone": zone, "tier": tier},
		Capacity: fsm.Resources{CPUMHz: 4000, MemoryMB: 4096},
	}
}

func TestEndToEnd(t *testing.T) {
	c := newE2E(t)
	c.ok(&fsm.ClusterInit{ClusterID: "test", Key: bytes.Repeat([]byte{7}, 32)})
	for _, n := range []fsm.Node{e2eNode("n1", "a", "web"), e2eNode("n2", "b", "web"), e2eNode("n3", "c", "web"), e2eNode("n4", "a", "db")} {
		c.ok(&fsm.NodeUpsert{Node: n})
	}
	c.ok(&fsm.NodeReport{Name: "n1", PortsRange: "40000-40019", HostPorts: []int{40000, 40003, 40007, 40100}})
	c.ok(&fsm.NodeReport{Name: "n2", PortsRange: "40000-40019"})
	c.ok(&fsm.NodeReport{Name: "n3", PortsRange: "41000-41019", HostPorts: []int{41001}})
	c.ok(&fsm.NodeReport{Name: "n4", PortsRange: "40000-40019"})
	put, err := fsm.PrepareBlueprint(bytes.Repeat([]byte{7}, 32), &fsm.Blueprint{
		Name: "web", Unit: "[Service]\nExecStart=/usr/bin/web\n",
		Resources:    fsm.Resources{CPUMHz: 250, MemoryMB: 256},
		Ports:        []fsm.Port{{Name: "http"}, {Name: "metrics"}},
		Secrets:      map[string]string{"TOKEN": "x"},
		NodeSelector: map[string]string{},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.ok(put)
	c.ok(&fsm.FleetPut{Spec: fsm.Fleet{Name: "web", Replicas: 9,
		Versions:  []fsm.FleetVersion{{Blueprint: "web"}},
		Placement: &fsm.Placement{Constraints: []fsm.Constraint{{Label: "tier", Op: "!=", Value: "db"}}},
	}})

	// Create, then place: 3 ships on each web node, none on the db node.
	if passes := c.converge(); passes != 2 {
		t.Fatalf("converged in %d passes, want 2 (create, place)", passes)
	}
	got := c.running("web")
	if got["n1"] != 3 || got["n2"] != 3 || got["n3"] != 3 || got["n4"] != 0 {
		t.Fatalf("ships per node %v, want 3/3/3/0", got)
	}
	for _, s := range c.ships("web") {
		if s.State != fsm.ShipScheduled || len(s.Ports) != 2 || s.Reason != "" {
			t.Fatalf("ship %s: %s ports %v reason %q", s.ID, s.State, s.Ports, s.Reason)
		}
	}
	requireEmpty(t, c.plan()) // idempotent

	// The workers start the ships.
	for _, n := range []string{"n1", "n2", "n3"} {
		c.report(n, fsm.ShipReady)
	}
	requireEmpty(t, c.plan())

	// Scale down: 2 per node, and once the workers stop the surplus the
	// nodes' books are back to 6 ships.
	c.ok(&fsm.FleetScale{Name: "web", Replicas: 6})
	if passes := c.converge(); passes != 1 {
		t.Fatalf("scale down converged in %d passes", passes)
	}
	if got := c.running("web"); got["n1"] != 2 || got["n2"] != 2 || got["n3"] != 2 {
		t.Fatalf("after scale down %v, want 2/2/2", got)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		c.report(n, fsm.ShipReady)
	}
	c.checkState()
	requireEmpty(t, c.plan())
	if n := c.nodes()["n1"]; n.Ships != 2 || n.Allocated.MemoryMB != 512 {
		t.Fatalf("n1 after stops: %d ships, %+v", n.Ships, n.Allocated)
	}

	// n2 dies: nothing within the grace, then its ships are lost and
	// replaced on n1 and n3.
	c.ok(&fsm.NodeUpsert{Node: func() fsm.Node { n := e2eNode("n2", "b", "web"); n.Status = fsm.NodeDead; return n }()})
	c.now = c.now.Add(time.Second)
	requireEmpty(t, c.plan())
	c.now = c.now.Add(1500 * time.Millisecond)
	p := c.plan()
	if len(p.Lost) != 1 || p.Lost[0].Node != "n2" {
		t.Fatalf("want n2's ships lost:\n%s", dumpPlan(p))
	}
	if passes := c.converge(); passes != 2 {
		t.Fatalf("loss converged in %d passes, want 2 (lose+create, place)", passes)
	}
	if got := c.running("web"); got["n1"] != 3 || got["n3"] != 3 || got["n2"] != 0 {
		t.Fatalf("after losing n2 %v, want n1:3 n3:3", got)
	}
	lost := 0
	for _, s := range c.ships("web") {
		if s.State == fsm.ShipLostState {
			lost++
			if s.Node != "n2" || !strings.HasPrefix(s.Reason, "node n2 is dead") {
				t.Fatalf("lost ship %s on %s: %q", s.ID, s.Node, s.Reason)
			}
		}
	}
	if lost != 2 {
		t.Fatalf("%d ships lost, want 2", lost)
	}
	// A dead node keeps its lost ships' books (it may only be cut off)
	// until it is removed.
	if n := c.nodes()["n2"]; n.Ships != 2 || len(n.UsedPorts) != 4 {
		t.Fatalf("n2 holds %+v, want its 2 lost ships", n)
	}
	c.ok(&fsm.NodeRemove{Name: "n2"})
	for _, s := range c.ships("web") {
		if s.State == fsm.ShipLostState && !s.Released {
			t.Fatalf("lost ship %s not released with its node", s.ID)
		}
	}

	// n3 drains: replacements go to n1 (the only web node left), and n3's
	// ships stop only once those are ready.
	c.ok(&fsm.NodeDrain{Name: "n3", Enable: true})
	if passes := c.converge(); passes != 2 {
		t.Fatalf("drain converged in %d passes, want 2 (create, place)", passes)
	}
	if got := c.running("web"); got["n1"] != 6 || got["n3"] != 3 {
		t.Fatalf("during drain %v, want n1:6 n3:3", got)
	}
	c.report("n1", fsm.ShipReady)
	p = c.plan()
	if len(stopped(p, fsm.StopDrain)) != 3 || len(p.Create)+len(p.Place) != 0 {
		t.Fatalf("want n3's 3 ships stopped for drain:\n%s", dumpPlan(p))
	}
	if passes := c.converge(); passes != 1 {
		t.Fatalf("drain stop converged in %d passes", passes)
	}
	c.report("n3", fsm.ShipReady)
	if got := c.running("web"); got["n1"] != 6 || got["n3"] != 0 {
		t.Fatalf("after drain %v, want n1:6", got)
	}
	c.checkState()
	requireEmpty(t, c.plan())

	// n1 has 17 free ports: an eighth and ninth ship (2 ports each) do not
	// fit, and wait with a reason that is written once.
	c.ok(&fsm.FleetScale{Name: "web", Replicas: 9})
	if passes := c.converge(); passes != 2 {
		t.Fatalf("scale up converged in %d passes, want 2 (create, place)", passes)
	}
	waiting := 0
	for _, s := range c.ships("web") {
		if s.State == fsm.ShipQueued {
			waiting++
			if !strings.Contains(s.Reason, "; 3 nodes checked") || !strings.Contains(s.Reason, "2 free ports") {
				t.Fatalf("%s waits with %q", s.ID, s.Reason)
			}
		}
	}
	t.Logf("ships after scaling up on one node:%s", c.dumpShips())
	if waiting != 1 {
		t.Fatalf("%d ships wait, want 1 (n1 fits 8 with 17 free ports):%s", waiting, c.dumpShips())
	}
	requireEmpty(t, c.plan())

	// Much later the ended ships are purged, and nothing else changes.
	c.now = c.now.Add(11 * time.Minute)
	p = c.plan()
	purged := 0
	for _, c := range p.Purge {
		purged += len(c.Ships)
	}
	if purged != 3+2+3 || len(p.Commands()) != len(p.Purge) {
		t.Fatalf("want the 8 ended ships purged:\n%s", dumpPlan(p))
	}
	c.converge()
	for _, s := range c.ships("web") {
		if s.Ended() {
			t.Fatalf("%s not purged", s.ID)
		}
	}
}
