package cluster

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// Results of forwarded writes, from this node's own apply. A follower tags
// each write it forwards with its origin (a random number picked at start)
// and a sequence number: the leader logs it as an fsm.Forwarded, and every
// node's apply returns its result with the tag. The follower waits for its
// own apply anyway (its clients read their writes from it), so the leader
// answers only a write that failed before it could be applied: no answer
// frame, no encoded result and no wake-up of the follower per write.
type localResults struct {
	origin uint64
	seq    atomic.Uint64
	n      atomic.Int64 // len(waits), read without the lock by deliver
	mu     sync.Mutex
	waits  map[uint64]chan *fsm.Result
}

func newLocalResults() *localResults {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand.Read)
	origin := binary.BigEndian.Uint64(b[:]) | 1
	return &localResults{origin: origin, waits: map[uint64]chan *fsm.Result{}}
}

// add registers the next sequence number and returns it with the channel
// its result will come on.
func (l *localResults) add() (uint64, chan *fsm.Result) {
	seq := l.seq.Add(1)
	ch := make(chan *fsm.Result, 1)
	l.mu.Lock()
	l.waits[seq] = ch
	l.n.Store(int64(len(l.waits)))
	l.mu.Unlock()
	return seq, ch
}

func (l *localResults) remove(seq uint64) {
	l.mu.Lock()
	delete(l.waits, seq)
	l.n.Store(int64(len(l.waits)))
	l.mu.Unlock()
}

// deliver hands this node's tagged results to their waiters. It runs after
// the entries are applied (their index is visible) and never blocks.
func (l *localResults) deliver(results []*fsm.Result) {
	if l.n.Load() == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	give := func(r *fsm.Result) {
		if r.Origin != l.origin {
			return
		}
		if ch, ok := l.waits[r.Seq]; ok {
			delete(l.waits, r.Seq)
			ch <- r
		}
	}
	for _, r := range results {
		give(r)
		for _, sub := range r.Batch {
			give(sub)
		}
	}
	l.n.Store(int64(len(l.waits)))
}

// failAll ends every wait with a nil result: after a snapshot is restored
// the writes it covers will never be applied here one by one.
func (l *localResults) failAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for seq, ch := range l.waits {
		delete(l.waits, seq)
		ch <- nil
	}
	l.n.Store(0)
}

// cachedCheck holds a check's last answer for a while, so that a check
// over the configuration and gossip does not run on every write.
type cachedCheck struct {
	mu    sync.Mutex
	until time.Time
	ok    bool
}

const cachedCheckTTL = time.Second

func (c *cachedCheck) get(check func() bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); !now.Before(c.until) {
		c.ok, c.until = check(), now.Add(cachedCheckTTL)
	}
	return c.ok
}

// expire makes the next get run the check.
func (c *cachedCheck) expire() {
	c.mu.Lock()
	c.until = time.Time{}
	c.mu.Unlock()
}

// allServersTagged reports whether every server of the configuration
// gossips that it applies fsm.Forwarded (a version that knows the command
// type), so that a leader never logs an entry an older server could not
// apply. It is checked at most once a second.
func (n *Node) allServersTagged() bool {
	return n.tagged.get(func() bool {
		servers, err := n.servers()
		if err != nil {
			return false
		}
		for name := range servers {
			if m, ok := n.gsp.member(name); !ok || !m.Meta.Forwarded {
				return false
			}
		}
		return true
	})
}

// appliesLog reports whether this node applies the log: it has applied an
// entry and is a server of the configuration it knows (checked at most
// once a second). Only such a node can take a forwarded write's result
// from its own apply; a node that has just joined (not yet a server, or
// not yet caught up) forwards untagged, and the leader answers it.
func (n *Node) appliesLog() bool {
	return n.raft.AppliedIndex() > 0 && n.member.get(func() bool {
		servers, err := n.servers()
		_, ok := servers[n.cfg.Name]
		return err == nil && ok
	})
}
