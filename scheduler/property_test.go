package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// randCluster is one random input and what the checks need to know of it.
type randCluster struct {
	in     *Input
	bps    map[verKey]*fsm.Blueprint
	fleets map[string]*fsm.Fleet
}

var (
	randZones = []string{"a", "b", "c"}
	randDisks = []string{"ssd", "hdd"}
)

func randLabels(rng *rand.Rand) map[string]string {
	l := map[string]string{}
	if rng.IntN(5) > 0 {
		l["zone"] = randZones[rng.IntN(len(randZones))]
	}
	if rng.IntN(3) > 0 {
		l["disk"] = randDisks[rng.IntN(len(randDisks))]
	}
	if rng.IntN(4) == 0 {
		l["gpu"] = "yes"
	}
	return l
}

func randConstraint(rng *rand.Rand) fsm.Constraint {
	switch rng.IntN(6) {
	case 0:
		return fsm.Constraint{Label: "zone", Op: "=", Value: randZones[rng.IntN(3)]}
	case 1:
		return fsm.Constraint{Label: "zone", Op: "!=", Value: randZones[rng.IntN(3)]}
	case 2:
		return fsm.Constraint{Label: "zone", Op: "in", Value: randZones[rng.IntN(3)] + "," + randZones[rng.IntN(3)]}
	case 3:
		return fsm.Constraint{Label: "zone", Op: "not_in", Value: randZones[rng.IntN(3)]}
	case 4:
		return fsm.Constraint{Label: "gpu", Op: "exists"}
	default:
		return fsm.Constraint{Label: "gpu", Op: "not_exists"}
	}
}

// randPorts picks a random subset of [lo, hi], plus sometimes a port
// outside it.
func randPorts(rng *rand.Rand, lo, hi int, p float64) []int {
	var out []int
	for port := lo; port <= hi; port++ {
		if rng.Float64() < p {
			out = append(out, port)
		}
	}
	if rng.IntN(4) == 0 {
		out = append(out, hi+1+rng.IntN(10))
	}
	return out
}

func randInput(rng *rand.Rand) *randCluster {
	rc := &randCluster{bps: map[verKey]*fsm.Blueprint{}, fleets: map[string]*fsm.Fleet{}}
	in := &Input{Now: t0, LostGrace: 2 * time.Second, Retention: 10 * time.Minute, MaxPerPlan: rng.IntN(5)}
	rc.in = in
	for i := range 1 + rng.IntN(30) {
		n := &fsm.Node{
			Name: fmt.Sprintf("n%02d", i), Worker: rng.IntN(10) > 0, Status: fsm.NodeAlive,
			StatusSince: t0.Add(-time.Duration(rng.IntN(5000)) * time.Millisecond).UnixMilli(),
			Drain:       rng.IntN(10) == 0,
			Labels:      randLabels(rng),
			Capacity:    fsm.Resources{CPUMHz: int64(rng.IntN(9)) * 500, MemoryMB: int64(rng.IntN(9)) * 512},
		}
		switch rng.IntN(10) {
		case 0:
			n.Status = fsm.NodeDead
		case 1:
			n.Status = fsm.NodeSuspect
		}
		if n.Capacity.CPUMHz > 0 {
			n.Allocated.CPUMHz = rng.Int64N(n.Capacity.CPUMHz + 1)
		}
		if n.Capacity.MemoryMB > 0 {
			n.Allocated.MemoryMB = rng.Int64N(n.Capacity.MemoryMB + 1)
		}
		if rng.IntN(20) > 0 {
			lo := 1024 + rng.IntN(60000)
			hi := lo + rng.IntN(20) // 1..20 ports
			n.PortsRange = fmt.Sprintf("%d-%d", lo, hi)
			n.UsedPorts = randPorts(rng, lo, hi, 0.2)
			slices.Sort(n.UsedPorts)
			n.HostPorts = randPorts(rng, lo, hi, 0.1)
		}
		in.Nodes = append(in.Nodes, n)
	}
	// Fleets with one or two versions; blueprints with random needs.
	for f := range 1 + rng.IntN(4) {
		fl := &fsm.Fleet{Name: fmt.Sprintf("f%d", f), Replicas: rng.IntN(20)}
		if rng.IntN(2) == 0 {
			fl.Placement = &fsm.Placement{Strategy: fsm.StrategyPack}
		} else if rng.IntN(2) == 0 {
			fl.Placement = &fsm.Placement{Strategy: fsm.StrategySpread}
		}
		if k := rng.IntN(3); k > 0 {
			if fl.Placement == nil {
				fl.Placement = &fsm.Placement{}
			}
			for range k {
				fl.Placement.Constraints = append(fl.Placement.Constraints, randConstraint(rng))
			}
		}
		for v := range 1 + rng.IntN(2) {
			bp := &fsm.Blueprint{Name: fl.Name + "-bp", Version: v + 1,
				Resources: fsm.Resources{CPUMHz: int64(rng.IntN(2000)), MemoryMB: int64(rng.IntN(2048))}}
			for p := range rng.IntN(4) {
				bp.Ports = append(bp.Ports, fsm.Port{Name: fmt.Sprintf("p%d", p)})
			}
			if rng.IntN(4) == 0 {
				bp.NodeSelector = map[string]string{"disk": randDisks[rng.IntN(2)]}
			}
			rc.bps[verKey{bp.Name, bp.Version}] = bp
			fl.Versions = append(fl.Versions, fsm.FleetVersion{Blueprint: bp.Name, Version: bp.Version, Weight: 1 + rng.IntN(10)})
		}
		rc.fleets[fl.Name] = fl
		in.Fleets = append(in.Fleets, fl)
	}
	lone := &fsm.Blueprint{Name: "lone", Version: 1, Resources: fsm.Resources{CPUMHz: 100, MemoryMB: 100}, Ports: []fsm.Port{{Name: "p"}}}
	rc.bps[verKey{"lone", 1}] = lone
	in.Blueprint = func(name string, v int) (*fsm.Blueprint, bool) {
		b, ok := rc.bps[verKey{name, v}]
		return b, ok
	}
	// Ships already on nodes (for spread counts) and queued ones.
	id := 0
	newShip := func() *fsm.Ship {
		id++
		var bp *fsm.Blueprint
		fleet := ""
		if rng.IntN(10) == 0 {
			bp = lone
		} else {
			f := in.Fleets[rng.IntN(len(in.Fleets))]
			v := f.Versions[rng.IntN(len(f.Versions))]
			bp, fleet = rc.bps[verKey{v.Blueprint, v.Version}], f.Name
		}
		return &fsm.Ship{ID: fmt.Sprintf("s%04d", id), Fleet: fleet, Blueprint: bp.Name, Version: bp.Version,
			State: fsm.ShipQueued, Desired: fsm.DesireRun, Resources: bp.Resources}
	}
	for range rng.IntN(20) {
		s := newShip()
		s.Node = in.Nodes[rng.IntN(len(in.Nodes))].Name
		s.State = []string{fsm.ShipScheduled, fsm.ShipStarting, fsm.ShipReady, fsm.ShipAllocated}[rng.IntN(4)]
		in.Ships = append(in.Ships, s)
	}
	for range rng.IntN(60) {
		s := newShip()
		if rng.IntN(8) == 0 {
			s.Reason = "some earlier reason"
		}
		if rng.IntN(30) == 0 { // a blueprint version that is gone
			s.Version = 99
		}
		in.Ships = append(in.Ships, s)
		in.Queued = append(in.Queued, s)
	}
	return rc
}

