package cluster

import (
	"sync"
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
// rather than CommitTimeout.
type quietTransport struct {
	*raft.NetworkTransport
}

// AppendEntriesPipeline implements raft.Transport.
func (t quietTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &quietPipeline{AppendPipeline: p}, nil
}

// repeatAfter is how long a pipeline stays quiet when it has nothing new
// to send.
const repeatAfter = 500 * time.Millisecond

// quietPipeline drops an empty append identical to the last one it sent,
// for repeatAfter.
type quietPipeline struct {
	raft.AppendPipeline
	now func() time.Time // time.Now if nil

	mu   sync.Mutex
	sent bool
	last appendKey
	at   time.Time // when last was sent
}

// appendKey is what an empty append tells a follower.
type appendKey struct {
	term, prevEntry, prevTerm, commit uint64
}

// AppendEntries implements raft.AppendPipeline.
func (p *quietPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	key := appendKey{args.Term, args.PrevLogEntry, args.PrevLogTerm, args.LeaderCommitIndex}
	now := time.Now
	if p.now != nil {
		now = p.now
	}
	t := now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(args.Entries) == 0 && p.sent && key == p.last && t.Sub(p.at) < repeatAfter {
		// Raft ignores the future of a pipelined send; its response is
		// never consumed.
		return droppedAppend{args: args, resp: resp, start: t}, nil
	}
	f, err := p.AppendPipeline.AppendEntries(args, resp)
	if err != nil {
		p.sent = false
		return f, err
	}
	p.sent, p.last, p.at = true, key, t
	return f, nil
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
