package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/armada-orchestrator/armada/fsm"
)

// Forwarding stream. A follower sends the writes its clients submit, and
// its read-index requests, to the leader over one long-lived connection:
// a TCP connection to the leader's HTTP address, upgraded with
// "Upgrade: armada-forward/1" on GET /v1/internal/forward. Requests are
// pipelined: each carries a sequence number and the leader answers each as
// soon as it is done, in any order. Both ends write everything queued
// before they flush, so a busy stream carries many frames per system call,
// and the leader puts forwarded commands into the same groups (log
// entries) as its own.
//
// Frames, both ways (big-endian):
//
//	u32 length of the rest | u8 kind (request) or code (answer) | u64 seq | payload
//
// A request of kind streamApply carries one encoded command; its answer
// with code streamOK carries the JSON fsm.Result. A command tagged with its
// sender (fsm.Forwarded, see localResults) is answered only when it failed
// before it could be applied: the follower takes its result from its own
// apply. A follower tags only for a leader that gossips it takes tags, and
// the leader logs the tag only while every server gossips it can apply
// one; otherwise it drops the tag and answers. A streamReadIndex request
// is empty; its streamOK answer is a u64 index. Any other code carries a
// message. A malformed frame closes the connection.
//
// A leader without the endpoint (an older version, during a rolling
// upgrade) answers the upgrade 404; the follower then forwards to it over
// plain HTTP requests for a while.
const (
	streamProto  = "armada-forward/1"
	streamPath   = "/v1/internal/forward"
	streamHeader = 9 // kind or code, and seq, after the length

	streamApply     = 1
	streamReadIndex = 2

	streamOK             = 0
	streamNotLeader      = 1 // never logged: safe to send again
	streamUnknownOutcome = 2 // may have been logged
	streamRefused        = 3 // a malformed or forbidden command
	streamInternal       = 4

	maxStreamRequest = 8<<20 + streamHeader
	maxStreamAnswer  = 16<<20 + streamHeader
	// legacyFor is how long a follower keeps to plain HTTP requests with a
	// leader that did not know the stream.
	legacyFor = time.Minute
)

// errLegacyLeader means the leader does not serve the stream.
var errLegacyLeader = errors.New("leader does not serve the forwarding stream")

// readFrame reads one frame of at most max bytes after its length.
func readFrame(r *bufio.Reader, max int) (kind byte, seq uint64, payload []byte, err error) {
	var hdr [4 + streamHeader]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return 0, 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:4]))
	if n < streamHeader || n > max {
		return 0, 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	if _, err := io.ReadFull(r, hdr[4:]); err != nil {
		return 0, 0, nil, err
	}
	payload = make([]byte, n-streamHeader)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, 0, nil, err
	}
	return hdr[4], binary.BigEndian.Uint64(hdr[5:13]), payload, nil
}

// frame builds a request (kind) or an answer (code) frame.
func frame(kind byte, seq uint64, payload []byte) []byte {
	b := make([]byte, 4+streamHeader+len(payload))
	binary.BigEndian.PutUint32(b, uint32(streamHeader+len(payload)))
	b[4] = kind
	binary.BigEndian.PutUint64(b[5:], seq)
	copy(b[4+streamHeader:], payload)
	return b
}

// streamClient is a follower's end: one connection to the current leader.
type streamClient struct {
	n      *Node
	mu     sync.Mutex
	conn   *streamConn
	legacy map[string]time.Time // leader address -> until when to use HTTP
	closed bool
}

func newStreamClient(n *Node) *streamClient {
	return &streamClient{n: n, legacy: map[string]time.Time{}}
}

// apply forwards one encoded command and returns its result. A leader
// that takes tagged writes sends no answer for one it applied: the result
// comes from this node's own apply (localResults).
func (s *streamClient) apply(ctx context.Context, entry []byte) (*fsm.Result, error) {
	c, leader, err := s.leader(ctx)
	if errors.Is(err, errLegacyLeader) {
		return s.n.fwd.apply(ctx, leader.HTTP, entry)
	}
	if err != nil {
		return nil, err
	}
	var local chan *fsm.Result
	if leader.Forwarded && s.n.appliesLog() {
		var seq uint64
		seq, local = s.n.results.add()
		defer s.n.results.remove(seq)
		entry = fsm.EncodeForwarded(s.n.results.origin, seq, entry)
	}
	code, payload, r, err := c.call(ctx, streamApply, entry, local)
	if err != nil {
		return nil, err
	}
	if r == nil {
		if err := answerError(code, payload); err != nil {
			return nil, err
		}
		r = new(fsm.Result)
		if err := json.Unmarshal(payload, r); err != nil {
			return nil, fmt.Errorf("%w: decode the leader's answer: %v", ErrUnknownOutcome, err)
		}
	}
	if r.Err != nil {
		return r, r.Err
	}
	return r, nil
}

