package cluster

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

const settle = 30 * time.Second // generous: CI runs these under -race on 2 cores

func TestThreeNodesFormOneGroup(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("n1", nil)
	c.start("n2", nil, n1)
	c.start("n3", nil, n1)
	l := c.leader(settle)
	waitFor(t, settle, func() error {
		v, nv := countVoters(suffrage(t, l))
		if v != 3 || nv != 0 {
			return fmt.Errorf("%d voters, %d non-voters; want 3 and 0", v, nv)
		}
		return nil
	})
	// Every node records every node, alive, with its role.
	for _, n := range c.live() {
		waitFor(t, settle, func() error {
			var nodes []*fsm.Node
			n.State().View(func(v *fsm.View) error { nodes = v.Nodes(); return nil })
			if len(nodes) != 3 {
				return fmt.Errorf("%s sees %d node records", n.cfg.Name, len(nodes))
			}
			for _, r := range nodes {
				if r.Status != fsm.NodeAlive || r.Role != fsm.RoleVoter || r.HTTPAddr == "" || r.Capacity.CPUMHz != 2000 {
					return fmt.Errorf("%s sees %+v", n.cfg.Name, r)
				}
			}
			return nil
		})
	}
}

func TestFiveNodesGiveThreeVotersTwoNonvoters(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("n1", nil)
	for i := 2; i <= 5; i++ {
		c.start("n"+strconv.Itoa(i), nil, n1)
	}
	l := c.leader(settle)
	waitFor(t, settle, func() error {
		s := suffrage(t, l)
		v, nv := countVoters(s)
		if v != 3 || nv != 2 {
			return fmt.Errorf("%d voters, %d non-voters; want 3 and 2: %v", v, nv, s)
		}
		return nil
	})
	// The reconciler is idempotent: once node records have caught up with
	// the configuration, further sweeps change nothing.
	before := suffrage(t, l)
	waitFor(t, settle, func() error {
		idx := l.raft.LastIndex()
		for range 3 {
			if err := l.reconcile(context.Background()); err != nil {
				return err
			}
		}
		if d := l.raft.LastIndex() - idx; d != 0 {
			return fmt.Errorf("three sweeps wrote %d log entries", d)
		}
		return nil
	})
	if after := suffrage(t, l); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("configuration changed on idle sweeps: %v -> %v", before, after)
	}
}

func TestWriteOnFollowerReadableEverywhere(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("n1", nil)
	c.start("n2", nil, n1)
	c.start("n3", nil, n1)
	l := c.leader(settle)
	var follower *testNode
	for _, n := range c.live() {
		if n != l {
			follower = n
		}
	}
	r := put(t, follower, "greeting", "hello")
	if r.KV == nil || r.KV.ModRev != r.Index || r.Index == 0 {
		t.Fatalf("forwarded result %+v", r)
	}
	for _, n := range c.live() {
		// A consistent read waits for the leader's read index.
		if _, err := n.ReadIndex(context.Background()); err != nil {
			t.Fatalf("read index on %s: %v", n.cfg.Name, err)
		}
		if v, ok := kvGet(n, "greeting"); !ok || v != "hello" {
			t.Fatalf("%s reads %q, %v after a consistent read", n.cfg.Name, v, ok)
		}
	}
	// A deterministic rejection travels back through the forwarder intact.
	_, err := follower.Apply(context.Background(), &fsm.KVPut{Key: "greeting", Value: []byte("x"), HasCAS: true, CAS: 1})
	var fe *fsm.Error
	if !asFsmError(err, &fe) || fe.Code != fsm.ErrConflict || fe.Field != "cas" {
		t.Fatalf("stale CAS through a follower: %v", err)
	}
}

func asFsmError(err error, fe **fsm.Error) bool {
	e, ok := err.(*fsm.Error)
	if ok {
		*fe = e
	}
	return ok
}

func TestLeaderShutdownElectsNewLeader(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(3, nil)
	put(t, l, "before", "1")
	old := l.cfg.Name
	start := time.Now()
	l.stop()
	nl := c.leader(settle)
	if nl.cfg.Name == old {
		t.Fatalf("leader is still %s", old)
	}
	t.Logf("new leader %s after %s", nl.cfg.Name, time.Since(start))
	put(t, nl, "after", "2")
	for _, n := range c.live() {
		if _, err := n.ReadIndex(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"before", "after"} {
			if _, ok := kvGet(n, k); !ok {
				t.Fatalf("%s lost %s", n.cfg.Name, k)
			}
		}
	}
}

