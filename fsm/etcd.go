package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sort"

	"go.etcd.io/bbolt"
)

// The etcd v3 data model. etcd keys are keys of the one key space: an etcd
// Put is a write of a KVString key (so /v1/kv and Redis see it), the
// revision is the Raft index, and create_revision, mod_revision, version and
// lease are the KV's. The state keeps no history: only the current value of
// each key exists, so a read at a past revision cannot be answered.

// Etcd compare targets, with etcd's numbering (pb.Compare_CompareTarget).
const (
	EtcdTargetVersion uint8 = 0
	EtcdTargetCreate  uint8 = 1
	EtcdTargetMod     uint8 = 2
	EtcdTargetValue   uint8 = 3
	EtcdTargetLease   uint8 = 4
)

// Etcd compare results, with etcd's numbering (pb.Compare_CompareResult).
const (
	EtcdEqual    uint8 = 0
	EtcdGreater  uint8 = 1
	EtcdLess     uint8 = 2
	EtcdNotEqual uint8 = 3
)

// Etcd operation kinds.
const (
	EtcdOpRange  uint8 = 1
	EtcdOpPut    uint8 = 2
	EtcdOpDelete uint8 = 3
)

// Etcd sort orders and targets, with etcd's numbering.
const (
	EtcdSortNone    uint8 = 0
	EtcdSortAscend  uint8 = 1
	EtcdSortDescend uint8 = 2

	EtcdSortKey     uint8 = 0
	EtcdSortVersion uint8 = 1
	EtcdSortCreate  uint8 = 2
	EtcdSortMod     uint8 = 3
	EtcdSortValue   uint8 = 4
)

// MaxEtcdOps bounds the compares and the operations of each branch of one
// EtcdTxn (etcd's default --max-txn-ops is 128).
const MaxEtcdOps = 128

// EtcdCompare is one condition of a transaction: every key in [Key,
// RangeEnd) (just Key when RangeEnd is empty, every key from Key on when it
// is "\x00") must compare so with Value (the value target) or Num (the
// others).
type EtcdCompare struct {
	Key      []byte
	RangeEnd []byte
	Target   uint8
	Result   uint8
	Value    []byte
	Num      int64
}

// EtcdOp is one operation of a transaction: a Range, a Put or a
// DeleteRange, with etcd's options.
type EtcdOp struct {
	Kind     uint8
	Key      []byte
	RangeEnd []byte
	// Put
	Value       []byte
	Lease       uint64
	IgnoreValue bool
	IgnoreLease bool
	// Put and DeleteRange
	PrevKV bool
	// Range
	Limit      int64
	KeysOnly   bool
	CountOnly  bool
	SortOrder  uint8
	SortTarget uint8
	MinMod     int64
	MaxMod     int64
	MinCreate  int64
	MaxCreate  int64
}

// EtcdTxn is an etcd transaction (and a single Put or DeleteRange, which
// are transactions without compares): the compares are evaluated, then the
// Success or the Failure operations run in order, atomically, in one log
// entry; a Range sees the writes of the operations before it. An entry with
// Node set records where that node's etcd adapter listens instead (Addr
// empty forgets it) and must hold nothing else.
//
// The entry is rejected as a whole, changing nothing, when it is empty,
// holds a malformed compare or operation (empty or oversized key, unknown
// kind), or a Put of the chosen branch names a lease that does not exist
// (field "lease") or ignores the value or lease of a key that does not
// exist (field "key"), as etcd refuses such requests.
type EtcdTxn struct {
	Compares []EtcdCompare
	Success  []EtcdOp
	Failure  []EtcdOp
	Node     string
	Addr     string
}

// EtcdTxnResult is what an EtcdTxn answered: which branch ran and one
// result per operation of it.
type EtcdTxnResult struct {
	Succeeded bool           `json:"succeeded"`
	Ops       []EtcdOpResult `json:"ops,omitempty"`
}

// EtcdOpResult is the answer to one operation: KVs, Count and More for a
// Range; Prev for a Put (with PrevKV); Deleted and PrevKVs for a
// DeleteRange.
type EtcdOpResult struct {
	KVs     []*KV `json:"kvs,omitempty"`
	Count   int64 `json:"count,omitempty"`
	More    bool  `json:"more,omitempty"`
	Prev    *KV   `json:"prev,omitempty"`
	Deleted int64 `json:"deleted,omitempty"`
	PrevKVs []*KV `json:"prev_kvs,omitempty"`
}

