package etcd

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/internal/testnode"
)

// testNode is one in-process Armada node (testnode) and its etcd
// adapter.
type testNode struct {
	name     string
	node     *cluster.Node
	httpAddr string
	etcd     *Server
	logs     *syncBuffer
	base     *testnode.Node
}

func (n *testNode) stop() {
	n.etcd.Close()
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
	srv := New(b.Node.State(), b.Node, Config{Addr: "127.0.0.1:0", Node: name, Password: password, Logger: b.Log.With("component", "etcd")})
	if err := srv.Start(context.Background()); err != nil {
		b.Stop()
		t.Fatal(err)
	}
	return &testNode{name: name, node: b.Node, httpAddr: b.HTTPAddr, etcd: srv, logs: b.Logs, base: b}
}

// startCluster runs three in-process nodes and waits until they agree on a
// leader and every adapter has recorded its address.
func startCluster(t *testing.T) []*testNode {
	t.Helper()
	return startClusterWith(t, "")
}

// startClusterWith is startCluster with password as root's (auth.go).
func startClusterWith(t *testing.T, password string) []*testNode {
	t.Helper()
	return testnode.StartCluster(t, 3, func(base, name string, seeds []string) *testNode {
		return startNode(t, base, name, password, seeds)
	}, func(n *testNode) error {
		var peers map[string]string
		n.node.State().View(func(v *fsm.View) error {
			peers = v.EtcdNodes()
			return nil
		})
		if len(peers) != 3 {
			return fmt.Errorf("%d etcd adapters known", len(peers))
		}
		return nil
	})
}

// Base and Stop make a testNode a testnode.Member.
func (n *testNode) Base() *testnode.Node { return n.base }
func (n *testNode) Stop()                { n.stop() }

func tailLines(s string, n int) string { return testnode.TailLines(s, n) }

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
