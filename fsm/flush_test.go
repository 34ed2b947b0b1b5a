package fsm

import (
	"bytes"
	"path/filepath"
	"strconv"
	"testing"
)

// Applied entries wait in an open write transaction; every reader must
// still see all of them, and Close must keep them.
func TestAppliedTailIsVisibleBeforeItIsCommitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		if r := s.Apply(uint64(i), Encode(&KVPut{Key: "k" + strconv.Itoa(i), Value: []byte("v")})); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	s.wmu.Lock()
	open := s.wtx != nil
	s.wmu.Unlock()
	if !open {
		t.Fatal("ten small entries were committed at once; the write transaction should still be open")
	}
	var n int
	var idx uint64
	s.View(func(v *View) error {
		n, idx = len(v.KVPrefix("k", 0)), v.Index()
		return nil
	})
	if n != 10 || idx != 10 {
		t.Fatalf("view sees %d keys at index %d, want 10 at 10", n, idx)
	}

	if r := s.Apply(11, Encode(&KVPut{Key: "k11", Value: []byte("v")})); r.Err != nil {
		t.Fatal(r.Err)
	}
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snapIndex := sn.Index()
	sn.Release()
	if snapIndex != 11 || !bytes.Contains(buf.Bytes(), []byte("k11")) {
		t.Fatalf("snapshot at index %d misses the last applied entry", snapIndex)
	}

	if r := s.Apply(12, Encode(&KVPut{Key: "k12", Value: []byte("v")})); r.Err != nil {
		t.Fatal(r.Err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Index() != 12 {
		t.Fatalf("reopened at index %d, want 12", s.Index())
	}
	if _, ok := viewKV(s, "k12"); !ok {
		t.Fatal("Close lost the last applied entry")
	}
}

// A large batch is committed without waiting for a reader.
func TestLargeTailIsCommittedBySize(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	value := bytes.Repeat([]byte("x"), 64<<10)
	for i := 1; i <= flushBytes/len(value); i++ {
		s.Apply(uint64(i), Encode(&KVPut{Key: "big" + strconv.Itoa(i), Value: value}))
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wtx != nil {
		t.Fatalf("%d pending bytes not committed", s.pending)
	}
}

func viewKV(s *State, key string) (*KV, bool) {
	var kv *KV
	var ok bool
	s.View(func(v *View) error {
		kv, ok = v.KV(key)
		return nil
	})
	return kv, ok
}

// One Batch entry of ship creates writes far more keys than flushChanges
// (the scheduler sends a big fleet's creates together, and the leader
// groups them into one entry): the state commits between its commands, or
// BoltDB's quadratic insert into unsplit nodes made one such entry of
// 100,000 ships take over 10 s. The result, the state and the recorded
// index are those of applying the entry whole.
func TestBatchEntryCommitsBetweenItsCommands(t *testing.T) {
	h := newHarness(t)
	h.ok(&BlueprintPut{Spec: *validBlueprint(), Now: 1})
	const per, cmds = 1500, 6 // each create writes a ship, a queue item and an index key per ship
	h.ok(webFleet(per * cmds))
	var batch Batch
	for range cmds {
		batch.Cmds = append(batch.Cmds, &ShipCreate{Fleet: "game", Blueprint: "web", Version: 1, Count: per, Now: 20})
	}
	h.s.wmu.Lock()
	h.s.flushLocked()
	before := h.s.commits
	h.s.wmu.Unlock()

	r := h.ok(&batch)
	h.s.wmu.Lock()
	during := h.s.commits - before
	h.s.wmu.Unlock()
	if during < 2 {
		t.Fatalf("one entry of %d ship creates committed %d times while it applied, want it split (at least 2)", per*cmds, during)
	}
	created := 0
	for i, sub := range r.Batch {
		if sub.Err != nil {
			t.Fatalf("create %d: %v", i, sub.Err)
		}
		created += sub.Count
	}
	if created != per*cmds {
		t.Fatalf("created %d ships, want %d", created, per*cmds)
	}
	var ships, queued int
	h.view(func(v *View) {
		ships = len(v.Ships(ShipFilter{}))
		queued = len(v.Queue(SchedulerQueue))
		requireEqual(t, "view index", v.Index(), h.idx)
	})
	if ships != per*cmds || queued != per*cmds {
		t.Fatalf("state holds %d ships and %d queued, want %d of each", ships, queued, per*cmds)
	}
	// IDs given before a split are recorded with it: the next entry's
	// ship gets a new one.
	h.ok(webFleet(per*cmds + 1))
	r = h.ok(&ShipCreate{Fleet: "game", Blueprint: "web", Version: 1, Count: 1, Now: 30})
	h.view(func(v *View) { ships = len(v.Ships(ShipFilter{})) })
	if ships != per*cmds+1 {
		t.Fatalf("after one more create the state holds %d ships, want %d (ship %s reused an ID)", ships, per*cmds+1, r.Ships[0].ID)
	}
}
