package etcd

import (
	"context"
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
