package etcd

import (
	"bytes"
	"context"
	"errors"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/armada-orchestrator/armada/fsm"
)

type kvServer struct {
	pb.UnimplementedKVServer
	s *Server
}

func toKV(kv *fsm.KV) *mvccpb.KeyValue {
	if kv == nil {
		return nil
	}
	return &mvccpb.KeyValue{
		Key:            []byte(kv.Key),
		Value:          kv.Value,
		CreateRevision: int64(kv.CreateRev),
		ModRevision:    int64(kv.ModRev),
		Version:        int64(kv.Version),
		Lease:          int64(kv.Lease),
	}
}

func toKVs(kvs []*fsm.KV) []*mvccpb.KeyValue {
	var out []*mvccpb.KeyValue
	for _, kv := range kvs {
		out = append(out, toKV(kv))
	}
	return out
}

func rangeOp(r *pb.RangeRequest) fsm.EtcdOp {
	return fsm.EtcdOp{
		Kind: fsm.EtcdOpRange, Key: r.Key, RangeEnd: r.RangeEnd, Limit: r.Limit,
		KeysOnly: r.KeysOnly, CountOnly: r.CountOnly,
		SortOrder: uint8(r.SortOrder), SortTarget: uint8(r.SortTarget),
		MinMod: r.MinModRevision, MaxMod: r.MaxModRevision, MinCreate: r.MinCreateRevision, MaxCreate: r.MaxCreateRevision,
	}
}

func checkRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return status.Error(codes.InvalidArgument, "etcdserver: invalid sort option")
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return status.Error(codes.InvalidArgument, "etcdserver: invalid sort option")
	}
	return nil
}

func checkPut(r *pb.PutRequest) error {
	switch {
	case len(r.Key) == 0:
		return rpctypes.ErrGRPCEmptyKey
	case r.IgnoreValue && len(r.Value) != 0:
		return rpctypes.ErrGRPCValueProvided
	case r.IgnoreLease && r.Lease != 0:
		return rpctypes.ErrGRPCLeaseProvided
	case r.Lease < 0:
		return rpctypes.ErrGRPCLeaseNotFound
	}
	return nil
}

func putOp(r *pb.PutRequest) fsm.EtcdOp {
	return fsm.EtcdOp{Kind: fsm.EtcdOpPut, Key: r.Key, Value: r.Value, Lease: uint64(r.Lease),
		PrevKV: r.PrevKv, IgnoreValue: r.IgnoreValue, IgnoreLease: r.IgnoreLease}
}

func deleteOp(r *pb.DeleteRangeRequest) fsm.EtcdOp {
	return fsm.EtcdOp{Kind: fsm.EtcdOpDelete, Key: r.Key, RangeEnd: r.RangeEnd, PrevKV: r.PrevKv}
}

func rangeResponse(res fsm.EtcdOpResult) *pb.RangeResponse {
	return &pb.RangeResponse{Kvs: toKVs(res.KVs), More: res.More, Count: res.Count}
}

