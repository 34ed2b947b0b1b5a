package fsm

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Ship states.
const (
	ShipQueued    = "queued"    // waiting in the scheduler queue for a node
	ShipScheduled = "scheduled" // placed; in its node's queue
	ShipStarting  = "starting"
	ShipReady     = "ready"
	ShipAllocated = "allocated"
	ShipStopping  = "stopping"
	ShipStopped   = "stopped"
	ShipFailed    = "failed"
	ShipLostState = "lost" // its node died
)

// Desired states of a ship.
const (
	DesireRun  = "run"
	DesireStop = "stop"
)

// SchedulerQueue holds the ships waiting for a node, oldest first.
const SchedulerQueue = "/armada/scheduler/queue"

// WorkerQueue holds the ships placed on a node that its worker has not
// picked up yet.
func WorkerQueue(node string) string { return "/armada/worker/" + node + "/queue" }

// Ship is one running (or wanted, or ended) instance of a blueprint.
type Ship struct {
	ID        string            `json:"id"`
	Fleet     string            `json:"fleet"`
	Blueprint string            `json:"blueprint"`
	Version   int               `json:"version"`
	Node      string            `json:"node"`
	State     string            `json:"state"`
	Desired   string            `json:"desired"`
	Ports     map[string]int    `json:"ports"`
	Address   string            `json:"address"`
	Labels    map[string]string `json:"labels"`
	Resources Resources         `json:"resources"`
	Reason    string            `json:"reason"`
	Created   int64             `json:"created"`
	Updated   int64             `json:"updated"`
	// Item is the ship's entry in the scheduler queue or its node's queue.
	Item uint64 `json:"queue_item,omitempty"`
	// ReservedUntil is when a reserved ship's reservation ends (ms).
	ReservedUntil int64 `json:"reserved_until,omitempty"`
	// Released is set on a lost ship once nothing of it can run any more:
	// its worker reported it gone, or its node was removed. Until then its
	// node may still run it (a node cut off, not dead), so it keeps its
	// resources and ports there.
	Released bool `json:"released,omitempty"`
	// Usage is what the ship uses, as its worker last reported (drivers
	// that measure: systemd).
	Usage *Usage `json:"usage,omitempty"`
}

// Ended reports whether a ship is over: stopped, failed or lost.
func (s *Ship) Ended() bool {
	return s.State == ShipStopped || s.State == ShipFailed || s.State == ShipLostState
}

// Live reports whether a ship counts towards its fleet: wanted running and
// not ended.
func (s *Ship) Live() bool { return s.Desired == DesireRun && !s.Ended() }

// holds reports whether the ship holds resources and ports on its node.
func (s *Ship) holds() bool {
	if s.State == ShipLostState {
		return !s.Released
	}
	return s.Node != "" && s.State != ShipQueued && !s.Ended()
}

// Up reports whether a ship is up and serving: ready or allocated.
func (s *Ship) Up() bool { return s.State == ShipReady || s.Occupied() }

func pairKey(a, b string) []byte { return append(append([]byte(a), 0), b...) }

func (t *txn) ship(id string) (*Ship, bool) { return getShip(t.b(bShips), []byte(id)) }

// node reads a node through the command's node cache: ship commands touch
// the same few nodes thousands of times, and allocate writes each changed
// node back once, when the command ends (flushNodes).
func (t *txn) node(name string) (*Node, bool) {
	if n, ok := t.nodes[name]; ok {
		return n, n != nil
	}
	n, ok := getJSON[Node](t.b(bNodes), []byte(name))
	if t.nodes == nil {
		t.nodes = map[string]*Node{}
	}
	t.nodes[name] = n
	return n, ok
}

// flushNodes writes the nodes allocate changed and empties the cache. It
// runs after every command (and every command of a Batch).
func (t *txn) flushNodes() {
	names := make([]string, 0, len(t.dirty))
	for name := range t.dirty {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if n := t.nodes[name]; n != nil {
			t.putJSON(bNodes, []byte(name), n)
			t.changed("node", name, "put")
		}
	}
	clear(t.nodes)
	clear(t.dirty)
}