// nodeState is what a node has left while the plan's placements are
// applied to a copy of it.
type nodeState struct {
	n      *fsm.Node
	alloc  fsm.Resources
	lo, hi int
	taken  map[int]bool
}

func (ns *nodeState) fits(res fsm.Resources, nports int) bool {
	free := 0
	for p := ns.lo; ns.hi > 0 && p <= ns.hi; p++ {
		if !ns.taken[p] {
			free++
		}
	}
	return ns.alloc.CPUMHz+res.CPUMHz <= ns.n.Capacity.CPUMHz &&
		ns.alloc.MemoryMB+res.MemoryMB <= ns.n.Capacity.MemoryMB && free >= nports
}

func (rc *randCluster) eligible(n *fsm.Node, s *fsm.Ship, bp *fsm.Blueprint) bool {
	var cons []fsm.Constraint
	if f := rc.fleets[s.Fleet]; f != nil && f.Placement != nil {
		cons = f.Placement.Constraints
	}
	return n.Status == fsm.NodeAlive && !n.Drain && n.Worker && fsm.Match(n.Labels, bp.NodeSelector, cons)
}

// checkPlan applies the plan's placements to a copy of the nodes and
// returns the first broken invariant, or "".
func (rc *randCluster) checkPlan(p *Plan) string {
	in := rc.in
	nodes := map[string]*nodeState{}
	for _, n := range in.Nodes {
		ns := &nodeState{n: n, alloc: n.Allocated, taken: map[int]bool{}}
		ns.lo, ns.hi, _ = fsm.ParsePortsRange(n.PortsRange)
		for _, port := range append(slices.Clone(n.UsedPorts), n.HostPorts...) {
			ns.taken[port] = true
		}
		nodes[n.Name] = ns
	}
	queued := map[string]*fsm.Ship{}
	for _, s := range in.Queued {
		queued[s.ID] = s
	}
	placed := map[string]bool{}
	for _, pl := range allPlaces(p) {
		s, ok := queued[pl.Ship]
		if !ok {
			return fmt.Sprintf("placed %s, which is not queued", pl.Ship)
		}
		if placed[pl.Ship] {
			return fmt.Sprintf("placed %s twice", pl.Ship)
		}
		placed[pl.Ship] = true
		ns, ok := nodes[pl.Node]
		if !ok {
			return fmt.Sprintf("placed %s on unknown node %s", pl.Ship, pl.Node)
		}
		bp, ok := in.Blueprint(s.Blueprint, s.Version)
		if !ok {
			return fmt.Sprintf("placed %s whose blueprint is gone", pl.Ship)
		}
		n := ns.n
		if !rc.eligible(n, s, bp) {
			return fmt.Sprintf("placed %s on %s: status %s drain %v worker %v labels %v selector %v fleet %s",
				s.ID, n.Name, n.Status, n.Drain, n.Worker, n.Labels, bp.NodeSelector, s.Fleet)
		}
		if len(pl.Ports) != len(bp.Ports) {
			return fmt.Sprintf("%s got %d ports for %d", s.ID, len(pl.Ports), len(bp.Ports))
		}
		for _, port := range pl.Ports {
			if port < ns.lo || port > ns.hi || ns.hi == 0 {
				return fmt.Sprintf("%s: port %d outside %q of %s", s.ID, port, n.PortsRange, n.Name)
			}
			if slices.Contains(n.HostPorts, port) {
				return fmt.Sprintf("%s: port %d is a host port of %s", s.ID, port, n.Name)
			}
			if ns.taken[port] {
				return fmt.Sprintf("%s: port %d of %s used twice", s.ID, port, n.Name)
			}
			ns.taken[port] = true
		}
		ns.alloc.CPUMHz += s.Resources.CPUMHz
		ns.alloc.MemoryMB += s.Resources.MemoryMB
		if ns.alloc.CPUMHz > n.Capacity.CPUMHz || ns.alloc.MemoryMB > n.Capacity.MemoryMB {
			return fmt.Sprintf("%s over-commits %s: %+v of %+v", s.ID, n.Name, ns.alloc, n.Capacity)
		}
	}
	// Every ship left waiting fits on no node, even after the plan; it has a
	// reason unless it already carries that reason.
	pending := allPending(p)
	stopped := map[string]bool{}
	for _, st := range p.Stop {
		for _, id := range st.Ships {
			stopped[id] = true
		}
	}
	for _, s := range in.Queued {
		reason, has := pending[s.ID]
		if stopped[s.ID] {
			if placed[s.ID] || has {
				return fmt.Sprintf("%s is stopped by the plan yet placed or given a reason", s.ID)
			}
			continue
		}
		if placed[s.ID] {
			if has {
				return fmt.Sprintf("%s placed and pending", s.ID)
			}
			continue
		}
		bp, ok := in.Blueprint(s.Blueprint, s.Version)
		if !ok {
			if has {
				return fmt.Sprintf("%s without blueprint got reason %q", s.ID, reason)
			}
			continue
		}
		for _, n := range in.Nodes {
			if rc.eligible(n, s, bp) && nodes[n.Name].fits(s.Resources, len(bp.Ports)) {
				return fmt.Sprintf("%s left waiting (%q) but fits on %s", s.ID, reason, n.Name)
			}
		}
		if !has && s.Reason == "" {
			return fmt.Sprintf("%s left waiting without a reason", s.ID)
		}
		if has && (reason == s.Reason || !strings.Contains(reason, fmt.Sprintf("; %d node", len(in.Nodes)))) {
			return fmt.Sprintf("%s: reason %q (had %q, %d nodes)", s.ID, reason, s.Reason, len(in.Nodes))
		}
	}
	for _, c := range p.Place {
		if in.MaxPerPlan > 0 && len(c.Places) > in.MaxPerPlan {
			return fmt.Sprintf("ShipPlace of %d placements, max %d", len(c.Places), in.MaxPerPlan)
		}
	}
	return ""
}

// TestPropertyPlacement checks the placement invariants over random
// clusters and queues.
func TestPropertyPlacement(t *testing.T) {
	iterations := 300
	if testing.Short() {
		iterations = 50
	}
	placedTotal := 0
	for i := range iterations {
		seed := uint64(i) + 1
		rng := rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15))
		rc := randInput(rng)
		p := Make(rc.in)
		if msg := rc.checkPlan(p); msg != "" {
			t.Fatalf("seed %d: %s\n%s", seed, msg, dumpPlan(p))
		}
		if p2 := Make(rc.in); !reflect.DeepEqual(p, p2) {
			t.Fatalf("seed %d: two plans of the same input differ:\n%s\n%s", seed, dumpPlan(p), dumpPlan(p2))
		}
		placedTotal += len(allPlaces(p))
	}
	if placedTotal == 0 {
		t.Fatal("the generator never produced a placement")
	}
	t.Logf("%d placements checked", placedTotal)
}