func (*EtcdTxn) Type() CmdType { return CmdEtcdTxn }

func (c *EtcdTxn) encode(e *encoder) {
	e.uvarint(uint64(len(c.Compares)))
	for i := range c.Compares {
		cp := &c.Compares[i]
		e.bytes(cp.Key)
		e.bytes(cp.RangeEnd)
		e.uvarint(uint64(cp.Target))
		e.uvarint(uint64(cp.Result))
		e.bytes(cp.Value)
		e.varint(cp.Num)
	}
	encodeEtcdOps(e, c.Success)
	encodeEtcdOps(e, c.Failure)
	e.str(c.Node)
	e.str(c.Addr)
}

func encodeEtcdOps(e *encoder, ops []EtcdOp) {
	e.uvarint(uint64(len(ops)))
	for i := range ops {
		op := &ops[i]
		e.uvarint(uint64(op.Kind))
		e.bytes(op.Key)
		e.bytes(op.RangeEnd)
		e.bytes(op.Value)
		e.uvarint(op.Lease)
		e.bool(op.IgnoreValue)
		e.bool(op.IgnoreLease)
		e.bool(op.PrevKV)
		e.varint(op.Limit)
		e.bool(op.KeysOnly)
		e.bool(op.CountOnly)
		e.uvarint(uint64(op.SortOrder))
		e.uvarint(uint64(op.SortTarget))
		e.varint(op.MinMod)
		e.varint(op.MaxMod)
		e.varint(op.MinCreate)
		e.varint(op.MaxCreate)
	}
}

// small decodes a uvarint that must fit a byte.
func small(d *decoder) uint8 {
	v := d.uvarint()
	if v > math.MaxUint8 {
		d.fail(fmt.Errorf("field value %d out of range", v))
		return 0
	}
	return uint8(v)
}

// nbytes decodes bytes, empty ones as nil.
func nbytes(d *decoder) []byte {
	if b := d.bytes(); len(b) > 0 {
		return b
	}
	return nil
}

func (c *EtcdTxn) decode(d *decoder) {
	n := d.length()
	if d.err != nil {
		return
	}
	if n > MaxEtcdOps {
		d.fail(errors.New("too many etcd compares"))
		return
	}
	for range n {
		cp := EtcdCompare{Key: nbytes(d), RangeEnd: nbytes(d)}
		cp.Target, cp.Result = small(d), small(d)
		cp.Value, cp.Num = nbytes(d), d.varint()
		if d.err != nil {
			return
		}
		c.Compares = append(c.Compares, cp)
	}
	c.Success = decodeEtcdOps(d)
	c.Failure = decodeEtcdOps(d)
	c.Node, c.Addr = d.str(), d.str()
}

func decodeEtcdOps(d *decoder) []EtcdOp {
	n := d.length()
	if d.err != nil {
		return nil
	}
	if n > MaxEtcdOps {
		d.fail(errors.New("too many etcd operations"))
		return nil
	}
	var out []EtcdOp
	for range n {
		op := EtcdOp{Kind: small(d), Key: nbytes(d), RangeEnd: nbytes(d), Value: nbytes(d), Lease: d.uvarint()}
		op.IgnoreValue, op.IgnoreLease, op.PrevKV = d.bool(), d.bool(), d.bool()
		op.Limit, op.KeysOnly, op.CountOnly = d.varint(), d.bool(), d.bool()
		op.SortOrder, op.SortTarget = small(d), small(d)
		op.MinMod, op.MaxMod, op.MinCreate, op.MaxCreate = d.varint(), d.varint(), d.varint(), d.varint()
		if d.err != nil {
			return nil
		}
		out = append(out, op)
	}
	return out
}

func checkEtcdKey(field string, key []byte) *Error {
	if len(key) == 0 {
		return errf(ErrInvalid, field, "key is empty")
	}
	if len(key) > MaxKeyLen {
		return errf(ErrInvalid, field, "key is %d bytes; the limit is %d", len(key), MaxKeyLen)
	}
	return nil
}

