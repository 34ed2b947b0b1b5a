package scheduler

import (
	"cmp"
	"container/heap"
	"fmt"
	"strings"

	"github.com/armada-orchestrator/armada/fsm"
)

// candidate is a node as placement sees it during one plan: what is left
// of it after the placements made so far.
type candidate struct {
	node      *fsm.Node
	free      fsm.Resources
	lo, hi    int
	taken     map[int]bool // ports held by ships or used on the host
	nextPort  int
	freePorts int
	perFleet  map[string]int // ships of each fleet on the node
}

func newCandidate(n *fsm.Node) *candidate {
	c := &candidate{node: n, taken: map[int]bool{}, perFleet: map[string]int{}}
	c.free = fsm.Resources{CPUMHz: n.Capacity.CPUMHz - n.Allocated.CPUMHz, MemoryMB: n.Capacity.MemoryMB - n.Allocated.MemoryMB}
	if lo, hi, err := fsm.ParsePortsRange(n.PortsRange); err == nil {
		c.lo, c.hi, c.nextPort = lo, hi, lo
	}
	for _, p := range n.UsedPorts {
		c.taken[p] = true
	}
	for _, p := range n.HostPorts {
		c.taken[p] = true
	}
	if c.hi > 0 {
		c.freePorts = c.hi - c.lo + 1
		for p := range c.taken {
			if p >= c.lo && p <= c.hi {
				c.freePorts--
			}
		}
	}
	return c
}

// ports takes n free ports, lowest first from where the last search ended.
func (c *candidate) ports(n int) []int {
	out := make([]int, 0, n)
	for p := c.nextPort; len(out) < n && p <= c.hi; p++ {
		if !c.taken[p] {
			out = append(out, p)
		}
	}
	for p := c.lo; len(out) < n && p < c.nextPort; p++ {
		if !c.taken[p] {
			out = append(out, p)
		}
	}
	for _, p := range out {
		c.taken[p] = true
		c.nextPort = p + 1
	}
	c.freePorts -= len(out)
	return out
}

func (c *candidate) load() float64 {
	used := fsm.Resources{CPUMHz: c.node.Capacity.CPUMHz - c.free.CPUMHz, MemoryMB: c.node.Capacity.MemoryMB - c.free.MemoryMB}
	return utilisation(used, c.node.Capacity)
}

// Why a node cannot take a ship, as counted for the reason a person reads.
const (
	noAlive = iota
	noDrain
	noWorker
	noLabels
	noMemory
	noCPU
	noPorts
	noKinds
)

// group is the queued ships that share their requirements: same fleet,
// blueprint and version.
type group struct {
	fleet     *fsm.Fleet // nil for a ship without a fleet
	bp        *fsm.Blueprint
	res       fsm.Resources
	ships     []*fsm.Ship
	fleetName string
}

// placeQueued places the queued ships, oldest group first, with
// filter → score → pick. A group's feasible nodes go in a heap ordered by
// the fleet's strategy; a node that cannot take one more ship of the group
// leaves the heap, since within a plan nodes only fill up.
func placeQueued(in *Input, p *Plan) []*fsm.ShipPlace {
	if len(in.Queued) == 0 {
		return nil
	}
	fleets := map[string]*fsm.Fleet{}
	for _, f := range in.Fleets {
		fleets[f.Name] = f
	}
	cands := make([]*candidate, 0, len(in.Nodes))
	byName := map[string]*candidate{}
	for _, n := range in.Nodes {
		c := newCandidate(n)
		cands = append(cands, c)
		byName[n.Name] = c
	}
	for _, s := range in.Ships {
		if c, ok := byName[s.Node]; ok && s.Live() {
			c.perFleet[s.Fleet]++
		}
	}
	// Ships this plan stops are not placed.
	stopping := map[string]bool{}
	for _, st := range p.Stop {
		for _, id := range st.Ships {
			stopping[id] = true
		}
	}
	var groups []*group
	index := map[string]*group{}
	for _, s := range in.Queued {
		if stopping[s.ID] {
			continue
		}
		key := fmt.Sprintf("%s\x00%s\x00%d", s.Fleet, s.Blueprint, s.Version)
		g, ok := index[key]
		if !ok {
			bp, found := in.Blueprint(s.Blueprint, s.Version)
			if !found {
				continue
			}
			g = &group{fleet: fleets[s.Fleet], bp: bp, res: s.Resources, fleetName: s.Fleet}
			index[key] = g
			groups = append(groups, g)
		}
		g.ships = append(g.ships, s)
	}
	var places []fsm.Place
	var pending []fsm.Pending
	for _, g := range groups {
		placed, reason := g.place(cands, &places)
		for _, s := range g.ships[placed:] {
			if s.Reason != reason {
				pending = append(pending, fsm.Pending{Ship: s.ID, Reason: reason})
			}
		}
		if placed > 0 {
			p.why("place %d of %d ships of %s %s v%d", placed, len(g.ships), orNone(g.fleetName), g.bp.Name, g.bp.Version)
		}
		if placed < len(g.ships) {
			p.why("%d ships of %s wait: %s", len(g.ships)-placed, orNone(g.fleetName), reason)
		}
	}
	if len(places) == 0 && len(pending) == 0 {
		return nil
	}
	per := in.MaxPerPlan
	if per <= 0 {
		per = len(places) + 1
	}
	var out []*fsm.ShipPlace
	for len(places) > per {
		out = append(out, &fsm.ShipPlace{Places: places[:per]})
		places = places[per:]
	}
	return append(out, &fsm.ShipPlace{Places: places, Pending: pending})
}

