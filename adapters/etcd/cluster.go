package etcd

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/armada-orchestrator/armada/fsm"
)

type clusterServer struct {
	pb.UnimplementedClusterServer
	s *Server
}

// MemberList lists the cluster's server nodes: the ID is a hash of the
// name, the peer URL the Raft address and the client URL the node's etcd
// adapter, when it runs one.
func (c *clusterServer) MemberList(ctx context.Context, _ *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	var resp *pb.MemberListResponse
	err := c.s.view(ctx, false, func(v *fsm.View) error {
		resp = &pb.MemberListResponse{Header: c.s.header(v)}
		addrs := v.EtcdNodes()
		for _, n := range v.Nodes() {
			if !n.Server || n.Status == fsm.NodeLeft {
				continue
			}
			m := &pb.Member{ID: memberID(n.Name), Name: n.Name, IsLearner: n.Role != fsm.RoleVoter}
			if n.RaftAddr != "" {
				m.PeerURLs = []string{"http://" + n.RaftAddr}
			}
			if a := addrs[n.Name]; a != "" {
				m.ClientURLs = []string{"http://" + a}
			}
			resp.Members = append(resp.Members, m)
		}
		sort.Slice(resp.Members, func(i, j int) bool { return resp.Members[i].Name < resp.Members[j].Name })
		return nil
	})
	return resp, err
}

type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	s *Server
}

// Alarm answers that no alarm is raised; activating or deactivating one is
// not supported.
func (m *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	var resp *pb.AlarmResponse
	err := m.s.view(ctx, false, func(v *fsm.View) error {
		resp = &pb.AlarmResponse{Header: m.s.header(v)}
		return nil
	})
	return resp, err
}

// Status reports this node's view of the cluster.
func (m *maintenanceServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	var resp *pb.StatusResponse
	err := m.s.view(ctx, false, func(v *fsm.View) error {
		resp = &pb.StatusResponse{
			Header:           m.s.header(v),
			Version:          Version,
			DbSize:           v.Size(),
			DbSizeInUse:      v.Size(),
			RaftIndex:        v.Index(),
			RaftTerm:         m.s.raft.Term(),
			RaftAppliedIndex: v.Index(),
		}
		if l := m.s.raft.Leader(); l != "" {
			resp.Leader = memberID(l)
		}
		return nil
	})
	return resp, err
}

// Defragment has nothing to do: the state's BoltDB file reuses its free
// pages, and compacting it would stop writes. It succeeds, as etcdctl
// defrag (often run from cron) expects.
func (m *maintenanceServer) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	var resp *pb.DefragmentResponse
	err := m.s.view(ctx, false, func(v *fsm.View) error {
		resp = &pb.DefragmentResponse{Header: m.s.header(v)}
		return nil
	})
	return resp, err
}

// HashKV hashes the key space at a revision (0: the present), as read
// through the change feed like Range: every key, create and mod revision,
// version, lease and value in key order, with CRC-32C. Members at the same
// revision give the same hash (etcd's own differs: it hashes its MVCC
// store); CompactRevision is the oldest revision still readable, less one.
func (m *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	var resp *pb.HashKVResponse
	err := m.s.view(ctx, false, func(v *fsm.View) error {
		all := fsm.EtcdOp{Key: []byte{0}, RangeEnd: []byte{0}}
		res, err := m.s.rangeAt(ctx, v, &all, r.Revision)
		if err != nil {
			return err
		}
		h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
		var num [8]byte
		for _, kv := range res.KVs {
			h.Write([]byte(kv.Key))
			for _, n := range []uint64{kv.CreateRev, kv.ModRev, uint64(kv.Version), kv.Lease, uint64(len(kv.Value))} {
				binary.BigEndian.PutUint64(num[:], n)
				h.Write(num[:])
			}
			h.Write(kv.Value)
		}
		resp = &pb.HashKVResponse{Header: m.s.header(v), Hash: h.Sum32(), CompactRevision: int64(m.s.st.OldestRev()) - 1}
		return nil
	})
	return resp, err
}

// Hash is HashKV at the present (etcd's hashes its whole backend).
func (m *maintenanceServer) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	r, err := m.HashKV(ctx, &pb.HashKVRequest{})
	if err != nil {
		return nil, err
	}
	return &pb.HashResponse{Header: r.Header, Hash: r.Hash}, nil
}
