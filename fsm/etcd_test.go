package fsm

import (
	"bytes"
	"fmt"
	"testing"
)

func etcdPut(key, val string) EtcdOp {
	return EtcdOp{Kind: EtcdOpPut, Key: []byte(key), Value: []byte(val)}
}

func etcdGet(key, end string) EtcdOp {
	return EtcdOp{Kind: EtcdOpRange, Key: []byte(key), RangeEnd: []byte(end)}
}

func etcdKeys(kvs []*KV) string {
	var b bytes.Buffer
	for i, kv := range kvs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", kv.Key, kv.Value)
	}
	return b.String()
}

func etcdTxnCases() []cmdCase {
	return []cmdCase{
		{
			name:  "compares pick the success branch; a range sees earlier writes of the entry",
			setup: []Command{put("a", "1"), put("b", "2")},
			cmd: &EtcdTxn{
				Compares: []EtcdCompare{
					{Key: []byte("a"), Target: EtcdTargetValue, Result: EtcdEqual, Value: []byte("1")},
					{Key: []byte("a"), Target: EtcdTargetVersion, Result: EtcdEqual, Num: 1},
					{Key: []byte("b"), Target: EtcdTargetCreate, Result: EtcdGreater, Num: 1},
					{Key: []byte("b"), Target: EtcdTargetMod, Result: EtcdLess, Num: 3},
					{Key: []byte("a"), Target: EtcdTargetLease, Result: EtcdNotEqual, Num: 7},
					{Key: []byte("nope"), Target: EtcdTargetCreate, Result: EtcdEqual, Num: 0},
				},
				Success: []EtcdOp{
					{Kind: EtcdOpPut, Key: []byte("a"), Value: []byte("x"), PrevKV: true},
					etcdPut("c", "3"),
					{Kind: EtcdOpDelete, Key: []byte("b"), PrevKV: true},
					{Kind: EtcdOpRange, Key: []byte("a"), RangeEnd: []byte{0}, Limit: 1},
				},
				Failure: []EtcdOp{etcdPut("fail", "1")},
			},
			check: func(t *testing.T, h *harness, r *Result) {
				e := r.Etcd
				if !e.Succeeded || len(e.Ops) != 4 {
					t.Fatalf("result %+v", e)
				}
				if e.Ops[0].Prev == nil || string(e.Ops[0].Prev.Value) != "1" {
					t.Fatalf("prev of a = %+v", e.Ops[0].Prev)
				}
				if e.Ops[2].Deleted != 1 || etcdKeys(e.Ops[2].PrevKVs) != "b=2" {
					t.Fatalf("delete = %+v", e.Ops[2])
				}
				rg := e.Ops[3]
				if etcdKeys(rg.KVs) != "a=x" || rg.Count != 2 || !rg.More {
					t.Fatalf("range = %+v", rg)
				}
				if kv, _ := h.kv("a"); kv.ModRev != h.idx || kv.Version != 2 || kv.CreateRev != 1 {
					t.Fatalf("a = %+v", kv)
				}
				if _, ok := h.kv("fail"); ok {
					t.Fatal("failure branch ran")
				}
				h.requireChanges(h.idx, ch("kv", "a", "put"), ch("kv", "c", "put"), ch("kv", "b", "delete"))
			},
		},
		{
			name:  "a failed compare runs the failure branch; a value compare on a missing key fails",
			setup: []Command{put("a", "1")},
			cmd: &EtcdTxn{
				Compares: []EtcdCompare{{Key: []byte("missing"), Target: EtcdTargetValue, Result: EtcdNotEqual, Value: []byte("1")}},
				Success:  []EtcdOp{etcdPut("s", "1")},
				Failure:  []EtcdOp{etcdGet("a", ""), etcdPut("f", "1")},
			},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Etcd.Succeeded || etcdKeys(r.Etcd.Ops[0].KVs) != "a=1" {
					t.Fatalf("result %+v", r.Etcd)
				}
				if _, ok := h.kv("f"); !ok {
					t.Fatal("f not written")
				}
			},
		},
		{
			name:  "range sorts, filters, counts and drops values",
			setup: []Command{put("p/a", "3"), put("p/b", "1"), put("p/c", "2"), put("q", "0")},
			cmd: &EtcdTxn{Success: []EtcdOp{
				{Kind: EtcdOpRange, Key: []byte("p/"), RangeEnd: []byte("p0"), SortOrder: EtcdSortDescend, SortTarget: EtcdSortValue, Limit: 2},
				{Kind: EtcdOpRange, Key: []byte("p/"), RangeEnd: []byte("p0"), CountOnly: true},
				{Kind: EtcdOpRange, Key: []byte("p/"), RangeEnd: []byte("p0"), KeysOnly: true, MinCreate: 2},
				{Kind: EtcdOpRange, Key: []byte("p/"), RangeEnd: []byte("p0"), SortOrder: EtcdSortDescend},
			}},
			check: func(t *testing.T, h *harness, r *Result) {
				o := r.Etcd.Ops
				requireEqual(t, "sorted", etcdKeys(o[0].KVs), "p/a=3 p/c=2")
				if !o[0].More || o[0].Count != 3 {
					t.Fatalf("sorted %+v", o[0])
				}
				if o[1].Count != 3 || len(o[1].KVs) != 0 {
					t.Fatalf("count only %+v", o[1])
				}
				requireEqual(t, "keys only", etcdKeys(o[2].KVs), "p/b= p/c=")
				requireEqual(t, "descending", etcdKeys(o[3].KVs), "p/c=2 p/b=1 p/a=3")
			},
		},
		{
			name:  "put keeps value and lease when asked to ignore them",
			setup: []Command{&LeaseGrant{TTLms: 10000, Now: 1000}, &KVPut{Key: "k", Value: []byte("v"), Lease: 1}},
			cmd:   &EtcdTxn{Success: []EtcdOp{{Kind: EtcdOpPut, Key: []byte("k"), IgnoreValue: true, IgnoreLease: true}}},
			check: func(t *testing.T, h *harness, r *Result) {
				if kv, _ := h.kv("k"); string(kv.Value) != "v" || kv.Lease != 1 || kv.Version != 2 {
					t.Fatalf("k = %+v", kv)
				}
			},
		},
		{
			name: "records a node's etcd address",
			cmd:  &EtcdTxn{Node: "n1", Addr: "127.0.0.1:2379"},
			check: func(t *testing.T, h *harness, r *Result) {
				h.view(func(v *View) { requireEqual(t, "nodes", v.EtcdNodes()["n1"], "127.0.0.1:2379") })
				h.requireChanges(h.idx, ch("etcd_node", "n1", "put"))
			},
		},
		{
			name:  "an unknown lease rejects the whole entry",
			setup: []Command{put("a", "1")},
			cmd:   &EtcdTxn{Success: []EtcdOp{{Kind: EtcdOpDelete, Key: []byte("a")}, {Kind: EtcdOpPut, Key: []byte("b"), Lease: 99}}},
			code:  ErrNotFound, field: "lease",
		},
		{
			name: "ignore_value on a missing key",
			cmd:  &EtcdTxn{Success: []EtcdOp{{Kind: EtcdOpPut, Key: []byte("b"), IgnoreValue: true}}},
			code: ErrNotFound, field: "key",
		},
		{
			name: "an empty key",
			cmd:  &EtcdTxn{Success: []EtcdOp{etcdPut("", "1")}},
			code: ErrInvalid, field: "success[0].key",
		},
		{
			name: "an empty entry",
			cmd:  &EtcdTxn{},
			code: ErrInvalid, field: "ops",
		},
		{
			name: "a node record with operations",
			cmd:  &EtcdTxn{Node: "n1", Success: []EtcdOp{etcdPut("a", "1")}},
			code: ErrInvalid, field: "node",
		},
		{
			name: "an unknown compare target",
			cmd:  &EtcdTxn{Compares: []EtcdCompare{{Key: []byte("a"), Target: 9}}},
			code: ErrInvalid, field: "compares[0]",
		},
	}
}