// Range reads from the local state, after the read index unless the
// request is serializable.
func (k *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	var resp *pb.RangeResponse
	op := rangeOp(r)
	err := k.s.view(ctx, !r.Serializable, func(v *fsm.View) error {
		res, err := k.s.rangeAt(ctx, v, &op, r.Revision)
		if err != nil {
			return err
		}
		resp = rangeResponse(res)
		resp.Header = k.s.header(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// rangeAt answers a Range at revision rev (0: the view's). The state keeps
// no history, but the change feed does, for its last changes: an older
// revision is read as the view's state with the keys that changed since
// taken back to their states then (a revision the feed no longer covers
// is compacted). A revision that moved without a change to the range (a
// lease renewed, another key written) reads as the view.
func (s *Server) rangeAt(ctx context.Context, v *fsm.View, op *fsm.EtcdOp, rev int64) (fsm.EtcdOpResult, error) {
	cur := int64(v.Revision())
	switch {
	case rev > cur:
		return fsm.EtcdOpResult{}, rpctypes.ErrGRPCFutureRev
	case rev <= 0 || rev == cur:
		return v.EtcdRange(op), nil
	}
	past, err := s.pastStates(ctx, v, uint64(rev), op.Key, op.RangeEnd)
	if err != nil {
		return fsm.EtcdOpResult{}, err
	}
	return v.EtcdRangeAt(op, past), nil
}

// txn commits an EtcdTxn and returns its result with the header of the
// state it was applied at.
func (k *kvServer) txn(ctx context.Context, c *fsm.EtcdTxn) (*fsm.EtcdTxnResult, *pb.ResponseHeader, error) {
	r, err := k.s.apply(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	return r.Etcd, k.s.writeHeader(r.Rev), nil
}

// Put writes one key through Raft.
func (k *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPut(r); err != nil {
		return nil, err
	}
	res, hdr, err := k.txn(ctx, &fsm.EtcdTxn{Success: []fsm.EtcdOp{putOp(r)}})
	if err != nil {
		return nil, err
	}
	return &pb.PutResponse{Header: hdr, PrevKv: toKV(res.Ops[0].Prev)}, nil
}

// DeleteRange deletes a key or a range through Raft.
func (k *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if len(r.Key) == 0 {
		return nil, rpctypes.ErrGRPCEmptyKey
	}
	res, hdr, err := k.txn(ctx, &fsm.EtcdTxn{Success: []fsm.EtcdOp{deleteOp(r)}})
	if err != nil {
		return nil, err
	}
	return &pb.DeleteRangeResponse{Header: hdr, Deleted: res.Ops[0].Deleted, PrevKvs: toKVs(res.Ops[0].PrevKVs)}, nil
}

// txnOps turns a branch's requests into ops, and the revisions its ranges
// ask for (0: the present), in order.
func txnOps(reqs []*pb.RequestOp) ([]fsm.EtcdOp, []int64, error) {
	if len(reqs) > fsm.MaxEtcdOps {
		return nil, nil, rpctypes.ErrGRPCTooManyOps
	}
	var out []fsm.EtcdOp
	var revs []int64
	for _, req := range reqs {
		switch r := req.Request.(type) {
		case *pb.RequestOp_RequestRange:
			if r.RequestRange == nil {
				return nil, nil, rpctypes.ErrGRPCEmptyKey
			}
			if err := checkRange(r.RequestRange); err != nil {
				return nil, nil, err
			}
			out = append(out, rangeOp(r.RequestRange))
			revs = append(revs, r.RequestRange.Revision)
		case *pb.RequestOp_RequestPut:
			if r.RequestPut == nil {
				return nil, nil, rpctypes.ErrGRPCEmptyKey
			}
			if err := checkPut(r.RequestPut); err != nil {
				return nil, nil, err
			}
			out = append(out, putOp(r.RequestPut))
			revs = append(revs, 0)
		case *pb.RequestOp_RequestDeleteRange:
			if r.RequestDeleteRange == nil || len(r.RequestDeleteRange.Key) == 0 {
				return nil, nil, rpctypes.ErrGRPCEmptyKey
			}
			out = append(out, deleteOp(r.RequestDeleteRange))
			revs = append(revs, 0)
		case *pb.RequestOp_RequestTxn:
			return nil, nil, status.Error(codes.Unimplemented, "armada: nested transactions are not supported")
		default:
			return nil, nil, status.Error(codes.InvalidArgument, "etcdserver: empty request operation")
		}
	}
	return out, revs, checkDuplicates(out)
}

// checkDuplicates refuses a branch that puts a key twice or puts a key
// that one of its deletes covers, as etcd does.
func checkDuplicates(ops []fsm.EtcdOp) error {
	puts := map[string]bool{}
	for _, op := range ops {
		if op.Kind == fsm.EtcdOpPut {
			if puts[string(op.Key)] {
				return rpctypes.ErrGRPCDuplicateKey
			}
			puts[string(op.Key)] = true
		}
	}
	for _, op := range ops {
		if op.Kind != fsm.EtcdOpDelete {
			continue
		}
		for k := range puts {
			// As etcd's interval check: a plain [key, end) interval, so a
			// delete "from key on" (end "\x00") overlaps no put.
			covered := bytes.Equal([]byte(k), op.Key)
			if len(op.RangeEnd) > 0 {
				covered = k >= string(op.Key) && k < string(op.RangeEnd)
			}
			if covered {
				return rpctypes.ErrGRPCDuplicateKey
			}
		}
	}
	return nil
}

// Txn evaluates the compares and runs one branch atomically, in one Raft
// entry.
func (k *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if len(r.Compare) > fsm.MaxEtcdOps {
		return nil, rpctypes.ErrGRPCTooManyOps
	}
	c := &fsm.EtcdTxn{}
	for _, cmp := range r.Compare {
		if len(cmp.Key) == 0 {
			return nil, rpctypes.ErrGRPCEmptyKey
		}
		fc := fsm.EtcdCompare{Key: cmp.Key, RangeEnd: cmp.RangeEnd, Target: uint8(cmp.Target), Result: uint8(cmp.Result)}
		switch u := cmp.TargetUnion.(type) {
		case *pb.Compare_Value:
			fc.Value = u.Value
		case *pb.Compare_Version:
			fc.Num = u.Version
		case *pb.Compare_CreateRevision:
			fc.Num = u.CreateRevision
		case *pb.Compare_ModRevision:
			fc.Num = u.ModRevision
		case *pb.Compare_Lease:
			fc.Num = u.Lease
		}
		if fc.Target > fsm.EtcdTargetLease || fc.Result > fsm.EtcdNotEqual {
			return nil, status.Error(codes.InvalidArgument, "etcdserver: invalid compare")
		}
		c.Compares = append(c.Compares, fc)
	}
	var err error
	var successRevs, failureRevs []int64
	if c.Success, successRevs, err = txnOps(r.Success); err != nil {
		return nil, err
	}
	if c.Failure, failureRevs, err = txnOps(r.Failure); err != nil {
		return nil, err
	}
	if readOnly(c.Success) && readOnly(c.Failure) {
		return k.readTxn(ctx, c, successRevs, failureRevs)
	}
	// A write applies at the leader's present: what its ranges read of an
	// older revision is read here first (the past does not change).
	successPast, err := k.pastRanges(ctx, c.Success, successRevs)
	if err != nil {
		return nil, err
	}
	failurePast, err := k.pastRanges(ctx, c.Failure, failureRevs)
	if err != nil {
		return nil, err
	}
	res, hdr, err := k.txn(ctx, c)
	if err != nil {
		return nil, err
	}
	resp := &pb.TxnResponse{Header: hdr, Succeeded: res.Succeeded}
	ops, past := c.Success, successPast
	if !res.Succeeded {
		ops, past = c.Failure, failurePast
	}
	for i, op := range ops {
		o := res.Ops[i]
		if p, ok := past[i]; ok {
			o = p
		}
		switch op.Kind {
		case fsm.EtcdOpRange:
			rr := rangeResponse(o)
			rr.Header = hdr
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rr}})
		case fsm.EtcdOpPut:
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{
				ResponsePut: &pb.PutResponse{Header: hdr, PrevKv: toKV(o.Prev)}}})
		case fsm.EtcdOpDelete:
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{
				ResponseDeleteRange: &pb.DeleteRangeResponse{Header: hdr, Deleted: o.Deleted, PrevKvs: toKVs(o.PrevKVs)}}})
		}
	}
	return resp, nil
}

