package fsm

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func put(key, val string) *KVPut { return &KVPut{Key: key, Value: []byte(val), Now: 1000} }

func requireKV(t *testing.T, h *harness, want *KV) {
	t.Helper()
	got, ok := h.kv(want.Key)
	if !ok {
		t.Fatalf("key %q missing", want.Key)
	}
	requireEqual(t, "kv "+want.Key, got, want)
}

func requireNoKV(t *testing.T, h *harness, key string) {
	t.Helper()
	if kv, ok := h.kv(key); ok {
		t.Fatalf("key %q still present: %s", key, jsonString(kv))
	}
}

func requireLease(t *testing.T, h *harness, want *Lease) {
	t.Helper()
	got, ok := h.lease(want.ID)
	if !ok {
		t.Fatalf("lease %d missing", want.ID)
	}
	requireEqual(t, "lease", got, want)
}

func requireNoLease(t *testing.T, h *harness, id uint64) {
	t.Helper()
	if l, ok := h.lease(id); ok {
		t.Fatalf("lease %d still present: %s", id, jsonString(l))
	}
}

func kvPutCases() []cmdCase {
	return []cmdCase{
		{
			name: "new key",
			cmd:  put("a/b", "v1"),
			check: func(t *testing.T, h *harness, r *Result) {
				want := &KV{Key: "a/b", Value: []byte("v1"), CreateRev: 1, ModRev: 1, Version: 1}
				requireEqual(t, "result kv", r.KV, want)
				if r.Prev != nil {
					t.Fatalf("prev = %s, want nil", jsonString(r.Prev))
				}
				requireKV(t, h, want)
				h.requireChanges(1, ch("kv", "a/b", "put"))
			},
		},
		{
			name:  "overwrite keeps create index and bumps version",
			setup: []Command{put("k", "v1"), put("other", "x"), put("k", "v2")},
			cmd:   put("k", "v3"),
			check: func(t *testing.T, h *harness, r *Result) {
				want := &KV{Key: "k", Value: []byte("v3"), CreateRev: 1, ModRev: 4, Version: 3}
				requireEqual(t, "result kv", r.KV, want)
				requireEqual(t, "prev", r.Prev, &KV{Key: "k", Value: []byte("v2"), CreateRev: 1, ModRev: 3, Version: 2})
				requireKV(t, h, want)
			},
		},
		{
			name:  "empty value",
			setup: []Command{put("k", "v1")},
			cmd:   &KVPut{Key: "k"},
			check: func(t *testing.T, h *harness, r *Result) {
				kv, _ := h.kv("k")
				if len(kv.Value) != 0 || kv.Version != 2 {
					t.Fatalf("kv = %s", jsonString(kv))
				}
			},
		},
		{
			name:  "CAS matches modify index",
			setup: []Command{put("k", "v1"), put("k", "v2")},
			cmd:   &KVPut{Key: "k", Value: []byte("v3"), HasCAS: true, CAS: 2},
			check: func(t *testing.T, h *harness, r *Result) {
				requireKV(t, h, &KV{Key: "k", Value: []byte("v3"), CreateRev: 1, ModRev: 3, Version: 3})
			},
		},
		{
			name:  "CAS stale modify index",
			setup: []Command{put("k", "v1"), put("k", "v2")},
			cmd:   &KVPut{Key: "k", Value: []byte("v3"), HasCAS: true, CAS: 1},
			code:  ErrConflict, field: "cas",
		},
		{
			name:  "CAS create index is not the modify index",
			setup: []Command{put("k", "v1"), put("k", "v2")},
			cmd:   &KVPut{Key: "k", Value: []byte("v3"), HasCAS: true, CAS: 3},
			code:  ErrConflict, field: "cas",
		},
		{
			name: "CAS 0 creates a missing key",
			cmd:  &KVPut{Key: "k", Value: []byte("v"), HasCAS: true, CAS: 0},
			check: func(t *testing.T, h *harness, r *Result) {
				requireKV(t, h, &KV{Key: "k", Value: []byte("v"), CreateRev: 1, ModRev: 1, Version: 1})
			},
		},
		{
			name:  "CAS 0 on an existing key",
			setup: []Command{put("k", "v1")},
			cmd:   &KVPut{Key: "k", Value: []byte("v2"), HasCAS: true, CAS: 0},
			code:  ErrConflict, field: "cas",
		},
		{
			name: "CAS non-zero on a missing key",
			cmd:  &KVPut{Key: "k", Value: []byte("v"), HasCAS: true, CAS: 7},
			code: ErrConflict, field: "cas",
		},
		{
			name:  "CAS value without HasCAS is ignored",
			setup: []Command{put("k", "v1")},
			cmd:   &KVPut{Key: "k", Value: []byte("v2"), CAS: 99},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.KV.Version != 2 {
					t.Fatalf("version %d", r.KV.Version)
				}
			},
		},
		{
			name:  "TTL creates a lease with the entry's index",
			setup: []Command{put("x", "y")},
			cmd:   &KVPut{Key: "k", Value: []byte("v"), TTLms: 5000, Now: 1000},
			check: func(t *testing.T, h *harness, r *Result) {
				want := &KV{Key: "k", Value: []byte("v"), CreateRev: 2, ModRev: 2, Version: 1, Lease: 2}
				requireEqual(t, "kv", r.KV, want)
				requireKV(t, h, want)
				requireLease(t, h, &Lease{ID: 2, TTLms: 5000, Expiry: 6000})
				h.requireChanges(2, ch("lease", "2", "put"), ch("kv", "k", "put"))
				h.view(func(v *View) {
					if e, ok := v.NextExpiry(); !ok || e != 6000 {
						t.Fatalf("NextExpiry = %d, %v", e, ok)
					}
				})
				// The key is attached to the new lease.
				if r := h.ok(&LeaseRevoke{ID: 2}); r.Deleted != 1 {
					t.Fatalf("revoke deleted %d keys", r.Deleted)
				}
				requireNoKV(t, h, "k")
				requireKV(t, h, &KV{Key: "x", Value: []byte("y"), CreateRev: 1, ModRev: 1, Version: 1})
			},
		},
		{
			name:  "TTL wins over an explicit lease",
			setup: []Command{&LeaseGrant{TTLms: 100, Now: 1000}},
			cmd:   &KVPut{Key: "k", Lease: 1, TTLms: 50, Now: 1000},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.KV.Lease != 2 {
					t.Fatalf("lease %d, want the new lease 2", r.KV.Lease)
				}
				if r := h.ok(&LeaseRevoke{ID: 1}); r.Deleted != 0 {
					t.Fatalf("revoking the unused lease deleted %d keys", r.Deleted)
				}
				requireKV(t, h, r.KV)
			},
		},
		{
			name:  "attach an existing lease",
			setup: []Command{&LeaseGrant{TTLms: 100, Now: 1000}, put("other", "x")},
			cmd:   &KVPut{Key: "k", Value: []byte("v"), Lease: 1},
			check: func(t *testing.T, h *harness, r *Result) {
				requireKV(t, h, &KV{Key: "k", Value: []byte("v"), CreateRev: 3, ModRev: 3, Version: 1, Lease: 1})
				h.requireChanges(3, ch("kv", "k", "put"))
				if r := h.ok(&LeaseRevoke{ID: 1}); r.Deleted != 1 {
					t.Fatalf("revoke deleted %d", r.Deleted)
				}
				requireNoKV(t, h, "k")
				if _, ok := h.kv("other"); !ok {
					t.Fatal("unleased key deleted")
				}
			},
		},
		{
			name:  "missing lease",
			setup: []Command{put("k", "v1")},
			cmd:   &KVPut{Key: "k", Value: []byte("v2"), Lease: 42},
			code:  ErrNotFound, field: "lease",
		},
		{
			name:  "revoked lease",
			setup: []Command{&LeaseGrant{TTLms: 100}, &LeaseRevoke{ID: 1}},
			cmd:   &KVPut{Key: "k", Lease: 1},
			code:  ErrNotFound, field: "lease",
		},
		{
			name:  "put without a lease detaches the key from its lease",
			setup: []Command{&KVPut{Key: "k", Value: []byte("v1"), TTLms: 100}},
			cmd:   put("k", "v2"),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.KV.Lease != 0 || r.Prev.Lease != 1 {
					t.Fatalf("kv lease %d prev lease %d", r.KV.Lease, r.Prev.Lease)
				}
				if r := h.ok(&LeaseRevoke{ID: 1}); r.Deleted != 0 {
					t.Fatalf("revoke deleted %d detached keys", r.Deleted)
				}
				requireKV(t, h, &KV{Key: "k", Value: []byte("v2"), CreateRev: 1, ModRev: 2, Version: 2})
			},
		},
		{
			name: "moving a key to another lease",
			setup: []Command{
				&LeaseGrant{TTLms: 100}, &LeaseGrant{TTLms: 100},
				&KVPut{Key: "k", Lease: 1},
			},
			cmd: &KVPut{Key: "k", Lease: 2},
			check: func(t *testing.T, h *harness, r *Result) {
				if r := h.ok(&LeaseRevoke{ID: 1}); r.Deleted != 0 {
					t.Fatalf("old lease still owned the key")
				}
				if _, ok := h.kv("k"); !ok {
					t.Fatal("key deleted with its old lease")
				}
				if r := h.ok(&LeaseRevoke{ID: 2}); r.Deleted != 1 {
					t.Fatalf("new lease did not own the key")
				}
				requireNoKV(t, h, "k")
			},
		},
		{
			name: "empty key",
			cmd:  &KVPut{Value: []byte("v")},
			code: ErrInvalid, field: "key",
		},
		{
			name: "longest key",
			cmd:  put(strings.Repeat("k", MaxKeyLen), "v"),
		},
		{
			name: "key too long",
			cmd:  put(strings.Repeat("k", MaxKeyLen+1), "v"),
			code: ErrInvalid, field: "key",
		},
		{
			name: "largest value",
			cmd:  &KVPut{Key: "k", Value: bytes.Repeat([]byte("v"), MaxValueLen)},
			check: func(t *testing.T, h *harness, r *Result) {
				kv, _ := h.kv("k")
				if len(kv.Value) != MaxValueLen {
					t.Fatalf("stored %d bytes", len(kv.Value))
				}
			},
		},
		{
			name:  "value too long",
			setup: []Command{put("k", "v1")},
			cmd:   &KVPut{Key: "k", Value: make([]byte, MaxValueLen+1)},
			code:  ErrInvalid, field: "value",
		},
		{
			name: "negative TTL",
			cmd:  &KVPut{Key: "k", TTLms: -1},
			code: ErrInvalid, field: "ttl",
		},
		{
			// Now+TTL must not wrap around: a lease that overflowed would
			// sort after every other expiry and expire at once (or never).
			name: "huge TTL does not overflow the expiry",
			cmd:  &KVPut{Key: "k", TTLms: math.MaxInt64, Now: 1000},
			check: func(t *testing.T, h *harness, r *Result) {
				l, ok := h.lease(1)
				if !ok || l.Expiry <= 1000 {
					t.Fatalf("lease = %s, want an expiry after now", jsonString(l))
				}
				h.ok(&LeaseGrant{TTLms: 10, Now: 1000})
				h.view(func(v *View) {
					if e, _ := v.NextExpiry(); e != 1010 {
						t.Fatalf("NextExpiry = %d, want 1010", e)
					}
				})
				if r := h.ok(&Expire{Now: 1 << 50}); r.Deleted != 0 {
					t.Fatalf("expire deleted %d", r.Deleted)
				}
				if _, ok := h.kv("k"); !ok {
					t.Fatal("key with a huge TTL expired")
				}
				requireNoLease(t, h, 2)
			},
		},
	}
}