// readIndex asks the leader for a read index.
func (s *streamClient) readIndex(ctx context.Context) (uint64, error) {
	c, leader, err := s.leader(ctx)
	if errors.Is(err, errLegacyLeader) {
		return s.n.fwd.readIndex(ctx, leader.HTTP)
	}
	if err != nil {
		return 0, err
	}
	code, payload, _, err := c.call(ctx, streamReadIndex, nil, nil)
	if err != nil {
		return 0, err
	}
	if err := answerError(code, payload); err != nil {
		if errors.Is(err, ErrUnknownOutcome) { // a read changes nothing: ask again
			return 0, retryable{err}
		}
		return 0, err
	}
	if len(payload) != 8 {
		return 0, retryable{fmt.Errorf("read index answer of %d bytes", len(payload))}
	}
	return binary.BigEndian.Uint64(payload), nil
}

// answerError turns an answer's code into the caller's error.
func answerError(code byte, payload []byte) error {
	switch code {
	case streamOK:
		return nil
	case streamNotLeader:
		return retryable{fmt.Errorf("%w: %s", ErrNoLeader, payload)}
	case streamUnknownOutcome:
		return fmt.Errorf("%w: %s", ErrUnknownOutcome, payload)
	case streamRefused:
		return fmt.Errorf("leader refused the command: %s", payload)
	}
	return fmt.Errorf("leader: %s", payload)
}

// leader returns the connection to the current leader and what the
// leader gossips (its address in HTTP); errLegacyLeader means the leader
// is to be sent HTTP requests instead.
func (s *streamClient) leader(ctx context.Context) (*streamConn, meta, error) {
	m, err := s.n.leaderMeta()
	if err != nil {
		return nil, m, err
	}
	c, err := s.connTo(ctx, m.HTTP)
	return c, m, err
}

// connTo returns the connection to the leader at addr, dialling it if
// needed. A connection to a former leader is retired: it closes once the
// answers it still waits for have come.
func (s *streamClient) connTo(ctx context.Context, addr string) (*streamConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, retryable{fmt.Errorf("%w: node stopping", ErrNoLeader)}
	}
	if c := s.conn; c != nil && c.addr == addr && c.alive() {
		return c, nil
	}
	if until, ok := s.legacy[addr]; ok {
		if time.Now().Before(until) {
			return nil, errLegacyLeader
		}
		delete(s.legacy, addr)
	}
	if s.conn != nil {
		s.conn.retire()
		s.conn = nil
	}
	c, err := dialStream(ctx, addr, s.n.cfg.Token)
	if errors.Is(err, errLegacyLeader) {
		s.legacy[addr] = time.Now().Add(legacyFor)
		s.n.log.Info("leader does not serve the forwarding stream; forwarding over HTTP requests", "leader", addr)
	}
	if err != nil {
		return nil, err
	}
	c.lostWait = lostWriteWait(s.n.cfg.HeartbeatTimeout)
	s.conn = c
	return c, nil
}

func (s *streamClient) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn != nil {
		s.conn.fail(errors.New("node stopping"))
		s.conn = nil
	}
}

// dialStream opens and upgrades a connection to addr, with the cluster's
// API token when it has one.
func dialStream(ctx context.Context, addr, token string) (*streamConn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, retryable{fmt.Errorf("%w: %v", ErrNoLeader, err)}
	}
	fail := func(err error) (*streamConn, error) {
		conn.Close()
		return nil, retryable{fmt.Errorf("%w: forwarding stream to %s: %v", ErrNoLeader, addr, err)}
	}
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s\r\n", streamPath, addr, streamProto, auth); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fail(err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		conn.Close()
		return nil, errLegacyLeader
	case resp.StatusCode != http.StatusSwitchingProtocols:
		return fail(fmt.Errorf("upgrade answered %s", resp.Status))
	}
	_ = conn.SetDeadline(time.Time{})
	c := &streamConn{addr: addr, c: conn, out: make(chan *streamCall, 1024), pending: map[uint64]*streamCall{}, dead: make(chan struct{})}
	go c.writeLoop()
	go c.readLoop(br)
	return c, nil
}