// putShip stores s, which was old (nil for a new ship), keeping the
// indexes and its node's allocation in step. Every ship write goes here.
func (t *txn) putShip(old, s *Ship) {
	if t.now != 0 { // commands without a clock (NodeRemove) keep the last time
		s.Updated = t.now
	}
	if old == nil || old.State != s.State || old.Desired != s.Desired || old.Node != s.Node {
		t.put(bFleetShips, pairKey(s.Fleet, s.ID), shipSummary(s))
	}
	if old != nil && old.Node != s.Node && old.Node != "" {
		t.del(bNodeShips, pairKey(old.Node, s.ID))
	}
	if s.Node != "" && (old == nil || old.Node != s.Node) {
		t.put(bNodeShips, pairKey(s.Node, s.ID), nil)
	}
	oldHolds := old != nil && old.holds()
	if oldHolds && (!s.holds() || old.Node != s.Node) {
		t.allocate(old, -1)
	}
	if s.holds() && (!oldHolds || old.Node != s.Node) {
		t.allocate(s, 1)
	}
	t.putShipRecord(s)
	t.changed("ship", s.ID, "put")
}

// allocate adds (sign 1) or removes (sign -1) a ship's resources and ports
// on its node.
func (t *txn) allocate(s *Ship, sign int64) {
	n, ok := t.node(s.Node)
	if !ok {
		return
	}
	n.Allocated.CPUMHz += sign * s.Resources.CPUMHz
	n.Allocated.MemoryMB += sign * s.Resources.MemoryMB
	n.Ships += int(sign)
	for _, p := range s.Ports {
		i, found := slices.BinarySearch(n.UsedPorts, p)
		switch {
		case sign > 0 && !found:
			n.UsedPorts = slices.Insert(n.UsedPorts, i, p)
		case sign < 0 && found:
			n.UsedPorts = slices.Delete(n.UsedPorts, i, i+1)
		}
	}
	if t.dirty == nil {
		t.dirty = map[string]bool{}
	}
	t.dirty[n.Name] = true
}

func (t *txn) delShip(s *Ship) {
	if s.holds() {
		t.allocate(s, -1)
	}
	t.unqueue(s)
	t.del(bFleetShips, pairKey(s.Fleet, s.ID))
	if s.Node != "" {
		t.del(bNodeShips, pairKey(s.Node, s.ID))
	}
	t.del(bShips, []byte(s.ID))
	t.changed("ship", s.ID, "delete")
}

// unqueue removes the ship's queue item: from the scheduler queue while it
// is queued, from its node's queue after.
func (t *txn) unqueue(s *Ship) {
	if s.Item == 0 {
		return
	}
	name := SchedulerQueue
	if s.Node != "" {
		name = WorkerQueue(s.Node)
	}
	if q := t.queue(name, false); q != nil && q.Get(u64(s.Item)) != nil {
		if err := q.Delete(u64(s.Item)); err != nil {
			panic(err)
		}
		t.changed("queue", name, "delete")
	}
	s.Item = 0
}

// enqueue appends the ship to a queue and remembers the item.
func (t *txn) enqueue(name string, s *Ship) {
	it := &QueueItem{ID: t.newID(), Data: []byte(s.ID), Enqueued: t.now}
	t.putItem(t.queue(name, true), it)
	t.changed("queue", name, "put")
	s.Item = it.ID
}

// shipSummary is what the fleet index keeps of a ship, so that counting
// a fleet's ships reads no ship record.
func shipSummary(s *Ship) []byte {
	var e encoder
	e.str(s.Blueprint)
	e.varint(int64(s.Version))
	e.str(s.State)
	e.str(s.Desired)
	e.str(s.Node)
	return e.b
}

