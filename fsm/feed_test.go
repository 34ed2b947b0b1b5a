package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// guard bounds how long a test waits for something that should happen at
// once; it is a failure timeout, never a delay the test depends on.
const guard = 10 * time.Second

func waitErr(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(guard):
		t.Fatal("timed out")
		return nil
	}
}

func requireNotDone(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s: returned early with %v", what, err)
	default:
	}
}

func TestWaitIndexBlocksUntilReached(t *testing.T) {
	h := newHarness(t)
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		done <- h.s.WaitIndex(context.Background(), 5)
	}()
	<-started
	for i := range 4 {
		h.ok(put(fmt.Sprint("k", i), "v"))
		requireNotDone(t, done, fmt.Sprintf("WaitIndex(5) at index %d", h.idx))
	}
	// A batch that jumps past the target wakes the waiter too.
	h.s.ApplyBatch([]Entry{{Index: 5, Data: Encode(put("k5", "v"))}, {Index: 6}})
	if err := waitErr(t, done); err != nil {
		t.Fatalf("WaitIndex: %v", err)
	}
	// Already reached: returns at once, even with a dead context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.s.WaitIndex(ctx, 6); err != nil {
		t.Fatalf("WaitIndex on a reached index: %v", err)
	}
	if err := h.s.WaitIndex(ctx, 0); err != nil {
		t.Fatalf("WaitIndex(0): %v", err)
	}
}

func TestWaitIndexHonoursContext(t *testing.T) {
	h := newHarness(t)
	h.ok(put("a", "b"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.s.WaitIndex(ctx, 100) }()
	h.ok(put("a", "c"))
	requireNotDone(t, done, "WaitIndex(100)")
	cancel()
	if err := waitErr(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitIndex after cancel: %v", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := h.s.WaitIndex(ctx, 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitIndex past its deadline: %v", err)
	}
}

func TestWaitIndexAndChangesAfterClose(t *testing.T) {
	h := newHarness(t)
	h.ok(put("a", "b"))
	done := make(chan error, 1)
	go func() {
		// Without a deadline: after Close, the only way out is an error.
		done <- h.s.WaitIndex(context.Background(), 10)
	}()
	_, notify, err := h.s.Changes(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, done); err == nil {
		t.Fatal("WaitIndex on a closed state returned nil")
	}
	// Watchers blocked on the notify channel are woken.
	select {
	case <-notify:
	case <-time.After(guard):
		t.Fatal("Close did not wake watchers")
	}
	// A later wait must not spin on the closed channel: it fails at once
	// rather than running until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := h.s.WaitIndex(ctx, 10); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitIndex after Close: %v", err)
	}
	if err := h.s.WaitIndex(ctx, 1); err != nil {
		t.Fatalf("WaitIndex for a reached index after Close: %v", err)
	}
	if _, _, err := h.s.Changes(0); err == nil {
		t.Fatal("Changes on a closed state succeeded")
	}
}

