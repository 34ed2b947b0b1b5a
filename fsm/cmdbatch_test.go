package fsm

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// rawCmd is a test-only command whose encoding is exactly data, for
// entries no real command would produce.
type rawCmd struct{ data []byte }

func (r *rawCmd) Type() CmdType      { return CmdType(r.data[0]) }
func (r *rawCmd) encode(e *encoder)  { e.b = append(e.b, r.data[1:]...) }
func (r *rawCmd) decode(*decoder)    {}
func (r *rawCmd) apply(*txn) *Result { panic("rawCmd applied") }

func batchCases() []cmdCase {
	tooMany := make([]Command, MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = &NodeRemove{Name: "n"}
	}
	maxed := make([]Command, MaxBatch)
	for i := range maxed {
		maxed[i] = put("k"+itoa(i), "v")
	}
	return []cmdCase{
		{
			name:  "each sub-command succeeds or fails on its own, in order",
			setup: []Command{put("k", "v1")},
			cmd: &Batch{Cmds: []Command{
				&KVPut{Key: "k", Value: []byte("v2"), HasCAS: true, CAS: 1},
				&KVPut{Key: "k", Value: []byte("v3"), HasCAS: true, CAS: 1}, // k is now at 2
				&KVDelete{},                  // invalid
				push("q", "x"),               // allocates item 2
				acquire("l", "o", 100, 1000), // token 3: item 2 took the index
				&NodeRemove{Name: "missing"}, // not found
			}},
			check: func(t *testing.T, h *harness, r *Result) {
				if len(r.Batch) != 6 {
					t.Fatalf("%d results for 6 commands", len(r.Batch))
				}
				for i, sub := range r.Batch {
					if sub.Index != 2 {
						t.Fatalf("sub-result %d has index %d", i, sub.Index)
					}
				}
				requireEqual(t, "put", r.Batch[0].KV, &KV{Key: "k", Value: []byte("v2"), CreateRev: 1, ModRev: 2, Version: 2})
				requireErr(t, r.Batch[1], ErrConflict, "cas")
				requireErr(t, r.Batch[2], ErrInvalid, "key")
				requireEqual(t, "item", r.Batch[3].Item, &QueueItem{ID: 2, Data: []byte("x"), Enqueued: 1000})
				requireEqual(t, "lock", r.Batch[4].Lock, &Lock{Name: "l", Owner: "o", Token: 3, Acquired: 1000, Expiry: 1100})
				requireErr(t, r.Batch[5], ErrNotFound, "name")
				requireKV(t, h, &KV{Key: "k", Value: []byte("v2"), CreateRev: 1, ModRev: 2, Version: 2})
				h.requireChanges(2, ch("kv", "k", "put"), ch("queue", "q", "put"), ch("lock", "l", "put"))
			},
		},
		{
			name:  "later sub-commands see earlier ones",
			setup: []Command{put("x", "y")},
			cmd: &Batch{Cmds: []Command{
				put("k", "1"),
				&KVPut{Key: "k", Value: []byte("2"), HasCAS: true, CAS: 2},
				&KVDelete{Key: "x"},
				&KVPut{Key: "x", Value: []byte("again"), HasCAS: true, CAS: 0},
			}},
			check: func(t *testing.T, h *harness, r *Result) {
				for i, sub := range r.Batch {
					if sub.Err != nil {
						t.Fatalf("sub-command %d: %v", i, sub.Err)
					}
				}
				requireKV(t, h, &KV{Key: "k", Value: []byte("2"), CreateRev: 2, ModRev: 2, Version: 2})
				requireKV(t, h, &KV{Key: "x", Value: []byte("again"), CreateRev: 2, ModRev: 2, Version: 1})
			},
		},
		{
			name: "empty batch",
			cmd:  &Batch{},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Err != nil || len(r.Batch) != 0 {
					t.Fatalf("result %s", jsonString(r))
				}
				h.requireChanges(1)
			},
		},
		{
			name: "largest batch",
			cmd:  &Batch{Cmds: maxed},
			check: func(t *testing.T, h *harness, r *Result) {
				if len(r.Batch) != MaxBatch || len(h.changesAt(1)) != MaxBatch {
					t.Fatalf("%d results", len(r.Batch))
				}
			},
		},
		{
			name:  "nested batch",
			setup: []Command{put("k", "v")},
			cmd:   &Batch{Cmds: []Command{put("a", "b"), &Batch{Cmds: []Command{put("c", "d")}}}},
			code:  ErrInvalid,
		},
		{name: "too many commands", cmd: &Batch{Cmds: tooMany}, code: ErrInvalid},
		{
			name:  "undecodable sub-entry rejects the whole batch",
			setup: []Command{put("k", "v")},
			cmd:   &rawCmd{EncodeBatch([][]byte{Encode(put("a", "b")), {0xff}})},
			code:  ErrInvalid,
		},
		{
			name:  "empty sub-entry rejects the whole batch",
			setup: []Command{put("k", "v")},
			cmd:   &rawCmd{EncodeBatch([][]byte{Encode(put("a", "b")), {}})},
			code:  ErrInvalid,
		},
	}
}

func TestApplyBatchCommand(t *testing.T) { runCmdCases(t, batchCases()) }

func TestBatchOfFailuresChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.ok(put("k", "v"))
	h.ok(push("q", "x"))
	before := dumpState(t, h.s)
	r := h.ok(&Batch{Cmds: []Command{
		&KVPut{Key: "k", HasCAS: true, CAS: 0},
		&LeaseRevoke{ID: 5},
		&QueueAck{Queue: "q", ID: 2, Consumer: "c"},
		&LockRelease{Name: "l", Owner: "o"},
		&BlueprintDelete{Name: "bp"},
	}})
	for i, sub := range r.Batch {
		if sub.Err == nil {
			t.Fatalf("sub-command %d succeeded", i)
		}
	}
	h.requireUnchanged(before)
}

