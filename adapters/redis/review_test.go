package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/armada-orchestrator/armada/fsm"
)

// hookApplier runs a hook around the real local applier, to put a fault
// exactly where a test needs it.
type hookApplier struct {
	inner *localApplier
	mu    sync.Mutex
	hook  func(c *fsm.RedisExec, r *fsm.Result, err error) (*fsm.Result, error)
}

func (a *hookApplier) Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error) {
	r, err := a.inner.Apply(ctx, c)
	a.mu.Lock()
	hook := a.hook
	a.mu.Unlock()
	if rx, ok := c.(*fsm.RedisExec); ok && hook != nil {
		return hook(rx, r, err)
	}
	return r, err
}

func (a *hookApplier) set(hook func(c *fsm.RedisExec, r *fsm.Result, err error) (*fsm.Result, error)) {
	a.mu.Lock()
	a.hook = hook
	a.mu.Unlock()
}

// startLocalWith runs a Server over a one-node local state with a hooked
// applier and a config adjusted by cfg.
func startLocalWith(t *testing.T, cfg func(*Config)) (*Server, *hookApplier) {
	t.Helper()
	st, err := fsm.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	ap := &hookApplier{inner: &localApplier{st: st}}
	c := Config{Addr: "127.0.0.1:0", Node: "local"}
	if cfg != nil {
		cfg(&c)
	}
	s := New(st, ap, c)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		st.Close()
	})
	return s, ap
}

// isPop reports whether an entry is a blocking pop (whatever its form).
func isPop(c *fsm.RedisExec) bool {
	if len(c.Cmds) != 1 {
		return false
	}
	name := strings.ToLower(string(c.Cmds[0][0]))
	return name == "armada.pop" || name == "blpop" || name == "brpop"
}

// A subscriber that stops reading never slows PUBLISH: once too much
// waits for it, it is disconnected.
func TestSlowSubscriberIsDisconnectedNotWaitedFor(t *testing.T) {
	s, _ := startLocalWith(t, func(c *Config) { c.PubSubLimit = 1 << 20 })
	raw, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := raw.Write([]byte("SUBSCRIBE ch\r\n")); err != nil {
		t.Fatal(err)
	}
	ack := "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
	buf := make([]byte, len(ack))
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(raw, buf); err != nil || string(buf) != ack {
		t.Fatalf("SUBSCRIBE answered %q, %v", buf, err)
	}
	// From here on the subscriber reads nothing.
	pub := goredis.NewClient(&goredis.Options{Addr: s.Addr(), ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, MaxRetries: -1})
	defer pub.Close()
	ctx := context.Background()
	msg := strings.Repeat("m", 64<<10)
	cut := false
	for i := 0; i < 2000 && !cut; i++ {
		n, err := pub.Publish(ctx, "ch", msg).Result()
		if err != nil {
			t.Fatalf("PUBLISH %d (%d MiB sent): %v: a subscriber that does not read holds up PUBLISH", i, i*len(msg)>>20, err)
		}
		cut = n == 0
	}
	if !cut {
		t.Fatal("the subscriber that does not read was never disconnected")
	}
	info, err := pub.Info(ctx).Result()
	if err != nil || !strings.Contains(info, "pubsub_clients:0\r\n") {
		t.Fatalf("INFO after the cut: %q, %v", info, err)
	}
}

// targets skips nodes the state no longer knows.
func TestPublishSkipsNodesThatAreGone(t *testing.T) {
	s, ap := startLocalWith(t, nil)
	waitFor(t, 5*time.Second, func() error {
		if len(s.peers.targets()) != 0 {
			return errors.New("own address listed")
		}
		var n int
		s.st.View(func(v *fsm.View) error { n = len(v.RedisNodes()); return nil })
		if n != 1 {
			return fmt.Errorf("%d adapter records", n)
		}
		return nil
	})
	// A node that left the cluster long ago, whose record stayed.
	if _, err := ap.Apply(context.Background(), &fsm.RedisExec{Cmds: [][][]byte{{[]byte("armada.node"), []byte("gone"), []byte("127.0.0.1:1")}}}); err != nil {
		t.Fatal(err)
	}
	if got := s.peers.targets(); len(got) != 0 {
		t.Fatalf("PUBLISH fans out to %v, a node the cluster does not know", got)
	}
	if _, err := ap.Apply(context.Background(), &fsm.NodeUpsert{Node: fsm.Node{Name: "gone", Status: fsm.NodeAlive}}); err != nil {
		t.Fatal(err)
	}
	if got := s.peers.targets(); fmt.Sprint(got) != "[127.0.0.1:1]" {
		t.Fatalf("targets of an alive node: %v", got)
	}
}

