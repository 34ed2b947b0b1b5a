package fsm

import (
	"bytes"
	"encoding/binary"

	"go.etcd.io/bbolt"
)

// View is an immutable view of the state at one index. It is only valid
// inside the State.View callback that produced it.
type View struct {
	tx    *bbolt.Tx
	index uint64
}

// Index is the index of the last entry applied in this view.
func (v *View) Index() uint64 { return v.index }

// Revision is the key space's revision: the highest of the applied index
// and the IDs given (a Batch entry's commands each take their own, see
// txn.revision), or the index until FeatureOwnRevisions is on. Every key's
// create and modify revision is at most this.
func (v *View) Revision() uint64 { return storedRevision(v.tx, v.index) }

// KV returns one key.
func (v *View) KV(key string) (*KV, bool) {
	b := v.tx.Bucket(bKV).Get([]byte(key))
	if b == nil {
		return nil, false
	}
	kv := decodeKV(key, b)
	return kv, kv != nil
}

// KVPrefix returns the keys under prefix in key order, at most limit of
// them when limit > 0.
func (v *View) KVPrefix(prefix string, limit int) []*KV {
	var out []*KV
	c := v.tx.Bucket(bKV).Cursor()
	p := []byte(prefix)
	for k, val := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, val = c.Next() {
		if kv := decodeKV(string(k), val); kv != nil {
			out = append(out, kv)
		}
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}

// Lease returns one lease.
func (v *View) Lease(id uint64) (*Lease, bool) { return getJSON[Lease](v.tx.Bucket(bLeases), u64(id)) }

// NextExpiry is the earliest expiry of a lease, a lock or an allocation's
// request ID, and false when nothing expires.
func (v *View) NextExpiry() (int64, bool) {
	next, ok := int64(0), false
	for _, b := range [][]byte{bLeaseExp, bAllocIDExp} {
		if k, _ := v.tx.Bucket(b).Cursor().First(); k != nil {
			if at := int64(binary.BigEndian.Uint64(k)); !ok || at < next {
				next, ok = at, true
			}
		}
	}
	for _, l := range v.Locks() {
		if !ok || l.Expiry < next {
			next, ok = l.Expiry, true
		}
	}
	return next, ok
}

// Lock returns one lock.
func (v *View) Lock(name string) (*Lock, bool) {
	return getJSON[Lock](v.tx.Bucket(bLocks), []byte(name))
}

// Locks returns every lock.
func (v *View) Locks() []*Lock {
	var out []*Lock
	b := v.tx.Bucket(bLocks)
	b.ForEach(func(k, _ []byte) error {
		if l, ok := getJSON[Lock](b, k); ok {
			out = append(out, l)
		}
		return nil
	})
	return out
}

// Queue returns a queue's items, oldest first.
func (v *View) Queue(name string) []*QueueItem {
	q := v.tx.Bucket(bQueues).Bucket([]byte(name))
	if q == nil {
		return nil
	}
	var out []*QueueItem
	q.ForEach(func(k, val []byte) error {
		if it := decodeItem(k, val); it != nil {
			out = append(out, it)
		}
		return nil
	})
	return out
}

// Queues returns the names of the queues that have items.
func (v *View) Queues() []string {
	var out []string
	v.tx.Bucket(bQueues).ForEachBucket(func(k []byte) error {
		if q := v.tx.Bucket(bQueues).Bucket(k); q != nil && q.Stats().KeyN > 0 {
			out = append(out, string(k))
		}
		return nil
	})
	return out
}

// Node returns one node.
func (v *View) Node(name string) (*Node, bool) {
	return getJSON[Node](v.tx.Bucket(bNodes), []byte(name))
}

// Nodes returns every node, by name.
func (v *View) Nodes() []*Node {
	var out []*Node
	b := v.tx.Bucket(bNodes)
	b.ForEach(func(k, _ []byte) error {
		if n, ok := getJSON[Node](b, k); ok {
			out = append(out, n)
		}
		return nil
	})
	return out
}

// Blueprints returns every blueprint's summary, by name.
func (v *View) Blueprints() []*BlueprintInfo {
	var out []*BlueprintInfo
	b := v.tx.Bucket(bBlueprints)
	b.ForEach(func(k, _ []byte) error {
		if bp, ok := getJSON[BlueprintInfo](b, k); ok {
			out = append(out, bp)
		}
		return nil
	})
	return out
}

// BlueprintInfo returns one blueprint's summary.
func (v *View) BlueprintInfo(name string) (*BlueprintInfo, bool) {
	return getJSON[BlueprintInfo](v.tx.Bucket(bBlueprints), []byte(name))
}

// Blueprint returns one version of a blueprint (0: the latest). Secrets are
// never part of it: only their names are.
func (v *View) Blueprint(name string, version int) (*Blueprint, bool) {
	s, ok := v.storedBlueprint(name, version)
	if !ok {
		return nil, false
	}
	return &s.Spec, true
}

func (v *View) storedBlueprint(name string, version int) (*storedBlueprint, bool) {
	if version == 0 {
		info, ok := v.BlueprintInfo(name)
		if !ok {
			return nil, false
		}
		version = info.Latest
	}
	return getJSON[storedBlueprint](v.tx.Bucket(bBPVersions), bpVersionKey(name, version))
}

// BlueprintSecrets decrypts a blueprint version's secrets, for the worker
// that runs its ships.
func (v *View) BlueprintSecrets(name string, version int) (map[string]string, error) {
	s, ok := v.storedBlueprint(name, version)
	if !ok {
		return nil, errf(ErrNotFound, "name", "blueprint %q version %d not found", name, version)
	}
	return OpenSecrets(v.SecretKey(), s.Sealed)
}

// SecretKey is the cluster's secret-sealing key, nil before ClusterInit.
func (v *View) SecretKey() []byte {
	if k := v.tx.Bucket(bMeta).Get(kKey); k != nil {
		return append([]byte(nil), k...)
	}
	return nil
}

// ClusterID is the cluster's identity, empty before ClusterInit.
func (v *View) ClusterID() string { return string(v.tx.Bucket(bMeta).Get(kClusterID)) }

// Fleet returns one fleet.
func (v *View) Fleet(name string) (*Fleet, bool) {
	return getJSON[Fleet](v.tx.Bucket(bFleets), []byte(name))
}

// Fleets returns every fleet, by name.
func (v *View) Fleets() []*Fleet {
	var out []*Fleet
	b := v.tx.Bucket(bFleets)
	b.ForEach(func(k, _ []byte) error {
		if f, ok := getJSON[Fleet](b, k); ok {
			out = append(out, f)
		}
		return nil
	})
	return out
}

// Ship returns one ship.
func (v *View) Ship(id string) (*Ship, bool) {
	return getShip(v.tx.Bucket(bShips), []byte(id))
}

// onNode reports whether the node_ships index places ship id on node.
func (v *View) onNode(node, id string) bool {
	return v.tx.Bucket(bNodeShips).Get(pairKey(node, id)) != nil
}

// ShipFilter selects ships; empty fields match everything.
type ShipFilter struct {
	Fleet string
	Node  string
	State string
}

// Ships returns the ships that match f, by id. A fleet or node in the
// filter reads only that fleet's or node's ships.
func (v *View) Ships(f ShipFilter) []*Ship {
	var ids []string
	switch {
	case f.Node != "":
		ids = indexedIDs(v.tx.Bucket(bNodeShips).Cursor(), f.Node)
	case f.Fleet != "":
		ids = indexedIDs(v.tx.Bucket(bFleetShips).Cursor(), f.Fleet)
	}
	var out []*Ship
	keep := func(s *Ship) {
		if (f.Fleet == "" || s.Fleet == f.Fleet) && (f.Node == "" || s.Node == f.Node) && (f.State == "" || s.State == f.State) {
			out = append(out, s)
		}
	}
	b := v.tx.Bucket(bShips)
	if f.Node == "" && f.Fleet == "" {
		b.ForEach(func(_, data []byte) error {
			if s, ok := decodeShip(data); ok {
				keep(s)
			}
			return nil
		})
		return out
	}
	for _, id := range ids {
		if s, ok := getShip(b, []byte(id)); ok {
			keep(s)
		}
	}
	return out
}

// Queued returns the ships waiting in the scheduler queue, oldest first.
func (v *View) Queued() []*Ship {
	var out []*Ship
	for _, it := range v.Queue(SchedulerQueue) {
		if s, ok := v.Ship(string(it.Data)); ok && s.State == ShipQueued {
			out = append(out, s)
		}
	}
	return out
}