func TestChangesSince(t *testing.T) {
	h := newHarness(t)
	h.ok(put("a", "1"))                              // 1
	h.ok(&KVPut{Key: "b", TTLms: 10})                // 2: lease put, kv put
	h.ok(&KVDelete{Key: "zzz"})                      // 3: nothing
	h.apply(put("", "x"))                            // 4: rejected
	h.s.Apply(5, nil)                                // 5: no data
	h.idx = 5                                        //
	h.ok(&Expire{Now: 10})                           // 6: kv b delete, lease 2 delete
	h.ok(&QueuePush{Queue: "q"})                     // 7
	h.ok(acquire("l", "o", 5, 0))                    // 8
	h.ok(upsert("n", NodeAlive, 0))                  // 9
	h.ok(&BlueprintPut{Spec: *validBlueprint()})     // 10
	h.ok(&ClusterInit{ClusterID: "c", Key: testKey}) // 11
	h.ok(&KVDelete{Prefix: true})                    // 12: kv a delete
	h.ok(&NodeRemove{Name: "n"})                     // 13
	h.ok(&BlueprintDelete{Name: "web"})              // 14
	all := []Change{
		{1, "kv", "a", "put", nil, 0, nil, false, nil},
		{2, "lease", "2", "put", nil, 0, nil, false, nil}, {2, "kv", "b", "put", nil, 0, nil, false, nil},
		{6, "kv", "b", "delete", nil, 0, nil, false, nil}, {6, "lease", "2", "delete", nil, 0, nil, false, nil},
		{7, "queue", "q", "put", nil, 0, nil, false, nil},
		{8, "lock", "l", "put", nil, 0, nil, false, nil},
		{9, "node", "n", "put", nil, 0, nil, false, nil},
		{10, "blueprint", "web", "put", nil, 0, nil, false, nil},
		{11, "cluster", "c", "put", nil, 0, nil, false, nil},
		{12, "kv", "a", "delete", nil, 0, nil, false, nil},
		{13, "node", "n", "delete", nil, 0, nil, false, nil},
		{14, "blueprint", "web", "delete", nil, 0, nil, false, nil},
	}
	for since := uint64(0); since <= 16; since++ {
		got, notify, err := h.s.Changes(since)
		if err != nil {
			t.Fatalf("Changes(%d): %v", since, err)
		}
		for i, c := range got {
			if c.Topic == "kv" && c.Op == "put" && (c.KV == nil || c.KV.Key != c.Key || c.KV.ModRev != c.Rev) {
				t.Fatalf("Changes(%d): a put without its value: %+v", since, c)
			}
			got[i].KV, got[i].Rev, got[i].Prev = nil, 0, nil
		}
		var want []Change
		for _, c := range all {
			if c.Index > since {
				want = append(want, c)
			}
		}
		requireEqual(t, fmt.Sprintf("Changes(%d)", since), got, want)
		select {
		case <-notify:
			t.Fatalf("Changes(%d): notify already closed", since)
		default:
		}
	}
	// The notify channel closes on the next applied entry.
	_, notify, _ := h.s.Changes(14)
	h.ok(put("new", "v"))
	select {
	case <-notify:
	case <-time.After(guard):
		t.Fatal("notify not closed by Apply")
	}
	got, _, _ := h.s.Changes(14)
	if len(got) == 1 && got[0].KV != nil && string(got[0].KV.Value) == "v" {
		got[0].KV, got[0].Rev = nil, 0
	}
	requireEqual(t, "new change", got, []Change{{15, "kv", "new", "put", nil, 0, nil, false, nil}})
}

