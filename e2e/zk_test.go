package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"
)

// inOrder makes go-zookeeper try its servers in the order given (it
// shuffles the list it passes to Init, which is ignored).
type inOrder struct {
	mu      sync.Mutex
	servers []string
	next    int
	tried   int
}

func (h *inOrder) Init([]string) error { return nil }
func (h *inOrder) Len() int            { return len(h.servers) }
func (h *inOrder) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.servers[h.next]
	h.next = (h.next + 1) % len(h.servers)
	h.tried++
	return s, h.tried > len(h.servers)
}
func (h *inOrder) Connected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tried = 0
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// zkSession opens a go-zookeeper session that tries servers in order and
// waits until it has one.
func zkSession(t *testing.T, servers ...string) (*gozk.Conn, <-chan gozk.Event) {
	t.Helper()
	c, events, err := gozk.Connect(servers, 10*time.Second, gozk.WithLogger(quiet{}), gozk.WithHostProvider(&inOrder{servers: servers}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	waitFor(t, 20*time.Second, func() error {
		if c.State() != gozk.StateHasSession {
			return errState(c.State())
		}
		return nil
	})
	return c, events
}

type errState gozk.State

func (e errState) Error() string { return "session state " + gozk.State(e).String() }

// TestZKSessionSurvivesKilledLeader runs three real nodes with --zk-addr.
// A go-zookeeper session on the leader holds an ephemeral node and a data
// watch; the leader is SIGKILLed. The client reconnects to a survivor with
// the same session: its ephemeral node is still there, its watch (set again
// with setWatches) fires on a change made after the kill, and closing the
// session deletes the ephemeral node.
func TestZKSessionSurvivesKilledLeader(t *testing.T) {
	nodes, addr, leaderName := startAdapterCluster(t, "--zk-addr")
	var leader *Node
	var others []string
	for _, n := range nodes {
		if n.Name == leaderName {
			leader = n
		} else {
			others = append(others, addr[n.Name])
		}
	}
	c, _ := zkSession(t, append([]string{addr[leaderName]}, others...)...)
	acl := gozk.WorldACL(gozk.PermAll)
	if _, err := c.Create("/held", []byte("mine"), gozk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create("/watched", []byte("v1"), 0, acl); err != nil {
		t.Fatal(err)
	}
	_, _, watch, err := c.GetW("/watched")
	if err != nil {
		t.Fatal(err)
	}
	session := c.SessionID()

	leader.Kill()
	killed := time.Now()

	// The client carries on with the same session on a survivor.
	waitFor(t, 30*time.Second, func() error {
		if _, _, err := c.Get("/held"); err != nil {
			return err
		}
		return nil
	})
	if c.SessionID() != session {
		t.Fatalf("session %x became %x", session, c.SessionID())
	}
	other, _ := zkSession(t, others...)
	data, stat, err := other.Get("/held")
	if err != nil || string(data) != "mine" || stat.EphemeralOwner != session {
		t.Fatalf("ephemeral node after the kill: %q %+v %v", data, stat, err)
	}
	if _, err := other.Set("/watched", []byte("v2"), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-watch:
		if ev.Type != gozk.EventNodeDataChanged || ev.Path != "/watched" {
			t.Fatalf("watch event %+v", ev)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the data watch did not fire after the reconnect")
	}
	// Well past the session timeout, the session and its node live on.
	for time.Since(killed) < 12*time.Second {
		if _, _, err := other.Get("/held"); err != nil {
			t.Fatalf("%.1fs after the kill: %v", time.Since(killed).Seconds(), err)
		}
		time.Sleep(200 * time.Millisecond) // the check's sampling period, not a wait for a result
	}
	c.Close()
	waitFor(t, 20*time.Second, func() error {
		if ok, _, err := other.Exists("/held"); err != nil || ok {
			return fmt.Errorf("the closed session's ephemeral node: exists %v, %v", ok, err)
		}
		return nil
	})
}