func checkEtcdOps(name string, ops []EtcdOp) *Error {
	for i := range ops {
		op := &ops[i]
		if op.Kind < EtcdOpRange || op.Kind > EtcdOpDelete {
			return errf(ErrInvalid, elemField(name, i), "unknown operation %d", op.Kind)
		}
		if len(op.Key) == 0 || len(op.Key) > MaxKeyLen {
			return checkEtcdKey(elemField(name, i)+".key", op.Key)
		}
		if len(op.Value) > MaxValueLen {
			return errf(ErrInvalid, elemField(name, i)+".value", "value is %d bytes; the limit is %d", len(op.Value), MaxValueLen)
		}
		if op.Kind == EtcdOpRange && (op.SortOrder > EtcdSortDescend || op.SortTarget > EtcdSortValue) {
			return errf(ErrInvalid, elemField(name, i)+".sort", "unknown sort order or target")
		}
	}
	return nil
}

func (c *EtcdTxn) check() *Error {
	if c.Node != "" {
		if len(c.Compares)+len(c.Success)+len(c.Failure) > 0 {
			return errf(ErrInvalid, "node", "a member record holds no operations")
		}
		if len(c.Node) > MaxKeyLen || len(c.Addr) > MaxKeyLen {
			return errf(ErrInvalid, "node", "node name or address too long")
		}
		return nil
	}
	if len(c.Compares)+len(c.Success)+len(c.Failure) == 0 {
		return errf(ErrInvalid, "ops", "no compares and no operations")
	}
	for i := range c.Compares {
		cp := &c.Compares[i]
		if len(cp.Key) == 0 || len(cp.Key) > MaxKeyLen {
			return checkEtcdKey(elemField("compares", i)+".key", cp.Key)
		}
		if cp.Target > EtcdTargetLease || cp.Result > EtcdNotEqual {
			return errf(ErrInvalid, elemField("compares", i), "unknown target or result")
		}
	}
	if e := checkEtcdOps("success", c.Success); e != nil {
		return e
	}
	return checkEtcdOps("failure", c.Failure)
}

func (c *EtcdTxn) apply(t *txn) *Result {
	if e := c.check(); e != nil {
		return fail(e)
	}
	if c.Node != "" {
		k := etcdNodeKey(c.Node)
		if c.Addr == "" {
			t.del(bMeta, k)
			t.changed("etcd_node", c.Node, "delete")
		} else {
			t.put(bMeta, k, []byte(c.Addr))
			t.changed("etcd_node", c.Node, "put")
		}
		return &Result{Etcd: &EtcdTxnResult{Succeeded: true}}
	}
	ok := true
	for i := range c.Compares {
		if !etcdCompare(t.tx, &c.Compares[i]) {
			ok = false
			break
		}
	}
	ops := c.Success
	if !ok {
		ops = c.Failure
	}
	// Check the chosen branch first, so that a refused entry changes nothing.
	for i := range ops {
		op := &ops[i]
		if op.Kind != EtcdOpPut {
			continue
		}
		if op.Lease != 0 && !op.IgnoreLease && t.b(bLeases).Get(u64(op.Lease)) == nil {
			return fail(errf(ErrNotFound, "lease", "lease %d not found", op.Lease))
		}
		if (op.IgnoreValue || op.IgnoreLease) && t.getKV(string(op.Key)) == nil {
			return fail(errf(ErrNotFound, "key", "key %q not found", op.Key))
		}
	}
	db := &redisDB{tx: t.tx, t: t, now: math.MinInt64}
	res := &EtcdTxnResult{Succeeded: ok, Ops: make([]EtcdOpResult, len(ops))}
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case EtcdOpRange:
			res.Ops[i] = etcdRange(t.tx, op)
		case EtcdOpPut:
			prev := t.getKV(string(op.Key))
			val, lease, typ := op.Value, op.Lease, KVString
			if op.IgnoreValue && prev != nil {
				val, typ = prev.Value, prev.Type
			}
			if op.IgnoreLease && prev != nil {
				lease = prev.Lease
			}
			db.put(string(op.Key), prev, typ, val, lease)
			if op.PrevKV {
				res.Ops[i].Prev = prev
			}
		case EtcdOpDelete:
			var kvs []*KV
			etcdScan(t.tx, op.Key, op.RangeEnd, func(kv *KV) bool {
				kvs = append(kvs, kv)
				return true
			})
			for _, kv := range kvs {
				db.remove(kv)
			}
			res.Ops[i].Deleted = int64(len(kvs))
			if op.PrevKV {
				res.Ops[i].PrevKVs = kvs
			}
		}
	}
	return &Result{Etcd: res}
}

