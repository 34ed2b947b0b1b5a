package fsm

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ShipReserved is a ready ship set aside by its own SDK call for a while:
// it is neither allocated nor stopped by a scale-down until the time ends.
const ShipReserved = "reserved"

// Allocation strategies.
const (
	// AllocPacked takes a ship from the node with the most allocated ships
	// of the fleet, so that emptier nodes can drain.
	AllocPacked = "packed"
	// AllocDistributed takes one from the node with the fewest.
	AllocDistributed = "distributed"
)

// Occupied reports whether a ship is in use by players: allocated or
// reserved. Scale-downs, rolling updates and drains never stop it.
func (s *Ship) Occupied() bool { return s.State == ShipAllocated || s.State == ShipReserved }

// AllocRequest asks for one ready ship of a fleet.
type AllocRequest struct {
	Fleet    string
	Selector map[string]string // ship labels that must match
	Strategy string            // AllocPacked (default) or AllocDistributed
	Labels   map[string]string // set on the allocated ship
	// RequestID, when set, makes the request safe to send again: within
	// AllocIDTTL, a request with the same fleet and RequestID is answered
	// with the ship the first one got instead of taking another. A client
	// that lost an answer (a timeout, a leader change) retries with it.
	RequestID string
}

// AllocIDTTL is how long an allocation's RequestID is remembered, in ms.
const AllocIDTTL = 10 * 60 * 1000

// MaxRequestID bounds a RequestID's length.
const MaxRequestID = 128

// MaxAllocBatch bounds the requests of one ShipAllocate.
const MaxAllocBatch = 1024

// ShipAllocate marks one ready ship per request allocated. Requests that
// arrive together are applied as one entry; each gets its own answer in
// Result.Batch (a ship, or a conflict when none is ready), in order. No
// two requests ever get the same ship.
type ShipAllocate struct {
	Requests []AllocRequest
	Now      int64
}

func (*ShipAllocate) Type() CmdType       { return CmdShipAllocate2 }
func (c *ShipAllocate) stamp(now int64)   { c.Now = now }
func (c *ShipAllocate) encode(e *encoder) { c.encodeWith(e, true) }
func (c *ShipAllocate) decode(d *decoder) { c.decodeWith(d, true) }

func (c *ShipAllocate) encodeWith(e *encoder, ids bool) {
	e.uvarint(uint64(len(c.Requests)))
	for _, r := range c.Requests {
		e.str(r.Fleet)
		e.strmap(r.Selector)
		e.str(r.Strategy)
		e.strmap(r.Labels)
		if ids {
			e.str(r.RequestID)
		}
	}
	e.varint(c.Now)
}

func (c *ShipAllocate) decodeWith(d *decoder, ids bool) {
	if n := d.length(); n > 0 {
		c.Requests = make([]AllocRequest, n)
		for i := range c.Requests {
			r := &c.Requests[i]
			r.Fleet, r.Selector, r.Strategy, r.Labels = d.str(), d.strmap(), d.str(), d.strmap()
			if ids {
				r.RequestID = d.str()
			}
		}
	}
	c.Now = d.varint()
}

// shipAllocate1 is ShipAllocate as logged before requests had an ID
// (type 32): it still decodes and applies from older logs.
type shipAllocate1 struct{ ShipAllocate }

func (*shipAllocate1) Type() CmdType       { return CmdShipAllocate }
func (c *shipAllocate1) encode(e *encoder) { c.encodeWith(e, false) }
func (c *shipAllocate1) decode(d *decoder) { c.decodeWith(d, false) }

// ValidateAlloc checks one request's fields.
func ValidateAlloc(r *AllocRequest) *Error {
	if r.Fleet == "" {
		return errf(ErrInvalid, "fleet", "is required")
	}
	switch r.Strategy {
	case "", AllocPacked, AllocDistributed:
	default:
		return errf(ErrInvalid, "strategy", "must be packed or distributed, not %q", r.Strategy)
	}
	if e := validateLabels("selector", r.Selector); e != nil {
		return e
	}
	if len(r.RequestID) > MaxRequestID || strings.ContainsRune(r.RequestID, 0) {
		return errf(ErrInvalid, "request_id", "must be at most %d bytes, without NUL", MaxRequestID)
	}
	return validateLabels("metadata.labels", r.Labels)
}

