package zk

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/armada-orchestrator/armada/fsm"
)

// watches holds the one-shot watches of this node's connections and fires
// them from the state's change feed. A watch is registered together with
// the read that set it (under mu, at the read's index), and fires for the
// first matching change after that index. Every reply waits until the
// dispatcher has passed the index it was read or written at, so a client
// always gets a watch event before any reply that shows the change, as
// ZooKeeper guarantees.
type watches struct {
	s          *Server
	mu         sync.Mutex
	dispatched uint64
	advanced   chan struct{}
	data       map[string]map[*conn]uint64 // getData and exists watches
	child      map[string]map[*conn]uint64
	// persist and recursive are addWatch's watches, which stay once they
	// fire: on a node (its creation, deletion, data and children), and on
	// a node and every node under it (creations, deletions and data).
	persist   map[string]map[*conn]uint64
	recursive map[string]map[*conn]uint64
}

func newWatches(s *Server) *watches {
	return &watches{s: s, advanced: make(chan struct{}),
		data: map[string]map[*conn]uint64{}, child: map[string]map[*conn]uint64{},
		persist: map[string]map[*conn]uint64{}, recursive: map[string]map[*conn]uint64{}}
}

// start sets the dispatcher at the index the feed has published.
func (w *watches) start() {
	_, pub, _, _ := w.s.st.ChangesAt(math.MaxUint64)
	w.dispatched = pub
}

