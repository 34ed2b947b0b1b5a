package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/armada-orchestrator/armada/fsm"
)

var (
	// ErrNoLeader means no leader could be reached before the deadline.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrUnknownOutcome means a write was in flight when the leader was
	// lost or the caller's deadline ended: it may or may not have been
	// committed. The wrapping error says which.
	ErrUnknownOutcome = errors.New("outcome of the write unknown; it may or may not have been applied")
)

// retryable marks failures that happened before the write could have been
// logged, so sending it again cannot apply it twice.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

const defaultApplyTimeout = 10 * time.Second

// Apply submits a command from any node: the leader logs it, a follower
// forwards it to the leader. It waits out elections until ctx ends (10 s
// without a deadline) and returns the result once the command is applied
// on the leader. A deterministic rejection comes back as an *fsm.Error
// alongside the result.
func (n *Node) Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultApplyTimeout)
		defer cancel()
	}
	start := time.Now()
	r, err := withRetry(ctx, func() (*fsm.Result, error) {
		if n.raft.State() == raft.Leader {
			return n.applyLocal(ctx, c)
		}
		return n.stream.apply(ctx, fsm.Encode(c))
	})
	n.met.observeApply(c.Type(), time.Since(start), err)
	return r, err
}

func withRetry[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	delay := 10 * time.Millisecond
	for {
		v, err := fn()
		var rt retryable
		if err == nil || !errors.As(err, &rt) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("%w (%v)", rt.err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

func (n *Node) leaderHTTP() (string, error) {
	m, err := n.leaderMeta()
	return m.HTTP, err
}

// leaderMeta is what the leader gossips about itself.
func (n *Node) leaderMeta() (meta, error) {
	leader := n.Leader()
	if leader == "" {
		return meta{}, retryable{ErrNoLeader}
	}
	m, ok := n.gsp.member(leader)
	if !ok || m.Meta.HTTP == "" {
		return meta{}, retryable{fmt.Errorf("%w: leader %s not known to gossip yet", ErrNoLeader, leader)}
	}
	return m.Meta, nil
}

// applyLocal logs a command on this node, which must be the leader. The
// leader's clock is stamped into the command here; concurrent commands are
// grouped into one log entry by the batcher.
func (n *Node) applyLocal(ctx context.Context, c fsm.Command) (*fsm.Result, error) {
	fsm.Stamp(c, n.now())
	return n.batch.submit(ctx, fsm.Encode(c))
}

// forwardedAnswer is the leader's answer to one command of a forwarded
// batch: its result, or why it failed. Code not_leader means the command
// was never logged (safe to send again); unknown_outcome means it may have
// been. Each command is answered on its own, so a follower retries exactly
// the commands that cannot have been applied.
type forwardedAnswer struct {
	Result  *fsm.Result `json:"result,omitempty"`
	Code    string      `json:"code,omitempty"`
	Message string      `json:"message,omitempty"`
}

// applyForwardedBatch applies the commands of a Batch that a follower of
// an older version grouped and forwarded over HTTP, each
// joining the leader's own groups, and answers each one.
func (n *Node) applyForwardedBatch(ctx context.Context, b *fsm.Batch) []forwardedAnswer {
	now := n.now()
	out := make([]forwardedAnswer, len(b.Cmds))
	pending := make([]*pendingApply, len(b.Cmds))
	for i, sub := range b.Cmds {
		fsm.Stamp(sub, now)
		if pending[i] = n.batch.enqueue(ctx, fsm.Encode(sub)); pending[i] == nil {
			// Never queued, so never logged: this one and the rest may be resent.
			for j := i; j < len(b.Cmds); j++ {
				out[j] = forwardedAnswer{Code: codeNotLeader, Message: "not queued: " + ctx.Err().Error()}
			}
			break
		}
	}
	for i, p := range pending {
		if p == nil {
			break
		}
		r, err := p.wait(ctx)
		out[i] = answerFor(r, err)
	}
	return out
}

func answerFor(r *fsm.Result, err error) forwardedAnswer {
	var fe *fsm.Error
	var rt retryable
	switch {
	case err == nil, errors.As(err, &fe):
		return forwardedAnswer{Result: r}
	case errors.As(err, &rt):
		return forwardedAnswer{Code: codeNotLeader, Message: err.Error()}
	case errors.Is(err, ErrUnknownOutcome):
		return forwardedAnswer{Code: codeUnknownOutcome, Message: err.Error()}
	}
	return forwardedAnswer{Code: "internal", Message: err.Error()}
}

// ReadIndex returns an index that covers every write acknowledged before
// the call, once this node's state has applied it: reading the local
// state afterwards is linearizable. The leader confirms its leadership
// with a barrier through the log; a follower asks the leader for that
// index and waits for its own state to reach it.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultApplyTimeout)
		defer cancel()
	}
	idx, err := withRetry(ctx, func() (uint64, error) {
		if n.raft.State() == raft.Leader {
			return n.leaderReadIndex(ctx)
		}
		return n.stream.readIndex(ctx)
	})
	if err != nil {
		return 0, err
	}
	if err := n.state.WaitIndex(ctx, idx); err != nil {
		return 0, fmt.Errorf("wait for index %d: %w", idx, err)
	}
	return idx, nil
}

// leaderReadIndex is Raft's read index: the leader's commit index, taken
// before a round of heartbeats confirms that a majority still follows it
// (reads concurrent with one round share the next), so nothing is
// written to the log. It is served only once leadership is established:
// until the leader's first entry commits, its commit index may lag what
// the previous leader acknowledged.
func (n *Node) leaderReadIndex(ctx context.Context) (uint64, error) {
	n.leaderMu.Lock()
	leading := n.leading
	n.leaderMu.Unlock()
	if !leading {
		return 0, retryable{fmt.Errorf("%w: leadership not established yet", ErrNoLeader)}
	}
	idx := n.raft.CommitIndex()
	// Answered by the next heartbeat round, or with ErrNotLeader once the
	// leader's lease (half the heartbeat timeout) runs out without a
	// majority: no wait here outlives that.
	if err := n.raft.VerifyLeader().Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, retryable{fmt.Errorf("%w: %v", ErrNoLeader, err)}
		}
		return 0, fmt.Errorf("verify leader: %w", err)
	}
	// A follower asking waits until it has applied idx: tell it the commit.
	n.push.committed(idx)
	n.push.kick()
	if target, ok := n.stateIndexAt(idx); ok {
		return target, nil
	}
	// The walk found no entry the state machine saw before it reached the
	// start of the log (a snapshot restored by the operator leaves none):
	// a barrier through the log settles it.
	return n.barrierIndex(ctx)
}