// allocIDKey is the key of a fleet's request ID.
func allocIDKey(fleet, id string) []byte { return []byte(fleet + "\x00" + id) }

// A request ID's record: the ship it got and when it is forgotten.
func encodeAllocID(ship string, expiry int64) []byte {
	e := encoder{}
	e.str(ship)
	e.varint(expiry)
	return e.b
}

func decodeAllocID(v []byte) (ship string, expiry int64, ok bool) {
	d := decoder{b: v}
	ship, expiry = d.str(), d.varint()
	return ship, expiry, d.err == nil && len(d.b) == 0
}

// allocatedFor returns the ship an earlier request with r's RequestID got,
// if that is remembered still and the ship exists.
func (t *txn) allocatedFor(r *AllocRequest) (*Ship, bool) {
	ship, expiry, ok := decodeAllocID(t.b(bAllocIDs).Get(allocIDKey(r.Fleet, r.RequestID)))
	if !ok || expiry <= t.now {
		return nil, false
	}
	return t.ship(ship)
}

// rememberAlloc records which ship a request ID got, until now + AllocIDTTL.
func (t *txn) rememberAlloc(r *AllocRequest, ship string) {
	key := allocIDKey(r.Fleet, r.RequestID)
	if _, old, ok := decodeAllocID(t.b(bAllocIDs).Get(key)); ok {
		t.del(bAllocIDExp, append(u64(uint64(old)), key...))
	}
	expiry := t.now + AllocIDTTL
	t.put(bAllocIDs, key, encodeAllocID(ship, expiry))
	t.put(bAllocIDExp, append(u64(uint64(expiry)), key...), nil)
}

// expireAllocIDs forgets the request IDs whose time is up.
func (t *txn) expireAllocIDs(now int64) int {
	var due [][]byte
	c := t.b(bAllocIDExp).Cursor()
	for k, _ := c.First(); k != nil && int64(getU64(k[:8])) <= now; k, _ = c.Next() {
		due = append(due, bytes.Clone(k))
	}
	for _, k := range due {
		t.del(bAllocIDExp, k)
		t.del(bAllocIDs, k[8:])
	}
	return len(due)
}

// allocPool is what one ShipAllocate knows of a fleet's ready ships: per
// node, the ready ships in id order and how many ships are allocated.
type allocPool struct {
	ready     map[string][]string
	allocated map[string]int
	nodes     []string // nodes with ready ships, sorted
	// ships holds the ships decoded so far in this entry, and missed the
	// selectors that matched nothing (the pool only shrinks, so they never
	// will in this entry): a selector that matches no ship costs one pass
	// over the fleet per entry, not one per request.
	ships  map[string]*Ship
	missed map[string]bool
}

func (t *txn) allocPool(fleet string) *allocPool {
	p := &allocPool{ready: map[string][]string{}, allocated: map[string]int{}, ships: map[string]*Ship{}, missed: map[string]bool{}}
	usable := map[string]bool{}
	c := t.b(bFleetShips).Cursor()
	prefix := append([]byte(fleet), 0)
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		// The summary read in place (blueprint, version, state, desired,
		// node): this runs over the whole fleet for every allocation entry.
		d := decoder{b: v}
		d.raw()
		d.varint()
		state, desired, node := d.raw(), d.raw(), d.raw()
		if d.err != nil || string(desired) != DesireRun || len(node) == 0 {
			continue
		}
		switch string(state) {
		case ShipReady:
			ok, seen := usable[string(node)]
			if !seen {
				// Never a ship on a node that drains or is not alive:
				// it would hold the drain up, or not answer players.
				n, found := t.node(string(node))
				ok = found && n.Status == NodeAlive && !n.Drain
				usable[string(node)] = ok
			}
			if ok {
				p.ready[string(node)] = append(p.ready[string(node)], string(k[len(prefix):]))
			}
		case ShipAllocated:
			p.allocated[string(node)]++
		}
	}
	p.nodes = slices.Sorted(maps.Keys(p.ready))
	return p
}

