package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/web"
)

// testNode is one in-process Armada node with its internal HTTP endpoint
// (for write forwarding) and its etcd adapter.
type testNode struct {
	name string
	node *cluster.Node
	http *http.Server
	etcd *Server
	logs *syncBuffer
}

func (n *testNode) stop() {
	n.etcd.Close()
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
	es := New(node.State(), node, Config{Addr: "127.0.0.1:0", Node: name, Logger: log.With("component", "etcd")})
	if err := es.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &testNode{name: name, node: node, http: srv, etcd: es, logs: logs}
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
				peers = v.EtcdNodes()
				return nil
			})
			if len(peers) != len(nodes) {
				return fmt.Errorf("%s knows %d etcd adapters", n.name, len(peers))
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

// requireEtcdTools fails (never skips) when the reference server or
// etcdctl is missing: `make test` installs them.
func requireEtcdTools(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"etcd", "etcdctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed: the differential test needs the real etcd "+
				"(apt-get install -y etcd-server etcd-client, or run `make test`, which installs it)", bin)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startEtcdServer runs a real one-member etcd on free loopback ports and
// returns its client address.
func startEtcdServer(t *testing.T) string {
	t.Helper()
	requireEtcdTools(t)
	client := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	cmd := exec.Command("etcd", "--name", "e1", "--data-dir", t.TempDir(),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "e1="+peer)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	cli := newClient(t, client)
	waitFor(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := cli.Get(ctx, "health"); err != nil {
			return fmt.Errorf("etcd on %s: %v\n%s", client, err, tailLines(out.String(), 20))
		}
		return nil
	})
	return client
}

func newClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