// stateIndexAt turns a Raft index into the state's: the last entry at or
// below it that the state machine sees. Raft keeps its no-ops (one starts
// every term) and barriers to itself, so a state that has applied
// everything up to a no-op still shows the index of the command before
// it, and waiting for the no-op's index would wait for the next write.
func (n *Node) stateIndexAt(idx uint64) (uint64, bool) {
	var l raft.Log
	for i := idx; i > 0; i-- {
		if err := n.logs.GetLog(i, &l); err != nil {
			return 0, false
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i, true
		}
	}
	return 0, true
}

// barrierIndex is the state's index once a barrier entry has committed and
// everything before it is applied.
func (n *Node) barrierIndex(ctx context.Context) (uint64, error) {
	timeout := defaultApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrEnqueueTimeout) {
			return 0, retryable{fmt.Errorf("%w: %v", ErrNoLeader, err)}
		}
		return 0, fmt.Errorf("barrier: %w", err)
	}
	return n.state.Index(), nil
}

// forwarder makes HTTP requests to other nodes' internal API: writes and
// read indexes to a leader that does not serve the forwarding stream,
// applied indexes and snapshot restores.
type forwarder struct {
	client *http.Client
	token  string // the cluster's API token, sent with every call
}

func newForwarder(n *Node) *forwarder {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
	}
	return &forwarder{client: &http.Client{Transport: tr}, token: n.cfg.Token}
}

// internal error codes the leader answers with.
const (
	codeNotLeader      = "not_leader"
	codeUnknownOutcome = "unknown_outcome"
)

type internalError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// auth adds the cluster's API token to a node-to-node call.
func (f *forwarder) auth(req *http.Request) {
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
}

func (f *forwarder) do(ctx context.Context, method, url string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	f.auth(req)
	resp, err := f.client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return retryable{fmt.Errorf("%w: %v", ErrNoLeader, err)}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if method == http.MethodPost {
			return fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
		}
		return retryable{err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read leader answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var ie internalError
		_ = json.Unmarshal(data, &ie)
		switch ie.Error.Code {
		case codeNotLeader:
			return retryable{fmt.Errorf("%w: %s", ErrNoLeader, ie.Error.Message)}
		case codeUnknownOutcome:
			return ErrUnknownOutcome
		}
		return fmt.Errorf("leader answered %d: %s", resp.StatusCode, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}

func (f *forwarder) apply(ctx context.Context, addr string, entry []byte) (*fsm.Result, error) {
	var r fsm.Result
	if err := f.do(ctx, http.MethodPost, "http://"+addr+"/v1/internal/apply", entry, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (f *forwarder) readIndex(ctx context.Context, addr string) (uint64, error) {
	var out struct{ Index uint64 }
	err := f.do(ctx, http.MethodGet, "http://"+addr+"/v1/internal/read-index", nil, &out)
	return out.Index, err
}

func (f *forwarder) applied(ctx context.Context, addr string) (uint64, error) {
	var out struct{ Applied uint64 }
	err := f.do(ctx, http.MethodGet, "http://"+addr+"/v1/internal/applied", nil, &out)
	return out.Applied, err
}