// pick takes the first ready ship matching the selector, from the nodes
// in the strategy's order; match reads a ship's labels.
func (p *allocPool) pick(strategy string, match func(id string) bool) (string, bool) {
	order := slices.Clone(p.nodes)
	slices.SortStableFunc(order, func(a, b string) int {
		if strategy == AllocDistributed {
			return cmp.Compare(p.allocated[a], p.allocated[b])
		}
		return cmp.Compare(p.allocated[b], p.allocated[a])
	})
	for _, node := range order {
		for i, id := range p.ready[node] {
			if !match(id) {
				continue
			}
			p.ready[node] = slices.Delete(p.ready[node], i, i+1)
			if len(p.ready[node]) == 0 {
				delete(p.ready, node)
				p.nodes = slices.DeleteFunc(p.nodes, func(n string) bool { return n == node })
			}
			p.allocated[node]++
			return id, true
		}
	}
	return "", false
}

func (c *ShipAllocate) apply(t *txn) *Result {
	t.now = c.Now
	if len(c.Requests) == 0 || len(c.Requests) > MaxAllocBatch {
		return fail(errf(ErrInvalid, "requests", "must be 1..%d", MaxAllocBatch))
	}
	res := &Result{Batch: make([]*Result, len(c.Requests))}
	for i := range c.Requests {
		r := &c.Requests[i]
		if e := ValidateAlloc(r); e != nil {
			res.Batch[i] = fail(e)
			continue
		}
		if r.RequestID != "" {
			if s, ok := t.allocatedFor(r); ok {
				res.Batch[i] = &Result{Ships: []*Ship{s}} // the answer it had
				continue
			}
		}
		// A pool is only ever built for a fleet that exists, and a fleet
		// write drops it.
		pool := t.pools[r.Fleet]
		if pool == nil {
			if t.b(bFleets).Get([]byte(r.Fleet)) == nil {
				res.Batch[i] = fail(errf(ErrNotFound, "fleet", "fleet %q not found", r.Fleet))
				continue
			}
			pool = t.allocPool(r.Fleet)
			t.pools[r.Fleet] = pool
		}
		sel := selectorKey(r.Selector)
		var picked *Ship
		ok := false
		if !pool.missed[sel] {
			_, ok = pool.pick(r.Strategy, func(id string) bool {
				s, found := pool.ships[id]
				if !found {
					s, found = t.ship(id)
					pool.ships[id] = s
				}
				if !found || s == nil || s.State != ShipReady || s.Desired != DesireRun || !matchLabels(s.Labels, r.Selector) {
					return false
				}
				picked = s
				return true
			})
		}
		if !ok {
			pool.missed[sel] = true
			why := fmt.Sprintf("fleet %q has no ready ship", r.Fleet)
			if len(r.Selector) > 0 {
				why = fmt.Sprintf("fleet %q has no ready ship matching the selector", r.Fleet)
			}
			res.Batch[i] = fail(errf(ErrConflict, "fleet", "%s", why))
			continue
		}
		old := *picked
		labels := picked.Labels
		if len(r.Labels) > 0 {
			labels = withLabels(picked.Labels, r.Labels)
			if len(labels) > maxMapLen {
				// The ship stays ready; this entry does not offer it again.
				res.Batch[i] = fail(errf(ErrInvalid, "metadata.labels", "the ship would have more than %d labels", maxMapLen))
				continue
			}
		}
		picked.State, picked.Reason, picked.Labels = ShipAllocated, "", labels
		t.allocating = true // the pool has taken the ship out already
		t.putShip(&old, picked)
		t.allocating = false
		if r.RequestID != "" {
			t.rememberAlloc(r, picked.ID)
		}
		res.Batch[i] = &Result{Ships: []*Ship{picked}, Count: 1}
		res.Count++
	}
	return res
}

// selectorKey is a selector as a map key: its pairs in key order.
func selectorKey(sel map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(sel[k])
		b.WriteByte(0)
	}
	return b.String()
}

func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// withLabels returns a copy of labels with add set; a ship's labels map
// may be shared with its blueprint's.
func withLabels(labels, add map[string]string) map[string]string {
	out := make(map[string]string, len(labels)+len(add))
	maps.Copy(out, labels)
	maps.Copy(out, add)
	return out
}

// SDK operations a ship makes on itself.
const (
	SDKAllocate = "allocate" // mark itself allocated
	SDKReserve  = "reserve"  // reserved for Seconds, then ready again
	SDKShutdown = "shutdown" // stop for good; its fleet replaces it if needed
	SDKLabel    = "label"    // set label Key to Value ("" removes it)
	// SDKUnreserve ends a reservation whose time is up; only the leader
	// sends it, with Node empty.
	SDKUnreserve = "unreserve"
)

