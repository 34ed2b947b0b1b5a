package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/armada-orchestrator/armada/fsm"
)

// Group commit on the leader: commands that arrive while earlier ones are
// in flight are sent to Raft together as one fsm.Batch entry. Nothing
// waits for a batch to fill: a lone command goes out at once, and batches
// grow only when commands queue up behind the in-flight ones.
const (
	maxInFlight   = 2       // Raft applies outstanding at once
	maxBatchBytes = 1 << 20 // a bigger command still goes alone
)

type pendingApply struct {
	entry []byte // the encoded command
	done  chan applyResult
}

type applyResult struct {
	res *fsm.Result
	err error
}

type batcher struct {
	r     *raft.Raft
	in    chan *pendingApply
	slots chan struct{}
}

func newBatcher(r *raft.Raft) *batcher {
	return &batcher{r: r, in: make(chan *pendingApply, 4096), slots: make(chan struct{}, maxInFlight)}
}

// submit queues a stamped command and waits for its result.
func (b *batcher) submit(ctx context.Context, c fsm.Command) (*fsm.Result, error) {
	p := &pendingApply{entry: fsm.Encode(c), done: make(chan applyResult, 1)}
	select {
	case b.in <- p:
	case <-ctx.Done():
		return nil, retryable{fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())}
	}
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, ctx.Err())
	}
}

func (b *batcher) run(stop <-chan struct{}) {
	for {
		var first *pendingApply
		select {
		case <-stop:
			return
		case first = <-b.in:
		}
		select {
		case b.slots <- struct{}{}:
		case <-stop:
			first.done <- applyResult{err: raft.ErrRaftShutdown}
			return
		}
		batch := []*pendingApply{first}
		size := len(first.entry)
	drain:
		for len(batch) < fsm.MaxBatch && size < maxBatchBytes {
			select {
			case p := <-b.in:
				batch = append(batch, p)
				size += len(p.entry)
			default:
				break drain
			}
		}
		entry := first.entry
		if len(batch) > 1 {
			entries := make([][]byte, len(batch))
			for i, p := range batch {
				entries[i] = p.entry
			}
			entry = fsm.EncodeBatch(entries)
		}
		f := b.r.Apply(entry, 5*time.Second)
		go b.finish(f, batch)
	}
}

// finish waits for a batch's entry to apply and hands each command its
// own result.
func (b *batcher) finish(f raft.ApplyFuture, batch []*pendingApply) {
	defer func() { <-b.slots }()
	if err := f.Error(); err != nil {
		err = applyError(err)
		for _, p := range batch {
			p.done <- applyResult{err: err}
		}
		return
	}
	res, ok := f.Response().(*fsm.Result)
	if !ok {
		err := fmt.Errorf("apply: unexpected response %T", f.Response())
		for _, p := range batch {
			p.done <- applyResult{err: err}
		}
		return
	}
	if len(batch) == 1 {
		batch[0].done <- result(res)
		return
	}
	for i, p := range batch {
		if i < len(res.Batch) {
			p.done <- result(res.Batch[i])
		} else {
			p.done <- applyResult{err: errors.New("apply: batch result too short")}
		}
	}
}

func result(r *fsm.Result) applyResult {
	if r.Err != nil {
		return applyResult{res: r, err: r.Err}
	}
	return applyResult{res: r}
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