func TestChangesCompactedAfterRingSize(t *testing.T) {
	h := newHarness(t)
	size := len(h.s.feed.ring)
	// Fill the ring and more, in large batches to keep the test quick.
	const batch = 2000
	total := size + 100
	for n := 0; n < total; {
		var entries []Entry
		for ; n < total && len(entries) < batch; n++ {
			h.idx++
			entries = append(entries, Entry{Index: h.idx, Data: Encode(put(fmt.Sprint("k", n%50), "v"))})
		}
		for _, r := range h.s.ApplyBatch(entries) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	// One change per entry: the oldest 100 are gone.
	for _, since := range []uint64{0, 1, 50, 99} {
		if _, _, err := h.s.Changes(since); !errors.Is(err, ErrCompacted) {
			t.Fatalf("Changes(%d) = %v, want ErrCompacted", since, err)
		}
	}
	got, _, err := h.s.Changes(100)
	if err != nil {
		t.Fatalf("Changes(100): %v", err)
	}
	if len(got) != size || got[0].Index != 101 || got[len(got)-1].Index != uint64(total) {
		t.Fatalf("Changes(100): %d changes from %d to %d", len(got), got[0].Index, got[len(got)-1].Index)
	}
	for i, c := range got {
		if c.Index != uint64(101+i) {
			t.Fatalf("change %d has index %d", i, c.Index)
		}
	}
}

// The ring itself, with a small size, for the edge cases.
func TestFeedRing(t *testing.T) {
	f := newFeed(4, MaxFeedBytes)
	f.reset(0, 0)
	chs := func(idx uint64, keys ...string) []Change {
		var out []Change
		for _, k := range keys {
			out = append(out, Change{Index: idx, Topic: "kv", Key: k, Op: "put"})
		}
		return out
	}
	since := func(s uint64) []Change {
		t.Helper()
		// The ring never keeps changes that can no longer be read: they
		// would only take the place of newer ones.
		for i := range f.n {
			if c := f.ring[(f.start+i)%len(f.ring)]; c.Index <= f.floor {
				t.Fatalf("ring keeps change %+v at or below its floor %d", c, f.floor)
			}
		}
		got, _, err := f.since(s)
		if err != nil {
			t.Fatalf("since(%d): %v", s, err)
		}
		return got
	}
	compacted := func(s uint64) {
		t.Helper()
		if _, _, err := f.since(s); !errors.Is(err, ErrCompacted) {
			t.Fatalf("since(%d) = %v, want ErrCompacted", s, err)
		}
	}

	f.publish(1, chs(1, "a", "b", "c"))
	requireEqual(t, "since 0", since(0), chs(1, "a", "b", "c"))

	// Index 2 pushes out part of index 1: the rest of index 1 goes too, so
	// nobody sees half an entry.
	f.publish(2, chs(2, "d", "e", "f"))
	compacted(0)
	requireEqual(t, "since 1", since(1), chs(2, "d", "e", "f"))

	// An index without changes moves nothing.
	f.publish(3, nil)
	requireEqual(t, "since 1 again", since(1), chs(2, "d", "e", "f"))
	requireEqual(t, "since 3", since(3), []Change(nil))

	// One entry with more changes than the ring holds is dropped whole.
	f.publish(4, chs(4, "g", "h", "i", "j", "k"))
	compacted(1)
	compacted(3)
	requireEqual(t, "since 4", since(4), []Change(nil))

	f.publish(5, chs(5, "l"))
	f.publish(6, chs(6, "m", "n"))
	requireEqual(t, "since 4 after refill", since(4), append(chs(5, "l"), chs(6, "m", "n")...))
	requireEqual(t, "since 5", since(5), chs(6, "m", "n"))
	requireEqual(t, "since 9", since(9), []Change(nil))

	// Exactly full, then one more of a new index.
	f.publish(7, chs(7, "o"))
	requireEqual(t, "full", since(4), append(append(chs(5, "l"), chs(6, "m", "n")...), chs(7, "o")...))
	f.publish(8, chs(8, "p"))
	compacted(4)
	requireEqual(t, "since 5 after wrap", since(5), append(append(chs(6, "m", "n"), chs(7, "o")...), chs(8, "p")...))

	// reset (Restore) forgets everything before the new index.
	f.reset(100, 100)
	compacted(99)
	requireEqual(t, "after reset", since(100), []Change(nil))
}

func TestRestoreResetsChanges(t *testing.T) {
	src := newHarness(t)
	src.ok(put("a", "1"))
	src.ok(put("b", "1"))
	snap := snapshotBytes(t, src.s)

	dst := newHarness(t)
	dst.ok(put("x", "1"))
	_, notify, err := dst.s.Changes(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-notify:
	case <-time.After(guard):
		t.Fatal("Restore did not wake watchers")
	}
	if _, _, err := dst.s.Changes(1); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Changes(1) after restore to 2: %v", err)
	}
	got, _, err := dst.s.Changes(2)
	if err != nil || len(got) != 0 {
		t.Fatalf("Changes(2) after restore: %v %v", got, err)
	}
	dst.idx = 2
	dst.ok(put("c", "1"))
	got, _, _ = dst.s.Changes(2)
	if len(got) == 1 && got[0].KV != nil && got[0].KV.ModRev == 3 {
		got[0].KV = nil
	}
	requireEqual(t, "changes after restore", got, []Change{{3, "kv", "c", "put", nil, 3, nil, false, nil}})
}