// pastRanges reads the ranges of a branch that ask for an older revision,
// by their positions in the branch, all in one view.
func (k *kvServer) pastRanges(ctx context.Context, ops []fsm.EtcdOp, revs []int64) (map[int]fsm.EtcdOpResult, error) {
	if !slices.ContainsFunc(revs, func(rev int64) bool { return rev != 0 }) {
		return nil, nil
	}
	out := map[int]fsm.EtcdOpResult{}
	err := k.s.view(ctx, true, func(v *fsm.View) error {
		for i, rev := range revs {
			if rev == 0 {
				continue
			}
			res, err := k.s.rangeAt(ctx, v, &ops[i], rev)
			if err != nil {
				return err
			}
			out[i] = res
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readOnly reports whether a transaction branch only reads.
func readOnly(ops []fsm.EtcdOp) bool {
	for _, op := range ops {
		if op.Kind != fsm.EtcdOpRange {
			return false
		}
	}
	return true
}

// readTxn answers a transaction that only reads from the local state after
// the read index, as a Range is, without a trip through the log: its
// compares and reads see one state, and its ranges may read older
// revisions (clientv3's STM reads that way).
func (k *kvServer) readTxn(ctx context.Context, c *fsm.EtcdTxn, successRevs, failureRevs []int64) (*pb.TxnResponse, error) {
	var resp *pb.TxnResponse
	err := k.s.view(ctx, true, func(v *fsm.View) error {
		hdr := k.s.header(v)
		resp = &pb.TxnResponse{Header: hdr, Succeeded: v.EtcdCompares(c.Compares)}
		ops, revs := c.Success, successRevs
		if !resp.Succeeded {
			ops, revs = c.Failure, failureRevs
		}
		for i := range ops {
			res, err := k.s.rangeAt(ctx, v, &ops[i], revs[i])
			if err != nil {
				return err
			}
			rr := rangeResponse(res)
			rr.Header = hdr
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rr}})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// Compact has nothing to do: the state keeps no history.
func (k *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	var resp *pb.CompactionResponse
	err := k.s.view(ctx, false, func(v *fsm.View) error {
		if r.Revision > int64(v.Revision()) {
			return rpctypes.ErrGRPCFutureRev
		}
		resp = &pb.CompactionResponse{Header: k.s.header(v)}
		return nil
	})
	return resp, err
}

// pastStates is what rangeAt needs to read the range [key, end) at rev,
// older than the view: the state at rev of every key in the range that
// changed after it (nil: the key did not exist then), from the first
// change of each in the feed. The feed may run ahead of the view, never
// behind: the changes the view has not applied are left out.
func (s *Server) pastStates(ctx context.Context, v *fsm.View, rev uint64, key, end []byte) (map[string]*fsm.KV, error) {
	for {
		changes, through, wake, err := s.st.ChangesAfterRev(rev)
		if errors.Is(err, fsm.ErrCompacted) {
			return nil, rpctypes.ErrGRPCCompacted
		}
		if err != nil {
			return nil, toStatus(ctx, err)
		}
		if through < v.Index() {
			// The view's last entry is applied but not yet in the feed.
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return nil, toStatus(ctx, ctx.Err())
			}
		}
		past := map[string]*fsm.KV{}
		for _, c := range changes {
			if c.Index > v.Index() {
				break
			}
			if c.Topic != "kv" || !fsm.EtcdInRange([]byte(c.Key), key, end) {
				continue
			}
			if _, seen := past[c.Key]; !seen {
				past[c.Key] = c.Prev
			}
		}
		return past, nil
	}
}
