package e2e

import (
	"fmt"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/armada-orchestrator/armada/internal/testnode"
)

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// zkSession opens a go-zookeeper session that tries servers in order and
// waits until it has one.
func zkSession(t *testing.T, servers ...string) (*gozk.Conn, <-chan gozk.Event) {
	t.Helper()
	c, events, err := gozk.Connect(servers, 10*time.Second, gozk.WithLogger(quiet{}), gozk.WithHostProvider(&testnode.HostsInOrder{Servers: servers}))
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
	leader, others, addr := startAdapterClusterSplit(t, "--zk-addr")
	leaderName := leader.Name
	c, events := zkSession(t, append([]string{addr[leaderName]}, others...)...)
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

	// The client carries on with the same session on a survivor. Nothing is
	// asked of it until it has: go-zookeeper 1.0.4 races (under -race) when
	// a reply to a request queued while it was away arrives as it sets its
	// watches again.
	lost := false
	for !lost || c.State() != gozk.StateHasSession {
		select {
		case ev := <-events:
			if ev.State == gozk.StateDisconnected {
				lost = true
			}
			if ev.State == gozk.StateExpired {
				t.Fatal("the session expired")
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no new connection 30s after the kill (state %s)", c.State())
		}
	}
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
