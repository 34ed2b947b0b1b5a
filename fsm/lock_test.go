package fsm

import (
	"math"
	"strings"
	"testing"
)

func acquire(name, owner string, ttl, now int64) *LockAcquire {
	return &LockAcquire{Name: name, Owner: owner, TTLms: ttl, Now: now}
}

func requireLock(t *testing.T, h *harness, want *Lock) {
	t.Helper()
	got, ok := h.lock(want.Name)
	if !ok {
		t.Fatalf("lock %q not held", want.Name)
	}
	requireEqual(t, "lock", got, want)
}

func lockAcquireCases() []cmdCase {
	held := []Command{acquire("deploy", "alice", 1000, 1000)} // token 1, expiry 2000
	return []cmdCase{
		{
			name:  "acquire a free lock",
			setup: []Command{put("x", "y")},
			cmd:   acquire("deploy", "alice", 1000, 1000),
			check: func(t *testing.T, h *harness, r *Result) {
				want := &Lock{Name: "deploy", Owner: "alice", Token: 2, Acquired: 1000, Expiry: 2000}
				requireEqual(t, "lock", r.Lock, want)
				requireLock(t, h, want)
				h.requireChanges(2, ch("lock", "deploy", "put"))
				h.view(func(v *View) {
					requireEqual(t, "locks", v.Locks(), []*Lock{want})
					if e, ok := v.NextExpiry(); !ok || e != 2000 {
						t.Fatalf("NextExpiry = %d, %v", e, ok)
					}
				})
			},
		},
		{
			name:  "a lock expiring before every lease is the next expiry",
			setup: []Command{&LeaseGrant{TTLms: 5000, Now: 1000}, &KVPut{Key: "k", TTLms: 4000, Now: 1000}},
			cmd:   acquire("deploy", "alice", 500, 1000),
			check: func(t *testing.T, h *harness, r *Result) {
				h.view(func(v *View) {
					if e, ok := v.NextExpiry(); !ok || e != 1500 {
						t.Fatalf("NextExpiry = %d, %v; want the lock's 1500", e, ok)
					}
				})
				h.ok(acquire("later", "bob", 9000, 1000))
				h.view(func(v *View) {
					if e, _ := v.NextExpiry(); e != 1500 {
						t.Fatalf("NextExpiry = %d after a later lock; want 1500", e)
					}
				})
			},
		},
		{
			name:  "held by another owner",
			setup: held,
			cmd:   acquire("deploy", "bob", 1000, 1999),
			code:  ErrConflict, field: "name",
			check: func(t *testing.T, h *harness, r *Result) {
				requireEqual(t, "conflicting lock", r.Lock, &Lock{Name: "deploy", Owner: "alice", Token: 1, Acquired: 1000, Expiry: 2000})
			},
		},
		{
			name:  "same owner renews and keeps its token",
			setup: held,
			cmd:   acquire("deploy", "alice", 5000, 1500),
			check: func(t *testing.T, h *harness, r *Result) {
				want := &Lock{Name: "deploy", Owner: "alice", Token: 1, Acquired: 1000, Expiry: 6500}
				requireEqual(t, "lock", r.Lock, want)
				requireLock(t, h, want)
			},
		},
		{
			name:  "expired lock is taken over with a higher token",
			setup: append(append([]Command{}, held...), put("x", "y")),
			cmd:   acquire("deploy", "bob", 1000, 2000),
			check: func(t *testing.T, h *harness, r *Result) {
				want := &Lock{Name: "deploy", Owner: "bob", Token: 3, Acquired: 2000, Expiry: 3000}
				requireEqual(t, "lock", r.Lock, want)
				requireLock(t, h, want)
				// The previous owner now conflicts.
				r2 := h.reject(acquire("deploy", "alice", 1000, 2500), ErrConflict, "name")
				requireEqual(t, "conflict", r2.Lock, want)
			},
		},
		{
			name:  "same owner after expiry gets a new token",
			setup: held,
			cmd:   acquire("deploy", "alice", 1000, 2000),
			check: func(t *testing.T, h *harness, r *Result) {
				requireEqual(t, "lock", r.Lock, &Lock{Name: "deploy", Owner: "alice", Token: 2, Acquired: 2000, Expiry: 3000})
			},
		},
		{
			name:  "released lock can be taken by anyone",
			setup: append(append([]Command{}, held...), &LockRelease{Name: "deploy", Owner: "alice"}),
			cmd:   acquire("deploy", "bob", 1000, 1001),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Lock.Owner != "bob" || r.Lock.Token != 3 {
					t.Fatalf("lock %s", jsonString(r.Lock))
				}
			},
		},
		{name: "empty name", cmd: acquire("", "alice", 1, 1), code: ErrInvalid, field: "name"},
		{name: "name too long", cmd: acquire(strings.Repeat("n", 257), "alice", 1, 1), code: ErrInvalid, field: "name"},
		{name: "longest name", cmd: acquire(strings.Repeat("n", 256), "alice", 1, 1)},
		{name: "empty owner", setup: held, cmd: acquire("deploy", "", 1, 1), code: ErrInvalid, field: "owner"},
		{name: "zero TTL", setup: held, cmd: acquire("deploy", "alice", 0, 1), code: ErrInvalid, field: "ttl"},
		{name: "negative TTL", cmd: acquire("deploy", "alice", -1, 1), code: ErrInvalid, field: "ttl"},
		{
			name: "huge TTL does not overflow the expiry",
			cmd:  acquire("deploy", "alice", math.MaxInt64, 1000),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Lock.Expiry <= 1000 {
					t.Fatalf("expiry %d", r.Lock.Expiry)
				}
				h.reject(acquire("deploy", "bob", 10, 1<<50), ErrConflict, "name")
				if r := h.ok(&Expire{Now: 1 << 50}); r.Deleted != 0 {
					t.Fatal("lock expired")
				}
			},
		},
	}
}

func lockReleaseCases() []cmdCase {
	held := []Command{acquire("deploy", "alice", 1000, 1000), acquire("other", "bob", 1000, 1000)}
	return []cmdCase{
		{
			name:  "release by the owner",
			setup: held,
			cmd:   &LockRelease{Name: "deploy", Owner: "alice"},
			check: func(t *testing.T, h *harness, r *Result) {
				requireEqual(t, "lock", r.Lock, &Lock{Name: "deploy", Owner: "alice", Token: 1, Acquired: 1000, Expiry: 2000})
				if l, ok := h.lock("deploy"); ok {
					t.Fatalf("still held: %s", jsonString(l))
				}
				if _, ok := h.lock("other"); !ok {
					t.Fatal("other lock released")
				}
				h.requireChanges(3, ch("lock", "deploy", "delete"))
			},
		},
		{
			name:  "release by another owner",
			setup: held,
			cmd:   &LockRelease{Name: "deploy", Owner: "bob"},
			code:  ErrConflict, field: "owner",
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Lock == nil || r.Lock.Owner != "alice" {
					t.Fatalf("conflict result lock %s", jsonString(r.Lock))
				}
			},
		},
		{name: "not held", setup: held, cmd: &LockRelease{Name: "nope", Owner: "alice"}, code: ErrNotFound, field: "name"},
		{
			name:  "expired and removed",
			setup: append(append([]Command{}, held...), &Expire{Now: 2000}),
			cmd:   &LockRelease{Name: "deploy", Owner: "alice"},
			code:  ErrNotFound, field: "name",
		},
	}
}