// The ring by revision: the changes above a revision, wherever they start
// in an entry, with the index they run to; compacted once a change above
// it has left the ring.
func TestFeedSinceRev(t *testing.T) {
	f := newFeed(4, MaxFeedBytes)
	f.reset(0, 0)
	put := func(idx, rev uint64, key string) Change {
		return Change{Index: idx, Rev: rev, Topic: "kv", Key: key, Op: "put"}
	}
	a, b, c := put(1, 1, "a"), put(1, 2, "b"), put(1, 3, "c") // one entry, three commands
	d := put(2, 4, "d")
	f.publish(1, []Change{a, b, c})
	f.publish(2, []Change{d})
	since := func(rev uint64) []Change {
		t.Helper()
		got, through, _, err := f.sinceRev(rev)
		if err != nil {
			t.Fatalf("sinceRev(%d): %v", rev, err)
		}
		if through != 2 {
			t.Fatalf("sinceRev(%d) runs to %d, want 2", rev, through)
		}
		return got
	}
	requireEqual(t, "above 0", since(0), []Change{a, b, c, d})
	requireEqual(t, "above 1", since(1), []Change{b, c, d})
	requireEqual(t, "above 3", since(3), []Change{d})
	requireEqual(t, "above 4", since(4), []Change(nil))
	requireEqual(t, "above 9", since(9), []Change(nil))
	f.publish(3, []Change{put(3, 5, "e")}) // pushes out the whole first entry
	if _, _, _, err := f.sinceRev(2); !errors.Is(err, ErrCompacted) {
		t.Fatalf("sinceRev(2) after the ring wrapped: %v", err)
	}
	requireEqual(t, "above 3 after the wrap", since3(t, f), []Change{d, put(3, 5, "e")})
	f.reset(10, 20) // a restored state at index 10, revision 20
	if _, _, _, err := f.sinceRev(19); !errors.Is(err, ErrCompacted) {
		t.Fatalf("sinceRev(19) after a reset at revision 20: %v", err)
	}
	if got, _, _, err := f.sinceRev(20); err != nil || got != nil {
		t.Fatalf("sinceRev(20) after a reset at revision 20: %v %v", got, err)
	}
}

func since3(t *testing.T, f *feed) []Change {
	t.Helper()
	got, _, _, err := f.sinceRev(3)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A kv change carries the key's state before it (etcd's prev_kv), and its
// state after a put, whatever the size of the values.
func TestChangesCarryThePreviousValue(t *testing.T) {
	h := newHarness(t)
	h.ok(put("k", "v1"))
	h.ok(put("k", "v2"))
	big := strings.Repeat("b", 300<<10)
	h.ok(put("big", big))
	h.ok(put("big", "small"))
	h.ok(&KVDelete{Key: "k"})
	got, _, err := h.s.Changes(0)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	short := func(kv *KV) string {
		if kv == nil {
			return "-"
		}
		v := string(kv.Value)
		if len(v) > 8 {
			v = fmt.Sprintf("%d bytes", len(v))
		}
		return fmt.Sprintf("%s@%d", v, kv.ModRev)
	}
	for _, c := range got {
		if c.Topic != "kv" {
			continue
		}
		seen = append(seen, fmt.Sprintf("%s %s %s prev %s", c.Op, c.Key, short(c.KV), short(c.Prev)))
	}
	requireEqual(t, "changes", strings.Join(seen, "; "),
		"put k v1@1 prev -; put k v2@2 prev v1@1; put big 307200 bytes@3 prev -; put big small@4 prev 307200 bytes@3; delete k - prev v2@2")
}