func TestBatchMatchesSeparateEntries(t *testing.T) {
	// Without commands that take an ID from the index, a batch gives the
	// same state as its commands applied alone (revisions aside, which
	// the batch shares by design).
	cmds := []Command{
		put("a", "1"), put("b", "2"), &KVDelete{Key: "a"}, upsert("n", NodeAlive, 5),
		&KVPut{Key: "b", HasCAS: true, CAS: 99}, &NodeRemove{Name: "zzz"}, &ClusterInit{ClusterID: "c", Key: testKey},
	}
	one := newHarness(t)
	var alone []*Result
	for _, c := range cmds {
		alone = append(alone, one.apply(c))
	}
	batched := newHarness(t)
	r := batched.ok(&Batch{Cmds: cmds})
	for i := range cmds {
		a, b := alone[i], r.Batch[i]
		// Messages may quote revisions, which differ.
		if (a.Err == nil) != (b.Err == nil) || (a.Err != nil && (a.Err.Code != b.Err.Code || a.Err.Field != b.Err.Field)) {
			t.Fatalf("command %d: alone %s, batched %s", i, jsonString(a), jsonString(b))
		}
	}
	fa, fb := readFullView(t, one.s), readFullView(t, batched.s)
	requireEqual(t, "kv values", len(fb.KVs), len(fa.KVs))
	if len(fa.KVs) != 1 || string(fa.KVs[0].Value) != string(fb.KVs[0].Value) {
		t.Fatalf("kv %s vs %s", jsonString(fa.KVs), jsonString(fb.KVs))
	}
	requireEqual(t, "nodes", fb.Nodes, fa.Nodes)
	requireEqual(t, "cluster", fb.ClusterID, fa.ClusterID)
}

// TestBatchSubCommandsGetDistinctIDs: commands that take their ID from the
// entry's index (QueuePush items, LeaseGrant and KVPut-with-TTL leases,
// lock tokens) collide inside one Batch, where every sub-command shares
// the index. The second push overwrites the first (the item is lost while
// both clients were told it was queued), and the second lease overwrites
// the first, leaving a stale expiry entry behind.
func TestBatchSubCommandsGetDistinctIDs(t *testing.T) {
	h := newHarness(t)
	r := h.ok(&Batch{Cmds: []Command{
		push("q", "first"), push("q", "second"),
		&LeaseGrant{TTLms: 100}, &LeaseGrant{TTLms: 99999},
	}})
	var data []string
	for _, it := range h.queue("q") {
		data = append(data, string(it.Data))
	}
	requireEqual(t, "queue after two pushes in one batch", data, []string{"first", "second"})
	if r.Batch[0].Item.ID == r.Batch[1].Item.ID {
		t.Fatalf("two items share ID %d", r.Batch[0].Item.ID)
	}
	if r.Batch[2].Lease.ID == r.Batch[3].Lease.ID {
		t.Fatalf("two leases share ID %d", r.Batch[2].Lease.ID)
	}
	checkInvariants(t, h.s)
}

func TestEncodeBatchMatchesEncode(t *testing.T) {
	for _, sizes := range [][]int{{}, {0}, {1, 2, 3}, {127, 128}, {200, 16383, 16384, 70000}} {
		var cmds []Command
		var encoded [][]byte
		for _, n := range sizes {
			c := &KVPut{Key: "k", Value: bytes.Repeat([]byte("v"), n)}
			cmds = append(cmds, c)
			encoded = append(encoded, Encode(c))
		}
		got := EncodeBatch(encoded)
		if want := Encode(&Batch{Cmds: cmds}); !bytes.Equal(got, want) {
			t.Fatalf("sizes %v: EncodeBatch differs from Encode(&Batch{})", sizes)
		}
		if len(got) != cap(got) {
			t.Errorf("sizes %v: EncodeBatch sized its buffer %d for %d bytes", sizes, cap(got), len(got))
		}
		c, err := Decode(got)
		if err != nil {
			t.Fatalf("sizes %v: %v", sizes, err)
		}
		if b := c.(*Batch); len(b.Cmds) != len(sizes) {
			t.Fatalf("sizes %v: decoded %d commands", sizes, len(b.Cmds))
		}
	}
}

func TestBatchStampsItsCommands(t *testing.T) {
	b := &Batch{Cmds: []Command{put("a", "b"), &NodeRemove{Name: "n"}, &Expire{}, &QueueClaim{}}}
	Stamp(b, time.UnixMilli(4242))
	if b.Cmds[0].(*KVPut).Now != 4242 || b.Cmds[2].(*Expire).Now != 4242 || b.Cmds[3].(*QueueClaim).Now != 4242 {
		t.Fatalf("batch not stamped: %s", jsonString(b.Cmds))
	}
	if b.Cmds[1].(*NodeRemove).Name != "n" {
		t.Fatal("unstamped command changed")
	}
}

func TestBatchDecodeLimits(t *testing.T) {
	// A huge count is refused before anything is allocated for it.
	huge := []byte{byte(CmdBatch), 0xff, 0xff, 0xff, 0xff, 0x0f}
	if _, err := Decode(huge); err == nil {
		t.Fatal("decoded a batch claiming 2^32 commands")
	}
	// The count is checked against MaxBatch even when the bytes are there.
	entries := make([][]byte, MaxBatch+1)
	for i := range entries {
		entries[i] = Encode(&NodeRemove{})
	}
	if _, err := Decode(EncodeBatch(entries)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("oversized batch: %v", err)
	}
	if _, err := Decode(EncodeBatch(entries[:MaxBatch])); err != nil {
		t.Fatalf("batch of MaxBatch: %v", err)
	}
}