// FuzzEtcdTxn decodes arbitrary EtcdTxn entries and applies what decodes:
// nothing may panic, and a decoded entry round-trips.
func FuzzEtcdTxn(f *testing.F) {
	f.Add(Encode(&EtcdTxn{
		Compares: []EtcdCompare{{Key: []byte("a"), Target: EtcdTargetMod, Result: EtcdLess, Num: 5}},
		Success:  []EtcdOp{etcdPut("a", "1"), {Kind: EtcdOpDelete, Key: []byte("a"), RangeEnd: []byte{0}, PrevKV: true}},
		Failure:  []EtcdOp{{Kind: EtcdOpRange, Key: []byte("a"), RangeEnd: []byte("b"), Limit: 1, SortOrder: EtcdSortDescend}},
	}))
	f.Add(Encode(&EtcdTxn{Node: "n", Addr: "x"}))
	f.Add([]byte{byte(CmdEtcdTxn), 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || data[0] != byte(CmdEtcdTxn) {
			data = append([]byte{byte(CmdEtcdTxn)}, data...)
		}
		c, err := Decode(data)
		if err != nil {
			return
		}
		b := Encode(c)
		if !bytes.Equal(b, data) {
			c2, err := Decode(b)
			if err != nil || !bytes.Equal(Encode(c2), b) {
				t.Fatalf("re-encoding is not canonical: %v", err)
			}
		}
		h := newHarness(t)
		h.ok(put("a", "1"))
		r := h.apply(c)
		if r.Err == nil && r.Etcd == nil {
			t.Fatal("no etcd result")
		}
		checkInvariants(t, h.s)
	})
}