func decodeSummary(b []byte) (*Ship, bool) {
	d := decoder{b: b}
	s := &Ship{Blueprint: d.str(), Version: int(d.varint()), State: d.str(), Desired: d.str(), Node: d.str()}
	return s, d.err == nil
}

// versionCounts counts a fleet's live ships per blueprint version that are
// not on a draining node; ready counts those of them that are up, and
// retired the occupied ones of versions f no longer runs.
func (t *txn) versionCounts(f *Fleet) (live, ready map[verKey]int, retired int) {
	fleet := f.Name
	live, ready = map[verKey]int{}, map[verKey]int{}
	drain := map[string]bool{}
	c := t.b(bFleetShips).Cursor()
	p := append([]byte(fleet), 0)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		s, ok := decodeSummary(v)
		if !ok || !s.Live() || s.State == ShipStopping {
			continue
		}
		if s.Node != "" {
			d, seen := drain[s.Node]
			if !seen {
				n, ok := t.node(s.Node)
				d = !ok || n.Drain
				drain[s.Node] = d
			}
			if d {
				continue
			}
		}
		k := verKey{s.Blueprint, s.Version}
		live[k]++
		if s.Up() {
			ready[k]++
		}
		if s.Occupied() && !f.Runs(s.Blueprint, s.Version) {
			retired++
		}
	}
	return live, ready, retired
}

type verKey struct {
	bp string
	v  int
}

// indexed lists the ids under owner in an index bucket.
func (t *txn) indexed(bucket []byte, owner string) []string {
	return indexedIDs(t.b(bucket).Cursor(), owner)
}

func indexedIDs(c interface {
	Seek([]byte) ([]byte, []byte)
	Next() ([]byte, []byte)
}, owner string) []string {
	var out []string
	p := append([]byte(owner), 0)
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		out = append(out, string(k[len(p):]))
	}
	return out
}

func (c *FleetPut) apply(t *txn) *Result {
	spec := c.Spec
	spec.Versions = slices.Clone(spec.Versions)
	if e := ValidateFleet(&spec); e != nil {
		return fail(e)
	}
	seen := map[verKey]bool{}
	for i := range spec.Versions {
		v := &spec.Versions[i]
		field := fmt.Sprintf("versions[%d]", i)
		info, ok := getJSON[BlueprintInfo](t.b(bBlueprints), []byte(v.Blueprint))
		if !ok {
			return fail(errf(ErrInvalid, field+".blueprint", "blueprint %q not found", v.Blueprint))
		}
		if v.Version == 0 {
			v.Version = info.Latest
		} else if !slices.Contains(info.Versions, v.Version) {
			return fail(errf(ErrInvalid, field+".version", "blueprint %q has no version %d", v.Blueprint, v.Version))
		}
		if seen[verKey{v.Blueprint, v.Version}] {
			return fail(errf(ErrInvalid, field, "%s version %d is listed twice", v.Blueprint, v.Version))
		}
		seen[verKey{v.Blueprint, v.Version}] = true
	}
	old, exists := getJSON[Fleet](t.b(bFleets), []byte(spec.Name))
	if exists {
		if sameFleet(old, &spec) {
			return &Result{Fleet: old}
		}
		spec.Created, spec.Generation = old.Created, old.Generation+1
	} else {
		spec.Created, spec.Generation = c.Now, 1
	}
	spec.Updated = c.Now
	res := &Result{Fleet: &spec}
	if exists && !sameVersions(old.Versions, spec.Versions) {
		d, e := t.startDeployment(old, &spec, c.Now)
		if e != nil {
			return fail(e)
		}
		res.Deployment = d
	}
	t.putJSON(bFleets, []byte(spec.Name), &spec)
	t.changed("fleet", spec.Name, "put")
	return res
}

