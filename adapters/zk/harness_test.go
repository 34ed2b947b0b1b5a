package zk

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/internal/testnode"
)

// testNode is one in-process Armada node (testnode) and its ZooKeeper
// adapter.
type testNode struct {
	name string
	node *cluster.Node
	zk   *Server
	base *testnode.Node
}

// Base and Stop make a testNode a testnode.Member.
func (n *testNode) Base() *testnode.Node { return n.base }
func (n *testNode) Stop() {
	n.zk.Close()
	n.base.Stop()
}

func waitFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	testnode.WaitFor(t, timeout, fn)
}

func startNode(t *testing.T, base, name string, seeds []string) *testNode {
	t.Helper()
	b := testnode.Start(t, base, name, seeds)
	srv := New(b.Node.State(), b.Node, Config{Addr: "127.0.0.1:0", Node: name, TouchInterval: 300 * time.Millisecond,
		Logger: b.Log.With("component", "zk")})
	if err := srv.Start(context.Background()); err != nil {
		b.Stop()
		t.Fatal(err)
	}
	return &testNode{name: name, node: b.Node, zk: srv, base: b}
}

// startCluster runs three in-process nodes with the adapter.
func startCluster(t *testing.T) []*testNode {
	t.Helper()
	return testnode.StartCluster(t, 3, func(base, name string, seeds []string) *testNode {
		return startNode(t, base, name, seeds)
	}, func(*testNode) error { return nil })
}

func addrs(nodes []*testNode) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.zk.Addr())
	}
	return out
}

// zkClassPath is the Debian zookeeper package's class path.
func zkClassPath(t testing.TB) string {
	t.Helper()
	jars, _ := filepath.Glob("/usr/share/java/*.jar")
	if _, err := os.Stat("/usr/share/java/zookeeper.jar"); err != nil {
		t.Fatalf("ZooKeeper is not installed: the differential test needs the real one " +
			"(apt-get install -y zookeeper, or run `make test`, which installs it)")
	}
	return "/etc/zookeeper/conf:" + strings.Join(jars, ":")
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startZooKeeper runs a real standalone ZooKeeper 3.8 and returns its
// client address.
func startZooKeeper(t *testing.T) string {
	t.Helper()
	cp := zkClassPath(t)
	dir := t.TempDir()
	port := freePort(t)
	cfg := fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"4lw.commands.whitelist=*\nadmin.enableServer=false\n", dir, port)
	cfgPath := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("java", "-Xmx256m", "-cp", cp, "org.apache.zookeeper.server.ZooKeeperServerMain", cfgPath)
	out := &testnode.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start zookeeper: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("---- zookeeper ----\n%s", testnode.TailLines(out.String(), 30))
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 60*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		// ruok answers imok as soon as the port is open, before the
		// database is loaded (sessions opened then are dropped); srvr
		// reports a mode only once the server serves requests.
		c.Write([]byte("srvr"))
		c.SetReadDeadline(time.Now().Add(time.Second))
		b, _ := io.ReadAll(c)
		if !strings.Contains(string(b), "Mode: ") {
			return fmt.Errorf("zookeeper on %s not serving yet: %q", addr, b)
		}
		return nil
	})
	return addr
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

// connect opens a go-zookeeper session and waits until it has one.
func connect(t testing.TB, servers []string, timeout time.Duration) (*gozk.Conn, <-chan gozk.Event) {
	t.Helper()
	c, ev, err := gozk.Connect(servers, timeout, gozk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	events := make(chan gozk.Event, 100)
	got := make(chan struct{})
	go func() {
		seen := false
		for e := range ev {
			if e.State == gozk.StateHasSession && !seen {
				seen = true
				close(got)
			}
			select {
			case events <- e:
			default:
			}
		}
	}()
	select {
	case <-got:
	case <-time.After(20 * time.Second):
		t.Fatalf("no session with %v", servers)
	}
	return c, events
}