// streamConn is one upgraded connection to a leader.
type streamConn struct {
	addr string
	c    net.Conn
	out  chan *streamCall // to the writer

	mu      sync.Mutex
	pending map[uint64]*streamCall
	seq     uint64
	err     error // why the connection ended
	retired bool  // close once nothing is pending
	once    sync.Once
	dead    chan struct{}

	lostWait time.Duration // see lostWriteWait; 0 means the default heartbeat's
}

// lostWriteWait is how long a tagged write whose stream broke after it
// was sent waits for its result from this node's own apply: the leader
// may still commit it, or the next leader may. An election takes one to
// two heartbeat timeouts, and the new leader's first entry commits the
// old one's tail; six give that room (3 s at the default 500 ms). Only
// then is its outcome unknown.
func lostWriteWait(heartbeat time.Duration) time.Duration { return 6 * heartbeat }

type streamCall struct {
	seq   uint64
	frame []byte
	state atomic.Int32 // callQueued, then callSent (by the writer) or callDropped
	done  chan streamAnswer
}

// A call's state settles once: the writer claims it to send it, or its
// caller (or a broken connection) drops it first, and then the writer
// skips it. So a call reported as never sent can never reach the leader
// later.
const (
	callQueued int32 = iota
	callSent
	callDropped
)

// drop reports whether the call was dropped before the writer took it.
func (c *streamCall) drop() bool {
	return c.state.CompareAndSwap(callQueued, callDropped) || c.state.Load() == callDropped
}

type streamAnswer struct {
	code    byte
	payload []byte
	err     error // the connection ended first
	sent    bool  // whether the request may have reached the leader
}

func (c *streamConn) alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// call sends a request and waits for its answer, or for its result from
// this node's own apply on local (nil: none). A write whose request may
// have reached the leader and got no answer has an unknown outcome; one
// that never left is safe to send again.
func (c *streamConn) call(ctx context.Context, kind byte, payload []byte, local <-chan *fsm.Result) (byte, []byte, *fsm.Result, error) {
	call := &streamCall{done: make(chan streamAnswer, 1)}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, nil, nil, retryable{fmt.Errorf("%w: %v", ErrNoLeader, err)}
	}
	c.seq++
	call.seq = c.seq
	c.pending[call.seq] = call
	c.mu.Unlock()
	call.frame = frame(kind, call.seq, payload)

	lost := func(sent bool, why error) error {
		if kind == streamApply && sent {
			return fmt.Errorf("%w: %v", ErrUnknownOutcome, why)
		}
		return retryable{fmt.Errorf("%w: %v", ErrNoLeader, why)}
	}
	select {
	case c.out <- call:
	case <-c.dead: // fail answers every pending call
	case <-ctx.Done():
		c.forget(call.seq)
		return 0, nil, nil, lost(!call.drop(), ctx.Err())
	}
	select {
	case a := <-call.done:
		if a.err != nil && a.sent && local != nil {
			return c.awaitLocal(ctx, local, a.err)
		}
		if a.err != nil {
			return 0, nil, nil, lost(a.sent, a.err)
		}
		return a.code, a.payload, nil, nil
	case r := <-local:
		c.forget(call.seq)
		return localAnswer(r)
	case <-ctx.Done():
		c.forget(call.seq)
		return 0, nil, nil, lost(!call.drop(), ctx.Err())
	}
}

// awaitLocal waits for the result of a tagged write whose stream broke
// (why) after it was sent, from this node's own apply, for c.lostWait
// at most: a write that commits after all gets its real result rather
// than an unknown outcome.
func (c *streamConn) awaitLocal(ctx context.Context, local <-chan *fsm.Result, why error) (byte, []byte, *fsm.Result, error) {
	wait := c.lostWait
	if wait == 0 {
		wait = lostWriteWait(defaultHeartbeatTimeout)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-local:
		return localAnswer(r)
	case <-t.C:
	case <-ctx.Done():
	}
	return 0, nil, nil, fmt.Errorf("%w: %v", ErrUnknownOutcome, why)
}

