package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/armada-orchestrator/armada/fsm"
)

// Group commit. Commands that arrive while earlier ones are in flight are
// sent on together: on the leader as one fsm.Batch log entry, on a follower
// as one forwarding request to the leader. Nothing waits for a group to
// fill: a lone command goes out at once, and groups grow only when commands
// queue up behind the ones in flight.
const (
	maxGroupBytes = 1 << 20 // a bigger command still goes alone
	leaderFlights = 2       // Raft applies outstanding at once
	forwardFlight = 4       // forwarding requests outstanding at once
)

type pendingApply struct {
	entry []byte // the encoded command
	done  chan applyResult
}

type applyResult struct {
	res *fsm.Result
	err error
}

func (p *pendingApply) answer(r *fsm.Result, err error) {
	if err == nil && r != nil && r.Err != nil {
		err = r.Err
	}
	p.done <- applyResult{res: r, err: err}
}

// grouper queues commands and hands them to flush in groups. flush runs
// in its own goroutine and must answer every pending command.
type grouper struct {
	in    chan *pendingApply
	slots chan struct{}
	flush func(entry []byte, group []*pendingApply)
}

func newGrouper(inFlight int, flush func(entry []byte, group []*pendingApply)) *grouper {
	return &grouper{in: make(chan *pendingApply, 4096), slots: make(chan struct{}, inFlight), flush: flush}
}

// submit queues an encoded command and waits for its result.
func (g *grouper) submit(ctx context.Context, entry []byte) (*fsm.Result, error) {
	p := g.enqueue(ctx, entry)
	if p == nil {
		return nil, retryable{fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())}
	}
	return p.wait(ctx)
}

func (g *grouper) enqueue(ctx context.Context, entry []byte) *pendingApply {
	p := &pendingApply{entry: entry, done: make(chan applyResult, 1)}
	select {
	case g.in <- p:
		return p
	case <-ctx.Done():
		return nil
	}
}

func (p *pendingApply) wait(ctx context.Context) (*fsm.Result, error) {
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, ctx.Err())
	}
}

func (g *grouper) run(stop <-chan struct{}) {
	for {
		var first *pendingApply
		select {
		case <-stop:
			return
		case first = <-g.in:
		}
		select {
		case g.slots <- struct{}{}:
		case <-stop:
			first.answer(nil, raft.ErrRaftShutdown)
			return
		}
		group := []*pendingApply{first}
		size := len(first.entry)
	drain:
		for len(group) < fsm.MaxBatch && size < maxGroupBytes {
			select {
			case p := <-g.in:
				group = append(group, p)
				size += len(p.entry)
			default:
				break drain
			}
		}
		entry := first.entry
		if len(group) > 1 {
			entries := make([][]byte, len(group))
			for i, p := range group {
				entries[i] = p.entry
			}
			entry = fsm.EncodeBatch(entries)
		}
		go func() {
			defer func() { <-g.slots }()
			g.flush(entry, group)
		}()
	}
}

// answerGroup hands each command of a group its result: res is the result
// of the group's entry (a Batch result for more than one command).
func answerGroup(group []*pendingApply, res *fsm.Result, err error) {
	if err != nil || len(group) == 1 {
		for _, p := range group {
			p.answer(res, err)
		}
		return
	}
	for i, p := range group {
		if i < len(res.Batch) {
			p.answer(res.Batch[i], nil)
		} else {
			p.answer(nil, errors.New("apply: batch result too short"))
		}
	}
}

// raftFlush logs a group's entry on the leader.
func (n *Node) raftFlush(entry []byte, group []*pendingApply) {
	f := n.raft.Apply(entry, 5*time.Second)
	if err := f.Error(); err != nil {
		answerGroup(group, nil, applyError(err))
		return
	}
	res, ok := f.Response().(*fsm.Result)
	if !ok {
		answerGroup(group, nil, fmt.Errorf("apply: unexpected response %T", f.Response()))
		return
	}
	answerGroup(group, res, nil)
}

// forwardFlush sends a group's entry to the leader in one request. A
// group of several commands gets an answer per command, so only those the
// leader never logged are retried.
func (n *Node) forwardFlush(entry []byte, group []*pendingApply) {
	addr, err := n.leaderHTTP()
	if err != nil {
		answerGroup(group, nil, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultApplyTimeout)
	defer cancel()
	if len(group) == 1 {
		res, err := n.fwd.apply(ctx, addr, entry)
		answerGroup(group, res, err)
		return
	}
	answers, err := n.fwd.applyBatch(ctx, addr, entry)
	if err == nil && len(answers) != len(group) {
		err = fmt.Errorf("%w: the leader answered %d of %d commands", ErrUnknownOutcome, len(answers), len(group))
	}
	if err != nil {
		answerGroup(group, nil, err)
		return
	}
	for i, p := range group {
		p.answer(answers[i].Result, answers[i].errorOf())
	}
}

// applyError sorts Raft's failures into retryable (the entry was never
// logged) and unknown outcome (it may have been).
func applyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
		return retryable{fmt.Errorf("%w: %v", ErrNoLeader, err)}
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrUnknownOutcome
	}
	return fmt.Errorf("apply: %w", err)
}
