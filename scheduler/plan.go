// Package scheduler decides, on the Raft leader, what the cluster should
// do next: which ships to create, stop, mark lost and place. Plan is a pure
// function of a state view; Loop applies its result as commands, which the
// state machine checks again, so a stale or duplicated plan can never
// over-commit a node or double a fleet.
package scheduler

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// Input is the state a plan is made from.
type Input struct {
	Now       time.Time
	LostGrace time.Duration // how long a node may be gone before its ships are lost
	Retention time.Duration // how long ended ships are kept
	Nodes     []*fsm.Node
	Fleets    []*fsm.Fleet
	Ships     []*fsm.Ship // every ship
	Queued    []*fsm.Ship // the scheduler queue, oldest first
	// Deployments are the fleets' running deployments, by fleet.
	Deployments map[string]*fsm.Deployment
	Blueprint   func(name string, version int) (*fsm.Blueprint, bool)
	MaxPerPlan  int // placements per ShipPlace command; 0: all in one
}

// Plan is what the leader should apply, in order.
type Plan struct {
	Lost   []*fsm.ShipLost
	Scale  []*fsm.FleetScale // buffer autoscaling
	Create []*fsm.ShipCreate
	Stop   []*fsm.ShipStop
	Place  []*fsm.ShipPlace
	SDK    []*fsm.ShipSDK // reservations that ended
	Deploy []*fsm.DeployUpdate
	Purge  []*fsm.ShipPurge
	// Reasons says why, one line per action, for the log.
	Reasons []string
	// Recheck is when the next plan may differ without any change to the
	// state: the end of the earliest grace period running. Zero: none.
	Recheck time.Time
}

// Commands lists the plan's commands in the order they must be applied.
func (p *Plan) Commands() []fsm.Command {
	var out []fsm.Command
	for _, g := range p.groups() {
		out = append(out, g...)
	}
	return out
}

// groups are the plan's commands by kind, in the order the kinds must be
// applied; the commands of one kind may be applied together.
func (p *Plan) groups() [][]fsm.Command {
	return [][]fsm.Command{commands(p.Lost), commands(p.Scale), commands(p.Create), commands(p.Stop),
		commands(p.Place), commands(p.SDK), commands(p.Deploy), commands(p.Purge)}
}

func commands[C fsm.Command](cs []C) []fsm.Command {
	out := make([]fsm.Command, len(cs))
	for i, c := range cs {
		out[i] = c
	}
	return out
}

// Empty reports whether the plan does nothing.
func (p *Plan) Empty() bool { return len(p.Commands()) == 0 }

func (p *Plan) why(format string, args ...any) {
	p.Reasons = append(p.Reasons, fmt.Sprintf(format, args...))
}

type verKey struct {
	bp string
	v  int
}

// Make plans the next step from the state in in.
func Make(in *Input) *Plan {
	p := &Plan{}
	nodes := map[string]*fsm.Node{}
	for _, n := range in.Nodes {
		nodes[n.Name] = n
	}
	lostNodes := planLost(in, nodes, p)
	reconcileFleets(in, nodes, lostNodes, p)
	p.Place = placeQueued(in, p)
	planReservations(in, p)
	planPurge(in, p)
	return p
}

// planLost marks the ships of nodes gone for longer than the grace.
func planLost(in *Input, nodes map[string]*fsm.Node, p *Plan) map[string]bool {
	withShips := map[string]bool{}
	for _, s := range in.Ships {
		if s.Node != "" && !s.Ended() {
			withShips[s.Node] = true
		}
	}
	lost := map[string]bool{}
	for _, name := range sortedKeys(withShips) {
		n, ok := nodes[name]
		if ok && n.Status == fsm.NodeAlive {
			continue
		}
		status, since := "gone", time.Time{}
		if ok {
			// The grace runs from the start of the outage: a node found
			// suspect and then dead is one outage.
			status, since = n.Status, time.UnixMilli(cmp.Or(n.DownSince, n.StatusSince))
		}
		if gone := in.Now.Sub(since); ok && gone < in.LostGrace {
			p.recheckAt(since.Add(in.LostGrace))
			continue
		}
		lost[name] = true
		reason := fmt.Sprintf("node %s is %s", name, status)
		if ok {
			reason += ", down since " + since.UTC().Format("15:04:05.000")
		}
		p.Lost = append(p.Lost, &fsm.ShipLost{Node: name, Reason: reason})
		p.why("lose ships of %s: %s for more than %s", name, status, in.LostGrace)
	}
	return lost
}

