package redis

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/internal/testnode"
)

// testNode is one in-process Armada node (testnode) and its Redis
// adapter.
type testNode struct {
	name     string
	node     *cluster.Node
	httpAddr string
	redis    *Server
	logs     *syncBuffer
	base     *testnode.Node

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
	n.base.Stop()
}

type syncBuffer = testnode.SyncBuffer

// waitFor polls fn until it returns nil or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	testnode.WaitFor(t, timeout, fn)
}

func startNode(t *testing.T, base, name string, seeds []string) *testNode {
	t.Helper()
	b := testnode.Start(t, base, name, seeds)
	srv := New(b.Node.State(), b.Node, Config{Addr: "127.0.0.1:0", Node: name, Logger: b.Log.With("component", "redis")})
	if err := srv.Start(context.Background()); err != nil {
		b.Stop()
		t.Fatal(err)
	}
	return &testNode{name: name, node: b.Node, httpAddr: b.HTTPAddr, redis: srv, logs: b.Logs, base: b}
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
