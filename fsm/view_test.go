package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestViewKVPrefix(t *testing.T) {
	h := newHarness(t)
	for _, k := range []string{"b/2", "a", "b/1", "b", "b/10", "c/1", "b0"} {
		h.ok(put(k, k))
	}
	keys := func(prefix string, limit int) []string {
		var out []string
		h.view(func(v *View) {
			for _, kv := range v.KVPrefix(prefix, limit) {
				if string(kv.Value) != kv.Key {
					t.Fatalf("key %q has value %q", kv.Key, kv.Value)
				}
				out = append(out, kv.Key)
			}
		})
		return out
	}
	requireEqual(t, "all", keys("", 0), []string{"a", "b", "b/1", "b/10", "b/2", "b0", "c/1"})
	requireEqual(t, "b/", keys("b/", 0), []string{"b/1", "b/10", "b/2"})
	requireEqual(t, "b/ limit 2", keys("b/", 2), []string{"b/1", "b/10"})
	requireEqual(t, "limit larger than matches", keys("b/", 10), []string{"b/1", "b/10", "b/2"})
	requireEqual(t, "none", keys("d", 0), []string(nil))
	requireEqual(t, "exact key is its own prefix", keys("c/1", 0), []string{"c/1"})
}

func TestViewMisses(t *testing.T) {
	h := newHarness(t)
	h.view(func(v *View) {
		if v.Index() != 0 {
			t.Fatalf("index %d", v.Index())
		}
		if _, ok := v.KV("x"); ok {
			t.Fatal("KV on empty state")
		}
		if _, ok := v.Lease(1); ok {
			t.Fatal("Lease on empty state")
		}
		if _, ok := v.Lock("x"); ok {
			t.Fatal("Lock on empty state")
		}
		if _, ok := v.Node("x"); ok {
			t.Fatal("Node on empty state")
		}
		if _, ok := v.Blueprint("x", 0); ok {
			t.Fatal("Blueprint on empty state")
		}
		if _, ok := v.BlueprintInfo("x"); ok {
			t.Fatal("BlueprintInfo on empty state")
		}
		var e *Error
		if _, err := v.BlueprintSecrets("x", 0); !errors.As(err, &e) || e.Code != ErrNotFound {
			t.Fatalf("BlueprintSecrets on empty state: %v", err)
		}
		if _, ok := v.NextExpiry(); ok {
			t.Fatal("NextExpiry on empty state")
		}
		if v.Queue("x") != nil || v.Queues() != nil || v.Locks() != nil || v.Nodes() != nil || v.Blueprints() != nil {
			t.Fatal("lists on empty state")
		}
		if v.SecretKey() != nil || v.ClusterID() != "" {
			t.Fatal("cluster identity before init")
		}
	})
	// A view sees one index, and View's error is passed through.
	h.ok(put("a", "1"))
	boom := errors.New("boom")
	if err := h.s.View(func(v *View) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("View error: %v", err)
	}
	h.view(func(v *View) {
		if v.Index() != 1 {
			t.Fatalf("view index %d", v.Index())
		}
	})
	// SecretKey returns a copy.
	h.ok(&ClusterInit{ClusterID: "c", Key: testKey})
	h.view(func(v *View) {
		k := v.SecretKey()
		k[0] ^= 0xff
		if !bytes.Equal(v.SecretKey(), testKey) {
			t.Fatal("SecretKey aliases the database")
		}
	})
}

// TestConcurrentReadsDuringApplyAndRestore runs views, snapshots and
// watchers while entries are applied and the state is restored, for the
// race detector, and checks that every view is internally consistent: the
// view's index matches the value of a counter key written at every entry.
func TestConcurrentReadsDuringApplyAndRestore(t *testing.T) {
	h := newHarness(t)
	h.ok(put("counter", "1"))
	snap := snapshotBytes(t, h.s) // index 1, counter 1

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := h.s.View(func(v *View) error {
					kv, ok := v.KV("counter")
					if !ok {
						return errors.New("counter missing")
					}
					if string(kv.Value) != fmt.Sprint(v.Index()) {
						return fmt.Errorf("view at %d sees counter %s", v.Index(), kv.Value)
					}
					return nil
				})
				if err != nil {
					report(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // snapshots
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			sn, err := h.s.Snapshot()
			if err != nil {
				report(err)
				return
			}
			var buf bytes.Buffer
			_, err = sn.WriteTo(&buf)
			sn.Release()
			if err != nil {
				report(err)
				return
			}
			if _, err := parseSnapshot(buf.Bytes()); err != nil {
				report(err)
				return
			}
		}
	}()
	wg.Add(1)
	go func() { // a watcher following the feed
		defer wg.Done()
		since := uint64(1)
		for {
			chs, notify, err := h.s.Changes(since)
			if errors.Is(err, ErrCompacted) { // after a restore
				since = h.s.Index()
				continue
			}
			if err != nil {
				report(err)
				return
			}
			for _, c := range chs {
				if c.Index <= since {
					report(fmt.Errorf("change %d not after %d", c.Index, since))
					return
				}
				since = c.Index
			}
			select {
			case <-notify:
			case <-stop:
				return
			}
		}
	}()

	waiter := make(chan error, 1)
	go func() { waiter <- h.s.WaitIndex(context.Background(), 150) }()

	for round := range 3 {
		for i := h.idx + 1; i <= 150; i++ {
			h.idx = i
			if r := h.s.Apply(i, Encode(put("counter", fmt.Sprint(i)))); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		if round < 2 {
			if err := h.s.Restore(bytes.NewReader(snap)); err != nil {
				t.Fatal(err)
			}
			h.idx = 1
		}
	}
	if err := waitErr(t, waiter); err != nil {
		t.Fatalf("WaitIndex: %v", err)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}
