// Package testnode starts in-process Armada nodes — cluster, Raft, gossip
// and the HTTP API with its node-to-node endpoints — for the tests of
// packages that sit on top of a node, such as the protocol adapters.
// Only tests import it.
package testnode

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/web"
)

// Node is one in-process node and its HTTP API.
type Node struct {
	Name     string
	Node     *cluster.Node
	HTTPAddr string
	Dir      string
	Log      *slog.Logger
	Logs     *SyncBuffer

	http *http.Server
}

// Start runs a node named name with its data under base, joining through
// seeds (none: a new cluster), with fast failure detection for tests.
func Start(t testing.TB, base, name string, seeds []string) *Node {
	t.Helper()
	logs := &SyncBuffer{}
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
	return &Node{Name: name, Node: node, HTTPAddr: ln.Addr().String(), Dir: dir, Log: log, Logs: logs, http: srv}
}

// Stop stops the HTTP API and the node.
func (n *Node) Stop() {
	n.http.Close()
	n.Node.Shutdown()
}

// WaitFor polls fn until it returns nil, failing t once timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, fn func() error) {
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

// SyncBuffer is a log sink safe for concurrent writers.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Member is what StartCluster needs of a test's node type: the node under
// it and how to stop it with whatever the test runs on top.
type Member interface {
	Base() *Node
	Stop()
}

// StartCluster runs size nodes n1..nN through start — the first starts a
// new cluster, the others join through its gossip address — stops them when
// t ends (with the tail of their logs if t failed), and returns once every
// node knows a leader, sees every node alive, and ready passes for it.
func StartCluster[M Member](t *testing.T, size int, start func(base, name string, seeds []string) M, ready func(M) error) []M {
	t.Helper()
	base := t.TempDir()
	var nodes []M
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Stop()
		}
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("---- logs of %s ----\n%s", n.Base().Name, TailLines(n.Base().Logs.String(), 40))
			}
		}
	})
	first := start(base, "n1", nil)
	nodes = append(nodes, first)
	var seed string
	WaitFor(t, 20*time.Second, func() error {
		return first.Base().Node.State().View(func(v *fsm.View) error {
			if n, ok := v.Node("n1"); ok && n.GossipAddr != "" {
				seed = n.GossipAddr
				return nil
			}
			return fmt.Errorf("n1 has no node record yet")
		})
	})
	for i := 2; i <= size; i++ {
		nodes = append(nodes, start(base, fmt.Sprintf("n%d", i), []string{seed}))
	}
	WaitFor(t, 30*time.Second, func() error {
		for _, n := range nodes {
			b := n.Base()
			if b.Node.Leader() == "" {
				return fmt.Errorf("%s knows no leader", b.Name)
			}
			alive := 0
			b.Node.State().View(func(v *fsm.View) error {
				for _, rec := range v.Nodes() {
					if rec.Status == fsm.NodeAlive {
						alive++
					}
				}
				return nil
			})
			if alive != size {
				return fmt.Errorf("%s sees %d alive nodes", b.Name, alive)
			}
			if err := ready(n); err != nil {
				return fmt.Errorf("%s: %w", b.Name, err)
			}
		}
		return nil
	})
	return nodes
}

// TailLines is the last n lines of s.
func TailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