func sameFleet(a, b *Fleet) bool {
	x, y := *a, *b
	x.Generation, y.Generation, x.Created, y.Created, x.Updated, y.Updated = 0, 0, 0, 0, 0, 0
	return sameJSON(&x, &y)
}

func (c *FleetScale) apply(t *txn) *Result {
	f, ok := getJSON[Fleet](t.b(bFleets), []byte(c.Name))
	if !ok {
		return fail(errf(ErrNotFound, "name", "fleet %q not found", c.Name))
	}
	if c.Replicas < 0 || c.Replicas > MaxReplicas {
		return fail(errf(ErrInvalid, "replicas", "must be 0..%d", MaxReplicas))
	}
	if f.Replicas == c.Replicas {
		return &Result{Fleet: f}
	}
	f.Replicas, f.Generation, f.Updated = c.Replicas, f.Generation+1, c.Now
	t.putJSON(bFleets, []byte(f.Name), f)
	t.changed("fleet", f.Name, "put")
	return &Result{Fleet: f}
}

func (c *FleetDelete) apply(t *txn) *Result {
	t.now = c.Now
	f, ok := getJSON[Fleet](t.b(bFleets), []byte(c.Name))
	if !ok {
		return fail(errf(ErrNotFound, "name", "fleet %q not found", c.Name))
	}
	n := 0
	for _, id := range t.indexed(bFleetShips, f.Name) {
		if s, ok := t.ship(id); ok && s.Live() {
			t.stopShip(s, "fleet deleted")
			n++
		}
	}
	t.deleteDeployments(f.Name)
	t.del(bFleets, []byte(f.Name))
	t.changed("fleet", f.Name, "delete")
	return &Result{Fleet: f, Count: n}
}

// stopShip stops a live ship: a queued one at once, a placed one through
// its worker.
func (t *txn) stopShip(s *Ship, reason string) {
	old := *s
	t.unqueue(s)
	s.Desired, s.Reason = DesireStop, reason
	if s.Node == "" || s.State == ShipQueued {
		s.State = ShipStopped
	} else {
		s.State = ShipStopping
	}
	t.putShip(&old, s)
}

func (c *ShipCreate) apply(t *txn) *Result {
	t.now = c.Now
	if c.Count < 1 || c.Count > MaxReplicas {
		return fail(errf(ErrInvalid, "count", "must be 1..%d", MaxReplicas))
	}
	count := c.Count
	if c.Fleet != "" {
		f, ok := getJSON[Fleet](t.b(bFleets), []byte(c.Fleet))
		if !ok {
			return fail(errf(ErrNotFound, "fleet", "fleet %q not found", c.Fleet))
		}
		live, _, retired := t.versionCounts(f)
		want := f.DesiredOf(c.Blueprint, c.Version, retired)
		count = min(count, want-live[verKey{c.Blueprint, c.Version}])
		if count <= 0 {
			return fail(errf(ErrConflict, "count", "fleet %q already has the %d ships of %s version %d it wants", f.Name, want, c.Blueprint, c.Version))
		}
	} else if count != 1 {
		return fail(errf(ErrInvalid, "count", "a ship without a fleet is created alone"))
	}
	sb, ok := t.blueprint(c.Blueprint, c.Version)
	if !ok {
		return fail(errf(ErrNotFound, "blueprint", "blueprint %q version %d not found", c.Blueprint, c.Version))
	}
	bp := &sb.Spec
	prefix := c.Fleet
	if prefix == "" {
		prefix = bp.Name
	}
	res := &Result{}
	for range count {
		s := &Ship{
			ID:    prefix + "-" + strconv.FormatUint(t.newID(), 36),
			Fleet: c.Fleet, Blueprint: bp.Name, Version: bp.Version,
			State: ShipQueued, Desired: DesireRun,
			Labels: bp.Labels, Resources: bp.Resources, Created: c.Now,
		}
		t.enqueue(SchedulerQueue, s)
		t.putShip(nil, s)
		res.Ships = append(res.Ships, s)
	}
	res.Count = len(res.Ships)
	return res
}

