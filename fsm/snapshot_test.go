package fsm

import (
	"bytes"
	"errors"
	"go.etcd.io/bbolt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// buildRichState applies commands that leave every kind of object in the
// state: keys with and without leases, bare leases, queues (nested
// buckets, one of them emptied), claimed items, locks, nodes, blueprint
// versions with sealed secrets, a deleted blueprint, and the cluster
// identity. It returns the lease IDs it created.
func buildRichState(t *testing.T, h *harness) []uint64 {
	t.Helper()
	h.ok(&ClusterInit{ClusterID: "cluster-1", Key: testKey})
	h.ok(put("plain", "value"))
	h.ok(&KVPut{Key: "binary", Value: []byte{0, 1, 2, 0xff}, Now: 1000})
	ttl := h.ok(&KVPut{Key: "leased/1", Value: []byte("x"), TTLms: 5000, Now: 1000}).KV.Lease
	h.ok(&KVPut{Key: "leased/2", Value: []byte("y"), Lease: ttl})
	bare := h.ok(&LeaseGrant{TTLms: 9000, Now: 1000}).Lease.ID
	h.ok(put("plain", "value2"))
	h.ok(&KVPut{Key: "empty"})
	h.ok(push("jobs", "j1"))
	h.ok(push("jobs", "j2"))
	h.ok(push("mail", "m1"))
	h.ok(claim("jobs", "w1", 1000))
	h.ok(push("done", "d1"))
	h.ok(claim("done", "w2", 1000))
	h.ok(&QueueAck{Queue: "done", ID: h.idx - 1, Consumer: "w2"}) // leaves an empty nested bucket
	h.ok(acquire("deploy", "alice", 10000, 1000))
	h.ok(acquire("other", "bob", 20000, 1000))
	h.ok(upsert("n1", NodeAlive, 1000))
	h.ok(upsert("n2", NodeSuspect, 1000))
	bp := validBlueprint()
	bp.Secrets = map[string]string{"TOKEN": "t0k3n"}
	h.ok(bpPut(t, bp, 1000))
	bp = validBlueprint()
	bp.Secrets = map[string]string{"TOKEN": "t0k3n", "OTHER": "x"}
	bp.Resources.CPUMHz = 300
	h.ok(bpPut(t, bp, 2000))
	gone := validBlueprint()
	gone.Name = "gone"
	h.ok(bpPut(t, gone, 2000))
	h.ok(&BlueprintDelete{Name: "gone"})
	// Fleets and ships: the fleet game of the latest web, with a ready
	// ship, a scheduled one (in its node's queue), a queued one and a
	// stopped one; a standalone ship; a draining node.
	h.ok(&NodeReport{Name: "n1", PortsRange: "20000-20009", HostPorts: []int{20009}, Now: 2000})
	h.ok(fleetPut("game", 4, FleetVersion{Blueprint: "web"}))
	ids := shipIDsOf(h.ok(&ShipCreate{Fleet: "game", Blueprint: "web", Version: 2, Count: 4, Now: 3000}))
	h.ok(placeCmd(place(ids[0], "n1", 20000), place(ids[1], "n1", 20001)))
	h.ok(report("n1", ids[0], ShipReady))
	h.ok(stop(StopUser, ids[3]))
	h.ok(&ShipCreate{Blueprint: "web", Count: 1, Now: 3000})
	h.ok(&FleetPut{Spec: Fleet{Name: "spare", Replicas: 0, Versions: []FleetVersion{{Blueprint: "web", Version: 1}},
		Placement: &Placement{Constraints: []Constraint{{Label: "region", Op: "=", Value: "eu"}}}}, Now: 3000})
	h.ok(&NodeDrain{Name: "n2", Enable: true, Now: 3000})
	h.apply(put("", "rejected")) // a rejection at the end still moves the index
	return []uint64{ttl, bare}
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := newHarness(t)
	leases := buildRichState(t, src)
	snap := snapshotBytes(t, src.s)

	// The snapshot holds exactly what the database holds, nested buckets
	// (including the emptied queue) included.
	recs, err := parseSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	requireEqual(t, "snapshot records vs database", recs, dumpDB(t, src.s))
	var nested []string
	for _, r := range recs {
		if r.Key == nil && len(r.Path) == 2 {
			nested = append(nested, r.Path[1])
		}
	}
	requireEqual(t, "nested queue buckets", nested, []string{SchedulerQueue, WorkerQueue("n1"), "done", "jobs", "mail"})

	sn, _ := src.s.Snapshot()
	if sn.Index() != src.idx {
		t.Fatalf("Snapshot.Index = %d, want %d", sn.Index(), src.idx)
	}
	sn.Release()

	// Restore into a different state that already holds other data.
	dst := newHarness(t)
	dst.ok(put("stale", "x"))
	dst.ok(upsert("stale-node", NodeDead, 1))
	if err := dst.s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if dst.s.Index() != src.s.Index() {
		t.Fatalf("Index after restore %d, want %d", dst.s.Index(), src.s.Index())
	}
	checkInvariants(t, src.s)
	checkInvariants(t, dst.s)
	if got := snapshotBytes(t, dst.s); !bytes.Equal(got, snap) {
		t.Fatalf("restored state dumps differently:\n%s", diffLines(dumpState(t, src.s), dumpState(t, dst.s)))
	}
	want := readFullView(t, src.s, leases...)
	got := readFullView(t, dst.s, leases...)
	requireEqual(t, "views after restore", got, want)
	if _, ok := dst.kv("stale"); ok {
		t.Fatal("restore kept a key of the old state")
	}
	// Spot-check the views are populated at all (a broken readFullView
	// would make the comparison above vacuous).
	if len(want.KVs) != 5 || len(want.Leases) != 2 || len(want.Locks) != 2 || len(want.Queues) != 4 ||
		len(want.Nodes) != 2 || len(want.Versions["web"]) != 2 || want.Secrets["web"]["OTHER"] != "x" ||
		want.ClusterID != "cluster-1" || !want.HasExpiry || len(want.Fleets) != 2 || len(want.Ships) != 5 || len(want.Queued) != 2 ||
		want.Nodes[0].Ships != 2 || len(want.Nodes[0].UsedPorts) != 2 || !want.Nodes[1].Drain {
		t.Fatalf("rich state is missing objects: %s", jsonString(want))
	}
	// The restored indexes answer filtered reads the same.
	for _, f := range []ShipFilter{{Fleet: "game"}, {Node: "n1"}, {Fleet: "game", Node: "n1", State: ShipReady}, {State: ShipQueued}} {
		var a, b []*Ship
		src.view(func(v *View) { a = v.Ships(f) })
		dst.view(func(v *View) { b = v.Ships(f) })
		if len(a) == 0 {
			t.Fatalf("no ships match %+v", f)
		}
		requireEqual(t, "ships after restore", b, a)
	}

	// Both states carry on identically.
	dst.idx = src.idx
	for _, c := range []Command{
		&Expire{Now: 6000},
		claim("jobs", "w3", 6000),
		&QueueAck{Queue: "jobs", ID: 9, Consumer: "w3"},
		&LockRelease{Name: "deploy", Owner: "alice"},
		bpPut(t, validBlueprint(), 7000),
		put("after", "restore"),
		// The ships of buildRichState: game-q ready on n1, game-s
		// scheduled on n1, game-u queued, game-w stopped; the fleet is one
		// short, and its new ship is game-14 (queued; the surplus stop keeps it).
		&ShipCreate{Fleet: "game", Blueprint: "web", Version: 2, Count: 2, Now: 7000},
		&ShipPlace{Places: []Place{{Ship: "game-u", Node: "n1", Ports: []int{20002}}}, Pending: []Pending{{Ship: "game-14", Reason: "waiting"}}, Now: 7000},
		report("n1", "game-s", ShipReady),
		&ShipStop{Ships: []string{"game-u"}, Why: StopUser, Now: 7000},
		report("n1", "game-u", ShipStopped),
		&FleetScale{Name: "game", Replicas: 1, Now: 7000},
		&ShipStop{Ships: []string{"game-q", "game-s", "game-14"}, Why: StopSurplus, Now: 7000},
		&ShipPurge{Ships: []string{"game-u", "game-w"}},
		&NodeDrain{Name: "n2", Now: 7000},
		&FleetDelete{Name: "spare", Now: 7000},
		upsert("n1", NodeDead, 7000),
		&ShipLost{Node: "n1", Reason: "dead", Now: 7000},
	} {
		a, b := src.apply(c), dst.apply(c)
		requireEqual(t, "result after restore", b, a)
	}
	if !bytes.Equal(snapshotBytes(t, src.s), snapshotBytes(t, dst.s)) {
		t.Fatal("states diverged after restore")
	}
	checkInvariants(t, dst.s)
	// The ship commands above did what they say (they would all be no-ops
	// if the ids had drifted).
	var states []string
	dst.view(func(v *View) {
		for _, s := range v.Ships(ShipFilter{Fleet: "game"}) {
			states = append(states, s.ID+" "+s.State)
		}
	})
	requireEqual(t, "game ships", states, []string{"game-14 queued", "game-q lost", "game-s lost"})
}

func TestSnapshotIsPointInTime(t *testing.T) {
	h := newHarness(t)
	h.ok(put("a", "1"))
	h.ok(push("q", "x"))
	before := snapshotBytes(t, h.s)
	sn, err := h.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Apply goes on while the snapshot is open.
	h.ok(put("a", "2"))
	h.ok(&KVDelete{Key: "a"})
	h.ok(push("q2", "y"))
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if sn.Index() != 2 {
		t.Fatalf("snapshot index %d", sn.Index())
	}
	sn.Release()
	if !bytes.Equal(buf.Bytes(), before) {
		t.Fatal("snapshot saw later entries")
	}
}

func TestSnapshotOfEmptyState(t *testing.T) {
	src := newHarness(t)
	snap := snapshotBytes(t, src.s)
	dst := newHarness(t)
	dst.ok(put("a", "b"))
	if err := dst.s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if dst.s.Index() != 0 || !bytes.Equal(snapshotBytes(t, dst.s), snap) {
		t.Fatal("restoring an empty snapshot did not give an empty state")
	}
}

func TestSnapshotWriteError(t *testing.T) {
	h := newHarness(t)
	buildRichState(t, h)
	sn, err := h.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	boom := errors.New("disk full")
	if _, err := sn.WriteTo(failWriter{boom}); !errors.Is(err, boom) {
		t.Fatalf("WriteTo to a failing writer: %v", err)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestStateReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, s: s}
	buildRichState(t, h)
	want := snapshotBytes(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Index() != h.idx || !bytes.Equal(snapshotBytes(t, s2), want) {
		t.Fatal("reopened state differs")
	}
	// The feed starts at the reopened index.
	if _, _, err := s2.Changes(h.idx - 1); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Changes before the reopened index: %v", err)
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := Remove(path); err != nil {
		t.Fatalf("Remove of a missing file: %v", err)
	}
}

// TestRestoreRejectsCorruptSnapshots flips bytes and truncates a real
// snapshot: every variant must fail to restore and leave the target state
// as it was and usable.
func TestRestoreRejectsCorruptSnapshots(t *testing.T) {
	src := newHarness(t)
	buildRichState(t, src)
	snap := snapshotBytes(t, src.s)

	dst := newHarness(t)
	dst.ok(put("keep", "me"))
	dst.ok(push("q", "item"))
	wantDump := snapshotBytes(t, dst.s)
	restorePath := dst.s.path + ".restore"

	variants := map[string]io.Reader{
		"empty":            bytes.NewReader(nil),
		"bad magic":        bytes.NewReader(append([]byte("ARMADA-SNAP\x02"), snap[len(snapMagic):]...)),
		"no end record":    bytes.NewReader(snap[:len(snap)-5]),
		"reader error":     iotest.ErrReader(errors.New("disk")),
		"error mid-way":    io.MultiReader(bytes.NewReader(snap[:len(snap)/2]), iotest.ErrReader(errors.New("network"))),
		"unknown record":   bytes.NewReader(append(append([]byte{}, snapMagic...), 'Z')),
		"pair first":       bytes.NewReader(append(append([]byte{}, snapMagic...), recPair, 1, 'k', 1, 'v')),
		"zero-length key":  bytes.NewReader(withCRC(append(append([]byte{}, snapMagic...), recBucket, 1, 2, 'k', 'v', recPair, 0, 1, 'v', recEnd))),
		"deep path":        bytes.NewReader(append(append([]byte{}, snapMagic...), recBucket, 17)),
		"empty path":       bytes.NewReader(withCRC(append(append([]byte{}, snapMagic...), recBucket, 0, recEnd))),
		"empty path first": bytes.NewReader(append(append([]byte{}, snapMagic...), recBucket, 0, recPair, 1, 'k', 1, 'v')),
	}
	// Flip bytes across the whole snapshot (two patterns), and truncate at
	// many lengths. CRC-32 catches every single-byte error.
	step := max(1, len(snap)/150)
	for i := 0; i < len(snap); i += step {
		variants["flip 0x01 at "+itoa(i)] = bytes.NewReader(flip(snap, i, 0x01))
		variants["flip 0x80 at "+itoa(i)] = bytes.NewReader(flip(snap, i, 0x80))
		variants["truncated to "+itoa(i)] = bytes.NewReader(snap[:i])
	}
	for i := len(snap) - 6; i < len(snap); i++ { // end record and checksum
		variants["flip 0xff at "+itoa(i)] = bytes.NewReader(flip(snap, i, 0xff))
		variants["truncated to "+itoa(i)] = bytes.NewReader(snap[:i])
	}
	for name, r := range variants {
		if err := dst.s.Restore(r); err == nil {
			t.Fatalf("%s: Restore succeeded", name)
		}
		if dst.s.Index() != 2 {
			t.Fatalf("%s: index moved to %d", name, dst.s.Index())
		}
		if got := snapshotBytes(t, dst.s); !bytes.Equal(got, wantDump) {
			t.Fatalf("%s: failed restore changed the state", name)
		}
		if _, err := os.Stat(restorePath); !os.IsNotExist(err) {
			t.Fatalf("%s: restore file left behind: %v", name, err)
		}
	}
	// Still usable: applies and reads work, and a good snapshot restores.
	dst.ok(put("keep", "me too"))
	if kv, ok := dst.kv("keep"); !ok || string(kv.Value) != "me too" {
		t.Fatalf("state unusable after failed restores: %v", kv)
	}
	if err := dst.s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("good snapshot after failures: %v", err)
	}
	if !bytes.Equal(snapshotBytes(t, dst.s), snap) {
		t.Fatal("good snapshot restored wrongly")
	}
}

func flip(b []byte, i int, mask byte) []byte {
	c := bytes.Clone(b)
	c[i] ^= mask
	return c
}

// withCRC appends the checksum a snapshot ends with.
func withCRC(b []byte) []byte {
	cw := &crcWriter{w: io.Discard}
	cw.Write(b)
	return append(b, byte(cw.crc>>24), byte(cw.crc>>16), byte(cw.crc>>8), byte(cw.crc))
}

// A snapshot whose allocation request IDs do not decode is refused by the
// check every restore from a file goes through: the leader's Expire would
// otherwise panic on every node at the same entry.
func TestCheckSnapshotRejectsBadAllocIDs(t *testing.T) {
	for name, bad := range map[string]func(tx *bbolt.Tx) error{
		"short expiry key":    func(tx *bbolt.Tx) error { return tx.Bucket(bAllocIDExp).Put([]byte{1, 2}, []byte{}) },
		"expiry key no fleet": func(tx *bbolt.Tx) error { return tx.Bucket(bAllocIDExp).Put(append(u64(5), 'x'), []byte{}) },
		"id not encoded":      func(tx *bbolt.Tx) error { return tx.Bucket(bAllocIDs).Put(allocIDKey("game", "r"), []byte{0xff}) },
		"id trailing bytes": func(tx *bbolt.Tx) error {
			return tx.Bucket(bAllocIDs).Put(allocIDKey("game", "r"), []byte{1, 'a', 2, 9})
		},
	} {
		src := newHarness(t)
		for _, c := range readyWorld(allocCmd(AllocRequest{Fleet: "game", RequestID: "r1"})) {
			src.ok(c)
		}
		if _, err := CheckSnapshot(bytes.NewReader(snapshotBytes(t, src.s)), t.TempDir()); err != nil {
			t.Fatalf("%s: the good snapshot: %v", name, err)
		}
		if err := src.s.db.Update(bad); err != nil {
			t.Fatal(err)
		}
		if _, err := CheckSnapshot(bytes.NewReader(snapshotBytes(t, src.s)), t.TempDir()); err == nil {
			t.Fatalf("%s: passed the check", name)
		}
	}
}
