package fsm

import (
	"errors"
	"sort"
	"sync"
)

// Change is one thing an applied entry changed.
type Change struct {
	Index uint64 `json:"index"`
	Topic string `json:"topic"` // kv, lease, lock, queue, node, blueprint, cluster
	Key   string `json:"key"`
	Op    string `json:"op"` // put, delete
	// KV is the key's new state after a kv put, so that watchers get the
	// exact value even after later writes of the key.
	KV *KV `json:"-"`
	// Rev is the key-space revision of a kv change (the key's modify
	// revision for a put, the deleting command's revision for a delete),
	// and the state's revision at the time for any other: it never goes
	// down along the feed.
	Rev uint64 `json:"rev,omitempty"`
	// Prev is the key's state before a kv put or delete, when it existed
	// (etcd's prev_kv).
	Prev *KV `json:"-"`
	// Stripped is set on a kv change whose KV and Prev the feed let go to
	// stay within MaxFeedBytes.
	Stripped bool `json:"-"`
	// ZKACL is a zk change's node's ACL (before a delete): a recursive
	// watch above the node hears of it only with READ on it.
	ZKACL []ZKACL `json:"-"`
}

// size is what a change holds on to in the feed, roughly: its keys and
// values.
func (c *Change) size() int {
	n := 64 + len(c.Key)
	for _, kv := range []*KV{c.KV, c.Prev} {
		if kv != nil {
			n += len(kv.Key) + len(kv.Value)
		}
	}
	return n
}

// MaxFeedBytes bounds what the feed's changes hold (their keys and
// values): past it the oldest changes let their values go (Stripped), but
// stay in the ring for the readers that only need to know what changed; a
// reader of values from before them (by revision) is told they are
// compacted.
const MaxFeedBytes = 64 << 20

// ErrCompacted means the changes asked for are older than the feed keeps.
var ErrCompacted = errors.New("changes compacted")

// errClosed is returned to waiters and readers once the state is closed:
// its notify channel stays closed for good, so waiting on it again would
// spin.
var errClosed = errors.New("state closed")

// feed keeps the most recent changes in a ring and wakes waiters on every
// applied batch. Readers pull at their own pace, so a slow reader can fall
// behind (and get ErrCompacted) but never slows Apply.
type feed struct {
	mu    sync.Mutex
	ring  []Change
	start int    // position of the oldest change in ring
	n     int    // number of changes in ring
	floor uint64 // changes with Index <= floor are gone
	// floorRev is the highest revision of a change gone from the ring (or
	// the state's revision when the feed was last reset).
	floorRev uint64
	bytes    int // the changes' sizes, summed
	maxBytes int
	stripped int // the oldest changes that have let their values go
	// valueFloorRev is the highest revision of a change that let its
	// values go: reading values by revision starts above it.
	valueFloorRev uint64
	index         uint64
	notify        chan struct{}
	closed        bool
	resets        uint64 // Restores counted (a state restored may go back in index)
}

func newFeed(size, maxBytes int) *feed {
	return &feed{ring: make([]Change, size), maxBytes: maxBytes, notify: make(chan struct{})}
}

// reset empties the feed for a state now at index and revision rev
// (opened, or restored from a snapshot, which may take the index back) and
// counts the resets.
func (f *feed) reset(index, rev uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.n > 0 {
		f.drop()
	}
	f.start, f.n, f.floor, f.floorRev, f.index = 0, 0, index, rev, index
	f.stripped, f.valueFloorRev = 0, rev
	f.resets++
	f.wake()
}

func (f *feed) wake() {
	if !f.closed {
		close(f.notify)
		f.notify = make(chan struct{})
	}
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		close(f.notify)
		f.closed = true
	}
}

func (f *feed) wait() (<-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return f.notify, errClosed
	}
	return f.notify, nil
}

func (f *feed) publish(index uint64, changes []Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range changes {
		if f.n == len(f.ring) {
			f.drop()
		}
		f.ring[(f.start+f.n)%len(f.ring)] = c
		f.n++
		f.bytes += c.size()
		for f.bytes > f.maxBytes && f.stripped < f.n-1 {
			f.strip(f.stripped)
			f.stripped++
		}
	}
	// A batch may push out only part of one index's changes: drop the rest
	// of that index too so nobody sees half of an entry.
	for f.n > 0 && f.ring[f.start].Index <= f.floor {
		f.drop()
	}
	f.index = index
	f.wake()
}

// drop lets the oldest change go.
func (f *feed) drop() {
	old := &f.ring[f.start]
	f.floor, f.floorRev = old.Index, max(f.floorRev, old.Rev)
	f.bytes -= old.size()
	*old = Change{}
	f.start = (f.start + 1) % len(f.ring)
	f.n--
	f.stripped = max(f.stripped-1, 0)
}

// strip lets the values of the change at position i go.
func (f *feed) strip(i int) {
	c := &f.ring[(f.start+i)%len(f.ring)]
	if c.KV == nil && c.Prev == nil {
		return
	}
	f.bytes -= c.size()
	c.KV, c.Prev, c.Stripped = nil, nil, true
	f.bytes += c.size()
	f.valueFloorRev = max(f.valueFloorRev, c.Rev)
}

// oldestRev is the oldest revision a watcher can start from, values and
// all.
func (f *feed) oldestRev() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return max(f.floorRev, f.valueFloorRev) + 1
}

func (f *feed) published() (index, resets uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index, f.resets
}

func (f *feed) since(since uint64) ([]Change, <-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, f.notify, errClosed
	}
	if since < f.floor {
		return nil, f.notify, ErrCompacted
	}
	// The ring is in index order: find the first change after since.
	return f.from(sort.Search(f.n, func(i int) bool { return f.at(i).Index > since })), f.notify, nil
}

// sinceRev is since by revision: the changes whose revision is above rev,
// values and all (ErrCompacted if some let theirs go), and the index they
// run to.
func (f *feed) sinceRev(rev uint64) ([]Change, uint64, <-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, f.index, f.notify, errClosed
	}
	if rev < f.floorRev || rev < f.valueFloorRev {
		return nil, f.index, f.notify, ErrCompacted
	}
	// Revisions never go down along the ring.
	return f.from(sort.Search(f.n, func(i int) bool { return f.at(i).Rev > rev })), f.index, f.notify, nil
}

func (f *feed) at(i int) Change { return f.ring[(f.start+i)%len(f.ring)] }

// from copies the changes from position first on (nil when none).
func (f *feed) from(first int) []Change {
	if first == f.n {
		return nil
	}
	out := make([]Change, 0, f.n-first)
	for i := first; i < f.n; i++ {
		out = append(out, f.at(i))
	}
	return out
}
