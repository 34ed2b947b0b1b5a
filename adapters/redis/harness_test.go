package redis

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
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

func startNode(t *testing.T, base, name, password string, seeds []string) *testNode {
	t.Helper()
	b := testnode.Start(t, base, name, seeds)
	srv := New(b.Node.State(), b.Node, Config{Addr: "127.0.0.1:0", Node: name, Password: password, Logger: b.Log.With("component", "redis")})
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
	return startClusterWith(t, "")
}

// startClusterWith is startCluster with password as every adapter's.
func startClusterWith(t *testing.T, password string) []*testNode {
	t.Helper()
	return testnode.StartCluster(t, 3, func(base, name string, seeds []string) *testNode {
		return startNode(t, base, name, password, seeds)
	}, func(n *testNode) error {
		var peers map[string]string
		n.node.State().View(func(v *fsm.View) error {
			peers = v.RedisNodes()
			return nil
		})
		if len(peers) != 3 {
			return fmt.Errorf("%d redis adapters known", len(peers))
		}
		return nil
	})
}

// Base and Stop make a testNode a testnode.Member.
func (n *testNode) Base() *testnode.Node { return n.base }
func (n *testNode) Stop()                { n.stop() }

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

// startRedisServer runs a real redis-server on a free loopback port,
// with requirepass when password is set.
func startRedisServer(t *testing.T, password ...string) string {
	t.Helper()
	requireRedisTools(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
	pass := ""
	if len(password) > 0 {
		pass = password[0]
		args = append(args, "--requirepass", pass)
	}
	cmd := exec.Command("redis-server", args...)
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
	c := goredis.NewClient(&goredis.Options{Addr: addr, Password: pass})
	defer c.Close()
	waitFor(t, 10*time.Second, func() error {
		if err := c.Ping(context.Background()).Err(); err != nil {
			return fmt.Errorf("redis-server on %s: %v\n%s", addr, err, out.String())
		}
		return nil
	})
	return addr
}
