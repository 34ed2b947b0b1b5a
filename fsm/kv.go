package fsm

import (
	"encoding/binary"
	"math"
	"strconv"
)

// Limits on the key space, enforced in Apply so that no path can store
// what the API would refuse.
const (
	MaxKeyLen   = 1024
	MaxValueLen = 512 << 10
)

func encodeKV(kv *KV) []byte {
	e := encoder{b: make([]byte, 0, len(kv.Value)+24)}
	e.bytes(kv.Value)
	e.uvarint(kv.CreateRev)
	e.uvarint(kv.ModRev)
	e.uvarint(kv.Version)
	e.uvarint(kv.Lease)
	if kv.Type != KVString {
		// Entries written before types existed end here and read as strings.
		e.uvarint(uint64(kv.Type.code()))
	}
	return e.b
}

func decodeKV(key string, b []byte) *KV {
	d := decoder{b: b}
	kv := &KV{Key: key, Value: d.bytes(), CreateRev: d.uvarint(), ModRev: d.uvarint(), Version: d.uvarint(), Lease: d.uvarint()}
	if d.err == nil && len(d.b) > 0 {
		typ, ok := kvTypeOf(d.uvarint())
		if !ok || len(d.b) > 0 {
			return nil
		}
		kv.Type = typ
	}
	if d.err != nil {
		return nil
	}
	return kv
}

func (t *txn) getKV(key string) *KV {
	b := t.b(bKV).Get([]byte(key))
	if b == nil {
		return nil
	}
	return decodeKV(key, b)
}

func checkKey(key string) *Error {
	if key == "" {
		return errf(ErrInvalid, "key", "key is empty")
	}
	if len(key) > MaxKeyLen {
		return errf(ErrInvalid, "key", "key is %d bytes; the limit is %d", len(key), MaxKeyLen)
	}
	return nil
}

// checkCAS passes unless a compare-and-set was asked for and the key's
// modify index (0 when it does not exist) differs from want.
func checkCAS(key string, prev *KV, hasCAS bool, want uint64) *Error {
	if !hasCAS {
		return nil
	}
	var cur uint64
	if prev != nil {
		cur = prev.ModRev
	}
	if cur != want {
		return errf(ErrConflict, "cas", "key %q is at index %d, not %d", key, cur, want)
	}
	return nil
}

func (c *KVPut) apply(t *txn) *Result {
	if e := checkKey(c.Key); e != nil {
		return fail(e)
	}
	if len(c.Value) > MaxValueLen {
		return fail(errf(ErrInvalid, "value", "value is %d bytes; the limit is %d", len(c.Value), MaxValueLen))
	}
	if c.TTLms < 0 {
		return fail(errf(ErrInvalid, "ttl", "ttl must not be negative"))
	}
	prev := t.getKV(c.Key)
	if e := checkCAS(c.Key, prev, c.HasCAS, c.CAS); e != nil {
		return fail(e)
	}
	lease := c.Lease
	if lease != 0 && t.b(bLeases).Get(u64(lease)) == nil {
		return fail(errf(ErrNotFound, "lease", "lease %d not found", lease))
	}
	if c.TTLms > 0 {
		lease = t.newID()
		t.grantLease(&Lease{ID: lease, TTLms: c.TTLms, Expiry: expiryAt(c.Now, c.TTLms)})
	}
	rev := t.revision()
	kv := &KV{Key: c.Key, Value: c.Value, CreateRev: rev, ModRev: rev, Version: 1, Lease: lease}
	if prev != nil {
		kv.CreateRev, kv.Version = prev.CreateRev, prev.Version+1
		if prev.Lease != 0 && prev.Lease != lease {
			t.detachLease(prev.Lease, c.Key)
		}
	}
	if lease != 0 {
		t.put(bLeaseKeys, leaseKey(lease, c.Key), nil)
	}
	t.put(bKV, []byte(c.Key), encodeKV(kv))
	t.changedKV(kv, prev)
	return &Result{KV: kv, Prev: prev}
}

func (c *KVDelete) apply(t *txn) *Result {
	if !c.Prefix {
		if e := checkKey(c.Key); e != nil {
			return fail(e)
		}
		prev := t.getKV(c.Key)
		if e := checkCAS(c.Key, prev, c.HasCAS, c.CAS); e != nil {
			return fail(e)
		}
		if prev == nil {
			return &Result{}
		}
		t.deleteKey(prev)
		return &Result{Prev: prev, Deleted: 1}
	}
	keys := prefixKeys(t.b(bKV), []byte(c.Key))
	for _, k := range keys {
		if kv := t.getKV(string(k)); kv != nil {
			t.deleteKey(kv)
		}
	}
	return &Result{Deleted: len(keys)}
}