func (t *txn) blueprint(name string, version int) (*storedBlueprint, bool) {
	if version == 0 {
		info, ok := getJSON[BlueprintInfo](t.b(bBlueprints), []byte(name))
		if !ok {
			return nil, false
		}
		version = info.Latest
	}
	return getJSON[storedBlueprint](t.b(bBPVersions), bpVersionKey(name, version))
}

func (c *ShipPlace) apply(t *txn) *Result {
	t.now = c.Now
	res := &Result{}
	bps := map[verKey]*storedBlueprint{}
	for _, p := range c.Places {
		s, ok := t.ship(p.Ship)
		if !ok || s.State != ShipQueued || s.Desired != DesireRun {
			continue
		}
		n, ok := t.node(p.Node)
		if !ok {
			t.setReason(s, fmt.Sprintf("placement on %s refused: node not found", p.Node))
			continue
		}
		sb, ok := bps[verKey{s.Blueprint, s.Version}]
		if !ok {
			sb, ok = t.blueprint(s.Blueprint, s.Version)
			if !ok {
				t.setReason(s, fmt.Sprintf("blueprint %s version %d is gone", s.Blueprint, s.Version))
				continue
			}
			bps[verKey{s.Blueprint, s.Version}] = sb
		}
		if why := placeable(n, s, sb.Spec.Ports, p.Ports); why != "" {
			t.setReason(s, fmt.Sprintf("placement on %s refused: %s", n.Name, why))
			continue
		}
		old := *s
		t.unqueue(s)
		s.Node, s.Address, s.State, s.Reason = n.Name, n.Address, ShipScheduled, ""
		s.Ports = make(map[string]int, len(p.Ports))
		for i, port := range sb.Spec.Ports {
			s.Ports[port.Name] = p.Ports[i]
		}
		t.enqueue(WorkerQueue(n.Name), s)
		t.putShip(&old, s) // allocates on n
		res.Ships = append(res.Ships, s)
	}
	for _, p := range c.Pending {
		if s, ok := t.ship(p.Ship); ok && s.State == ShipQueued && s.Reason != p.Reason {
			t.setReason(s, p.Reason)
		}
	}
	res.Count = len(res.Ships)
	return res
}

func (t *txn) setReason(s *Ship, reason string) {
	if s.Reason == reason {
		return
	}
	old := *s
	s.Reason = reason
	t.putShip(&old, s)
}

// placeable says why ship s cannot go on node n with the given host ports,
// or "" when it can. The scheduler decides; this is the check that keeps
// every node's capacity and ports honest whatever the scheduler did.
func placeable(n *Node, s *Ship, want []Port, ports []int) string {
	switch {
	case n.Status != NodeAlive:
		return "node is " + n.Status
	case n.Drain:
		return "node is draining"
	case !n.Worker:
		return "node does not run ships"
	case n.Allocated.CPUMHz+s.Resources.CPUMHz > n.Capacity.CPUMHz:
		return fmt.Sprintf("not enough CPU (%d MHz free, %d wanted)", n.Capacity.CPUMHz-n.Allocated.CPUMHz, s.Resources.CPUMHz)
	case n.Allocated.MemoryMB+s.Resources.MemoryMB > n.Capacity.MemoryMB:
		return fmt.Sprintf("not enough memory (%d MB free, %d wanted)", n.Capacity.MemoryMB-n.Allocated.MemoryMB, s.Resources.MemoryMB)
	case len(ports) != len(want):
		return fmt.Sprintf("%d ports given for %d wanted", len(ports), len(want))
	}
	lo, hi, _ := ParsePortsRange(n.PortsRange)
	for i, p := range ports {
		switch {
		case p < lo || p > hi:
			return fmt.Sprintf("port %d is outside the node's range %s", p, n.PortsRange)
		case slices.Contains(ports[:i], p):
			return fmt.Sprintf("port %d given twice", p)
		case inSorted(n.UsedPorts, p):
			return fmt.Sprintf("port %d is taken by another ship", p)
		case slices.Contains(n.HostPorts, p):
			return fmt.Sprintf("port %d is in use on the host", p)
		}
	}
	return ""
}

