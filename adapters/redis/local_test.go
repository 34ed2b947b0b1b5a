package redis

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/armada-orchestrator/armada/fsm"
)

// startLocal runs a listening Server over a one-node local state; opts
// change its Config.
func startLocal(t *testing.T, opts ...func(*Config)) *Server {
	t.Helper()
	st, err := fsm.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addr: "127.0.0.1:0", Node: "local"}
	for _, o := range opts {
		o(&cfg)
	}
	s := New(st, &localApplier{st: st}, cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		st.Close()
	})
	return s
}

// A client that left while blocked in BLPOP must not take an element.
func TestBlockedPopOfAGoneClientPopsNothing(t *testing.T) {
	s := startLocal(t)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), PoolSize: 1})
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Write([]byte("BLPOP q 0\r\n")); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if err := c.RPush(ctx, "q", "x").Err(); err != nil {
		t.Fatal(err)
	}
	// The blocked connection's handler has returned once only our own
	// connection is left.
	waitFor(t, 10*time.Second, func() error {
		info, err := c.Info(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "connected_clients:1\r\n") {
			return fmt.Errorf("INFO: %q", info)
		}
		return nil
	})
	if n, err := c.LLen(ctx, "q").Result(); err != nil || n != 1 {
		t.Fatalf("LLEN q = %d, %v: the gone client took the element", n, err)
	}
	// A live client blocked in BLPOP gets it.
	done := make(chan []string, 1)
	go func() {
		v, _ := c.BLPop(ctx, 5*time.Second, "q").Result()
		done <- v
	}()
	if v := <-done; fmt.Sprint(v) != "[q x]" {
		t.Fatalf("BLPOP = %v", v)
	}
}

// A pipeline of writes is one Raft entry; a MULTI/EXEC is one entry.
func TestPipelineIsOneEntry(t *testing.T) {
	s := startLocal(t)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Let the adapter's own address record land first.
	waitFor(t, 5*time.Second, func() error {
		var n int
		s.st.View(func(v *fsm.View) error { n = len(v.RedisNodes()); return nil })
		if n != 1 {
			return fmt.Errorf("%d adapter records", n)
		}
		return nil
	})
	before := s.st.Index()
	cmds, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i := range 50 {
			p.Set(ctx, fmt.Sprint("k", i), i, 0)
			p.Incr(ctx, "n")
		}
		p.Get(ctx, "n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := cmds[len(cmds)-1].(*goredis.StringCmd).Val(); got != "50" {
		t.Fatalf("GET n = %q", got)
	}
	// go-redis writes the whole pipeline at once; the server reads it in
	// one or a few reads, each of which becomes one entry.
	if entries := s.st.Index() - before; entries < 1 || entries > 5 {
		t.Fatalf("a 101-command pipeline took %d entries", entries)
	}
	before = s.st.Index()
	if _, err := c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Incr(ctx, "n")
		p.RPush(ctx, "l", "a")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if entries := s.st.Index() - before; entries != 1 {
		t.Fatalf("a transaction took %d entries", entries)
	}
}

// HELLO is refused, so that RESP3 clients fall back to RESP2, and
// CLIENT SETINFO is accepted, as go-redis v9 needs, with Redis 7.2's checks.
func TestHelloAndClientSetinfo(t *testing.T) {
	s := startLocal(t)
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("HELLO 3\r\nCLIENT SETINFO LIB-NAME x\r\nCLIENT SETINFO lib-ver 9.7.0\r\n" +
		"CLIENT SETINFO bogus x\r\n*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n$8\r\nlib-name\r\n$3\r\na b\r\nCLIENT SETNAME a\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	want := "-ERR unknown command 'HELLO', with args beginning with: '3' \r\n+OK\r\n+OK\r\n" +
		"-ERR Unrecognized option 'bogus'\r\n-ERR lib-name cannot contain spaces, newlines or special characters.\r\n+OK\r\n+PONG\r\n"
	buf := make([]byte, len(want))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != want {
		t.Fatalf("got %q, %v; want %q", buf, err, want)
	}
}