// counted reports whether a ship counts towards its fleet's replicas, as
// the state machine counts it: live, not stopping, not on a draining node
// (nor on one whose ships are being lost now).
func counted(s *fsm.Ship, nodes map[string]*fsm.Node, lost map[string]bool) bool {
	if !s.Live() || s.State == fsm.ShipStopping {
		return false
	}
	if s.Node == "" {
		return true
	}
	n, ok := nodes[s.Node]
	return ok && !n.Drain && !lost[s.Node]
}

func reconcileFleets(in *Input, nodes map[string]*fsm.Node, lost map[string]bool, p *Plan) {
	byFleet := map[string][]*fsm.Ship{}
	failedBy := map[string][]*fsm.Ship{}
	for _, s := range in.Ships {
		if s.Live() && s.State != fsm.ShipStopping {
			byFleet[s.Fleet] = append(byFleet[s.Fleet], s)
		} else if s.State == fsm.ShipFailed {
			failedBy[s.Fleet] = append(failedBy[s.Fleet], s)
		}
	}
	surplus := &fsm.ShipStop{Why: fsm.StopSurplus, Reason: "the fleet wants fewer ships of this version"}
	drain := &fsm.ShipStop{Why: fsm.StopDrain, Reason: "its node drains; replaced elsewhere"}
	for _, f := range in.Fleets {
		if f.Buffer != nil {
			occupied := 0
			for _, s := range byFleet[f.Name] {
				if s.Occupied() && !lost[s.Node] {
					occupied++
				}
			}
			if n := bufferReplicas(f, occupied); n != f.Replicas {
				p.Scale = append(p.Scale, &fsm.FleetScale{Name: f.Name, Replicas: n})
				p.why("fleet %s: buffer scales %d → %d replicas (%d occupied, %d ready wanted spare, %d..%d)", f.Name, f.Replicas, n, occupied, f.Buffer.Ready, f.Buffer.Min, f.Buffer.Max)
				scaled := *f
				scaled.Replicas = n
				f = &scaled
			}
		}
		fails := recentFailures(in, failedBy[f.Name])
		have := map[verKey][]*fsm.Ship{}
		up := map[verKey]int{}
		retired := 0
		var draining []*fsm.Ship
		for _, s := range byFleet[f.Name] {
			k := verKey{s.Blueprint, s.Version}
			if !counted(s, nodes, lost) {
				if !lost[s.Node] && !s.Occupied() {
					draining = append(draining, s)
				}
				continue
			}
			have[k] = append(have[k], s)
			if s.Up() {
				up[k]++
			}
			if s.Occupied() && !f.Runs(s.Blueprint, s.Version) {
				retired++
			}
		}
		want := map[verKey]int{}
		for i, n := range f.DesiredAfter(retired) {
			v := f.Versions[i]
			want[verKey{v.Blueprint, v.Version}] = n
		}
		// A running deployment paces the change (unlimited: -1).
		roll := rollout{creates: -1, upStops: -1}
		if d := in.Deployments[f.Name]; d != nil {
			roll = planDeployment(in, f, d, want, have, up, p)
		}
		for _, v := range f.Versions {
			k := verKey{v.Blueprint, v.Version}
			if d := roll.take(&roll.creates, want[k]-len(have[k])); d > 0 {
				if next := backoff(fails.n[k], fails.last[k]); in.Now.Before(next) {
					p.recheckAt(next)
					p.why("fleet %s: %s v%d failed %d times lately; next ship at %s", f.Name, v.Blueprint, v.Version, fails.n[k], next.UTC().Format("15:04:05.000"))
					continue
				}
				for left := d; left > 0; left -= chunk(in, left) {
					p.Create = append(p.Create, &fsm.ShipCreate{Fleet: f.Name, Blueprint: v.Blueprint, Version: v.Version, Count: chunk(in, left)})
				}
				p.why("fleet %s: create %d of %s v%d (%d of %d)", f.Name, d, v.Blueprint, v.Version, len(have[k]), want[k])
			}
		}
		for _, k := range sortedVerKeys(have) {
			extra := len(have[k]) - want[k]
			if extra <= 0 {
				continue
			}
			victims := pickSurplus(have[k], nodes, f.Strategy(), extra)
			victims = slices.DeleteFunc(victims, func(s *fsm.Ship) bool {
				// Up ships stop only as the deployment allows.
				return s.Up() && roll.take(&roll.upStops, 1) == 0
			})
			if len(victims) == 0 {
				continue
			}
			for _, s := range victims {
				surplus.Ships = append(surplus.Ships, s.ID)
			}
			p.why("fleet %s: stop %d surplus of %s v%d (%d of %d)", f.Name, len(victims), k.bp, k.v, len(have[k]), want[k])
		}
		// A draining node's ship stops once enough ready ships of its
		// version run elsewhere: the replacement is up first.
		slices.SortFunc(draining, func(a, b *fsm.Ship) int { return cmp.Compare(a.ID, b.ID) })
		for _, s := range draining {
			k := verKey{s.Blueprint, s.Version}
			if up[k] >= want[k] {
				drain.Ships = append(drain.Ships, s.ID)
				p.why("fleet %s: stop %s on draining node %s: %d of %d ready elsewhere", f.Name, s.ID, s.Node, up[k], want[k])
			}
		}
	}
	// Ships whose fleet is gone are stopped by the fleet's deletion; ships
	// without a fleet simply stop when their node drains.
	for _, s := range byFleet[""] {
		if n, ok := nodes[s.Node]; ok && n.Drain && !s.Occupied() {
			drain.Ships = append(drain.Ships, s.ID)
			p.why("stop %s: node %s is draining", s.ID, s.Node)
		}
	}
	for _, st := range []*fsm.ShipStop{surplus, drain} {
		for ids := st.Ships; len(ids) > 0; ids = ids[chunk(in, len(ids)):] {
			p.Stop = append(p.Stop, &fsm.ShipStop{Why: st.Why, Reason: st.Reason, Ships: ids[:chunk(in, len(ids))]})
		}
	}
}