func orNone(fleet string) string {
	if fleet == "" {
		return "(no fleet)"
	}
	return "fleet " + fleet
}

// place puts as many of the group's ships as fit, appending to places, and
// returns how many it placed and, if not all, why the rest wait.
func (g *group) place(cands []*candidate, places *[]fsm.Place) (int, string) {
	var counts [noKinds]int
	h := &nodeHeap{fleet: g.fleetName, pack: g.fleet != nil && g.fleet.Strategy() == fsm.StrategyPack}
	var cons []fsm.Constraint
	if g.fleet != nil && g.fleet.Placement != nil {
		cons = g.fleet.Placement.Constraints
	}
	nports := len(g.bp.Ports)
	for _, c := range cands {
		n := c.node
		switch {
		case n.Status != fsm.NodeAlive:
			counts[noAlive]++
		case n.Drain:
			counts[noDrain]++
		case !n.Worker:
			counts[noWorker]++
		case !fsm.Match(n.Labels, g.bp.NodeSelector, cons):
			counts[noLabels]++
		default:
			if k := c.lacks(g.res, nports); k >= 0 {
				counts[k]++
				continue
			}
			h.items = append(h.items, c)
		}
	}
	heap.Init(h)
	placed := 0
	for placed < len(g.ships) && h.Len() > 0 {
		c := h.items[0]
		if k := c.lacks(g.res, nports); k >= 0 {
			counts[k]++
			heap.Pop(h)
			continue
		}
		s := g.ships[placed]
		c.free.CPUMHz -= g.res.CPUMHz
		c.free.MemoryMB -= g.res.MemoryMB
		c.perFleet[g.fleetName]++
		*places = append(*places, fsm.Place{Ship: s.ID, Node: c.node.Name, Ports: c.ports(nports)})
		placed++
		heap.Fix(h, 0)
	}
	if placed == len(g.ships) {
		return placed, ""
	}
	// Nodes still in the heap fit no more ships than were placed: they are
	// full for this group, counted by what they lack.
	for _, c := range h.items {
		if k := c.lacks(g.res, nports); k >= 0 {
			counts[k]++
		}
	}
	return placed, g.reason(counts, len(cands), nports)
}

// lacks says what the node is short of for one more ship, or -1.
func (c *candidate) lacks(r fsm.Resources, nports int) int {
	switch {
	case c.free.MemoryMB < r.MemoryMB:
		return noMemory
	case c.free.CPUMHz < r.CPUMHz:
		return noCPU
	case c.freePorts < nports:
		return noPorts
	}
	return -1
}

// reason explains in words why ships wait: the commonest obstacle first,
// then how many nodes were checked, then the other obstacles.
func (g *group) reason(counts [noKinds]int, checked int, nports int) string {
	if checked == 0 {
		return "no nodes in the cluster"
	}
	words := [noKinds]string{
		noAlive:  "not alive",
		noDrain:  "draining",
		noWorker: "not running ships",
		noLabels: "not matching the node selector and constraints",
		noMemory: fmt.Sprintf("without %d MB memory free", g.res.MemoryMB),
		noCPU:    fmt.Sprintf("without %d MHz CPU free", g.res.CPUMHz),
		noPorts:  fmt.Sprintf("without %d free ports", nports),
	}
	lead := [noKinds]string{
		noAlive:  "no alive node",
		noDrain:  "every node is draining",
		noWorker: "no node runs ships",
		noLabels: "no node matches the node selector and constraints",
		noMemory: fmt.Sprintf("no node with %d MB memory free", g.res.MemoryMB),
		noCPU:    fmt.Sprintf("no node with %d MHz CPU free", g.res.CPUMHz),
		noPorts:  fmt.Sprintf("no node with %d free ports", nports),
	}
	top := 0
	for k := range counts {
		if counts[k] > counts[top] {
			top = k
		}
	}
	noun := "nodes"
	if checked == 1 {
		noun = "node"
	}
	// The lead names the obstacle only when every node has it.
	msg := fmt.Sprintf("%s; %d %s checked", lead[top], checked, noun)
	all := counts[top] == checked
	if !all {
		msg = fmt.Sprintf("no node fits; %d %s checked", checked, noun)
	}
	var rest []string
	for k, n := range counts {
		if (k != top || !all) && n > 0 {
			rest = append(rest, fmt.Sprintf("%d %s", n, words[k]))
		}
	}
	if len(rest) > 0 {
		msg += " (" + strings.Join(rest, ", ") + ")"
	}
	return msg
}

// nodeHeap orders a group's candidates best first. Spread: fewest ships of
// the fleet, then least loaded. Pack: most loaded first. Names break ties so
// that plans are reproducible.
type nodeHeap struct {
	items []*candidate
	fleet string
	pack  bool
}

func (h *nodeHeap) Len() int      { return len(h.items) }
func (h *nodeHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *nodeHeap) Push(x any)    { h.items = append(h.items, x.(*candidate)) }
func (h *nodeHeap) Pop() any {
	last := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return last
}
func (h *nodeHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if h.pack {
		if c := cmp.Compare(b.load(), a.load()); c != 0 {
			return c < 0
		}
	} else {
		if c := cmp.Compare(a.perFleet[h.fleet], b.perFleet[h.fleet]); c != 0 {
			return c < 0
		}
		if c := cmp.Compare(a.load(), b.load()); c != 0 {
			return c < 0
		}
	}
	return a.node.Name < b.node.Name
}