func kvDeleteCases() []cmdCase {
	prefixSetup := []Command{put("a/1", "x"), put("a/2", "x"), put("a/3", "x"), put("ab", "x"), put("b", "x"), put("a", "x")}
	return []cmdCase{
		{
			name:  "existing key",
			setup: []Command{put("k", "v"), put("j", "w")},
			cmd:   &KVDelete{Key: "k"},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != 1 {
					t.Fatalf("deleted %d", r.Deleted)
				}
				requireEqual(t, "prev", r.Prev, &KV{Key: "k", Value: []byte("v"), CreateRev: 1, ModRev: 1, Version: 1})
				requireNoKV(t, h, "k")
				requireKV(t, h, &KV{Key: "j", Value: []byte("w"), CreateRev: 2, ModRev: 2, Version: 1})
				h.requireChanges(3, ch("kv", "k", "delete"))
			},
		},
		{
			name:  "missing key succeeds and changes nothing",
			setup: []Command{put("k", "v")},
			cmd:   &KVDelete{Key: "nope"},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != 0 || r.Prev != nil {
					t.Fatalf("result %s", jsonString(r))
				}
				h.requireChanges(2)
			},
		},
		{
			name:  "recreated key starts a new history",
			setup: []Command{put("k", "v"), put("k", "v"), &KVDelete{Key: "k"}},
			cmd:   put("k", "again"),
			check: func(t *testing.T, h *harness, r *Result) {
				requireEqual(t, "kv", r.KV, &KV{Key: "k", Value: []byte("again"), CreateRev: 4, ModRev: 4, Version: 1})
			},
		},
		{
			name:  "CAS matches",
			setup: []Command{put("k", "v"), put("k", "v")},
			cmd:   &KVDelete{Key: "k", HasCAS: true, CAS: 2},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != 1 {
					t.Fatalf("deleted %d", r.Deleted)
				}
				requireNoKV(t, h, "k")
			},
		},
		{
			name:  "CAS stale",
			setup: []Command{put("k", "v"), put("k", "v")},
			cmd:   &KVDelete{Key: "k", HasCAS: true, CAS: 1},
			code:  ErrConflict, field: "cas",
		},
		{
			name:  "CAS 0 on an existing key",
			setup: []Command{put("k", "v")},
			cmd:   &KVDelete{Key: "k", HasCAS: true, CAS: 0},
			code:  ErrConflict, field: "cas",
		},
		{
			name: "CAS non-zero on a missing key",
			cmd:  &KVDelete{Key: "k", HasCAS: true, CAS: 1},
			code: ErrConflict, field: "cas",
		},
		{
			name: "empty key",
			cmd:  &KVDelete{},
			code: ErrInvalid, field: "key",
		},
		{
			name: "key too long",
			cmd:  &KVDelete{Key: strings.Repeat("k", MaxKeyLen+1)},
			code: ErrInvalid, field: "key",
		},
		{
			name:  "prefix",
			setup: prefixSetup,
			cmd:   &KVDelete{Key: "a/", Prefix: true},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != 3 {
					t.Fatalf("deleted %d, want 3", r.Deleted)
				}
				var keys []string
				h.view(func(v *View) {
					for _, kv := range v.KVPrefix("", 0) {
						keys = append(keys, kv.Key)
					}
				})
				requireEqual(t, "remaining keys", keys, []string{"a", "ab", "b"})
				h.requireChanges(7, ch("kv", "a/1", "delete"), ch("kv", "a/2", "delete"), ch("kv", "a/3", "delete"))
			},
		},
		{
			name:  "prefix matching nothing",
			setup: prefixSetup,
			cmd:   &KVDelete{Key: "c", Prefix: true},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != 0 {
					t.Fatalf("deleted %d", r.Deleted)
				}
				h.requireChanges(7)
			},
		},
		{
			name:  "empty prefix deletes everything",
			setup: prefixSetup,
			cmd:   &KVDelete{Prefix: true},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != len(prefixSetup) {
					t.Fatalf("deleted %d", r.Deleted)
				}
				h.view(func(v *View) {
					if kvs := v.KVPrefix("", 0); len(kvs) != 0 {
						t.Fatalf("left %d keys", len(kvs))
					}
				})
			},
		},
		{
			name:  "deleting a leased key detaches it from the lease",
			setup: []Command{&KVPut{Key: "k", TTLms: 100}, &KVPut{Key: "j", Lease: 1}},
			cmd:   &KVDelete{Key: "k"},
			check: func(t *testing.T, h *harness, r *Result) {
				requireLease(t, h, &Lease{ID: 1, TTLms: 100, Expiry: 100})
				if r := h.ok(&LeaseRevoke{ID: 1}); r.Deleted != 1 {
					t.Fatalf("revoke deleted %d, want only j", r.Deleted)
				}
				// No dangling lease_keys entry survives.
				for _, rec := range dumpDB(t, h.s) {
					if len(rec.Path) == 1 && rec.Path[0] == string(bLeaseKeys) && rec.Key != nil {
						t.Fatalf("dangling lease key %s", rec)
					}
				}
			},
		},
		{
			name:  "prefix delete of leased keys detaches them",
			setup: []Command{&KVPut{Key: "p/1", TTLms: 100}, &KVPut{Key: "p/2", Lease: 1}, &KVPut{Key: "q", Lease: 1}},
			cmd:   &KVDelete{Key: "p/", Prefix: true},
			check: func(t *testing.T, h *harness, r *Result) {
				if r := h.ok(&LeaseRevoke{ID: 1}); r.Deleted != 1 {
					t.Fatalf("revoke deleted %d, want only q", r.Deleted)
				}
			},
		},
	}
}