// MaxReserve bounds a reservation.
const MaxReserve = 24 * 3600

// ShipSDK is a ship's call on itself through its node's SDK endpoint.
// Node is the node the call came from: a ship can only act on itself from
// the node it runs on.
type ShipSDK struct {
	Ship    string
	Node    string
	Op      string
	Key     string
	Value   string
	Seconds int64
	Now     int64
}

func (*ShipSDK) Type() CmdType     { return CmdShipSDK }
func (c *ShipSDK) stamp(now int64) { c.Now = now }
func (c *ShipSDK) encode(e *encoder) {
	e.str(c.Ship)
	e.str(c.Node)
	e.str(c.Op)
	e.str(c.Key)
	e.str(c.Value)
	e.varint(c.Seconds)
	e.varint(c.Now)
}
func (c *ShipSDK) decode(d *decoder) {
	c.Ship, c.Node, c.Op, c.Key, c.Value = d.str(), d.str(), d.str(), d.str(), d.str()
	c.Seconds, c.Now = d.varint(), d.varint()
}

func (c *ShipSDK) apply(t *txn) *Result {
	t.now = c.Now
	s, ok := t.ship(c.Ship)
	if !ok {
		return fail(errf(ErrNotFound, "ship", "ship %q not found", c.Ship))
	}
	if c.Op != SDKUnreserve && s.Node != c.Node {
		return fail(errf(ErrConflict, "ship", "ship %q does not run on node %q", c.Ship, c.Node))
	}
	if s.Ended() || s.Desired != DesireRun || s.State == ShipStopping {
		if c.Op == SDKShutdown {
			return &Result{Ships: []*Ship{s}} // already going: nothing to do
		}
		return fail(errf(ErrConflict, "ship", "ship %q is %s", c.Ship, s.State))
	}
	old := *s
	switch c.Op {
	case SDKAllocate:
		switch s.State {
		case ShipAllocated:
			// Allocated already (by /v1/allocate, or an earlier call): a
			// ship's own matchmaker must know it lost the race.
			return fail(errf(ErrConflict, "ship", "ship %q is allocated already", c.Ship))
		case ShipReady, ShipReserved:
		default:
			return fail(errf(ErrConflict, "ship", "ship %q is %s, not ready", c.Ship, s.State))
		}
		s.State, s.Reason, s.ReservedUntil = ShipAllocated, "", 0
	case SDKReserve:
		if c.Seconds < 1 || c.Seconds > MaxReserve {
			return fail(errf(ErrInvalid, "seconds", "must be 1..%d", MaxReserve))
		}
		if s.State != ShipReady && s.State != ShipReserved {
			return fail(errf(ErrConflict, "ship", "ship %q is %s, not ready", c.Ship, s.State))
		}
		s.State, s.Reason, s.ReservedUntil = ShipReserved, "", c.Now+c.Seconds*1000
	case SDKUnreserve:
		if s.State != ShipReserved || s.ReservedUntil > c.Now {
			return &Result{Ships: []*Ship{s}}
		}
		s.State, s.ReservedUntil = ShipReady, 0
	case SDKShutdown:
		t.stopShip(s, "shut down by the ship")
		return &Result{Ships: []*Ship{s}, Count: 1}
	case SDKLabel:
		if e := validateLabels("labels", map[string]string{c.Key: c.Value}); e != nil {
			return fail(e)
		}
		if s.Labels[c.Key] == c.Value && (c.Value != "" || !hasKey(s.Labels, c.Key)) {
			return &Result{Ships: []*Ship{s}}
		}
		if !hasKey(s.Labels, c.Key) && c.Value != "" && len(s.Labels) >= maxMapLen {
			return fail(errf(ErrInvalid, "labels", "a ship has at most %d labels", maxMapLen))
		}
		s.Labels = withLabels(s.Labels, nil)
		if c.Value == "" {
			delete(s.Labels, c.Key)
		} else {
			s.Labels[c.Key] = c.Value
		}
	default:
		return fail(errf(ErrInvalid, "op", "unknown SDK operation %q", c.Op))
	}
	t.putShip(&old, s)
	return &Result{Ships: []*Ship{s}, Count: 1}
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }
