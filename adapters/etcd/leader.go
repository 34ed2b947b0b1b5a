package etcd

import (
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// noLeaderChecks and noLeaderEvery are how a require-leader watch stream
// learns that its node lost the leader: after this many checks in a row
// find none, as etcd cancels such streams after three election timeouts.
const (
	noLeaderChecks = 3
	noLeaderEvery  = time.Second
)

// requireLeader reports whether a call asks to fail when its node has no
// leader (clientv3.WithRequireLeader; Kubernetes sets it on its watches).
func requireLeader(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return false
	}
	v := md.Get(rpctypes.MetadataRequireLeaderKey)
	return len(v) > 0 && v[0] == rpctypes.MetadataHasLeader
}

// leaderOptions are the interceptors that refuse a require-leader call
// with etcd's "no leader" while the node has none.
func (s *Server) leaderOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if requireLeader(ctx) && s.raft.Leader() == "" {
				return nil, rpctypes.ErrGRPCNoLeader
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if requireLeader(ss.Context()) && s.raft.Leader() == "" {
				return rpctypes.ErrGRPCNoLeader
			}
			return h(srv, ss)
		}),
	}
}

// leaderLost is closed once the node has had no leader for noLeaderChecks
// checks in a row; never, unless the call asked for a leader. It stops
// with ctx.
func (s *Server) leaderLost(ctx context.Context) <-chan struct{} {
	if !requireLeader(ctx) {
		return nil
	}
	lost := make(chan struct{})
	go func() {
		t := time.NewTicker(noLeaderEvery)
		defer t.Stop()
		for misses := 0; misses < noLeaderChecks; {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if s.raft.Leader() == "" {
				misses++
			} else {
				misses = 0
			}
		}
		close(lost)
	}()
	return lost
}
