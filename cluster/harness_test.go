package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/armada-orchestrator/armada/fsm"
)

// testNode is one in-process node with its HTTP server for forwarding.
type testNode struct {
	*Node
	cfg  Config
	http *http.Server
	logs *syncBuffer
}

// testCluster runs in-process nodes on loopback ports chosen by the kernel.
type testCluster struct {
	t     *testing.T
	base  string // data dirs live here
	nodes []*testNode
	// handler, when set, is what a node's HTTP server serves instead of
	// its internal API (to play an older version).
	handler func(*Node) http.Handler
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

func newTestCluster(t *testing.T) *testCluster {
	// Cleanups run last first: the base dir is made before the cleanup that
	// stops the nodes is registered, so it is removed only once they stop.
	c := &testCluster{t: t, base: t.TempDir()}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop()
		}
		if t.Failed() || os.Getenv("ARMADA_TEST_LOGS") != "" {
			for _, n := range c.nodes {
				t.Logf("---- logs of %s ----\n%s", n.cfg.Name, tail(n.logs.String(), 60))
			}
		}
	})
	return c
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// dataDir makes a fresh data dir under the cluster's base dir.
func (c *testCluster) dataDir(name string) string {
	c.t.Helper()
	dir, err := os.MkdirTemp(c.base, name+"-")
	if err != nil {
		c.t.Fatal(err)
	}
	return dir
}

// start runs a node; seeds are other nodes whose gossip addresses it joins.
func (c *testCluster) start(name string, mutate func(*Config), seeds ...*testNode) *testNode {
	c.t.Helper()
	cfg := Config{
		Name: name, DataDir: c.dataDir(name), GossipAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		ReconcileInterval: 200 * time.Millisecond, ProbeInterval: 200 * time.Millisecond,
		// Tolerant of a loaded 2-core CI machine running -race.
		HeartbeatTimeout: time.Second,
	}
	for _, s := range seeds {
		cfg.Seeds = append(cfg.Seeds, s.gsp.addr())
	}
	if mutate != nil {
		mutate(&cfg)
	}
	n := c.run(cfg)
	c.nodes = append(c.nodes, n)
	return n
}

// run starts a node from cfg, listening on cfg.HTTPAddr.
func (c *testCluster) run(cfg Config) *testNode {
	c.t.Helper()
	n, err := c.tryRun(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

// runWithHooks starts a node with leader hooks registered before Start.
func (c *testCluster) runWithHooks(cfg Config, hooks ...func(context.Context)) *testNode {
	c.t.Helper()
	n, err := c.tryRun(cfg, hooks...)
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

func (c *testCluster) tryRun(cfg Config, hooks ...func(context.Context)) (*testNode, error) {
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", cfg.Name)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen http: %w", err)
	}
	cfg.HTTPAddr = ln.Addr().String()
	node, err := New(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	for _, h := range hooks {
		node.OnLeader(h)
	}
	if err := node.Start(context.Background(), fsm.Resources{CPUMHz: 2000, MemoryMB: 1024}); err != nil {
		ln.Close()
		return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	var h http.Handler = node.InternalHandler()
	if c.handler != nil {
		h = c.handler(node)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	// Remember the bound addresses so a restart comes back on them.
	cfg.GossipAddr = node.gsp.addr()
	cfg.RaftAddr = string(node.parts.transport.LocalAddr())
	return &testNode{Node: node, cfg: cfg, http: srv, logs: logs}, nil
}

func (n *testNode) stop() {
	n.http.Close()
	n.Shutdown()
}

func (n *testNode) stopped() bool {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	return n.closed
}

// restart starts a stopped node again from its data dir on the same
// addresses, joining through the live nodes.
func (c *testCluster) restart(n *testNode) *testNode {
	c.t.Helper()
	cfg := n.cfg
	cfg.Seeds = nil
	for _, o := range c.live() {
		if o != n {
			cfg.Seeds = append(cfg.Seeds, o.gsp.addr())
		}
	}
	var r *testNode
	waitFor(c.t, 10*time.Second, func() error {
		var err error
		r, err = c.tryRun(cfg)
		return err
	})
	for i, o := range c.nodes {
		if o == n {
			c.nodes[i] = r
		}
	}
	return r
}

// waitFor polls fn until it returns nil or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, fn func() error) {
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
		time.Sleep(50 * time.Millisecond)
	}
}

// leader waits for the live nodes to agree on one established leader.
func (c *testCluster) leader(timeout time.Duration) *testNode {
	c.t.Helper()
	var l *testNode
	waitFor(c.t, timeout, func() error {
		l = nil
		names := map[string]bool{}
		for _, n := range c.live() {
			names[n.Leader()] = true
			if n.IsLeader() {
				l = n
			}
		}
		if l == nil || len(names) != 1 || names[""] {
			return fmt.Errorf("no agreed leader yet: %v", names)
		}
		return nil
	})
	return l
}

func (c *testCluster) live() []*testNode {
	var out []*testNode
	for _, n := range c.nodes {
		if !n.stopped() {
			out = append(out, n)
		}
	}
	return out
}

// startGroup starts n nodes joined through the first, waits until the
// leader has made min(n, 3) of them voters and the rest non-voters (the
// default --voters is 3), and returns the leader.
func (c *testCluster) startGroup(n int, mutate func(*Config)) *testNode {
	c.t.Helper()
	first := c.start("n1", mutate)
	for i := 2; i <= n; i++ {
		c.start(fmt.Sprintf("n%d", i), mutate, first)
	}
	l := c.leader(settle)
	want := min(n, 3)
	waitFor(c.t, settle, func() error {
		if v, nv := countVoters(suffrage(c.t, l)); v != want || nv != n-want {
			return fmt.Errorf("%d voters and %d non-voters, want %d and %d", v, nv, want, n-want)
		}
		return nil
	})
	return l
}

// suffrage returns the leader's Raft configuration as name -> voter?
func suffrage(t *testing.T, n *testNode) map[string]bool {
	t.Helper()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range f.Configuration().Servers {
		out[string(s.ID)] = s.Suffrage == raft.Voter
	}
	return out
}

func countVoters(m map[string]bool) (voters, nonvoters int) {
	for _, v := range m {
		if v {
			voters++
		} else {
			nonvoters++
		}
	}
	return
}

func kvGet(n *testNode, key string) (string, bool) {
	var val string
	var ok bool
	n.State().View(func(v *fsm.View) error {
		if kv, found := v.KV(key); found {
			val, ok = string(kv.Value), true
		}
		return nil
	})
	return val, ok
}

func put(t *testing.T, n *testNode, key, val string) *fsm.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := n.Apply(ctx, &fsm.KVPut{Key: key, Value: []byte(val)})
	if err != nil {
		t.Fatalf("put %s on %s: %v", key, n.cfg.Name, err)
	}
	return r
}