func inSorted(s []int, v int) bool { _, ok := slices.BinarySearch(s, v); return ok }

// ParsePortsRange reads "LOW-HIGH".
func ParsePortsRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("%q is not LOW-HIGH within 1-65535", s)
	}
	return lo, hi, nil
}

func (c *ShipStop) apply(t *txn) *Result {
	t.now = c.Now
	switch c.Why {
	case StopUser, StopSurplus, StopDrain:
	default:
		return fail(errf(ErrInvalid, "why", "unknown stop reason %q", c.Why))
	}
	if c.Why == StopUser {
		// A rejected command changes nothing: look every ship up first.
		for _, id := range c.Ships {
			if _, ok := t.ship(id); !ok {
				return fail(errf(ErrNotFound, "id", "ship %q not found", id))
			}
		}
	}
	res := &Result{}
	type fleetCounts struct {
		live, ready map[verKey]int
		retired     int
	}
	counts := map[string]*fleetCounts{}
	for _, id := range c.Ships {
		s, ok := t.ship(id)
		if !ok || !s.Live() {
			continue
		}
		if c.Why != StopUser && s.Occupied() {
			continue // in use by players: only the ship itself or an operator stops it
		}
		if c.Why != StopUser && s.Fleet == "" {
			// No fleet wants fewer of it; only its node's drain stops it.
			if c.Why == StopSurplus || !t.leaving(s.Node) {
				continue
			}
		}
		if c.Why != StopUser && s.Fleet != "" {
			f, ok := getJSON[Fleet](t.b(bFleets), []byte(s.Fleet))
			if ok {
				cs := counts[s.Fleet]
				if cs == nil {
					cs = &fleetCounts{}
					cs.live, cs.ready, cs.retired = t.versionCounts(f)
					counts[s.Fleet] = cs
				}
				k := verKey{s.Blueprint, s.Version}
				want := f.DesiredOf(s.Blueprint, s.Version, cs.retired)
				if c.Why == StopSurplus {
					// Only a counted ship can be surplus, and only while
					// the version has more than it wants.
					if !t.counted(s) || cs.live[k] <= want {
						continue
					}
					cs.live[k]--
					if s.Up() {
						cs.ready[k]--
					}
				} else if !t.leaving(s.Node) {
					continue // drain stops only ships of draining nodes
				} else if cs.ready[k] < want {
					continue // its replacement is not ready yet
				}
			}
		}
		reason := c.Reason
		if reason == "" {
			reason = "stopped by " + c.Why
		}
		t.stopShip(s, reason)
		res.Ships = append(res.Ships, s)
	}
	res.Count = len(res.Ships)
	return res
}

// leaving reports whether a node is draining or gone: its ships may be
// drained away.
func (t *txn) leaving(node string) bool {
	if node == "" {
		return false
	}
	n, ok := t.node(node)
	return !ok || n.Drain || n.Status != NodeAlive
}

// counted reports whether a live ship counts towards its fleet: not
// stopping and not on a draining node.
func (t *txn) counted(s *Ship) bool {
	if !s.Live() || s.State == ShipStopping {
		return false
	}
	if s.Node == "" {
		return true
	}
	n, ok := t.node(s.Node)
	return ok && !n.Drain
}

