package etcd

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/armada-orchestrator/armada/fsm"
)

// Lease TTL bounds, in seconds, as etcd's defaults give them: a shorter TTL
// is raised to minLeaseTTL (1.5 election timeouts, rounded up), a longer
// one than maxLeaseTTL is refused.
const (
	minLeaseTTL = 2
	maxLeaseTTL = 9_000_000_000
)

type leaseServer struct {
	pb.UnimplementedLeaseServer
	s *Server
}

// LeaseGrant makes a lease through Raft; its ID is the Raft index of the
// grant. IDs chosen by the client are not supported.
func (l *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.ID != 0 {
		return nil, status.Error(codes.Unimplemented, "armada: lease IDs are chosen by the server; request ID 0")
	}
	if r.TTL > maxLeaseTTL {
		return nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	ttl := max(r.TTL, minLeaseTTL)
	res, err := l.s.apply(ctx, &fsm.LeaseGrant{TTLms: ttl * 1000})
	if err != nil {
		return nil, err
	}
	return &pb.LeaseGrantResponse{Header: l.s.writeHeader(res.Rev), ID: int64(res.Lease.ID), TTL: ttl}, nil
}

// LeaseRevoke ends a lease and deletes its keys.
func (l *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	if r.ID <= 0 {
		return nil, rpctypes.ErrGRPCLeaseNotFound
	}
	res, err := l.s.apply(ctx, &fsm.LeaseRevoke{ID: uint64(r.ID)})
	if err != nil {
		return nil, err
	}
	return &pb.LeaseRevokeResponse{Header: l.s.writeHeader(res.Rev)}, nil
}

// LeaseKeepAlive renews leases through Raft, one answer per request; an
// unknown lease answers TTL 0, as in etcd.
func (l *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &pb.LeaseKeepAliveResponse{ID: req.ID}
		res, err := l.s.apply(ctx, &fsm.LeaseKeepAlive{ID: uint64(req.ID)})
		switch {
		case err == nil:
			resp.Header = l.s.writeHeader(res.Rev)
			resp.TTL = res.Lease.TTLms / 1000
		case status.Code(err) == codes.NotFound:
			resp.Header = l.s.currentHeader()
		default:
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// LeaseTimeToLive answers a lease's remaining time by the node's clock;
// TTL is -1 for a lease that does not exist, as in etcd.
func (l *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	var resp *pb.LeaseTimeToLiveResponse
	err := l.s.view(ctx, true, func(v *fsm.View) error {
		resp = &pb.LeaseTimeToLiveResponse{Header: l.s.header(v), ID: r.ID, TTL: -1}
		if r.ID <= 0 {
			return nil
		}
		ls, ok := v.Lease(uint64(r.ID))
		if !ok {
			return nil
		}
		left := float64(ls.Expiry-l.s.cfg.Now().UnixMilli()) / 1000
		resp.TTL = max(int64(left), 0) // whole seconds left, as etcd truncates
		resp.GrantedTTL = ls.TTLms / 1000
		if r.Keys {
			for _, k := range v.LeaseKeys(ls.ID) {
				resp.Keys = append(resp.Keys, []byte(k))
			}
		}
		return nil
	})
	return resp, err
}

// LeaseLeases lists every lease.
func (l *leaseServer) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	var resp *pb.LeaseLeasesResponse
	err := l.s.view(ctx, true, func(v *fsm.View) error {
		resp = &pb.LeaseLeasesResponse{Header: l.s.header(v)}
		for _, ls := range v.Leases() {
			resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: int64(ls.ID)})
		}
		return nil
	})
	return resp, err
}