func leaseGrantCases() []cmdCase {
	return []cmdCase{
		{
			name:  "grant",
			setup: []Command{put("x", "y")},
			cmd:   &LeaseGrant{TTLms: 3000, Now: 1000},
			check: func(t *testing.T, h *harness, r *Result) {
				want := &Lease{ID: 2, TTLms: 3000, Expiry: 4000}
				requireEqual(t, "lease", r.Lease, want)
				requireLease(t, h, want)
				h.requireChanges(2, ch("lease", "2", "put"))
			},
		},
		{name: "zero TTL", cmd: &LeaseGrant{TTLms: 0, Now: 1000}, code: ErrInvalid, field: "ttl"},
		{name: "negative TTL", cmd: &LeaseGrant{TTLms: -5, Now: 1000}, code: ErrInvalid, field: "ttl"},
		{
			name: "huge TTL does not overflow the expiry",
			cmd:  &LeaseGrant{TTLms: math.MaxInt64, Now: 1000},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Lease.Expiry <= 1000 {
					t.Fatalf("expiry %d", r.Lease.Expiry)
				}
				if r := h.ok(&Expire{Now: 1 << 50}); r.Deleted != 0 {
					t.Fatal("expired")
				}
				requireLease(t, h, r.Lease)
			},
		},
	}
}

