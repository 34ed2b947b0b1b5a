// Package testnode starts in-process Armada nodes — cluster, Raft, gossip
// and the HTTP API with its node-to-node endpoints — for the tests of
// packages that sit on top of a node, such as the protocol adapters.
// Only tests import it.
package testnode

import (
	"context"
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