// wait blocks until changes up to index have been dispatched.
func (w *watches) wait(ctx context.Context, index uint64) error {
	for {
		w.mu.Lock()
		ok, ch := w.dispatched >= index, w.advanced
		w.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (w *watches) run(ctx context.Context) {
	since := w.dispatched
	for {
		changes, pub, ch, err := w.s.st.ChangesAt(since)
		switch {
		case errors.Is(err, fsm.ErrCompacted):
			// Fell behind the feed: fire every watch from the state.
			w.mu.Lock()
			w.resync()
			w.advance(pub)
			w.mu.Unlock()
			since = pub
			continue
		case err != nil:
			return
		}
		w.mu.Lock()
		var expired []int64
		for _, c := range changes {
			if c.Topic == "zksession" && c.Op == "delete" {
				if id, err := strconv.ParseInt(c.Key, 10, 64); err == nil {
					expired = append(expired, id)
				}
			}
			w.dispatch(c)
			since = max(since, c.Index)
		}
		since = max(since, pub)
		w.advance(since)
		w.mu.Unlock()
		if len(expired) > 0 {
			conns := w.s.sessions()
			for _, id := range expired {
				for _, c := range conns[id] {
					if !c.closing.Load() {
						c.close()
					}
				}
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

func (w *watches) advance(index uint64) {
	if index > w.dispatched {
		w.dispatched = index
		close(w.advanced)
		w.advanced = make(chan struct{})
	}
}

func parentOf(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/"
	}
	return path[:i]
}

// dispatch fires the watches a change triggers. Callers hold mu.
func (w *watches) dispatch(c fsm.Change) {
	switch c.Topic {
	case "zk":
		// A connection hears each event once, whichever of its watches it
		// matches (as ZooKeeper's watch manager suppresses repeats); the
		// one-shot watches it matched are spent.
		parent := parentOf(c.Key)
		switch c.Op {
		case "create":
			told := w.fire(w.data, c.Key, c.Index, EventNodeCreated)
			w.firePersistent(c, EventNodeCreated, told)
			told = w.fire(w.child, parent, c.Index, EventNodeChildrenChanged)
			w.fireKept(w.persist, parent, parent, c.Index, EventNodeChildrenChanged, told, nil)
		case "delete":
			told := w.fire(w.data, c.Key, c.Index, EventNodeDeleted)
			for k := range w.fireExcept(w.child, c.Key, c.Index, EventNodeDeleted, told) {
				told[k] = true
			}
			w.firePersistent(c, EventNodeDeleted, told)
			told = w.fire(w.child, parent, c.Index, EventNodeChildrenChanged)
			w.fireKept(w.persist, parent, parent, c.Index, EventNodeChildrenChanged, told, nil)
		case "set":
			told := w.fire(w.data, c.Key, c.Index, EventNodeDataChanged)
			w.firePersistent(c, EventNodeDataChanged, told)
		}
	case "queue":
		if !strings.HasPrefix(c.Key, "/armada/") {
			return
		}
		w.fire(w.child, c.Key, c.Index, EventNodeChildrenChanged)
		// Items under the queue that are gone now fire their data watches.
		var gone []string
		w.s.st.View(func(v *fsm.View) error {
			for path := range w.data {
				if strings.HasPrefix(path, c.Key+"/") {
					if _, ok := v.ZKNode(path); !ok {
						gone = append(gone, path)
					}
				}
			}
			return nil
		})
		for _, p := range gone {
			w.fire(w.data, p, c.Index, EventNodeDeleted)
		}
	case "node":
		w.fire(w.child, "/armada/worker", c.Index, EventNodeChildrenChanged)
	}
}

// fire sends ev to the connections watching path since before index.
func (w *watches) fire(m map[string]map[*conn]uint64, path string, index uint64, ev EventType) map[*conn]bool {
	told := w.fireExcept(m, path, index, ev, nil)
	if told == nil {
		told = map[*conn]bool{}
	}
	return told
}

// firePersistent tells the persistent watches of the changed node, and the
// recursive ones of it and of every node above it, of event ev; told are
// the connections that heard it already, and get the others added. A
// recursive watch above the node hears of it only from a connection that
// may read it (as ZooKeeper since 3.8.4, CVE-2024-23944).
func (w *watches) firePersistent(ch fsm.Change, ev EventType, told map[*conn]bool) {
	path := ch.Key
	w.fireKept(w.persist, path, path, ch.Index, ev, told, nil)
	mayRead := func(c *conn) bool { return fsm.ZKAllowed(ch.ZKACL, fsm.ZKPermRead, c.authIDs()) }
	for p := path; ; p = parentOf(p) {
		if p == path {
			w.fireKept(w.recursive, p, path, ch.Index, ev, told, nil)
		} else {
			w.fireKept(w.recursive, p, path, ch.Index, ev, told, mayRead)
		}
		if p == "/" {
			return
		}
	}
}

// fireKept tells the watches of m on at, set before index, of event ev on
// path, except the connections in told and those allow refuses; the
// watches stay.
func (w *watches) fireKept(m map[string]map[*conn]uint64, at, path string, index uint64, ev EventType, told map[*conn]bool, allow func(*conn) bool) {
	for c, set := range m[at] {
		if index > set && !told[c] && (allow == nil || allow(c)) {
			told[c] = true
			c.notify(ev, path)
		}
	}
}

// fireExcept fires like fire, but only spends the watches of the
// connections in told, which heard of the change already. It returns the
// connections whose watches fired.
func (w *watches) fireExcept(m map[string]map[*conn]uint64, path string, index uint64, ev EventType, told map[*conn]bool) map[*conn]bool {
	var fired map[*conn]bool
	for c, at := range m[path] {
		if index > at {
			delete(m[path], c)
			if !told[c] {
				c.notify(ev, path)
			}
			if fired == nil {
				fired = map[*conn]bool{}
			}
			fired[c] = true
		}
	}
	if len(m[path]) == 0 {
		delete(m, path)
	}
	return fired
}

// resync fires every watch as if its node changed. Callers hold mu.
func (w *watches) resync() {
	w.s.st.View(func(v *fsm.View) error {
		for _, x := range []struct {
			m       map[string]map[*conn]uint64
			changed EventType
		}{{w.data, EventNodeDataChanged}, {w.child, EventNodeChildrenChanged}} {
			for path, cs := range x.m {
				ev := x.changed
				if _, ok := v.ZKNode(path); !ok {
					ev = EventNodeDeleted
				}
				for c := range cs {
					c.notify(ev, path)
				}
			}
		}
		// Persistent watches stay; they hear that their node may have
		// changed, so that the client reads it again.
		for _, x := range []struct {
			m      map[string]map[*conn]uint64
			events []EventType
		}{{w.persist, []EventType{EventNodeDataChanged, EventNodeChildrenChanged}}, {w.recursive, []EventType{EventNodeDataChanged}}} {
			for path, cs := range x.m {
				events := x.events
				if _, ok := v.ZKNode(path); !ok {
					events = []EventType{EventNodeDeleted}
				}
				for c := range cs {
					for _, ev := range events {
						c.notify(ev, path)
					}
				}
			}
		}
		return nil
	})
	clear(w.data)
	clear(w.child)
}

// add registers a watch of c at index. Callers hold mu.
func (w *watches) add(m map[string]map[*conn]uint64, path string, c *conn, index uint64) {
	select {
	case <-c.done: // dropped already: nothing would remove the watch
		return
	default:
	}
	cs := m[path]
	if cs == nil {
		cs = map[*conn]uint64{}
		m[path] = cs
	}
	if _, ok := cs[c]; !ok {
		cs[c] = index
	}
}

// count is the number of watches set, data and child (mntr's watch_count).
func (w *watches) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range []map[string]map[*conn]uint64{w.data, w.child, w.persist, w.recursive} {
		for _, cs := range m {
			n += len(cs)
		}
	}
	return n
}

// drop removes every watch of a closed connection.
func (w *watches) drop(c *conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range []map[string]map[*conn]uint64{w.data, w.child, w.persist, w.recursive} {
		for path, cs := range m {
			delete(cs, c)
			if len(cs) == 0 {
				delete(m, path)
			}
		}
	}
}

// remove drops c's watches of a type on path (removeWatches) and reports
// whether there were any.
func (w *watches) remove(c *conn, path string, typ int32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	found := false
	for _, x := range []struct {
		m   map[string]map[*conn]uint64
		typ int32
	}{{w.data, WatcherData}, {w.child, WatcherChildren}, {w.persist, WatcherPersistent}, {w.recursive, WatcherPersistentRecursive}} {
		if typ != WatcherAny && typ != x.typ {
			continue
		}
		if _, ok := x.m[path][c]; ok {
			found = true
			delete(x.m[path], c)
			if len(x.m[path]) == 0 {
				delete(x.m, path)
			}
		}
	}
	return found
}

// read runs fn on the local state while no watch fires, so that watches
// fn registers (through reg) start exactly at the state fn read.
func (w *watches) read(c *conn, fn func(v *fsm.View, reg func(child bool, path string)) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.s.st.View(func(v *fsm.View) error {
		return fn(v, func(child bool, path string) {
			m := w.data
			if child {
				m = w.child
			}
			w.add(m, path, c, v.Index())
		})
	})
}

// has reports whether c watches path with a watch of type typ.
func (w *watches) has(c *conn, path string, typ int32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, x := range []struct {
		m   map[string]map[*conn]uint64
		typ int32
	}{{w.data, WatcherData}, {w.child, WatcherChildren}, {w.persist, WatcherPersistent}, {w.recursive, WatcherPersistentRecursive}} {
		if _, ok := x.m[path][c]; ok && (typ == WatcherAny || typ == x.typ) {
			return true
		}
	}
	return false
}

// addKept sets a persistent (or recursive) watch of c on path from the
// state's present on, and returns that index.
func (w *watches) addKept(c *conn, path string, recursive bool) uint64 {
	var index uint64
	w.read(c, func(v *fsm.View, _ func(bool, string)) error {
		index = v.Index()
		m := w.persist
		if recursive {
			m = w.recursive
		}
		w.add(m, path, c, index)
		return nil
	})
	return index
}