// chunk is how many of n items go in one command: at most MaxPerPlan, so
// that no log entry is huge.
func chunk(in *Input, n int) int {
	if in.MaxPerPlan > 0 && n > in.MaxPerPlan {
		return in.MaxPerPlan
	}
	return n
}

// pickSurplus chooses which n ships to stop: the least advanced first
// (queued, then scheduled, starting, ready), never allocated ones; among
// equals, under spread one from the node with most ships of the fleet
// left (counting as it goes), under pack one from the least-loaded node,
// so the fleet stays spread or packed; then the newest. O(k log k).
func pickSurplus(ships []*fsm.Ship, nodes map[string]*fsm.Node, strategy string, n int) []*fsm.Ship {
	perNode := map[string]int{}
	for _, s := range ships {
		perNode[s.Node]++
	}
	stage := map[string]int{fsm.ShipQueued: 0, fsm.ShipScheduled: 1, fsm.ShipStarting: 2, fsm.ShipReady: 3}
	byStage := make([][]*fsm.Ship, 4)
	for _, s := range ships {
		if st, ok := stage[s.State]; ok {
			byStage[st] = append(byStage[st], s)
		}
	}
	load := func(s *fsm.Ship) float64 {
		if nd, ok := nodes[s.Node]; ok {
			return utilisation(nd.Allocated, nd.Capacity)
		}
		return 0
	}
	var out []*fsm.Ship
	for _, group := range byStage {
		if len(out) == n {
			break
		}
		if strategy == fsm.StrategyPack {
			slices.SortStableFunc(group, func(a, b *fsm.Ship) int {
				if c := cmp.Compare(load(a), load(b)); c != 0 {
					return c
				}
				return newer(a, b)
			})
			out = append(out, group[:min(n-len(out), len(group))]...)
			continue
		}
		// Spread: a heap of nodes by ships of the fleet left on them, each
		// with its candidates of this stage, newest first.
		lists := map[string][]*fsm.Ship{}
		for _, s := range group {
			lists[s.Node] = append(lists[s.Node], s)
		}
		h := &surplusHeap{count: perNode}
		for node, l := range lists {
			slices.SortFunc(l, newer)
			h.items = append(h.items, &nodeShips{node: node, ships: l})
		}
		heap.Init(h)
		for len(out) < n && h.Len() > 0 {
			top := h.items[0]
			out = append(out, top.ships[0])
			top.ships = top.ships[1:]
			perNode[top.node]--
			if len(top.ships) == 0 {
				heap.Pop(h)
			} else {
				heap.Fix(h, 0)
			}
		}
	}
	return out
}