func leaseKeepAliveCases() []cmdCase {
	return []cmdCase{
		{
			name:  "extends the expiry from now",
			setup: []Command{&LeaseGrant{TTLms: 5000, Now: 1000}, &KVPut{Key: "k", Lease: 1}},
			cmd:   &LeaseKeepAlive{ID: 1, Now: 3000},
			check: func(t *testing.T, h *harness, r *Result) {
				want := &Lease{ID: 1, TTLms: 5000, Expiry: 8000}
				requireEqual(t, "lease", r.Lease, want)
				requireLease(t, h, want)
				h.requireChanges(3, ch("lease", "1", "put"))
				// The old expiry is forgotten: expiring at it keeps the lease.
				if r := h.ok(&Expire{Now: 7999}); r.Deleted != 0 {
					t.Fatalf("expire at the old expiry deleted %d", r.Deleted)
				}
				requireLease(t, h, want)
				if r := h.ok(&Expire{Now: 8000}); r.Deleted != 1 {
					t.Fatalf("expire at the new expiry deleted %d", r.Deleted)
				}
				requireNoLease(t, h, 1)
				requireNoKV(t, h, "k")
			},
		},
		{name: "missing lease", setup: []Command{&LeaseGrant{TTLms: 5}}, cmd: &LeaseKeepAlive{ID: 9, Now: 1}, code: ErrNotFound, field: "lease"},
		{name: "expired lease", setup: []Command{&LeaseGrant{TTLms: 5}, &Expire{Now: 5}}, cmd: &LeaseKeepAlive{ID: 1, Now: 6}, code: ErrNotFound, field: "lease"},
	}
}

