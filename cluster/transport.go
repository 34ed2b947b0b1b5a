package cluster

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// quietTransport is Raft's TCP transport minus most of the empty appends
// that repeat themselves. In pipeline mode the leader sends every follower
// an AppendEntries every CommitTimeout (20-40 ms here) even when it has no
// entry to send, to carry its commit index; once a follower has been sent
// the current commit index on the pipeline, the next such append says
// nothing new, yet costs the follower a trip through its Raft loop: on an
// idle worker-only node these appends, about 30 a second, were the largest
// part of its CPU. Here a repeat goes out only once repeatAfter has passed
// since the last append sent on the pipeline; an append with entries, a
// new commit index, a new term or another previous entry goes out as
// before. The heartbeats (every HeartbeatTimeout/10, on their own
// connection) keep the leader's contact with each follower and the
// follower's with the leader, and a leader that was deposed while it had
// nothing to send learns it from the new leader's heartbeats. The repeats
// that still go out find a broken pipeline (a follower that restarted)
// and so tell a restarted follower the commit index, within repeatAfter
// rather than CommitTimeout. Its pipelines also carry commitPush's
// appends, which tell followers a commit at once when one waits for it.
type quietTransport struct {
	*raft.NetworkTransport
	push *commitPush
}

// AppendEntries implements raft.Transport. Raft sends these appends
// outside a pipeline: to a follower it is catching up, before it opens a
// pipeline to it, and its heartbeats. The last one a follower took seeds
// the pipeline Raft opens to it next, so that a commit can be pushed
// before that pipeline has sent anything.
func (t quietTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil && resp.Success && (len(args.Entries) > 0 || args.PrevLogEntry > 0) { // not a heartbeat
		t.push.took(target, lastSentOf(args))
	}
	return err
}

// AppendEntriesPipeline implements raft.Transport.
func (t quietTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	q := &quietPipeline{AppendPipeline: p, push: t.push}
	t.push.add(q, target)
	return q, nil
}

// repeatAfter is how long a pipeline stays quiet when it has nothing new
// to send.
const repeatAfter = 500 * time.Millisecond

// quietPipeline drops an empty append identical to the last one it sent,
// for repeatAfter.
type quietPipeline struct {
	raft.AppendPipeline
	now  func() time.Time // time.Now if nil
	push *commitPush      // nil: none

	mu     sync.Mutex
	sent   bool
	at     time.Time // when last was sent
	last   lastSent  // what the last append sent told
	closed bool

	wake, done chan struct{} // commitPush's kicks; closed when p closes
}

// lastSent is what an append told a follower: the append without its
// entries, and the last entry the follower then has in common with the
// leader (its last entry, or the previous one of an empty append).
type lastSent struct {
	head raft.AppendEntriesRequest
	tip  raft.Log // Index and Term
}

func lastSentOf(args *raft.AppendEntriesRequest) lastSent {
	l := lastSent{head: *args}
	l.head.Entries = nil
	if n := len(args.Entries); n > 0 {
		l.tip.Index, l.tip.Term = args.Entries[n-1].Index, args.Entries[n-1].Term
	} else {
		l.tip.Index, l.tip.Term = args.PrevLogEntry, args.PrevLogTerm
	}
	return l
}

// appendKey is what an empty append tells a follower.
type appendKey struct {
	term, prevEntry, prevTerm, commit uint64
}

func keyOf(a *raft.AppendEntriesRequest) appendKey {
	return appendKey{a.Term, a.PrevLogEntry, a.PrevLogTerm, a.LeaderCommitIndex}
}

// AppendEntries implements raft.AppendPipeline.
func (p *quietPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	t := p.clock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(args.Entries) == 0 && p.sent && keyOf(args) == keyOf(&p.last.head) && t.Sub(p.at) < repeatAfter {
		// Raft ignores the future of a pipelined send; its response is
		// never consumed.
		return droppedAppend{args: args, resp: resp, start: t}, nil
	}
	f, err := p.AppendPipeline.AppendEntries(args, resp)
	if err != nil {
		p.sent = false
		return f, err
	}
	p.sent, p.at, p.last = true, t, lastSentOf(args)
	return f, nil
}

// Close implements raft.AppendPipeline.
func (p *quietPipeline) Close() error {
	p.push.remove(p)
	// First the pipeline itself: that ends a tell blocked in a send (its
	// responses are no longer read), which holds mu.
	err := p.AppendPipeline.Close()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return err
}