type nodeShips struct {
	node  string
	ships []*fsm.Ship // newest first
}

// surplusHeap orders nodes by ships of the fleet left on them, most
// first, then by their newest candidate.
type surplusHeap struct {
	items []*nodeShips
	count map[string]int
}

func (h *surplusHeap) Len() int      { return len(h.items) }
func (h *surplusHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *surplusHeap) Push(x any)    { h.items = append(h.items, x.(*nodeShips)) }
func (h *surplusHeap) Pop() any {
	last := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return last
}
func (h *surplusHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if c := cmp.Compare(h.count[b.node], h.count[a.node]); c != 0 {
		return c < 0
	}
	return newer(a.ships[0], b.ships[0]) < 0
}

// newer orders the newest ship first: by creation time, then by id, whose
// suffix is a base-36 number that grows with every ship.
func newer(a, b *fsm.Ship) int {
	if c := cmp.Compare(b.Created, a.Created); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.ID), len(a.ID)); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

func utilisation(alloc, capacity fsm.Resources) float64 {
	u := 0.0
	if capacity.CPUMHz > 0 {
		u = float64(alloc.CPUMHz) / float64(capacity.CPUMHz)
	}
	if capacity.MemoryMB > 0 {
		u = max(u, float64(alloc.MemoryMB)/float64(capacity.MemoryMB))
	}
	return u
}

func planPurge(in *Input, p *Plan) {
	if in.Retention <= 0 {
		return
	}
	cut := in.Now.Add(-in.Retention).UnixMilli()
	var ids []string
	for _, s := range in.Ships {
		if s.Ended() && s.Updated <= cut && !(s.State == fsm.ShipLostState && !s.Released) {
			ids = append(ids, s.ID)
		}
	}
	if len(ids) > 0 {
		p.why("purge %d ships ended more than %s ago", len(ids), in.Retention)
	}
	for ; len(ids) > 0; ids = ids[chunk(in, len(ids)):] {
		p.Purge = append(p.Purge, &fsm.ShipPurge{Ships: ids[:chunk(in, len(ids))]})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedVerKeys[V any](m map[verKey]V) []verKey {
	out := make([]verKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b verKey) int {
		if c := cmp.Compare(a.bp, b.bp); c != 0 {
			return c
		}
		return cmp.Compare(a.v, b.v)
	})
	return out
}
