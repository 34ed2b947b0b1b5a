package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/armada-orchestrator/armada/fsm"
)

// setForwarded makes n gossip whether it takes tagged writes, as a node of
// an older version would not, and waits until every live node knows.
func setForwarded(t *testing.T, c *testCluster, n *testNode, on bool) {
	t.Helper()
	g := n.gsp
	g.metaMu.Lock()
	g.self.Forwarded = on
	buf, err := json.Marshal(g.self)
	g.metaBuf = buf
	g.metaMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ml.UpdateNode(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, o := range c.live() {
		waitFor(t, settle, func() error {
			if m, ok := o.gsp.member(n.cfg.Name); !ok || m.Meta.Forwarded != on {
				return fmt.Errorf("%s does not see %s's flag turn %v", o.cfg.Name, n.cfg.Name, on)
			}
			return nil
		})
		o.tagged.expire()
	}
}

// leaderTakesTagged reports whether n sees the leader gossip that it
// takes tagged writes.
func leaderTakesTagged(n *testNode) bool {
	m, err := n.leaderMeta()
	return err == nil && m.Forwarded
}

// loggedTagged counts the tagged commands in n's log.
func loggedTagged(t *testing.T, n *testNode) int {
	t.Helper()
	first, err := n.Node.logs.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := n.Node.logs.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for i := first; i <= last && i > 0; i++ {
		var l raft.Log
		if err := n.Node.logs.GetLog(i, &l); err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		c, err := fsm.Decode(l.Data)
		if err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
		cmds := []fsm.Command{c}
		if b, ok := c.(*fsm.Batch); ok {
			cmds = b.Cmds
		}
		for _, sub := range cmds {
			if _, ok := sub.(*fsm.Forwarded); ok {
				count++
			}
		}
	}
	return count
}

func followerOf(c *testCluster, l *testNode) *testNode {
	for _, n := range c.live() {
		if n != l {
			return n
		}
	}
	return nil
}

// twoFollowers returns the two live nodes of a 3-node cluster other than
// its leader l.
func twoFollowers(c *testCluster, l *testNode) (a, b *testNode) {
	for _, n := range c.live() {
		switch {
		case n == l:
		case a == nil:
			a = n
		default:
			b = n
		}
	}
	return a, b
}

// A follower's forwarded writes are logged tagged; the leader sends no
// answer for one it applied, and the follower takes the result, a
// rejection included, from its own apply.
func TestFollowerTakesForwardedResultsFromItsOwnApply(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(3, nil)
	f := followerOf(c, l)
	waitFor(t, settle, func() error {
		if !leaderTakesTagged(f) || !f.appliesLog() {
			return errors.New("the follower does not see the leader take tagged writes, or does not apply the log")
		}
		return nil
	})

	r := put(t, f, "fw/k", "v1")
	if r.KV == nil || string(r.KV.Value) != "v1" || r.Index == 0 {
		t.Fatalf("result of a forwarded put: %+v", r)
	}
	if v, ok := kvGet(f, "fw/k"); !ok || v != "v1" {
		t.Fatalf("the follower does not read its own write: %q %v", v, ok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := f.Apply(ctx, &fsm.KVPut{Key: "fw/k", Value: []byte("v2"), HasCAS: true, CAS: r.Index + 100})
	var fe *fsm.Error
	if !errors.As(err, &fe) || fe.Code != fsm.ErrConflict {
		t.Fatalf("a forwarded put with a stale CAS: %v, want a conflict", err)
	}
	if n := loggedTagged(t, l); n < 2 {
		t.Fatalf("%d tagged commands in the leader's log, want the follower's 2", n)
	}
	f.results.mu.Lock()
	left := len(f.results.waits)
	f.results.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d forwarded writes still wait for their result", left)
	}

	// On the wire: a tagged write gets no answer once applied, so the
	// first answer on the stream is the untagged write's sent after it.
	conn, br := rawStream(t, l.cfg.HTTPAddr)
	if _, err := conn.Write(frame(streamApply, 1, fsm.EncodeForwarded(77, 1, fsm.Encode(&fsm.KVPut{Key: "raw/a", Value: []byte("a")})))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, settle, func() error {
		if _, ok := kvGet(l, "raw/a"); !ok {
			return errors.New("the tagged write is not applied")
		}
		return nil
	})
	if _, err := conn.Write(frame(streamApply, 2, fsm.Encode(&fsm.KVPut{Key: "raw/b", Value: []byte("b")}))); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	code, seq, payload, err := readFrame(br, maxStreamAnswer)
	if err != nil || seq != 2 || code != streamOK {
		t.Fatalf("first answer: seq %d code %d %q %v, want the untagged write's (seq 2)", seq, code, payload, err)
	}
}

// While a server does not gossip that it applies tagged commands (an
// older version), the leader logs forwarded writes untagged and answers
// them; once it does, they are tagged again.
func TestLeaderDropsTheTagWhileAServerCannotApplyIt(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(3, nil)
	f1, f2 := twoFollowers(c, l)
	setForwarded(t, c, f2, false)
	before := loggedTagged(t, l)

	conn, br := rawStream(t, l.cfg.HTTPAddr)
	if _, err := conn.Write(frame(streamApply, 1, fsm.EncodeForwarded(77, 1, fsm.Encode(&fsm.KVPut{Key: "raw/a", Value: []byte("a")})))); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	code, seq, payload, err := readFrame(br, maxStreamAnswer)
	var r fsm.Result
	if err == nil {
		err = json.Unmarshal(payload, &r)
	}
	if err != nil || seq != 1 || code != streamOK || r.KV == nil || string(r.KV.Value) != "a" {
		t.Fatalf("answer: seq %d code %d %q %v, want the result of seq 1", seq, code, payload, err)
	}
	put(t, f1, "fw/untagged", "1")
	if n := loggedTagged(t, l); n != before {
		t.Fatalf("%d tagged commands logged while %s cannot apply them", n-before, f2.cfg.Name)
	}

	setForwarded(t, c, f2, true)
	put(t, f1, "fw/tagged", "1")
	if n := loggedTagged(t, l); n != before+1 {
		t.Fatalf("%d tagged commands logged once every server takes them, want 1", n-before)
	}

	// A follower does not tag what it sends a leader that does not say
	// it takes tags.
	setForwarded(t, c, l, false)
	if leaderTakesTagged(f1) {
		t.Fatal("the follower would tag writes for a leader that does not take them")
	}
	put(t, f1, "fw/old-leader", "1")
	if n := loggedTagged(t, l); n != before+1 {
		t.Fatalf("%d more tagged commands logged by a leader that does not take them", n-before-1)
	}
}

// A node outside the configuration never gets the entries its writes
// become, so it must not count on its own apply for their results (it
// forwards them untagged, and the leader answers them).
func TestRemovedServerDoesNotCountOnItsOwnApply(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(3, nil)
	f := followerOf(c, l)
	waitFor(t, settle, func() error {
		if !f.appliesLog() {
			return errors.New("a server of the configuration does not apply the log")
		}
		return nil
	})
	if err := l.raft.RemoveServer(raft.ServerID(f.cfg.Name), 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, settle, func() error {
		f.member.expire() // the reconciler adds it back: look before the cache would
		if f.appliesLog() {
			return errors.New("a removed server still counts itself as applying the log")
		}
		return nil
	})
}

// A leader tells its followers a commit as soon as one waits for it, so a
// write through a follower (which answers once it has applied the write
// itself) or a consistent read there does not wait for Raft's
// CommitTimeout, set here far beyond their deadlines.
func TestFollowerLearnsCommitsAtOnce(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(3, func(cfg *Config) { cfg.CommitTimeout = 10 * time.Minute })
	f := followerOf(c, l)
	waitFor(t, settle, func() error {
		if !f.appliesLog() {
			return errors.New("the follower has not applied the log")
		}
		return nil
	})
	for i := range 5 {
		key := fmt.Sprintf("push/%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := f.Apply(ctx, &fsm.KVPut{Key: key, Value: []byte("v")})
		cancel()
		if err != nil {
			t.Fatalf("put %s through a follower: %v", key, err)
		}
		if f.State().Index() < r.Index {
			t.Fatalf("put %s answered at %d before the follower applied it (%d)", key, r.Index, f.State().Index())
		}
	}
	// The leader's own write is not pushed (no follower waits for it), but
	// a consistent read on a follower, which waits to apply the leader's
	// read index, gets it told.
	r := put(t, l, "push/leader", "v")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idx, err := f.ReadIndex(ctx)
	if err != nil {
		t.Fatalf("consistent read on a follower: %v", err)
	}
	if v, ok := kvGet(f, "push/leader"); idx < r.Index || !ok || v != "v" {
		t.Fatalf("consistent read at %d on a follower after a write at %d: %q %v", idx, r.Index, v, ok)
	}
}

// A new leader tells followers at once what its barrier committed from
// earlier terms: a follower whose forwarded write the old leader logged
// but never told committed waits for exactly that. Here the old leader's
// own write stands in for it: with a commit timeout of 10 minutes and no
// push for a leader's own writes, the third node learns the write's
// commit only from the new leader's kick.
func TestNewLeaderTellsFollowersWhatItCommitted(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(3, func(cfg *Config) { cfg.CommitTimeout = 10 * time.Minute })
	for _, n := range c.live() {
		waitFor(t, settle, func() error {
			if !n.appliesLog() {
				return fmt.Errorf("%s has not applied the log", n.cfg.Name)
			}
			return nil
		})
	}
	r := put(t, l, "old-term", "v")
	next, third := twoFollowers(c, l)
	if err := l.raft.LeadershipTransferToServer(raft.ServerID(next.cfg.Name), raft.ServerAddress(next.cfg.RaftAddr)).Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	waitFor(t, settle, func() error {
		if !next.IsLeader() {
			return errors.New("the transfer's target does not lead yet")
		}
		return nil
	})
	waitFor(t, 10*time.Second, func() error {
		if third.State().Index() < r.Index {
			return fmt.Errorf("%s applied up to %d, the old leader's write is at %d", third.cfg.Name, third.State().Index(), r.Index)
		}
		return nil
	})
	if v, ok := kvGet(third, "old-term"); !ok || v != "v" {
		t.Fatalf("%s has old-term = %q %v after applying past it", third.cfg.Name, v, ok)
	}
}