// respSession sends raw commands and reads exactly the replies.
func respSession(t *testing.T, addr, input string, replies int) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(input)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(conn)
	var out strings.Builder
	var read func() error
	read = func() error {
		line, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		out.WriteString(line)
		var n int
		switch line[0] {
		case '*':
			fmt.Sscan(line[1:], &n)
			for range n {
				if err := read(); err != nil {
					return err
				}
			}
		case '$':
			fmt.Sscan(line[1:], &n)
			if n >= 0 {
				b := make([]byte, n+2)
				if _, err := io.ReadFull(rd, b); err != nil {
					return err
				}
				out.Write(b)
			}
		}
		return nil
	}
	for range replies {
		if err := read(); err != nil {
			t.Fatalf("after %q: %v", out.String(), err)
		}
	}
	return out.String()
}

// MULTI queues the adapter's own commands (PUBLISH, CLIENT, SELECT, AUTH)
// as Redis does, and EXEC runs them in order: compared with redis-server.
func TestDifferentialMultiWithAdapterCommands(t *testing.T) {
	ref := startRedisServer(t)
	s := startLocal(t)
	cases := []struct {
		input   string
		replies int
	}{
		{"MULTI\r\nSET k v\r\nPUBLISH ch m\r\nCLIENT SETNAME me\r\nCLIENT GETNAME\r\nSELECT 0\r\nGET k\r\nCLIENT SETNAME\r\nEXEC\r\n", 9},
		{"MULTI\r\nSET k v\r\nPUBLISH ch m\r\nCLIENT SETNAME me\r\nCLIENT GETNAME\r\nSELECT 0\r\nSELECT 1x\r\nINCR k\r\nAUTH a b c\r\nGET k\r\nEXEC\r\nCLIENT GETNAME\r\n", 12},
		{"MULTI\r\nPUBLISH ch\r\nSET a 1\r\nEXEC\r\nGET a\r\n", 5},
		{"MULTI\r\nCLIENT NOPE\r\nEXEC\r\nMULTI\r\nSELECT\r\nEXEC\r\nMULTI\r\nCLIENT GETNAME x\r\nDISCARD\r\n", 9},
	}
	for _, tc := range cases {
		want := respSession(t, ref, tc.input, tc.replies)
		got := respSession(t, s.Addr(), tc.input, tc.replies)
		if got != want {
			t.Errorf("%q:\n redis-server: %q\n armada:       %q", tc.input, want, got)
		}
	}
}

// A subscriber sees a message published inside MULTI at EXEC, with the
// transaction's writes visible.
func TestPublishInsideMulti(t *testing.T) {
	s := startLocal(t)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
	defer c.Close()
	ctx := context.Background()
	sub := c.Subscribe(ctx, "ch")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	cmds, err := c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, "k", "v", 0)
		p.Publish(ctx, "ch", "m")
		return nil
	})
	if err != nil || cmds[1].(*goredis.IntCmd).Val() != 1 {
		t.Fatalf("MULTI SET PUBLISH EXEC: %v, %v", cmds, err)
	}
	m, err := sub.ReceiveMessage(ctx)
	if err != nil || m.Payload != "m" {
		t.Fatalf("message %v, %v", m, err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET k = %q, %v", v, err)
	}
}

