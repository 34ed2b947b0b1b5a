package fsm

// Locks are named, owned and bounded by a TTL (Flotilla's deployment lock).
// An expired lock is free: Acquire takes it over and Expire deletes it.

func (c *LockAcquire) apply(t *txn) *Result {
	if c.Name == "" || len(c.Name) > 256 {
		return fail(errf(ErrInvalid, "name", "lock name must be 1..256 bytes"))
	}
	if c.Owner == "" {
		return fail(errf(ErrInvalid, "owner", "owner is empty"))
	}
	if c.TTLms <= 0 {
		return fail(errf(ErrInvalid, "ttl", "ttl must be positive"))
	}
	l, held := getJSON[Lock](t.b(bLocks), []byte(c.Name))
	if held && l.Owner != c.Owner && l.Expiry > c.Now {
		return &Result{Lock: l, Err: errf(ErrConflict, "name", "lock %q is held by %q until %d", c.Name, l.Owner, l.Expiry)}
	}
	if !held || l.Owner != c.Owner || l.Expiry <= c.Now {
		l = &Lock{Name: c.Name, Owner: c.Owner, Token: t.newID(), Acquired: c.Now}
	}
	l.Expiry = expiryAt(c.Now, c.TTLms)
	t.putJSON(bLocks, []byte(c.Name), l)
	t.changed("lock", c.Name, "put")
	return &Result{Lock: l}
}

func (c *LockRelease) apply(t *txn) *Result {
	l, held := getJSON[Lock](t.b(bLocks), []byte(c.Name))
	if !held {
		return fail(errf(ErrNotFound, "name", "lock %q is not held", c.Name))
	}
	if l.Owner != c.Owner {
		return &Result{Lock: l, Err: errf(ErrConflict, "owner", "lock %q is held by %q", c.Name, l.Owner)}
	}
	t.del(bLocks, []byte(c.Name))
	t.changed("lock", c.Name, "delete")
	return &Result{Lock: l}
}

func (t *txn) expireLocks(now int64) int {
	var gone [][]byte
	t.b(bLocks).ForEach(func(k, v []byte) error {
		if l, ok := getJSON[Lock](t.b(bLocks), k); ok && l.Expiry <= now {
			gone = append(gone, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range gone {
		t.del(bLocks, k)
		t.changed("lock", string(k), "delete")
	}
	return len(gone)
}