func TestLeaderHooksRunOnlyOnTheLeader(t *testing.T) {
	c := newTestCluster(t)
	active := map[string]*atomic.Int32{}
	mk := func(name string, seeds ...*testNode) *testNode {
		counter := &atomic.Int32{}
		active[name] = counter
		cfg := Config{Name: name, DataDir: c.dataDir(name), GossipAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			ReconcileInterval: 200 * time.Millisecond, ProbeInterval: 200 * time.Millisecond, HeartbeatTimeout: time.Second}
		for _, s := range seeds {
			cfg.Seeds = append(cfg.Seeds, s.gsp.addr())
		}
		n := c.runWithHooks(cfg, func(ctx context.Context) {
			counter.Add(1)
			<-ctx.Done()
			counter.Add(-1)
		})
		c.nodes = append(c.nodes, n)
		return n
	}
	n1 := mk("n1")
	mk("n2", n1)
	mk("n3", n1)
	l := c.leader(settle)
	waitFor(t, settle, func() error {
		if v, _ := countVoters(suffrage(t, l)); v != 3 {
			return fmt.Errorf("%d voters", v)
		}
		for name, a := range active {
			want := int32(0)
			if name == l.cfg.Name {
				want = 1
			}
			if a.Load() != want {
				return fmt.Errorf("hook on %s running %d times, want %d", name, a.Load(), want)
			}
		}
		return nil
	})
	old := l.cfg.Name
	l.stop()
	if a := active[old].Load(); a != 0 {
		t.Fatalf("hook still running on stopped leader %s", old)
	}
	nl := c.leader(settle)
	waitFor(t, settle, func() error {
		if a := active[nl.cfg.Name].Load(); a != 1 {
			return fmt.Errorf("hook on new leader %s running %d times", nl.cfg.Name, a)
		}
		return nil
	})
}

func TestDeadVoterReplacedByNonvoter(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(5, nil)
	var victim *testNode
	for _, n := range c.live() {
		if n != l && suffrage(t, l)[n.cfg.Name] {
			victim = n
			break
		}
	}
	victim.stop()
	waitFor(t, settle, func() error {
		s := suffrage(t, l)
		v, _ := countVoters(s)
		if s[victim.cfg.Name] || v != 3 {
			return fmt.Errorf("victim %s voter=%v, %d voters: %v", victim.cfg.Name, s[victim.cfg.Name], v, s)
		}
		return nil
	})
	// The replacement is a healthy voter that was a non-voter before.
	for name, voter := range suffrage(t, l) {
		if voter {
			for _, n := range c.nodes {
				if n.cfg.Name == name && n.stopped() {
					t.Fatalf("stopped node %s is a voter", name)
				}
			}
		}
	}
	// The dead node is recorded dead.
	waitFor(t, settle, func() error {
		var st string
		l.State().View(func(v *fsm.View) error {
			if r, ok := v.Node(victim.cfg.Name); ok {
				st = r.Status
			}
			return nil
		})
		if st != fsm.NodeDead {
			return fmt.Errorf("victim recorded %q", st)
		}
		return nil
	})
}

func TestReapRemovesDeadNode(t *testing.T) {
	c := newTestCluster(t)
	short := func(cfg *Config) { cfg.ReapTimeout = 2 * time.Second }
	l := c.startGroup(4, short)
	var victim *testNode
	for _, n := range c.live() {
		if n != l {
			victim = n
			break
		}
	}
	victim.stop()
	waitFor(t, settle, func() error {
		if _, in := suffrage(t, l)[victim.cfg.Name]; in {
			return fmt.Errorf("%s still in raft", victim.cfg.Name)
		}
		found := false
		l.State().View(func(v *fsm.View) error { _, found = v.Node(victim.cfg.Name); return nil })
		if found {
			return fmt.Errorf("%s still recorded", victim.cfg.Name)
		}
		return nil
	})
	if v, _ := countVoters(suffrage(t, l)); v != 3 {
		t.Fatalf("%d voters after reaping, want 3", v)
	}
}

func TestSnapshotInstallOnLaggingNode(t *testing.T) {
	c := newTestCluster(t)
	// Segments of 4 KiB: compaction deletes whole segments, so the
	// entries n3 lacks are gone and only a snapshot can catch it up.
	small := func(cfg *Config) { cfg.SnapshotThreshold, cfg.TrailingLogs, cfg.LogSegmentSize = 64, 16, 4096 }
	l := c.startGroup(3, small)
	n3 := c.nodes[2]
	if l == n3 {
		if err := l.raft.LeadershipTransfer().Error(); err != nil {
			t.Fatal(err)
		}
		l = c.leader(settle)
	}
	n3.stop()
	const keys = 400
	for i := range keys {
		put(t, l, "k/"+strconv.Itoa(i), strconv.Itoa(i))
	}
	if err := l.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	first, err := l.parts.log.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader log now starts at %d", first)
	r := c.restart(n3)
	waitFor(t, settle, func() error {
		if r.raft.Stats()["last_snapshot_index"] == "0" {
			return fmt.Errorf("n3 installed no snapshot yet")
		}
		if _, ok := kvGet(r, "k/"+strconv.Itoa(keys-1)); !ok {
			return fmt.Errorf("n3 lacks the last key")
		}
		return nil
	})
	var n int
	r.State().View(func(v *fsm.View) error { n = len(v.KVPrefix("k/", 0)); return nil })
	if n != keys {
		t.Fatalf("n3 has %d keys, want %d", n, keys)
	}
	// The restored node keeps following the log after the snapshot.
	put(t, l, "after-snapshot", "yes")
	waitFor(t, settle, func() error {
		if _, ok := kvGet(r, "after-snapshot"); !ok {
			return fmt.Errorf("not replicated yet")
		}
		return nil
	})
}

