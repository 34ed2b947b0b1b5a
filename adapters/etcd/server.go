// Package etcd serves the etcd v3 gRPC API (KV, Lease, Watch, Cluster and
// Maintenance) from the replicated key space: etcdctl and clientv3 work
// against any node.
//
// Keys are the key space's keys (the same as /v1/kv and Redis strings) and
// the revision is the Raft index: a response header carries the applied
// index the answer was read at, and a key's create_revision, mod_revision,
// version and lease are the KV's. Writes (Put, DeleteRange, Txn) become one
// fsm.EtcdTxn each, applied atomically in one Raft entry; the answer waits
// until this node has applied it, so a client always sees its own writes.
// Linearizable reads go through the node's read index; serializable reads
// use the local state. The state keeps no history: reads at a past revision
// answer etcd's "compacted" error.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
)

// Store is the local replicated state the adapter reads.
type Store interface {
	View(fn func(v *fsm.View) error) error
	WaitIndex(ctx context.Context, n uint64) error
	Changes(since uint64) ([]fsm.Change, <-chan struct{}, error)
	ChangesAfterRev(rev uint64) ([]fsm.Change, uint64, <-chan struct{}, error)
	OldestRev() uint64
	Index() uint64
}

// Raft commits commands (a follower forwards them to the leader) and
// answers what the cluster's Raft group looks like.
type Raft interface {
	Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error)
	ReadIndex(ctx context.Context) (uint64, error)
	Leader() string
	Term() uint64
}

// keepaliveTimeout is how long a client may leave a keepalive ping, or
// data sent to it, unanswered.
const keepaliveTimeout = 20 * time.Second

// Version is the etcd version the adapter reports.
const Version = "3.4.0"

// clusterVersion is the cluster version /version reports, etcd's
// major.minor.0.
const clusterVersion = "3.4.0"

// Config configures the server.
type Config struct {
	// Addr is the address to listen on (host:port; port 0 picks one).
	Addr string
	// Node is this node's name: its member ID is a hash of it, and the
	// adapter records its address under it for MemberList.
	Node string
	// AdvertiseHost is the host clients reach this adapter at when it
	// listens on all interfaces (default: the listener's address).
	AdvertiseHost string
	// WriteTimeout bounds one write through Raft (default 10s).
	WriteTimeout time.Duration
	// Password, when set, turns authentication on: it is the password of
	// root, the one user (auth.go).
	Password string
	Logger   *slog.Logger
	Now      func() time.Time
}

// Server is an etcd v3 gRPC server over the replicated state.
type Server struct {
	st     Store
	raft   Raft
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	grpc   *grpc.Server
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// clusterID is the header's cluster ID once the cluster has one: it
	// never changes after, and a write's header needs nothing else from
	// the state.
	clusterID atomic.Uint64
	authTok   string // root's auth token when there is a password (auth.go)
}

// New makes a server; Start runs it.
func New(st Store, raft Raft, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	return &Server{st: st, raft: raft, cfg: cfg, log: cfg.Logger, authTok: authToken(cfg.Password)}
}

// Start listens and serves in the background until Close or ctx ends.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("etcd: listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Hour, Timeout: keepaliveTimeout}),
		grpc.MaxRecvMsgSize(2 << 20),
		// Calls run on a pool of goroutines that keep their grown stacks,
		// rather than on a new goroutine each whose stack grows (and is
		// copied) on every call: 6% less CPU per Put at 64 clients. Calls
		// beyond the pool still get a goroutine of their own.
		grpc.NumStreamWorkers(64),
		// Fixed flow-control windows. With gRPC's default dynamic window
		// the server measures each connection's bandwidth-delay product
		// with a PING (and a window update) every round trip, which for
		// etcd's small messages never ends: 2-4% more Puts/s at 64
		// clients without them (4 of 4 rounds side by side). 1 MiB per
		// stream still takes the largest request (2 MiB above) in two
		// windows.
		grpc.StaticStreamWindowSize(1 << 20),
		grpc.StaticConnWindowSize(4 << 20),
		// etcd's messages through their generated code (codec.go).
		grpc.ForceServerCodecV2(newGogoCodec()),
	}
	opts = append(opts, s.leaderOptions()...)
	s.grpc = grpc.NewServer(append(opts, s.authOptions()...)...)
	pb.RegisterKVServer(s.grpc, &kvServer{s: s})
	pb.RegisterAuthServer(s.grpc, &authServer{s: s})
	pb.RegisterLeaseServer(s.grpc, &leaseServer{s: s})
	pb.RegisterWatchServer(s.grpc, &watchServer{s: s})
	pb.RegisterClusterServer(s.grpc, &clusterServer{s: s})
	pb.RegisterMaintenanceServer(s.grpc, &maintenanceServer{s: s})
	split := newSplitListener(ln)
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(split.grpc); err != nil && s.ctx.Err() == nil {
			s.log.Error("etcd server stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.serveHTTP(split.http)
	}()
	go func() {
		defer s.wg.Done()
		s.register()
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.ctx.Done():
		}
	}()
	s.log.Info("serving etcd v3", "addr", ln.Addr().String())
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and ends every stream.
func (s *Server) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.ln.Close() // the gRPC and HTTP sides close with it
	s.grpc.Stop()
	s.wg.Wait()
	return nil
}