// A pop whose outcome is unknown (the leader went away after committing
// it) is retried and answers the element it took: none is lost.
func TestBlockingPopWithUnknownOutcomeLosesNothing(t *testing.T) {
	s, ap := startLocalWith(t, nil)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	if err := c.RPush(ctx, "q", "x", "y").Err(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	ap.set(func(c *fsm.RedisExec, r *fsm.Result, err error) (*fsm.Result, error) {
		failed := false
		if isPop(c) {
			once.Do(func() { failed = true })
		}
		if failed {
			return nil, errors.New("leadership lost") // committed, but the answer is lost
		}
		return r, err
	})
	v, err := c.BLPop(ctx, 5*time.Second, "q").Result()
	if err != nil || fmt.Sprint(v) != "[q x]" {
		t.Fatalf("BLPOP = %v, %v", v, err)
	}
	if l, err := c.LRange(ctx, "q", 0, -1).Result(); err != nil || fmt.Sprint(l) != "[y]" {
		t.Fatalf("LRANGE q = %v, %v", l, err)
	}
}

// A client that leaves while its pop is in flight does not take the
// element: it goes back to the head of the list.
func TestBlockingPopOfAClientGoneMidWriteIsPushedBack(t *testing.T) {
	for _, cmd := range []string{"BLPOP", "BRPOP"} {
		t.Run(cmd, func(t *testing.T) {
			s, ap := startLocalWith(t, nil)
			c := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
			defer c.Close()
			ctx := context.Background()
			if err := c.RPush(ctx, "q", "x", "y", "z").Err(); err != nil {
				t.Fatal(err)
			}
			raw, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			popped := make(chan struct{})
			ap.set(func(c *fsm.RedisExec, r *fsm.Result, err error) (*fsm.Result, error) {
				if isPop(c) {
					raw.Close() // the client leaves during the round trip
					close(popped)
				}
				return r, err
			})
			if _, err := raw.Write([]byte(cmd + " q 0\r\n")); err != nil {
				t.Fatal(err)
			}
			<-popped
			ap.set(nil)
			waitFor(t, 10*time.Second, func() error {
				l, err := c.LRange(ctx, "q", 0, -1).Result()
				if err != nil || fmt.Sprint(l) != "[x y z]" {
					return fmt.Errorf("LRANGE q = %v, %v: the element of the gone client is lost", l, err)
				}
				return nil
			})
		})
	}
}

// Local reads decide TTLs within maxAhead of the leader's stamped time,
// whatever the node's clock says: a node whose clock runs an hour ahead
// still reads a key with a 100 s TTL, and on one an hour behind a key past
// its TTL reads as gone.
func TestLocalReadsUseTheLeadersTime(t *testing.T) {
	for _, skew := range []time.Duration{time.Hour, -time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			s, _ := startLocalWith(t, func(c *Config) {
				c.Now = func() time.Time { return time.Now().Add(skew) }
			})
			c := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
			defer c.Close()
			ctx := context.Background()
			if err := c.Set(ctx, "k", "v", 100*time.Second).Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.Set(ctx, "short", "v", 50*time.Millisecond).Err(); err != nil {
				t.Fatal(err)
			}
			if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
				t.Fatalf("GET k = %q, %v: expired by the node's clock", v, err)
			}
			if ttl, err := c.TTL(ctx, "k").Result(); err != nil || ttl < 90*time.Second || ttl > 100*time.Second {
				t.Fatalf("TTL k = %v, %v", ttl, err)
			}
			waitFor(t, 5*time.Second, func() error {
				if err := c.Get(ctx, "short").Err(); !errors.Is(err, goredis.Nil) {
					return fmt.Errorf("GET short after its TTL: %v", err)
				}
				return nil
			})
		})
	}
}

// ARMADA.PUBLISH is the nodes' fan-out: a client without the cluster's
// token is told it does not exist, and reaches no subscriber.
func TestArmadaPublishNeedsTheClusterToken(t *testing.T) {
	s, ap := startLocalWith(t, nil)
	ctx := context.Background()
	key := make([]byte, 32)
	key[0] = 7
	if _, err := ap.Apply(ctx, &fsm.ClusterInit{ClusterID: "c1", Key: key}); err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
	defer c.Close()
	sub := c.Subscribe(ctx, "ch")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]any{
		{"ARMADA.PUBLISH", "ch", "forged"},
		{"armada.publish", "0123", "ch", "forged"},
		{"armada.publish", "", "ch", "forged"},
	} {
		err := c.Do(ctx, args...).Err()
		if err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Fatalf("%v: %v, want unknown command", args, err)
		}
	}
	n, err := c.Do(ctx, "armada.publish", s.peerToken(), "ch", "peer").Int()
	if err != nil || n != 1 {
		t.Fatalf("ARMADA.PUBLISH with the token: %d, %v", n, err)
	}
	m, err := sub.ReceiveMessage(ctx)
	if err != nil || m.Payload != "peer" {
		t.Fatalf("first message %v, %v: want the peer's, not a forged one", m, err)
	}
}