func TestRestartDoesNotBootstrapAgain(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("n1", nil)
	c.leader(settle)
	put(t, n1, "persist", "me")
	n1.stop()
	r := c.restart(n1)
	l := c.leader(settle)
	if l != r {
		t.Fatal("restarted single node is not the leader")
	}
	if v, ok := kvGet(r, "persist"); !ok || v != "me" {
		t.Fatalf("after restart: %q %v", v, ok)
	}
	if got := r.raft.Stats()["last_log_term"]; got == "1" {
		t.Fatalf("log term %s suggests a fresh bootstrap", got)
	}
	// The data dir is pinned to its node name.
	cfg := r.cfg
	r.stop()
	cfg.Name = "other"
	if _, err := c.tryRun(cfg); err == nil {
		t.Fatal("a different name started on n1's data dir")
	}
}

func TestRestoreSnapshotThroughFollower(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(3, nil)
	put(t, l, "kept", "before the snapshot")
	sn, err := l.State().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if _, err := sn.WriteTo(&backup); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	put(t, l, "lost", "after the snapshot")

	var follower *testNode
	for _, n := range c.live() {
		if n != l {
			follower = n
		}
	}
	// A damaged snapshot is refused and changes nothing.
	bad := append([]byte(nil), backup.Bytes()...)
	bad[len(bad)/2] ^= 0xff
	if _, err := follower.Restore(context.Background(), bytes.NewReader(bad)); err == nil {
		t.Fatal("a corrupted snapshot was restored")
	}
	if _, ok := kvGet(l, "lost"); !ok {
		t.Fatal("a refused restore changed the state")
	}

	if _, err := follower.Restore(context.Background(), bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatalf("restore through a follower: %v", err)
	}
	// Every node has installed the restored state once Raft has applied
	// the restore's index there: a follower that has not yet applied the
	// write after the snapshot lacks it too, without having restored.
	restored := l.raft.LastIndex()
	for _, n := range c.live() {
		waitFor(t, settle, func() error {
			if a := n.raft.AppliedIndex(); a < restored {
				return fmt.Errorf("%s has applied up to %d, before the restore at %d", n.cfg.Name, a, restored)
			}
			if _, ok := kvGet(n, "lost"); ok {
				return fmt.Errorf("%s still has the key written after the snapshot", n.cfg.Name)
			}
			if v, ok := kvGet(n, "kept"); !ok || v != "before the snapshot" {
				return fmt.Errorf("%s lacks the snapshot's key", n.cfg.Name)
			}
			return nil
		})
	}
	// The cluster goes on writing after the restore.
	put(t, follower, "after-restore", "yes")
	for _, n := range c.live() {
		if _, err := n.ReadIndex(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, ok := kvGet(n, "after-restore"); !ok {
			t.Fatalf("%s misses a write made after the restore", n.cfg.Name)
		}
	}
}

// Concurrent writes through a follower travel to the leader in groups; each
// still gets its own result, rejections included.
func TestConcurrentForwardedWritesGetTheirOwnResults(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("n1", nil)
	c.start("n2", nil, n1)
	l := c.leader(settle)
	var follower *testNode
	for _, n := range c.live() {
		if n != l {
			follower = n
		}
	}
	waitFor(t, settle, func() error {
		if follower.Leader() == "" {
			return fmt.Errorf("follower knows no leader")
		}
		return nil
	})
	const writers = 64
	errs := make([]error, writers)
	results := make([]*fsm.Result, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := &fsm.KVPut{Key: "fw/" + strconv.Itoa(i), Value: []byte(strconv.Itoa(i))}
			if i%4 == 0 { // must not exist yet, but a CAS of 7 says it should
				cmd.HasCAS, cmd.CAS = true, 7
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			results[i], errs[i] = follower.Apply(ctx, cmd)
		}()
	}
	wg.Wait()
	for i := range writers {
		if i%4 == 0 {
			var fe *fsm.Error
			if !asFsmError(errs[i], &fe) || fe.Code != fsm.ErrConflict {
				t.Fatalf("write %d: want a CAS conflict, got %v", i, errs[i])
			}
			continue
		}
		if errs[i] != nil || results[i].KV == nil || results[i].KV.Key != "fw/"+strconv.Itoa(i) {
			t.Fatalf("write %d: %+v %v", i, results[i], errs[i])
		}
	}
	if _, err := follower.ReadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int
	follower.State().View(func(v *fsm.View) error { n = len(v.KVPrefix("fw/", 0)); return nil })
	if n != writers*3/4 {
		t.Fatalf("%d keys written, want %d", n, writers*3/4)
	}
}

// TestStoppedNodeSuspectFromHeartbeats: a node that stops answering Raft
// is recorded suspect by the leader long before gossip declares it dead,
// and its outage keeps one start (down_since) from suspect to dead.
func TestStoppedNodeSuspectFromHeartbeats(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(3, nil)
	var victim *testNode
	for _, n := range c.live() {
		if n != l {
			victim = n
			break
		}
	}
	record := func() fsm.Node {
		var r fsm.Node
		l.State().View(func(v *fsm.View) error {
			if n, ok := v.Node(victim.cfg.Name); ok {
				r = *n
			}
			return nil
		})
		return r
	}
	if r := record(); r.Status != fsm.NodeAlive || r.DownSince != 0 {
		t.Fatalf("before the stop: %+v", r)
	}
	stopped := time.Now()
	victim.stop()
	var first fsm.Node
	waitFor(t, settle, func() error {
		if first = record(); first.Status == fsm.NodeAlive {
			return fmt.Errorf("still alive")
		}
		return nil
	})
	took := time.Since(stopped)
	if first.Status != fsm.NodeSuspect || first.DownSince == 0 {
		t.Fatalf("first record after the stop (%s): status %q down_since %d, want suspect from Raft heartbeats", took, first.Status, first.DownSince)
	}
	t.Logf("recorded suspect %s after the stop", took.Round(time.Millisecond))
	waitFor(t, settle, func() error {
		if r := record(); r.Status != fsm.NodeDead {
			return fmt.Errorf("recorded %q", r.Status)
		}
		return nil
	})
	if r := record(); r.DownSince != first.DownSince {
		t.Errorf("down_since moved from %d to %d when suspect became dead", first.DownSince, r.DownSince)
	}
}

// TestReadIndexNeedsAMajority: a read index is the leader's commit index
// confirmed by a round of heartbeats, not a log write; a leader whose
// followers are gone must not hand one out (it could be deposed already
// and miss newer writes).
func TestReadIndexNeedsAMajority(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(3, nil)
	put(t, l, "k", "v")
	// The leader's own background writes (node records, features) may
	// land beside a read index on a new cluster: a read index that writes
	// to the log moves the last index every time, one that does not only
	// when such a write happens to fall in between.
	wrote := 0
	for range 20 {
		before := l.raft.LastIndex()
		idx, err := l.ReadIndex(context.Background())
		if err != nil {
			t.Fatalf("read index with all followers up: %v", err)
		}
		if idx < before {
			t.Fatalf("read index %d below the last acknowledged write %d", idx, before)
		}
		if l.raft.LastIndex() == before {
			break
		}
		wrote++
	}
	if wrote == 20 {
		t.Fatalf("the read index wrote to the log: the last index moved on each of %d read indexes", wrote)
	}
	for _, n := range c.live() {
		if n != l {
			n.stop()
		}
	}
	// Answers the followers sent before they stopped may still arrive and
	// count, as they would in Raft: each was sent in this term, and its
	// sender cannot vote for another leader within a heartbeat timeout of
	// sending it. Once those have landed, nothing confirms the leader.
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	t0 := time.Now()
	if idx, err := l.ReadIndex(ctx); err == nil {
		t.Fatalf("a leader without followers handed out read index %d after %s (state %s, config %v)", idx, time.Since(t0), l.raft.State(), suffrage(t, l))
	}
}

// TestReadIndexAfterANewTerm: a node restarted alone starts a term with a
// no-op and a barrier, neither of which its state machine sees; a read
// index taken then must not wait for a write that may never come.
func TestReadIndexAfterANewTerm(t *testing.T) {
	c := newTestCluster(t)
	n := c.startGroup(1, nil)
	put(t, n, "k", "v")
	n.stop()
	c.restart(n)
	l := c.leader(settle)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	idx, err := l.ReadIndex(ctx)
	if err != nil {
		t.Fatalf("read index after a restart with no write since: %v (state at %d, raft commit %d)", err, l.State().Index(), l.raft.CommitIndex())
	}
	if v, ok := kvGet(l, "k"); !ok || v != "v" {
		t.Fatalf("read %q, %v at index %d", v, ok, idx)
	}
}