// advertised is the address other nodes and clients reach this adapter at.
func (s *Server) advertised() string {
	addr := s.ln.Addr().String()
	if host, port, err := net.SplitHostPort(addr); err == nil && s.cfg.AdvertiseHost != "" {
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			addr = net.JoinHostPort(s.cfg.AdvertiseHost, port)
		}
	}
	return addr
}

// register records this node's adapter address in the replicated state,
// retrying until a leader takes it.
func (s *Server) register() {
	if s.cfg.Node == "" {
		return
	}
	addr := s.advertised()
	delay := 100 * time.Millisecond
	for {
		var have string
		s.st.View(func(v *fsm.View) error {
			have = v.EtcdNodes()[s.cfg.Node]
			return nil
		})
		if have == addr {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
		_, err := s.raft.Apply(ctx, &fsm.EtcdTxn{Node: s.cfg.Node, Addr: addr})
		cancel()
		if err == nil {
			return
		}
		s.log.Debug("record etcd address", "err", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// memberID is the stable etcd member ID of a node: a hash of its name.
func memberID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

func (s *Server) header(v *fsm.View) *pb.ResponseHeader {
	return &pb.ResponseHeader{
		ClusterId: memberID("cluster/" + v.ClusterID()),
		MemberId:  memberID(s.cfg.Node),
		Revision:  int64(v.Revision()),
		RaftTerm:  s.raft.Term(),
	}
}

// currentHeader is the header of the node's state now.
func (s *Server) currentHeader() *pb.ResponseHeader {
	var hdr *pb.ResponseHeader
	s.st.View(func(v *fsm.View) error {
		hdr = s.header(v)
		return nil
	})
	return hdr
}

// writeHeader is the header of a write whose command left the state at
// revision rev (fsm.Result.Rev). It opens no view
// once the cluster ID is known: a view commits the state's open write
// transaction, which applied entries otherwise share.
func (s *Server) writeHeader(rev uint64) *pb.ResponseHeader {
	id := s.clusterID.Load()
	if id == 0 {
		s.st.View(func(v *fsm.View) error {
			if cid := v.ClusterID(); cid != "" {
				id = memberID("cluster/" + cid)
				s.clusterID.Store(id)
			} else {
				id = memberID("cluster/")
			}
			return nil
		})
	}
	return &pb.ResponseHeader{ClusterId: id, MemberId: memberID(s.cfg.Node), Revision: int64(rev), RaftTerm: s.raft.Term()}
}

// view runs fn on the local state, after the read index when linearizable.
func (s *Server) view(ctx context.Context, linearizable bool, fn func(v *fsm.View) error) error {
	if linearizable {
		if _, err := s.raft.ReadIndex(ctx); err != nil {
			return toStatus(ctx, err)
		}
	}
	return s.st.View(fn)
}

// apply commits c and waits until this node has applied it.
func (s *Server) apply(ctx context.Context, c fsm.Command) (*fsm.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	r, err := s.raft.Apply(ctx, c)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	if err := s.st.WaitIndex(ctx, r.Index); err != nil {
		return nil, toStatus(ctx, err)
	}
	return r, nil
}

// toStatus turns a failure into etcd's gRPC error for it.
func toStatus(ctx context.Context, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	var fe *fsm.Error
	if errors.As(err, &fe) {
		switch {
		case fe.Code == fsm.ErrNotFound && fe.Field == "lease":
			return rpctypes.ErrGRPCLeaseNotFound
		case fe.Code == fsm.ErrNotFound && fe.Field == "key":
			return rpctypes.ErrGRPCKeyNotFound
		case fe.Code == fsm.ErrInvalid:
			return status.Error(codes.InvalidArgument, "etcdserver: "+fe.Message)
		}
		return status.Error(codes.FailedPrecondition, "etcdserver: "+fe.Message)
	}
	switch {
	case errors.Is(err, cluster.ErrNoLeader):
		return rpctypes.ErrGRPCNoLeader
	case errors.Is(err, cluster.ErrUnknownOutcome):
		return rpctypes.ErrGRPCTimeoutDueToLeaderFail
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return rpctypes.ErrGRPCCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return rpctypes.ErrGRPCTimeout
	}
	return status.Error(codes.Unavailable, "etcdserver: "+err.Error())
}