// localAnswer is call's answer for a result from this node's own apply;
// nil means a snapshot replaced the log while the write was out.
func localAnswer(r *fsm.Result) (byte, []byte, *fsm.Result, error) {
	if r == nil {
		return 0, nil, nil, fmt.Errorf("%w: a snapshot replaced this node's log", ErrUnknownOutcome)
	}
	return streamOK, nil, r, nil
}

func (c *streamConn) forget(seq uint64) {
	c.mu.Lock()
	delete(c.pending, seq)
	idle := c.idleLocked()
	c.mu.Unlock()
	if idle {
		c.fail(errors.New("retired"))
	}
}

// idleLocked reports whether the connection is retired and waits for no
// answer, so it may close. Callers hold c.mu.
func (c *streamConn) idleLocked() bool { return c.retired && len(c.pending) == 0 }

func (c *streamConn) retire() {
	c.mu.Lock()
	c.retired = true
	idle := c.idleLocked()
	c.mu.Unlock()
	if idle {
		c.fail(errors.New("retired"))
	}
}

// fail closes the connection and answers every pending call: those the
// writer had not taken are dropped, so they never reach the leader.
func (c *streamConn) fail(err error) {
	c.once.Do(func() {
		c.c.Close()
		c.mu.Lock()
		c.err = err
		calls := c.pending
		c.pending = nil
		c.mu.Unlock()
		close(c.dead)
		for _, call := range calls {
			call.done <- streamAnswer{err: err, sent: !call.drop()}
		}
	})
}

func (c *streamConn) writeLoop() {
	w := bufio.NewWriterSize(c.c, 64<<10)
	for {
		var call *streamCall
		select {
		case call = <-c.out:
		case <-c.dead:
			return
		}
		// Let the writes being sent right now go out in this write.
		runtime.Gosched()
	more:
		for {
			if call.state.CompareAndSwap(callQueued, callSent) {
				if _, err := w.Write(call.frame); err != nil {
					c.fail(fmt.Errorf("write: %w", err))
					return
				}
			}
			select {
			case call = <-c.out:
			default:
				break more
			}
		}
		if err := w.Flush(); err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
	}
}

func (c *streamConn) readLoop(r *bufio.Reader) {
	for {
		code, seq, payload, err := readFrame(r, maxStreamAnswer)
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		c.mu.Lock()
		call := c.pending[seq]
		delete(c.pending, seq)
		idle := c.idleLocked()
		c.mu.Unlock()
		if call != nil {
			call.done <- streamAnswer{code: code, payload: payload}
		}
		if idle {
			c.fail(errors.New("retired"))
			return
		}
	}
}

// The leader's end.

// serveForwardStream upgrades a follower's request and serves its stream
// until either end closes it.
func (a *internalAPI) serveForwardStream(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), streamProto) {
		http.Error(w, "expected Upgrade: "+streamProto, http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "upgrade: "+err.Error(), http.StatusInternalServerError)
		return
	}
	a.n.serveStream(conn, brw)
}

func (n *Node) serveStream(conn net.Conn, brw *bufio.ReadWriter) {
	defer conn.Close()
	if !n.addStream(conn) {
		return
	}
	defer n.removeStream(conn)
	_ = conn.SetDeadline(time.Time{})
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + streamProto + "\r\n\r\n"); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := newFrameQueue()
	defer q.close()
	go q.writeTo(conn, func() { cancel(); conn.Close() })
	for {
		kind, seq, payload, err := readFrame(brw.Reader, maxStreamRequest)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				n.log.Debug("forwarding stream closed", "err", err, "peer", conn.RemoteAddr().String())
			}
			return
		}
		switch kind {
		case streamApply:
			n.streamApply(ctx, seq, payload, q)
		case streamReadIndex:
			go func() {
				idx, err := n.leaderReadIndex(ctx)
				if err != nil {
					q.push(failureFrame(seq, answerFor(nil, err)))
					return
				}
				q.push(frame(streamOK, seq, binary.BigEndian.AppendUint64(nil, idx)))
			}()
		default:
			n.log.Warn("forwarding stream: unknown request kind; closing it", "kind", kind, "peer", conn.RemoteAddr().String())
			return
		}
	}
}