func (t *txn) deleteKey(kv *KV) {
	t.del(bKV, []byte(kv.Key))
	if kv.Lease != 0 {
		t.detachLease(kv.Lease, kv.Key)
	}
	t.deletedKV(kv)
}

// detachLease takes key off lease id, and ends the lease when it was made
// for that one key's TTL (Redis' EX, EXPIRE) and holds no key any more,
// whoever removed the key: Redis, /v1/kv or another adapter.
func (t *txn) detachLease(id uint64, key string) {
	t.del(bLeaseKeys, leaseKey(id, key))
	if l := t.getLease(id); l != nil && l.Key == key && len(prefixKeys(t.b(bLeaseKeys), u64(id))) == 0 {
		t.revokeLease(l)
	}
}

// expiryAt is now + ttl (both Unix ms, ttl > 0), saturating instead of
// wrapping: a wrapped expiry would be negative, so the lock or claim would
// lapse at once and the lease would sort after every other expiry.
func expiryAt(now, ttl int64) int64 {
	if ttl > 0 && now > math.MaxInt64-ttl {
		return math.MaxInt64
	}
	return now + ttl
}

func leaseKey(id uint64, key string) []byte {
	return append(u64(id), key...)
}

func expiryKey(expiry int64, id uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(expiry))
	binary.BigEndian.PutUint64(b[8:], id)
	return b
}

func (t *txn) grantLease(l *Lease) {
	t.putJSON(bLeases, u64(l.ID), l)
	t.put(bLeaseExp, expiryKey(l.Expiry, l.ID), nil)
	t.changed("lease", strconv.FormatUint(l.ID, 10), "put")
}

func (t *txn) getLease(id uint64) *Lease {
	l, _ := getJSON[Lease](t.b(bLeases), u64(id))
	return l
}

// revokeLease deletes a lease and every key attached to it.
func (t *txn) revokeLease(l *Lease) int {
	// The lease goes first, so that deleting its keys (deleteKey →
	// detachLease) does not try to end it again.
	t.del(bLeases, u64(l.ID))
	t.del(bLeaseExp, expiryKey(l.Expiry, l.ID))
	n := 0
	for _, lk := range prefixKeys(t.b(bLeaseKeys), u64(l.ID)) {
		if kv := t.getKV(string(lk[8:])); kv != nil && kv.Lease == l.ID {
			t.deleteKey(kv)
			n++
		} else {
			t.del(bLeaseKeys, lk)
		}
	}
	t.changed("lease", strconv.FormatUint(l.ID, 10), "delete")
	return n
}

func (c *LeaseGrant) apply(t *txn) *Result {
	if c.TTLms <= 0 {
		return fail(errf(ErrInvalid, "ttl", "ttl must be positive"))
	}
	l := &Lease{ID: t.newID(), TTLms: c.TTLms, Expiry: expiryAt(c.Now, c.TTLms)}
	t.grantLease(l)
	return &Result{Lease: l}
}

func (c *LeaseKeepAlive) apply(t *txn) *Result {
	l := t.getLease(c.ID)
	if l == nil {
		return fail(errf(ErrNotFound, "lease", "lease %d not found", c.ID))
	}
	t.del(bLeaseExp, expiryKey(l.Expiry, l.ID))
	l.Expiry = expiryAt(c.Now, l.TTLms)
	t.grantLease(l)
	return &Result{Lease: l}
}

func (c *LeaseRevoke) apply(t *txn) *Result {
	l := t.getLease(c.ID)
	if l == nil {
		return fail(errf(ErrNotFound, "lease", "lease %d not found", c.ID))
	}
	return &Result{Lease: l, Deleted: t.revokeLease(l)}
}

func (c *Expire) apply(t *txn) *Result {
	var expired []*Lease
	cur := t.b(bLeaseExp).Cursor()
	for k, _ := cur.First(); k != nil && int64(binary.BigEndian.Uint64(k)) <= c.Now; k, _ = cur.Next() {
		if l := t.getLease(binary.BigEndian.Uint64(k[8:])); l != nil {
			expired = append(expired, l)
		}
	}
	n := 0
	for _, l := range expired {
		n += t.revokeLease(l)
	}
	n += t.expireLocks(c.Now)
	n += t.expireAllocIDs(c.Now)
	return &Result{Deleted: n}
}