func leaseRevokeCases() []cmdCase {
	return []cmdCase{
		{
			name: "deletes attached keys only",
			setup: []Command{
				&LeaseGrant{TTLms: 5000, Now: 1000},
				&KVPut{Key: "a", Lease: 1},
				&KVPut{Key: "b", Lease: 1},
				put("c", "free"),
				&KVPut{Key: "d", TTLms: 10},
			},
			cmd: &LeaseRevoke{ID: 1},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != 2 {
					t.Fatalf("deleted %d, want 2", r.Deleted)
				}
				requireEqual(t, "lease", r.Lease, &Lease{ID: 1, TTLms: 5000, Expiry: 6000})
				requireNoKV(t, h, "a")
				requireNoKV(t, h, "b")
				requireNoLease(t, h, 1)
				for _, k := range []string{"c", "d"} {
					if _, ok := h.kv(k); !ok {
						t.Fatalf("key %s deleted", k)
					}
				}
				requireLease(t, h, &Lease{ID: 5, TTLms: 10, Expiry: 10})
				h.requireChanges(6, ch("kv", "a", "delete"), ch("kv", "b", "delete"), ch("lease", "1", "delete"))
				// Its expiry is gone too.
				h.view(func(v *View) {
					if e, _ := v.NextExpiry(); e != 10 {
						t.Fatalf("NextExpiry = %d, want 10", e)
					}
				})
			},
		},
		{name: "missing lease", cmd: &LeaseRevoke{ID: 1}, code: ErrNotFound, field: "lease"},
		{name: "revoked twice", setup: []Command{&LeaseGrant{TTLms: 5}, &LeaseRevoke{ID: 1}}, cmd: &LeaseRevoke{ID: 1}, code: ErrNotFound, field: "lease"},
	}
}

