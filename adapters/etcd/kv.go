package etcd

import (
	"bytes"
	"context"

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
// request is serializable. Only the current revision can be read.
func (k *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	var resp *pb.RangeResponse
	op := rangeOp(r)
	err := k.s.view(ctx, !r.Serializable, func(v *fsm.View) error {
		if cur := int64(v.Revision()); r.Revision > cur {
			return rpctypes.ErrGRPCFutureRev
		} else if r.Revision > 0 && r.Revision < cur {
			return rpctypes.ErrGRPCCompacted
		}
		resp = rangeResponse(v.EtcdRange(&op))
		resp.Header = k.s.header(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
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

func txnOps(reqs []*pb.RequestOp) ([]fsm.EtcdOp, error) {
	if len(reqs) > fsm.MaxEtcdOps {
		return nil, rpctypes.ErrGRPCTooManyOps
	}
	var out []fsm.EtcdOp
	for _, req := range reqs {
		switch r := req.Request.(type) {
		case *pb.RequestOp_RequestRange:
			if r.RequestRange == nil {
				return nil, rpctypes.ErrGRPCEmptyKey
			}
			if err := checkRange(r.RequestRange); err != nil {
				return nil, err
			}
			if r.RequestRange.Revision != 0 {
				return nil, rpctypes.ErrGRPCCompacted
			}
			out = append(out, rangeOp(r.RequestRange))
		case *pb.RequestOp_RequestPut:
			if r.RequestPut == nil {
				return nil, rpctypes.ErrGRPCEmptyKey
			}
			if err := checkPut(r.RequestPut); err != nil {
				return nil, err
			}
			out = append(out, putOp(r.RequestPut))
		case *pb.RequestOp_RequestDeleteRange:
			if r.RequestDeleteRange == nil || len(r.RequestDeleteRange.Key) == 0 {
				return nil, rpctypes.ErrGRPCEmptyKey
			}
			out = append(out, deleteOp(r.RequestDeleteRange))
		case *pb.RequestOp_RequestTxn:
			return nil, status.Error(codes.Unimplemented, "armada: nested transactions are not supported")
		default:
			return nil, status.Error(codes.InvalidArgument, "etcdserver: empty request operation")
		}
	}
	return out, checkDuplicates(out)
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
			if inRange([]byte(k), op.Key, op.RangeEnd) {
				return rpctypes.ErrGRPCDuplicateKey
			}
		}
	}
	return nil
}

// inRange reports whether key is in [start, end) with etcd's conventions:
// just start when end is empty, every key from start on when end is "\0".
func inRange(key, start, end []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(key, start)
	case len(end) == 1 && end[0] == 0:
		return bytes.Compare(key, start) >= 0
	}
	return bytes.Compare(key, start) >= 0 && bytes.Compare(key, end) < 0
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
	if c.Success, err = txnOps(r.Success); err != nil {
		return nil, err
	}
	if c.Failure, err = txnOps(r.Failure); err != nil {
		return nil, err
	}
	if len(c.Compares)+len(c.Success)+len(c.Failure) == 0 {
		// An empty transaction changes nothing: answer from the state.
		var resp *pb.TxnResponse
		err := k.s.view(ctx, true, func(v *fsm.View) error {
			resp = &pb.TxnResponse{Header: k.s.header(v), Succeeded: true}
			return nil
		})
		return resp, err
	}
	res, hdr, err := k.txn(ctx, c)
	if err != nil {
		return nil, err
	}
	resp := &pb.TxnResponse{Header: hdr, Succeeded: res.Succeeded}
	ops := c.Success
	if !res.Succeeded {
		ops = c.Failure
	}
	for i, op := range ops {
		o := res.Ops[i]
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