func etcdNodeKey(node string) []byte { return append([]byte("etcd_node/"), node...) }

// etcdScan calls fn for the keys in [key, end) in key order (just key when
// end is empty; every key from key on when end is "\x00") until fn returns
// false.
func etcdScan(tx *bbolt.Tx, key, end []byte, fn func(kv *KV) bool) {
	b := tx.Bucket(bKV)
	if len(end) == 0 {
		if v := b.Get(key); v != nil {
			if kv := decodeKV(string(key), v); kv != nil {
				fn(kv)
			}
		}
		return
	}
	toEnd := len(end) == 1 && end[0] == 0
	c := b.Cursor()
	for k, v := c.Seek(key); k != nil && (toEnd || bytes.Compare(k, end) < 0); k, v = c.Next() {
		if kv := decodeKV(string(k), v); kv != nil && !fn(kv) {
			return
		}
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// etcdCompare evaluates one compare as etcd does: a value compare on a
// missing key fails; the other targets compare a missing key as zero.
func etcdCompare(tx *bbolt.Tx, cp *EtcdCompare) bool {
	var kvs []*KV
	etcdScan(tx, cp.Key, cp.RangeEnd, func(kv *KV) bool {
		kvs = append(kvs, kv)
		return true
	})
	if len(kvs) == 0 {
		if cp.Target == EtcdTargetValue {
			return false
		}
		kvs = []*KV{{}}
	}
	for _, kv := range kvs {
		var r int
		switch cp.Target {
		case EtcdTargetValue:
			r = bytes.Compare(kv.Value, cp.Value)
		case EtcdTargetVersion:
			r = cmpInt(int64(kv.Version), cp.Num)
		case EtcdTargetCreate:
			r = cmpInt(int64(kv.CreateRev), cp.Num)
		case EtcdTargetMod:
			r = cmpInt(int64(kv.ModRev), cp.Num)
		case EtcdTargetLease:
			r = cmpInt(int64(kv.Lease), cp.Num)
		}
		var ok bool
		switch cp.Result {
		case EtcdEqual:
			ok = r == 0
		case EtcdNotEqual:
			ok = r != 0
		case EtcdGreater:
			ok = r > 0
		case EtcdLess:
			ok = r < 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// etcdRange answers a Range as etcd 3.4 does: Count is every key in the
// range; with a sort or a revision filter every key is read, filtered,
// sorted and cut to Limit, otherwise only Limit+1 keys are read (and then
// sorted, when only a sort target is given); More says keys were cut off.
func etcdRange(tx *bbolt.Tx, op *EtcdOp) EtcdOpResult {
	return etcdRangeOver(func(fn func(kv *KV) bool) { etcdScan(tx, op.Key, op.RangeEnd, fn) }, op)
}

// etcdRangeOver answers a Range over the keys scan yields, in key order.
func etcdRangeOver(scan func(fn func(kv *KV) bool), op *EtcdOp) EtcdOpResult {
	fetch := op.Limit
	if op.SortOrder != EtcdSortNone || op.MinMod != 0 || op.MaxMod != 0 || op.MinCreate != 0 || op.MaxCreate != 0 {
		fetch = 0
	}
	if fetch > 0 {
		fetch++
	}
	var res EtcdOpResult
	var kvs []*KV
	scan(func(kv *KV) bool {
		res.Count++
		if !op.CountOnly && (fetch <= 0 || int64(len(kvs)) < fetch) {
			kvs = append(kvs, kv)
		}
		return true
	})
	keep := kvs[:0]
	for _, kv := range kvs {
		mod, create := int64(kv.ModRev), int64(kv.CreateRev)
		if op.MaxMod != 0 && mod > op.MaxMod || op.MinMod != 0 && mod < op.MinMod ||
			op.MaxCreate != 0 && create > op.MaxCreate || op.MinCreate != 0 && create < op.MinCreate {
			continue
		}
		keep = append(keep, kv)
	}
	kvs = keep
	order := op.SortOrder
	if op.SortTarget != EtcdSortKey && order == EtcdSortNone {
		order = EtcdSortAscend
	}
	if order != EtcdSortNone {
		less := func(a, b *KV) int {
			switch op.SortTarget {
			case EtcdSortVersion:
				return cmpInt(int64(a.Version), int64(b.Version))
			case EtcdSortCreate:
				return cmpInt(int64(a.CreateRev), int64(b.CreateRev))
			case EtcdSortMod:
				return cmpInt(int64(a.ModRev), int64(b.ModRev))
			case EtcdSortValue:
				return bytes.Compare(a.Value, b.Value)
			}
			return bytes.Compare([]byte(a.Key), []byte(b.Key))
		}
		sort.SliceStable(kvs, func(i, j int) bool {
			if order == EtcdSortDescend {
				return less(kvs[j], kvs[i]) < 0
			}
			return less(kvs[i], kvs[j]) < 0
		})
	}
	if op.Limit > 0 && int64(len(kvs)) > op.Limit {
		kvs = kvs[:op.Limit]
		res.More = true
	}
	if op.KeysOnly {
		for i, kv := range kvs {
			c := *kv
			c.Value = nil
			kvs[i] = &c
		}
	}
	if len(kvs) > 0 {
		res.KVs = kvs
	}
	return res
}

// EtcdRange answers a Range (op.Kind is ignored) from the view.
func (v *View) EtcdRange(op *EtcdOp) EtcdOpResult { return etcdRange(v.tx, op) }

// EtcdRangeAt answers a Range as of an older revision, given past: the
// state then of every key in the range that changed since (nil: it did not
// exist); the other keys are as the view has them. The keys are merged in
// key order as they are scanned, so a limited range holds no more of them
// than the present one would.
func (v *View) EtcdRangeAt(op *EtcdOp, past map[string]*KV) EtcdOpResult {
	var then []*KV // the changed keys that existed then, in key order
	for k, kv := range past {
		if kv != nil && EtcdInRange([]byte(k), op.Key, op.RangeEnd) {
			then = append(then, kv)
		}
	}
	sort.Slice(then, func(i, j int) bool { return then[i].Key < then[j].Key })
	return etcdRangeOver(func(fn func(kv *KV) bool) {
		i, stopped := 0, false
		etcdScan(v.tx, op.Key, op.RangeEnd, func(kv *KV) bool {
			for ; i < len(then) && then[i].Key < kv.Key; i++ {
				if !fn(then[i]) {
					stopped = true
					return false
				}
			}
			if _, changed := past[kv.Key]; changed {
				return true // as it was then: in then, or not at all
			}
			if !fn(kv) {
				stopped = true
				return false
			}
			return true
		})
		for ; !stopped && i < len(then); i++ {
			if !fn(then[i]) {
				return
			}
		}
	}, op)
}

// EtcdInRange reports whether key is in a Range's [start, end): end empty
// is start alone, "\x00" is everything from start on.
func EtcdInRange(key, start, end []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(key, start)
	case len(end) == 1 && end[0] == 0:
		return bytes.Compare(key, start) >= 0
	}
	return bytes.Compare(key, start) >= 0 && bytes.Compare(key, end) < 0
}

// EtcdCompares evaluates a transaction's compares against the view, as
// its apply would.
func (v *View) EtcdCompares(cmps []EtcdCompare) bool {
	for i := range cmps {
		if !etcdCompare(v.tx, &cmps[i]) {
			return false
		}
	}
	return true
}

// EtcdNodes returns the etcd adapter address of every node that runs one,
// by node name.
func (v *View) EtcdNodes() map[string]string {
	out := map[string]string{}
	p := []byte("etcd_node/")
	c := v.tx.Bucket(bMeta).Cursor()
	for k, val := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, val = c.Next() {
		out[string(k[len(p):])] = string(val)
	}
	return out
}

// Leases returns every lease, by ID.
func (v *View) Leases() []*Lease {
	var out []*Lease
	b := v.tx.Bucket(bLeases)
	b.ForEach(func(k, _ []byte) error {
		if l, ok := getJSON[Lease](b, k); ok {
			out = append(out, l)
		}
		return nil
	})
	return out
}

// LeaseKeys returns the keys attached to a lease, in key order.
func (v *View) LeaseKeys(id uint64) []string {
	var out []string
	for _, lk := range prefixKeys(v.tx.Bucket(bLeaseKeys), u64(id)) {
		out = append(out, string(lk[8:]))
	}
	return out
}

// Size is the size of the state database in bytes.
func (v *View) Size() int64 { return v.tx.Size() }