func expireCases() []cmdCase {
	setup := []Command{
		&LeaseGrant{TTLms: 1000, Now: 1000},                             // 1: expires 2000
		&LeaseGrant{TTLms: 2000, Now: 1000},                             // 2: expires 3000
		&LeaseGrant{TTLms: 4000, Now: 1000},                             // 3: expires 5000
		&KVPut{Key: "a", Lease: 1},                                      // 4
		&KVPut{Key: "b", Lease: 2},                                      // 5
		&KVPut{Key: "b2", Lease: 2},                                     // 6
		&KVPut{Key: "c", Lease: 3},                                      // 7
		put("free", "x"),                                                // 8
		&LockAcquire{Name: "l1", Owner: "o", TTLms: 1500, Now: 1000},    // 9: expires 2500
		&LockAcquire{Name: "l2", Owner: "o", TTLms: 2000, Now: 1000},    // 10: expires 3000
		&LockAcquire{Name: "l3", Owner: "o", TTLms: 5000, Now: 1000},    // 11: expires 6000
		&KVPut{Key: "t", TTLms: 500, Now: 2600},                         // 12: expires 3100
		&QueuePush{Queue: "q", Data: []byte("x")},                       // 13
		&QueueClaim{Queue: "q", Consumer: "c", VisibilityMs: 1, Now: 0}, // 14: claim lapses at 1
	}
	return []cmdCase{
		{
			name:  "expires leases with keys and locks at or before now",
			setup: setup,
			cmd:   &Expire{Now: 3000},
			check: func(t *testing.T, h *harness, r *Result) {
				// Keys a, b, b2 and locks l1, l2.
				if r.Deleted != 5 {
					t.Fatalf("deleted %d, want 5", r.Deleted)
				}
				for _, k := range []string{"a", "b", "b2"} {
					requireNoKV(t, h, k)
				}
				for _, k := range []string{"c", "free", "t"} {
					if _, ok := h.kv(k); !ok {
						t.Fatalf("key %s expired early", k)
					}
				}
				requireNoLease(t, h, 1)
				requireNoLease(t, h, 2)
				requireLease(t, h, &Lease{ID: 3, TTLms: 4000, Expiry: 5000})
				requireLease(t, h, &Lease{ID: 12, TTLms: 500, Expiry: 3100})
				for name, held := range map[string]bool{"l1": false, "l2": false, "l3": true} {
					if _, ok := h.lock(name); ok != held {
						t.Fatalf("lock %s held = %v, want %v", name, ok, held)
					}
				}
				// Queue claims are not Expire's business: the item stays.
				if q := h.queue("q"); len(q) != 1 {
					t.Fatalf("queue has %d items", len(q))
				}
				h.requireChanges(15,
					ch("kv", "a", "delete"), ch("lease", "1", "delete"),
					ch("kv", "b", "delete"), ch("kv", "b2", "delete"), ch("lease", "2", "delete"),
					ch("lock", "l1", "delete"), ch("lock", "l2", "delete"))
				h.view(func(v *View) {
					if e, ok := v.NextExpiry(); !ok || e != 3100 {
						t.Fatalf("NextExpiry = %d, %v; want 3100", e, ok)
					}
				})
				// Later expiries go in turn.
				if r := h.ok(&Expire{Now: 6000}); r.Deleted != 3 {
					t.Fatalf("second expire deleted %d, want c, t and l3", r.Deleted)
				}
				h.view(func(v *View) {
					if e, ok := v.NextExpiry(); ok {
						t.Fatalf("NextExpiry = %d after everything expired", e)
					}
				})
			},
		},
		{
			name:  "before the first expiry",
			setup: setup,
			cmd:   &Expire{Now: 1999},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != 0 {
					t.Fatalf("deleted %d", r.Deleted)
				}
				h.requireChanges(15)
			},
		},
		{
			name: "nothing to expire",
			cmd:  &Expire{Now: 1 << 40},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != 0 {
					t.Fatalf("deleted %d", r.Deleted)
				}
			},
		},
		{
			// Expire cannot be rejected; its "failure" mode is expiring
			// nothing, which must leave the state byte-for-byte alone.
			name:  "expire that finds nothing changes nothing",
			setup: setup,
			cmd:   &Expire{Now: -1},
			check: func(t *testing.T, h *harness, r *Result) {
				h2 := newHarness(t)
				for _, c := range setup {
					h2.ok(c)
				}
				if a, b := dumpState(t, h.s), dumpState(t, h2.s); a != b {
					t.Fatalf("no-op expire changed the state:\n%s", diffLines(b, a))
				}
			},
		},
	}
}

func TestExpireLeavesLaterLeasesIntact(t *testing.T) {
	// Many leases with interleaved expiries: Expire takes exactly the due ones.
	h := newHarness(t)
	due := map[uint64]bool{}
	for i := int64(0); i < 40; i++ {
		ttl := (i*37)%100 + 1
		r := h.ok(&KVPut{Key: "k" + string(rune('A'+i)), TTLms: ttl, Now: 0})
		due[r.KV.Lease] = ttl <= 50
	}
	h.ok(&Expire{Now: 50})
	for id, gone := range due {
		if _, ok := h.lease(id); ok == gone {
			t.Fatalf("lease %d present=%v, want %v", id, ok, !gone)
		}
	}
}