// tell sends the follower commit, capped at the last entry sent on the
// pipeline (as Raft requires: the follower's log matches the leader's
// only up to there), unless an append already told it as much. The append
// follows the last one sent: the same term, its last entry as the
// previous one, no entries. Raft's decoder takes its response as any
// other (a success only marks the contact; a refusal or a newer term ends
// the pipeline, as it would for Raft's own empty appends).
func (p *quietPipeline) tell(commit uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	commit = min(commit, p.last.tip.Index)
	if p.closed || !p.sent || commit <= p.last.head.LeaderCommitIndex {
		return
	}
	req := p.last.head
	req.PrevLogEntry, req.PrevLogTerm, req.LeaderCommitIndex = p.last.tip.Index, p.last.tip.Term, commit
	if _, err := p.AppendPipeline.AppendEntries(&req, new(raft.AppendEntriesResponse)); err != nil {
		p.sent = false
		return
	}
	p.last.head, p.at = req, p.clock()
}

func (p *quietPipeline) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// commitPush tells followers that entries committed as soon as the leader
// has applied them, when a follower waits for that. Raft tells a follower
// its leader's commit index only in its next append: the next entries'
// (once the leader has written them to its own log) or, without new
// entries, one sent after CommitTimeout (20-40 ms here). A follower
// answers a write forwarded by its clients once it has applied the write
// itself, and serves a consistent read once it has applied the leader's
// read index, so a lone write or read through a follower waited that
// long. Every node records each index it applies (committed; a node that
// becomes leader starts from what it applied as a follower), and the
// leader kicks the push when a follower waits: it has applied a write a
// follower forwarded, served a follower a read index, or has just been
// elected and committed what earlier terms left. A pipeline Raft opens
// also tells at once a commit its follower was not told (see add).
// Other commits are not pushed: a leader's own writes (the scheduler's
// placements) keep followers' applies off their path.
type commitPush struct {
	index  atomic.Uint64                    // the highest index known committed
	pipes  atomic.Pointer[[]*quietPipeline] // the open pipelines, replaced (under mu) on a change
	mu     sync.Mutex
	sentTo map[raft.ServerAddress]lastSent // per follower, the last append it took outside a pipeline
}

func newCommitPush() *commitPush { return &commitPush{sentTo: map[raft.ServerAddress]lastSent{}} }

// took records the last append a follower took outside a pipeline.
func (c *commitPush) took(target raft.ServerAddress, l lastSent) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sentTo[target] = l
}

func (c *commitPush) open() []*quietPipeline {
	if v := c.pipes.Load(); v != nil {
		return *v
	}
	return nil
}

// add registers p, the pipeline to target, and starts its goroutine,
// which tells p's follower the commit at each kick until p closes: one per
// pipeline, so a follower whose connection stalls delays no other's. Raft
// opens a pipeline once an append outside one succeeded: p starts from
// that append, and tells at once a commit the follower was not told (a
// kick while Raft was still catching the follower up found no pipeline).
func (c *commitPush) add(p *quietPipeline, target raft.ServerAddress) {
	if c == nil {
		return
	}
	p.wake, p.done = make(chan struct{}, 1), make(chan struct{})
	c.mu.Lock()
	if l, ok := c.sentTo[target]; ok {
		delete(c.sentTo, target)
		p.sent, p.at, p.last = true, p.clock(), l
		if c.index.Load() > l.head.LeaderCommitIndex {
			p.wake <- struct{}{}
		}
	}
	pipes := append(append([]*quietPipeline(nil), c.open()...), p)
	c.pipes.Store(&pipes)
	c.mu.Unlock()
	go p.pushLoop(c)
}

// remove unregisters p and ends its goroutine.
func (c *commitPush) remove(p *quietPipeline) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var pipes []*quietPipeline
	found := false
	for _, q := range c.open() {
		if q == p {
			found = true
		} else {
			pipes = append(pipes, q)
		}
	}
	if found {
		c.pipes.Store(&pipes)
		close(p.done)
	}
}

// committed records that the log is committed up to index.
func (c *commitPush) committed(index uint64) {
	if c == nil {
		return
	}
	for {
		old := c.index.Load()
		if index <= old || c.index.CompareAndSwap(old, index) {
			return
		}
	}
}

// kick wakes every pipeline's goroutine to tell the last commit.
func (c *commitPush) kick() {
	if c == nil {
		return
	}
	for _, p := range c.open() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// pushLoop tells p's follower the last commit at each kick until p
// closes.
func (p *quietPipeline) pushLoop(c *commitPush) {
	for {
		select {
		case <-p.wake:
			p.tell(c.index.Load())
		case <-p.done:
			return
		}
	}
}

// droppedAppend is the future of an append that was not sent.
type droppedAppend struct {
	args  *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	start time.Time
}

func (d droppedAppend) Error() error                          { return nil }
func (d droppedAppend) Start() time.Time                      { return d.start }
func (d droppedAppend) Request() *raft.AppendEntriesRequest   { return d.args }
func (d droppedAppend) Response() *raft.AppendEntriesResponse { return d.resp }
