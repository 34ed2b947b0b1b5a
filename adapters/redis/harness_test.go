package redis

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/web"
)

// testNode is one in-process Armada node with its internal HTTP endpoint
// (for write forwarding) and its Redis adapter.
type testNode struct {
	name     string
	node     *cluster.Node
	http     *http.Server
	httpAddr string
	redis    *Server
	logs     *syncBuffer

	mu      sync.Mutex
	stopped bool
}

func (n *testNode) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	n.stopped = true
	n.redis.Close()
	n.http.Close()
	n.node.Shutdown()
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls fn until it returns nil or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startNode(t *testing.T, base, name string, seeds []string) *testNode {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	node, err := cluster.New(cluster.Config{
		Name: name, DataDir: dir, GossipAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: ln.Addr().String(),
		Seeds: seeds, ReconcileInterval: 200 * time.Millisecond, ProbeInterval: 200 * time.Millisecond,
		HeartbeatTimeout: time.Second, Logger: log,
	})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	if err := node.Start(context.Background(), fsm.Resources{CPUMHz: 1000, MemoryMB: 1024}); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	api := web.New(node, web.Options{Internal: node.InternalHandler(), Logger: log.With("component", "http"), SpoolDir: dir})
	srv := &http.Server{Handler: api.Handler()}
	go srv.Serve(ln)
	rs := New(node.State(), node, Config{Addr: "127.0.0.1:0", Node: name, Logger: log.With("component", "redis")})
	if err := rs.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &testNode{name: name, node: node, http: srv, httpAddr: ln.Addr().String(), redis: rs, logs: logs}
}

// startCluster runs three in-process nodes and waits until they agree on a
// leader and every adapter has recorded its address.
func startCluster(t *testing.T) []*testNode {
	t.Helper()
	base := t.TempDir()
	var nodes []*testNode
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("---- logs of %s ----\n%s", n.name, tailLines(n.logs.String(), 40))
			}
		}
	})
	first := startNode(t, base, "n1", nil)
	nodes = append(nodes, first)
	var seed string
	waitFor(t, 20*time.Second, func() error {
		return first.node.State().View(func(v *fsm.View) error {
			if n, ok := v.Node("n1"); ok && n.GossipAddr != "" {
				seed = n.GossipAddr
				return nil
			}
			return fmt.Errorf("n1 has no node record yet")
		})
	})
	for _, name := range []string{"n2", "n3"} {
		nodes = append(nodes, startNode(t, base, name, []string{seed}))
	}
	waitFor(t, 30*time.Second, func() error {
		for _, n := range nodes {
			if n.node.Leader() == "" {
				return fmt.Errorf("%s knows no leader", n.name)
			}
			var peers map[string]string
			n.node.State().View(func(v *fsm.View) error {
				peers = v.RedisNodes()
				return nil
			})
			if len(peers) != len(nodes) {
				return fmt.Errorf("%s knows %d redis adapters", n.name, len(peers))
			}
			var alive int
			n.node.State().View(func(v *fsm.View) error {
				for _, rec := range v.Nodes() {
					if rec.Status == fsm.NodeAlive {
						alive++
					}
				}
				return nil
			})
			if alive != len(nodes) {
				return fmt.Errorf("%s sees %d alive nodes", n.name, alive)
			}
		}
		return nil
	})
	return nodes
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// follower returns a node that is not the leader.
func follower(nodes []*testNode) *testNode {
	for _, n := range nodes {
		if !n.node.IsLeader() {
			return n
		}
	}
	return nil
}

// requireRedisTools fails (never skips) when the reference server or
// redis-cli is missing: `make test` installs them.
func requireRedisTools(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed: the differential test needs the real Redis "+
				"(apt-get install -y redis-server redis-tools, or run `make test`, which installs it)", bin)
		}
	}
}

// startRedisServer runs a real redis-server on a free loopback port.
func startRedisServer(t *testing.T) string {
	t.Helper()
	requireRedisTools(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	waitFor(t, 10*time.Second, func() error {
		if err := c.Ping(context.Background()).Err(); err != nil {
			return fmt.Errorf("redis-server on %s: %v\n%s", addr, err, out.String())
		}
		return nil
	})
	return addr
}
