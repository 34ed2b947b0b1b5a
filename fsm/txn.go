package fsm

import (
	"bytes"
	"encoding/json"

	"go.etcd.io/bbolt"
)

// txn is the context a command applies in: the write transaction, the
// entry's index, and the changes it records for the feed.
type txn struct {
	tx      *bbolt.Tx
	index   uint64
	changes []Change
	now     int64 // the leader's time carried by the command being applied
	flushed int   // changes already counted towards a commit of the state
	// split, set by State.ApplyBatch, commits the transaction so far and
	// begins the next once it holds enough changes; done is the last entry
	// wholly applied, the index the commit records. splitErr is its first
	// failure: the state cannot record the log, and the apply stops.
	split    func(done uint64) error
	splitErr error
	applied  uint64           // the last entry wholly applied before this one
	nodes    map[string]*Node // node cache of the command being applied
	dirty    map[string]bool  // nodes to write back when it ends
	// pools are the state's allocation pools (State.pools): what
	// allocation knows of each fleet's ready ships, kept across commands
	// and entries. Any write of a ship, a fleet or a node drops them all,
	// except allocate's own writes, which keep them in step; so a pool is
	// always what a fresh scan of the state would build, and every node
	// picks the same ships whatever its batch boundaries.
	pools map[string]*allocPool
	// allocating is set while ShipAllocate writes the ship it picked.
	allocating bool
	// rev is the revision of the command being applied once it wrote or
	// deleted a key (0 before): see revision. ownRev is whether
	// FeatureOwnRevisions is on (once loaded).
	rev                  uint64
	ownRev, ownRevLoaded bool
	// lastID is the last ID newID gave (once loaded); saveLastID writes it
	// to the state before the transaction commits.
	lastID       uint64
	lastIDLoaded bool
	lastIDDirty  bool
}

func newTxn(tx *bbolt.Tx) *txn { return &txn{tx: tx} }

func (t *txn) b(name []byte) *bbolt.Bucket { return t.tx.Bucket(name) }

// checkpoint lets the state commit between the commands of one entry (a
// Batch): an entry of many ship commands writes far more keys than one
// transaction should hold (see flushChanges). The commit records the
// entry before as the last applied; the state file is a cache of the log,
// rebuilt at boot, and readers wait for the whole entry, so no reader or
// restart sees the entry half applied.
func (t *txn) checkpoint() {
	if t.split != nil && t.splitErr == nil {
		t.splitErr = t.split(t.applied)
	}
}

// newID allocates an ID for a lease, queue item or lock token: the entry's
// index, unless an earlier command of the same Batch entry (or of an
// earlier entry's batch) already took it. IDs stay unique and increasing,
// and equal the index for entries that allocate one ID.
func (t *txn) newID() uint64 {
	t.loadLastID()
	t.lastID = max(t.index, t.lastID+1)
	t.lastIDDirty = true
	return t.lastID
}

func (t *txn) loadLastID() {
	if !t.lastIDLoaded {
		t.lastID, t.lastIDLoaded = lastGivenID(t.tx), true
	}
}

// revision is the key-space revision of the command being applied: an ID
// of its own (newID), taken by its first key write and shared by all its
// writes, as an etcd transaction's writes share one revision. So every
// command that writes keys has a revision no other command has, even when
// the leader grouped several into one entry: two keys written by two
// commands never carry the same create or modify revision, which etcd's
// locks and elections rely on, and a compare-and-set on a modify revision
// cannot match a later write of the same entry.
//
// Until FeatureOwnRevisions is on, a command's revision is its entry's
// index, as all versions before it applied.
func (t *txn) revision() uint64 {
	if t.rev == 0 {
		if t.ownRevisions() {
			t.rev = t.newID()
		} else {
			t.rev = t.index
		}
	}
	return t.rev
}

func (t *txn) ownRevisions() bool {
	if !t.ownRevLoaded {
		t.ownRev, t.ownRevLoaded = featureOn(t.tx, FeatureOwnRevisions), true
	}
	return t.ownRev
}

// current is the state's revision so far: the entry's index or the last
// ID given, whichever is higher (View.Revision once the entry is applied);
// the index until FeatureOwnRevisions is on.
func (t *txn) current() uint64 {
	if !t.ownRevisions() {
		return t.index
	}
	t.loadLastID()
	return max(t.index, t.lastID)
}

// startCommand clears what belongs to the previous command.
func (t *txn) startCommand() {
	t.now = 0 // a command without a clock must not inherit one
	t.rev = 0
}

// saveLastID writes the last ID newID gave, once per commit rather than
// once per ID.
func (t *txn) saveLastID() {
	if t.lastIDDirty {
		t.put(bMeta, kLastID, u64(t.lastID))
		t.lastIDDirty = false
	}
}

func (t *txn) changed(topic, key, op string) {
	t.changes = append(t.changes, Change{Index: t.index, Rev: t.current(), Topic: topic, Key: key, Op: op})
}

// changedKV records a put of kv over prev (nil: a new key), with their
// states.
func (t *txn) changedKV(kv, prev *KV) {
	c := Change{Index: t.index, Rev: kv.ModRev, Topic: "kv", Key: kv.Key, Op: "put", KV: kv, Prev: prev}
	t.changes = append(t.changes, c)
}

// deletedKV records the delete of kv, with its state.
func (t *txn) deletedKV(kv *KV) {
	c := Change{Index: t.index, Rev: t.revision(), Topic: "kv", Key: kv.Key, Op: "delete", Prev: kv}
	t.changes = append(t.changes, c)
}

// putJSON stores v as JSON. Encoding our own types cannot fail, and a
// bucket write inside a live transaction fails only on programmer error, so
// both surface as the transaction's panic in ApplyBatch.
func (t *txn) putJSON(bucket, key []byte, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	t.put(bucket, key, data)
}

func (t *txn) put(bucket, key, val []byte) {
	t.touch(bucket)
	if err := t.b(bucket).Put(key, val); err != nil {
		panic(err)
	}
}

func (t *txn) del(bucket, key []byte) {
	t.touch(bucket)
	if err := t.b(bucket).Delete(key); err != nil {
		panic(err)
	}
}

// touch drops the allocation pools when a write can change what they hold.
func (t *txn) touch(bucket []byte) {
	if t.allocating || len(t.pools) == 0 {
		return
	}
	switch string(bucket) {
	case string(bShips), string(bFleetShips), string(bNodes), string(bFleets):
		clear(t.pools)
	}
}

func getJSON[T any](b *bbolt.Bucket, key []byte) (*T, bool) {
	data := b.Get(key)
	if data == nil {
		return nil, false
	}
	return decodeJSON[T](data)
}

func decodeJSON[T any](data []byte) (*T, bool) {
	v := new(T)
	if err := json.Unmarshal(data, v); err != nil {
		return nil, false
	}
	return v, true
}

// cursor is the part of a bbolt cursor that walks backwards.
type cursor interface {
	Seek(seek []byte) (key, value []byte)
	Next() (key, value []byte)
}

// prefixKeys lists the keys of b that start with prefix.
func prefixKeys(b *bbolt.Bucket, prefix []byte) [][]byte {
	var out [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, append([]byte(nil), k...))
	}
	return out
}
