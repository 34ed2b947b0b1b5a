package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// A follower forwards over one stream to the leader; when the leader
// goes, its next writes go over a stream to the new one.
func TestForwardingStreamFollowsTheLeader(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(3, nil)
	for _, n := range c.live() {
		if n != l {
			waitFor(t, settle, func() error {
				if n.Leader() == "" {
					return errors.New("no leader known")
				}
				return nil
			})
			put(t, n, "before/"+n.cfg.Name, "1")
			n.stream.mu.Lock()
			sc := n.stream.conn
			n.stream.mu.Unlock()
			if sc == nil || sc.addr != l.cfg.HTTPAddr {
				t.Fatalf("%s forwarded without a stream to the leader at %s: %+v", n.cfg.Name, l.cfg.HTTPAddr, sc)
			}
		}
	}
	l.stop()
	nl := c.leader(settle)
	wrote := 0
	for _, n := range c.live() {
		if n == nl {
			continue
		}
		waitFor(t, settle, func() error {
			if n.Leader() != nl.cfg.Name {
				return fmt.Errorf("%s follows %q", n.cfg.Name, n.Leader())
			}
			return nil
		})
		put(t, n, "after/"+n.cfg.Name, "2")
		n.stream.mu.Lock()
		addr := n.stream.conn.addr
		n.stream.mu.Unlock()
		if addr != nl.cfg.HTTPAddr {
			t.Fatalf("%s forwarded to %s, the leader is at %s", n.cfg.Name, addr, nl.cfg.HTTPAddr)
		}
		wrote++
	}
	if wrote == 0 {
		t.Fatal("no follower left to write through")
	}
}