// Past MaxFeedBytes the oldest changes let their values go, but stay for
// the readers by index; a reader of values by revision from before them
// is told they are compacted, not given a part.
func TestFeedKeepsABudgetOfBytes(t *testing.T) {
	f := newFeed(64, 10<<10)
	val := &KV{Key: "k", Value: make([]byte, 3<<10)}
	for i := uint64(1); i <= 8; i++ {
		f.publish(i, []Change{{Index: i, Rev: i, Topic: "kv", Key: "k", Op: "put", KV: val, Prev: nil}})
	}
	if f.bytes > 10<<10 || f.n != 8 || f.stripped != 5 {
		t.Fatalf("%d changes, %d stripped, %d bytes: want 8, 5 stripped, within the budget", f.n, f.stripped, f.bytes)
	}
	got, _, err := f.since(0)
	if err != nil || len(got) != 8 || !got[4].Stripped || got[4].KV != nil || got[5].Stripped || got[5].KV == nil {
		t.Fatalf("since(0): %d changes, %v", len(got), err)
	}
	if _, _, _, err := f.sinceRev(4); !errors.Is(err, ErrCompacted) {
		t.Fatalf("sinceRev(4) with the values of 1-5 gone: %v", err)
	}
	if got, _, _, err := f.sinceRev(5); err != nil || len(got) != 3 || got[0].KV == nil {
		t.Fatalf("sinceRev(5): %d changes, %v", len(got), err)
	}
	if f.oldestRev() != 6 {
		t.Fatalf("oldest revision %d, want 6", f.oldestRev())
	}
	// The ring's own size still drops the oldest.
	for i := uint64(9); i <= 70; i++ {
		f.publish(i, []Change{{Index: i, Rev: i, Topic: "kv", Key: "k", Op: "put", KV: val}})
	}
	if f.n != 64 || f.bytes > 10<<10 || f.stripped != 63 { // stripped changes still cost their keys
		t.Fatalf("%d changes, %d stripped, %d bytes after the ring wrapped", f.n, f.stripped, f.bytes)
	}
	f.reset(70, 70)
	if f.bytes != 0 || f.n != 0 || f.stripped != 0 || f.oldestRev() != 71 {
		t.Fatalf("after a reset: %d changes, %d bytes, %d stripped, oldest %d", f.n, f.bytes, f.stripped, f.oldestRev())
	}
}

// EtcdRangeAt reads a range as it was at an older revision from the
// present and the first change after it of each key: keys changed several
// times, deleted, or created since, with limit, count and sort.
func TestEtcdRangeAtAnOlderRevision(t *testing.T) {
	h := newHarness(t)
	for _, k := range []string{"a", "b", "c", "d"} {
		h.ok(put(k, "1"))
	}
	var at uint64
	h.view(func(v *View) { at = v.Revision() })
	h.ok(put("b", "2"))
	h.ok(&KVDelete{Key: "c"})
	h.ok(put("e", "1"))
	h.ok(put("b", "3"))
	h.ok(&KVDelete{Key: "e"})
	h.ok(put("c", "again"))
	changes, _, _, err := h.s.ChangesAfterRev(at)
	if err != nil {
		t.Fatal(err)
	}
	past := map[string]*KV{}
	for _, c := range changes {
		if _, seen := past[c.Key]; c.Topic == "kv" && !seen {
			past[c.Key] = c.Prev
		}
	}
	show := func(r EtcdOpResult) string {
		var out []string
		for _, kv := range r.KVs {
			out = append(out, fmt.Sprintf("%s=%s@%d", kv.Key, kv.Value, kv.ModRev))
		}
		return fmt.Sprintf("%s count=%d more=%v", strings.Join(out, " "), r.Count, r.More)
	}
	h.view(func(v *View) {
		all := &EtcdOp{Key: []byte("a"), RangeEnd: []byte("z")}
		requireEqual(t, "all", show(v.EtcdRangeAt(all, past)), "a=1@1 b=1@2 c=1@3 d=1@4 count=4 more=false")
		two := &EtcdOp{Key: []byte("a"), RangeEnd: []byte("z"), Limit: 2}
		requireEqual(t, "limit 2", show(v.EtcdRangeAt(two, past)), "a=1@1 b=1@2 count=4 more=true")
		from := &EtcdOp{Key: []byte("b\x00"), RangeEnd: []byte("z"), Limit: 2}
		requireEqual(t, "the next page", show(v.EtcdRangeAt(from, past)), "c=1@3 d=1@4 count=2 more=false")
		desc := &EtcdOp{Key: []byte("a"), RangeEnd: []byte("z"), SortOrder: EtcdSortDescend, SortTarget: EtcdSortKey, Limit: 3}
		requireEqual(t, "descending", show(v.EtcdRangeAt(desc, past)), "d=1@4 c=1@3 b=1@2 count=4 more=true")
		requireEqual(t, "the present", show(v.EtcdRange(all)), "a=1@1 b=3@8 c=again@10 d=1@4 count=4 more=false")
	})
}