// streamApply queues one forwarded command in the leader's groups. Its
// answer goes out on q once applied; a tagged command (fsm.Forwarded) gets
// one only when it failed, as its sender learns the result from its own
// apply. While some server does not know fsm.Forwarded the tag is dropped,
// and the command is logged and answered as an untagged one.
func (n *Node) streamApply(ctx context.Context, seq uint64, payload []byte, q *frameQueue) {
	if n.raft.State() != raft.Leader {
		q.push(frame(streamNotLeader, seq, []byte("not the leader")))
		return
	}
	c, err := fsm.Decode(payload)
	inner := c
	tagged, isTagged := c.(*fsm.Forwarded)
	if isTagged {
		inner = tagged.Cmd
	}
	if err == nil {
		err = forwardable(inner)
	}
	if err != nil {
		q.push(frame(streamRefused, seq, []byte(err.Error())))
		return
	}
	n.met.forwarded.Inc()
	untag := isTagged && !n.allServersTagged()
	if untag {
		c, isTagged = inner, false
	}
	entry := payload // logged as sent, unless stamping or untagging changed it
	if fsm.Stamp(inner, n.now()) || untag {
		entry = fsm.Encode(c)
	}
	ok := n.batch.enqueueThen(ctx, entry, func(r *fsm.Result, err error) {
		if !isTagged {
			q.push(answerFrame(seq, r, err))
		} else if a := answerFor(r, err); a.Code != "" {
			q.push(failureFrame(seq, a))
		}
		n.push.kick() // the follower answers its client once it has applied the write
	})
	if !ok {
		q.push(frame(streamNotLeader, seq, []byte("not queued: connection closed")))
	}
}

func answerFrame(seq uint64, r *fsm.Result, err error) []byte {
	a := answerFor(r, err)
	switch a.Code {
	case "":
		b, jerr := json.Marshal(a.Result)
		if jerr != nil {
			return frame(streamInternal, seq, []byte(jerr.Error()))
		}
		return frame(streamOK, seq, b)
	}
	return failureFrame(seq, a)
}

// failureFrame answers a request that failed, sorted as the HTTP path
// sorts it (answerFor): safe to resend, unknown outcome, or internal.
func failureFrame(seq uint64, a forwardedAnswer) []byte {
	switch a.Code {
	case codeNotLeader:
		return frame(streamNotLeader, seq, []byte(a.Message))
	case codeUnknownOutcome:
		return frame(streamUnknownOutcome, seq, []byte(a.Message))
	}
	return frame(streamInternal, seq, []byte(a.Message))
}

// addStream records one of the leader's open streams so Shutdown closes
// it (http.Server forgets a connection once it is hijacked). It reports
// false when the node is already stopping.
func (n *Node) addStream(c net.Conn) bool {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return false
	}
	if n.streams == nil {
		n.streams = map[net.Conn]struct{}{}
	}
	n.streams[c] = struct{}{}
	return true
}

func (n *Node) removeStream(c net.Conn) {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	delete(n.streams, c)
}

// frameQueue holds answers for a stream's writer. It never blocks the
// pusher, so a slow follower cannot hold up the leader's apply path; it
// holds at most the answers to what that follower has in flight.
type frameQueue struct {
	mu     sync.Mutex
	frames [][]byte
	closed bool
	wake   chan struct{}
}

func newFrameQueue() *frameQueue { return &frameQueue{wake: make(chan struct{}, 1)} }

func (q *frameQueue) push(f []byte) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.frames = append(q.frames, f)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *frameQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.frames = nil
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// writeTo writes queued frames to w until the queue closes or a write
// fails (then it calls stop).
func (q *frameQueue) writeTo(w io.Writer, stop func()) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var spare [][]byte
	for range q.wake {
		q.mu.Lock()
		frames, closed := q.frames, q.closed
		q.frames = spare[:0]
		q.mu.Unlock()
		if closed {
			return
		}
		for i, f := range frames {
			frames[i] = nil
			if _, err := bw.Write(f); err != nil {
				stop()
				return
			}
		}
		spare = frames
		if err := bw.Flush(); err != nil {
			stop()
			return
		}
	}
}
