package zk

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/armada-orchestrator/armada/internal/testnode"
)

// connectOrdered opens a session that tries servers in order and counts
// the session-expired events it sees.
func connectOrdered(t *testing.T, servers []string, timeout time.Duration) (*gozk.Conn, *atomic.Int32) {
	t.Helper()
	expired := &atomic.Int32{}
	has := make(chan struct{}, 1)
	c, _, err := gozk.Connect(servers, timeout, gozk.WithLogger(nopLogger{}), gozk.WithHostProvider(&testnode.HostsInOrder{Servers: servers}),
		gozk.WithEventCallback(func(e gozk.Event) {
			switch e.State {
			case gozk.StateExpired:
				expired.Add(1)
			case gozk.StateHasSession:
				select {
				case has <- struct{}{}:
				default:
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	select {
	case <-has:
	case <-time.After(20 * time.Second):
		t.Fatalf("no session with %v", servers)
	}
	return c, expired
}

// TestSessionSurvivesLeaderFailover kills the Raft leader under two
// sessions connected to it: one that can reconnect to the other nodes
// keeps its ephemeral node through the election and well past its timeout;
// one that knows only the dead node expires, and its ephemeral node goes.
func TestSessionSurvivesLeaderFailover(t *testing.T) {
	nodes := startCluster(t)
	var leader *testNode
	var others []string
	for _, n := range nodes {
		if n.node.IsLeader() {
			leader = n
		} else {
			others = append(others, n.zk.Addr())
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	const timeout = 4 * time.Second
	live, liveExpired := connectOrdered(t, append([]string{leader.zk.Addr()}, others...), timeout)
	lost, _ := connectOrdered(t, []string{leader.zk.Addr()}, timeout)
	acl := gozk.WorldACL(gozk.PermAll)
	if _, err := live.Create("/fo", nil, 0, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Create("/fo/live", []byte("l"), gozk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := lost.Create("/fo/lost", []byte("x"), gozk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	if live.Server() != leader.zk.Addr() {
		t.Fatalf("the live session is on %s, not on the leader %s", live.Server(), leader.zk.Addr())
	}
	liveID := live.SessionID()

	killed := time.Now()
	leader.Stop()

	watcher, _ := connect(t, others, 10*time.Second)
	// The lost session expires once a new leader has waited its timeout.
	waitFor(t, 30*time.Second, func() error {
		if _, err := watcher.Sync("/fo"); err != nil {
			return err
		}
		ok, _, err := watcher.Exists("/fo/lost")
		if err != nil || ok {
			return fmt.Errorf("the expired session's ephemeral node is still there (%v)", err)
		}
		return nil
	})
	if since := time.Since(killed); since < timeout {
		t.Fatalf("the lost session expired %s after the leader died, before its %s timeout", since, timeout)
	}
	// The live session reconnected to a survivor and kept its node.
	if _, err := watcher.Sync("/fo"); err != nil {
		t.Fatal(err)
	}
	ok, st, err := watcher.Exists("/fo/live")
	if err != nil || !ok || st.EphemeralOwner != liveID {
		t.Fatalf("the live session's ephemeral node: exists=%v owner=%v err=%v (session %d)", ok, st, err, liveID)
	}
	if live.SessionID() != liveID || liveExpired.Load() != 0 {
		t.Fatalf("the live session changed: %d -> %d, %d expiries", liveID, live.SessionID(), liveExpired.Load())
	}
	waitFor(t, 15*time.Second, func() error {
		_, err := live.Set("/fo/live", []byte("after"), -1)
		return err
	})
	if live.Server() == leader.zk.Addr() {
		t.Fatalf("the live session is still on the dead node %s", live.Server())
	}
	// And it still holds the node a full timeout later.
	time.Sleep(timeout + time.Second)
	if _, err := watcher.Sync("/fo"); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := watcher.Exists("/fo/live"); err != nil || !ok {
		t.Fatalf("the live session's node went after another timeout: %v %v", ok, err)
	}
}

// TestWatchesFollowReconnect stops the node a client with watches is on:
// the client reconnects elsewhere and re-arms its watches (setWatches); a
// change made while it was away fires at once, later ones as usual.
func TestWatchesFollowReconnect(t *testing.T) {
	nodes := startCluster(t)
	var fol *testNode
	var others []string
	for _, n := range nodes {
		if fol == nil && !n.node.IsLeader() {
			fol = n
		} else {
			others = append(others, n.zk.Addr())
		}
	}
	w, _ := connectOrdered(t, append([]string{fol.zk.Addr()}, others...), 10*time.Second)
	m, _ := connect(t, others, 10*time.Second)
	acl := gozk.WorldACL(gozk.PermAll)
	if _, err := w.Create("/w", []byte("0"), 0, acl); err != nil {
		t.Fatal(err)
	}
	_, _, data, err := w.GetW("/w")
	if err != nil {
		t.Fatal(err)
	}
	_, _, kids, err := w.ChildrenW("/w")
	if err != nil {
		t.Fatal(err)
	}
	_, _, exists, err := w.ExistsW("/w/new")
	if err != nil {
		t.Fatal(err)
	}
	fol.Stop()
	if _, err := m.Set("/w", []byte("1"), -1); err != nil {
		t.Fatal(err)
	}
	expect := func(name string, ch <-chan gozk.Event, typ gozk.EventType, path string) {
		t.Helper()
		select {
		case e := <-ch:
			if e.Type != typ || e.Path != path {
				t.Fatalf("%s watch: %+v, want %s on %s", name, e, typ, path)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s watch did not fire", name)
		}
	}
	expect("data", data, gozk.EventNodeDataChanged, "/w")
	if w.Server() == fol.zk.Addr() {
		t.Fatal("the client is still on the stopped node")
	}
	if _, err := m.Create("/w/new", nil, 0, acl); err != nil {
		t.Fatal(err)
	}
	expect("exists", exists, gozk.EventNodeCreated, "/w/new")
	expect("child", kids, gozk.EventNodeChildrenChanged, "/w")
}

// TestSilentClientExpires: a client that stays connected but sends nothing
// (hung, stopped: no requests, no pings) loses its session its timeout
// after its last packet, as with ZooKeeper, and its ephemeral node goes;
// the open connection does not keep the session alive.
func TestSilentClientExpires(t *testing.T) {
	nodes := startCluster(t)
	nc, err := net.DialTimeout("tcp", nodes[0].zk.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	fr := NewFrameReader(nc)
	send := func(frame []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	send(AppendFrame(nil, &ConnectRequest{TimeOut: 4000, Passwd: make([]byte, 16)}))
	if _, err := fr.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	send(MarshalRequest(1, &CreateRequest{Path: "/silent", Data: []byte("x"), Flags: ModeEphemeral,
		ACL: []ACL{{Perms: PermAll, ID: ID{Scheme: "world", ID: "anyone"}}}}))
	if _, err := fr.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	lastPacket := time.Now()

	// The client now says nothing; its connection stays open.
	obs, _ := connect(t, addrs(nodes), 10*time.Second)
	if ok, _, err := obs.Exists("/silent"); err != nil || !ok {
		t.Fatalf("the ephemeral node is not there: %v %v", ok, err)
	}
	waitFor(t, 20*time.Second, func() error {
		if ok, _, err := obs.Exists("/silent"); err != nil || ok {
			return fmt.Errorf("the silent session's ephemeral node is still there (%v)", err)
		}
		return nil
	})
	// ZooKeeper takes its timeout plus up to a tick (2 s); before, the open
	// connection kept the session alive for twice its timeout (8 s).
	if took := time.Since(lastPacket); took < 4*time.Second || took > 7*time.Second {
		t.Fatalf("the session expired %s after the client's last packet; its timeout is 4s", took.Round(time.Millisecond))
	}
}