func (c *ShipReport) apply(t *txn) *Result {
	t.now = c.Now
	res := &Result{}
	for _, r := range c.Reports {
		s, ok := t.ship(r.Ship)
		if !ok || s.Node != c.Node || s.State == ShipQueued {
			continue
		}
		old := *s
		if s.State == ShipLostState && !s.Released && (r.State == ShipStopped || r.State == ShipFailed) {
			s.Released = true // its node no longer runs it
			t.putShip(&old, s)
			res.Ships = append(res.Ships, s)
			continue
		}
		if s.Ended() {
			continue
		}
		switch {
		case s.Desired == DesireStop:
			if r.State != ShipStopped && r.State != ShipFailed {
				continue
			}
			s.State = ShipStopped
		case r.State == ShipStarting || r.State == ShipReady:
			switch {
			case s.Occupied():
				// In use by players: a restart of its process does not
				// make it allocatable again.
				if s.Item == 0 {
					continue
				}
			case s.State == r.State:
				if s.Item == 0 && s.Reason == r.Reason {
					continue
				}
				s.Reason = r.Reason
			default:
				s.State, s.Reason = r.State, r.Reason
			}
		case r.State == ShipStopped || r.State == ShipFailed:
			s.State, s.Reason = r.State, r.Reason
		default:
			continue
		}
		t.unqueue(s) // the worker has picked the ship up
		t.putShip(&old, s)
		res.Ships = append(res.Ships, s)
	}
	res.Count = len(res.Ships)
	return res
}

func (c *ShipLost) apply(t *txn) *Result {
	t.now = c.Now
	n, ok := t.node(c.Node)
	if ok && n.Status == NodeAlive {
		return fail(errf(ErrConflict, "node", "node %q is alive", c.Node))
	}
	res := &Result{Ships: t.loseShips(c.Node, c.Reason, false)}
	res.Count = len(res.Ships)
	return res
}

// loseShips marks every ship of a node that has not ended as lost;
// release says the node is gone for good, so nothing of them can run.
func (t *txn) loseShips(node, reason string, release bool) []*Ship {
	var out []*Ship
	for _, id := range t.indexed(bNodeShips, node) {
		s, ok := t.ship(id)
		if !ok || (s.Ended() && !(release && s.holds())) {
			continue
		}
		old := *s
		t.unqueue(s)
		if !s.Ended() {
			s.State, s.Reason = ShipLostState, reason
		}
		s.Released = s.Released || release
		t.putShip(&old, s)
		out = append(out, s)
	}
	return out
}

func (c *ShipPurge) apply(t *txn) *Result {
	res := &Result{}
	for _, id := range c.Ships {
		// A lost ship not yet released may still run on its node.
		if s, ok := t.ship(id); ok && s.Ended() && !s.holds() {
			t.delShip(s)
			res.Count++
		}
	}
	return res
}

func (c *NodeDrain) apply(t *txn) *Result {
	n, ok := t.node(c.Name)
	if !ok {
		return fail(errf(ErrNotFound, "name", "node %q not found", c.Name))
	}
	if n.Drain != c.Enable {
		n.Drain, n.Updated = c.Enable, c.Now
		t.putJSON(bNodes, []byte(n.Name), n)
		t.changed("node", n.Name, "put")
	}
	return &Result{Node: n}
}

func (c *NodeReport) apply(t *txn) *Result {
	n, ok := t.node(c.Name)
	if !ok {
		return fail(errf(ErrNotFound, "name", "node %q not found", c.Name))
	}
	lo, hi, err := ParsePortsRange(c.PortsRange)
	if err != nil {
		return fail(errf(ErrInvalid, "ports_range", "%v", err))
	}
	if len(c.HostPorts) > hi-lo+1 {
		return fail(errf(ErrInvalid, "host_ports", "more ports than the range holds"))
	}
	ports := slices.Clone(c.HostPorts)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	if n.PortsRange == c.PortsRange && slices.Equal(n.HostPorts, ports) {
		return &Result{Node: n}
	}
	n.PortsRange, n.HostPorts, n.Updated = c.PortsRange, ports, c.Now
	t.putJSON(bNodes, []byte(n.Name), n)
	t.changed("node", n.Name, "put")
	return &Result{Node: n}
}