// A leader of an older version answers the upgrade 404: the follower
// forwards its writes and read-index requests over HTTP requests instead.
func TestFollowerForwardsOverHTTPToAnOlderLeader(t *testing.T) {
	c := newTestCluster(t)
	c.handler = func(n *Node) http.Handler {
		h := n.InternalHandler()
		if n.cfg.Name == "new" {
			return h
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == streamPath {
				http.NotFound(w, r)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	n1 := c.start("n1", nil)
	c.leader(settle)
	c.start("n2", nil, n1)
	f := c.start("new", nil, n1)
	l := c.leader(settle)
	if l == f {
		t.Fatal("the new-version node became the leader; the test needs it to follow")
	}
	waitFor(t, settle, func() error {
		if f.Leader() == "" {
			return errors.New("no leader known")
		}
		return nil
	})
	r := put(t, f, "k", "v")
	if r.KV == nil || r.KV.Key != "k" {
		t.Fatalf("forwarded put answered %+v", r)
	}
	if _, err := f.ReadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := kvGet(f, "k"); v != "v" {
		t.Fatalf("follower reads %q", v)
	}
	f.stream.mu.Lock()
	_, legacy := f.stream.legacy[l.cfg.HTTPAddr]
	conn := f.stream.conn
	f.stream.mu.Unlock()
	if !legacy || conn != nil {
		t.Fatalf("legacy %v, stream %+v: the write did not go over HTTP", legacy, conn)
	}
}

func rawStream(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", streamPath, streamProto)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return conn, br
}

// The leader refuses over the stream what only it may issue, and closes
// a stream that sends a malformed frame, without harm to the others.
func TestStreamRefusesForgedCommandsAndBadFrames(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(1, nil)
	sc, err := dialStream(context.Background(), l.cfg.HTTPAddr, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.fail(errors.New("done"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, cmd := range []fsm.Command{
		&fsm.NodeRemove{Name: "n1"},
		&fsm.Expire{Now: 1 << 62},
		&fsm.Batch{Cmds: []fsm.Command{&fsm.KVPut{Key: "k", Value: []byte("v")}, &fsm.NodeRemove{Name: "n1"}}},
	} {
		for _, entry := range [][]byte{fsm.Encode(cmd), fsm.EncodeForwarded(7, 1, fsm.Encode(cmd))} {
			code, msg, _, err := sc.call(ctx, streamApply, entry, nil)
			if err != nil || code != streamRefused {
				t.Fatalf("%T forwarded (tagged: %v): code %d %q %v, want refused", cmd, entry[0] == byte(fsm.CmdForwarded), code, msg, err)
			}
		}
	}
	nested := fsm.EncodeForwarded(7, 2, fsm.EncodeForwarded(7, 1, fsm.Encode(&fsm.KVPut{Key: "k", Value: []byte("v")})))
	for _, entry := range [][]byte{{0xff, 1, 2}, nested} {
		if code, msg, _, err := sc.call(ctx, streamApply, entry, nil); err != nil || code != streamRefused {
			t.Fatalf("an undecodable command % x: code %d %q %v, want refused", entry, code, msg, err)
		}
	}
	if _, ok := kvGet(l, "k"); ok {
		t.Fatal("a refused batch wrote its client command")
	}

	bad := map[string][]byte{
		"short frame":   {0, 0, 0, 3, 1, 2, 3},
		"huge frame":    {0x7f, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 1},
		"unknown kind":  frame(9, 1, nil),
		"torn mid-read": {0, 0, 0, 100, 1, 0, 0},
	}
	for name, b := range bad {
		conn, br := rawStream(t, l.cfg.HTTPAddr)
		conn.Write(b)
		if name == "torn mid-read" {
			conn.(*net.TCPConn).CloseWrite()
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := br.ReadByte(); err == nil {
			t.Fatalf("%s: the leader answered instead of closing", name)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%s: the leader kept the stream open", name)
		}
	}

	code, payload, _, err := sc.call(ctx, streamApply, fsm.Encode(&fsm.KVPut{Key: "k", Value: []byte("v")}), nil)
	if err != nil || code != streamOK {
		t.Fatalf("a client command: code %d %q %v", code, payload, err)
	}
	var r fsm.Result
	if err := json.Unmarshal(payload, &r); err != nil || r.KV == nil || r.KV.Key != "k" || r.Index == 0 {
		t.Fatalf("result %s: %+v %v", payload, r, err)
	}
	code, payload, _, err = sc.call(ctx, streamReadIndex, nil, nil)
	if err != nil || code != streamOK || len(payload) != 8 || binary.BigEndian.Uint64(payload) < r.Index {
		t.Fatalf("read index: code %d %x %v, want at least %d", code, payload, err, r.Index)
	}
}

// fakeLeader accepts one stream and hands each request frame to answer,
// which returns the frame to send back, or nil to close the connection.
func fakeLeader(t *testing.T, answer func(kind byte, seq uint64, payload []byte) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", streamProto)
				for {
					kind, seq, payload, err := readFrame(br, maxStreamRequest)
					if err != nil {
						return
					}
					f := answer(kind, seq, payload)
					if f == nil {
						return
					}
					conn.Write(f)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A write whose stream breaks after it was sent has an unknown outcome
// (it may have been applied); a read, or a write that never left, may
// be sent again.
func TestStreamLostAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hangUp := fakeLeader(t, func(byte, uint64, []byte) []byte { return nil })

	sc, err := dialStream(ctx, hangUp, "")
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = sc.call(ctx, streamApply, fsm.Encode(&fsm.KVPut{Key: "k"}), nil)
	var rt retryable
	if !errors.Is(err, ErrUnknownOutcome) || errors.As(err, &rt) {
		t.Fatalf("a sent write without an answer: %v, want an unknown outcome", err)
	}
	// The connection is gone: a write now never leaves.
	<-sc.dead
	if _, _, _, err := sc.call(ctx, streamApply, fsm.Encode(&fsm.KVPut{Key: "k"}), nil); !errors.As(err, &rt) {
		t.Fatalf("a write on a closed stream: %v, want retryable", err)
	}

	sc, err = dialStream(ctx, hangUp, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := sc.call(ctx, streamReadIndex, nil, nil); !errors.As(err, &rt) {
		t.Fatalf("a read index without an answer: %v, want retryable", err)
	}

	// A stalled leader: the caller's deadline ends the wait, outcome unknown.
	stall := make(chan struct{})
	defer close(stall)
	slow := fakeLeader(t, func(byte, uint64, []byte) []byte { <-stall; return nil })
	sc, err = dialStream(ctx, slow, "")
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, _, _, err := sc.call(short, streamApply, fsm.Encode(&fsm.KVPut{Key: "k"}), nil); !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("a write past its deadline: %v, want an unknown outcome", err)
	}
	sc.mu.Lock()
	left := len(sc.pending)
	sc.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d calls still pending after the caller gave up", left)
	}
}

// A tagged write whose stream breaks after it was sent waits for its
// result from this node's own apply: the leader, or the next one, may
// still commit it. Only when none comes is its outcome unknown.
func TestStreamLostTaggedWriteTakesItsOwnApply(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hangUp := fakeLeader(t, func(byte, uint64, []byte) []byte { return nil })
	entry := fsm.EncodeForwarded(7, 1, fsm.Encode(&fsm.KVPut{Key: "k"}))

	sc, err := dialStream(ctx, hangUp, "")
	if err != nil {
		t.Fatal(err)
	}
	local := make(chan *fsm.Result, 1)
	go func() {
		<-sc.dead // the leader hung up after it read the write
		local <- &fsm.Result{Index: 42}
	}()
	code, _, r, err := sc.call(ctx, streamApply, entry, local)
	if err != nil || code != streamOK || r == nil || r.Index != 42 {
		t.Fatalf("a lost tagged write whose apply came: code %d %+v %v, want its result", code, r, err)
	}

	// The wait is six of the node's heartbeat timeouts.
	client := newStreamClient(&Node{cfg: Config{HeartbeatTimeout: 50 * time.Millisecond}, log: slog.New(slog.DiscardHandler)})
	defer client.close()
	sc, err = client.connTo(ctx, hangUp)
	if err != nil {
		t.Fatal(err)
	}
	if sc.lostWait != 300*time.Millisecond {
		t.Fatalf("a node with a 50 ms heartbeat waits %s for a lost write, want 300ms", sc.lostWait)
	}
	_, _, r, err = sc.call(ctx, streamApply, entry, make(chan *fsm.Result))
	var rt retryable
	if !errors.Is(err, ErrUnknownOutcome) || errors.As(err, &rt) || r != nil {
		t.Fatalf("a lost tagged write whose apply never came: %+v %v, want an unknown outcome", r, err)
	}

	// A snapshot replaced the log while it waited: unknown.
	sc, err = dialStream(ctx, hangUp, "")
	if err != nil {
		t.Fatal(err)
	}
	snap := make(chan *fsm.Result, 1)
	go func() { <-sc.dead; snap <- nil }()
	if _, _, _, err := sc.call(ctx, streamApply, entry, snap); !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("a lost tagged write during a snapshot restore: %v, want an unknown outcome", err)
	}
}

// Answers come back out of order and in any number: each caller gets its
// own.
func TestStreamMatchesAnswersToCalls(t *testing.T) {
	var mu sync.Mutex
	var held [][]byte
	// Answer in reverse, eight at a time.
	addr := fakeLeader(t, func(kind byte, seq uint64, payload []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		held = append(held, frame(streamOK, seq, payload))
		if len(held) < 8 {
			return []byte{}
		}
		var out []byte
		for i := len(held) - 1; i >= 0; i-- {
			out = append(out, held[i]...)
		}
		held = nil
		return out
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sc, err := dialStream(ctx, addr, "")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := strconv.Itoa(i)
			code, payload, _, err := sc.call(ctx, streamApply, []byte(want), nil)
			if err != nil || code != streamOK || string(payload) != want {
				errs <- fmt.Errorf("call %d: code %d %q %v", i, code, payload, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A write its caller gave up on while it waited behind another is
// reported as never sent, so the caller may send it again: it must then
// never reach the leader.
func TestStreamDropsAbandonedWrites(t *testing.T) {
	near, far := net.Pipe() // a write blocks until the far end reads
	c := &streamConn{addr: "pipe", c: near, out: make(chan *streamCall, 16), pending: map[uint64]*streamCall{}, dead: make(chan struct{})}
	go c.writeLoop()
	defer c.fail(errors.New("done"))

	first := make(chan error, 1)
	go func() {
		_, _, _, err := c.call(context.Background(), streamApply, []byte("first"), nil)
		first <- err
	}()
	// The writer holds the first frame until the far end reads; the second
	// waits in the queue until its caller gives up.
	waitFor(t, 5*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.pending) == 0 || c.pending[1].state.Load() != callSent {
			return errors.New("first frame not taken yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, _, err := c.call(ctx, streamApply, []byte("second"), nil)
	var rt retryable
	if !errors.As(err, &rt) {
		t.Fatalf("an abandoned write still queued: %v, want retryable", err)
	}

	br := bufio.NewReader(far)
	far.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, seq, payload, err := readFrame(br, maxStreamRequest)
	if err != nil || seq != 1 || string(payload) != "first" {
		t.Fatalf("first frame: seq %d %q %v", seq, payload, err)
	}
	far.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, seq, payload, err := readFrame(br, maxStreamRequest); err == nil {
		t.Fatalf("the abandoned write went out: seq %d %q", seq, payload)
	}
	c.fail(errors.New("done"))
	if err := <-first; !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("a sent write without an answer: %v, want an unknown outcome", err)
	}
}
