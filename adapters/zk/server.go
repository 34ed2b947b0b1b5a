package zk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// Store is the local replicated state the server reads and follows.
type Store interface {
	View(fn func(v *fsm.View) error) error
	WaitIndex(ctx context.Context, n uint64) error
	ChangesAt(since uint64) ([]fsm.Change, uint64, <-chan struct{}, error)
	Index() uint64
}

// Raft commits commands (a follower forwards them to the leader) and says
// who leads, which decides who expires sessions.
type Raft interface {
	Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error)
	ReadIndex(ctx context.Context) (uint64, error)
	IsLeader() bool
	Leader() string
}

// Config configures the server.
type Config struct {
	// Addr is the address to listen on (host:port; port 0 picks one).
	Addr string
	// Node is this node's name: srvr and mntr report its Raft role.
	Node string
	// TickTime is ZooKeeper's tick: session timeouts are negotiated into
	// [2, 20] ticks (default 2s, so 4s..40s, as ZooKeeper's defaults).
	TickTime time.Duration
	// TouchInterval is how often the node records a heartbeat of the
	// sessions connected to it (default 1s).
	TouchInterval time.Duration
	// WriteTimeout bounds one write through Raft (default 10s).
	WriteTimeout time.Duration
	Logger       *slog.Logger
	Now          func() time.Time
}

// Server is a ZooKeeper server over the replicated state.
type Server struct {
	st     Store
	raft   Raft
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	w      *watches
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stats stats

	mu    sync.Mutex
	conns map[*conn]struct{}

	emptyData atomic.Bool // fsm.FeatureZKEmptyData was seen on (it never goes off)
}

// New makes a server; Start runs it.
func New(st Store, raft Raft, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TickTime <= 0 {
		cfg.TickTime = 2 * time.Second
	}
	if cfg.TouchInterval <= 0 {
		cfg.TouchInterval = time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	s := &Server{st: st, raft: raft, cfg: cfg, log: cfg.Logger, conns: map[*conn]struct{}{}}
	s.stats.start = time.Now()
	s.w = newWatches(s)
	return s
}

// Start listens and serves in the background until Close or ctx ends.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("zk: listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.w.start()
	s.wg.Add(4)
	go func() {
		defer s.wg.Done()
		s.w.run(s.ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.touchLoop()
	}()
	go func() {
		defer s.wg.Done()
		s.expiryLoop()
	}()
	go func() {
		defer s.wg.Done()
		s.acceptLoop()
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.ctx.Done():
		}
	}()
	s.log.Info("serving zookeeper", "addr", ln.Addr().String())
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and drops every connection; sessions live on in
// the replicated state until they expire.
func (s *Server) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) acceptLoop() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("zookeeper accept", "err", err)
			}
			return
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// sessions lists the sessions with a live connection to this node.
func (s *Server) sessions() map[int64][]*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64][]*conn{}
	for c := range s.conns {
		if id := c.sessionID(); id != 0 {
			out[id] = append(out[id], c)
		}
	}
	return out
}

// touchLoop records, through Raft, a heartbeat of every session connected
// here that the client was heard on since the last one (a request or a
// ping; a new connection, or one whose request is still being handled,
// counts), and drops connections whose session has ended. As in ZooKeeper, a client that stays connected but silent (hung,
// stopped) expires its timeout after its last packet.
func (s *Server) touchLoop() {
	t := time.NewTicker(s.cfg.TouchInterval)
	defer t.Stop()
	heard := map[*conn]int64{} // each connection's packets at the last tick
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		conns := s.sessions()
		next := make(map[*conn]int64, len(heard))
		ids := make([]int64, 0, len(conns))
		for id, cs := range conns {
			touch := false
			for _, c := range cs {
				n := c.received.Load()
				if last, ok := heard[c]; !ok || n > last || c.busy.Load() > 0 {
					touch = true
				}
				next[c] = n
			}
			if touch {
				ids = append(ids, id)
			}
		}
		heard = next
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
		r, err := s.raft.Apply(ctx, &fsm.ZKTouch{IDs: ids})
		cancel()
		if err != nil || r.ZK == nil {
			s.log.Debug("zookeeper session heartbeat", "err", err)
			continue
		}
		for _, id := range r.ZK.Closed {
			for _, c := range conns[id] {
				c.close()
			}
		}
	}
}

// expiryLoop ends the sessions whose last heartbeat is older than their
// timeout. The leader does it; a new leader first gives every session a
// full timeout from when it took over, as ZooKeeper does. Other nodes step
// in two ticks later, in case the leader runs no ZooKeeper adapter: either
// way the entry expires only what the leader's clock, stamped into it, says
// has expired.
func (s *Server) expiryLoop() {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var since int64
	var leader string
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := s.cfg.Now().UnixMilli()
		if l := s.raft.Leader(); l != leader || l == "" {
			leader, since = l, now
			continue
		}
		margin := int64(0)
		if !s.raft.IsLeader() {
			margin = 2 * s.cfg.TickTime.Milliseconds()
		}
		var ids []int64
		s.st.View(func(v *fsm.View) error {
			for _, ss := range v.ZKSessions() {
				if max(ss.LastTouch, since)+ss.TimeoutMs+margin <= now {
					ids = append(ids, ss.ID)
				}
			}
			return nil
		})
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
		r, err := s.raft.Apply(ctx, &fsm.ZKClose{IDs: ids, Expire: true})
		cancel()
		if err != nil || r.ZK == nil {
			s.log.Warn("expire zookeeper sessions", "err", err)
			continue
		}
		if len(r.ZK.Closed) > 0 {
			s.log.Info("zookeeper sessions expired", "sessions", r.ZK.Closed)
		}
	}
}

// multi is a ZKMulti of ops for a connection's session, telling empty data
// from null once every server can (fsm.FeatureZKEmptyData).
func (s *Server) multi(session int64, auth []string, ops []fsm.ZKOp) *fsm.ZKMulti {
	if !s.emptyData.Load() {
		s.st.View(func(v *fsm.View) error {
			if v.Feature(fsm.FeatureZKEmptyData) {
				s.emptyData.Store(true)
			}
			return nil
		})
	}
	return &fsm.ZKMulti{Session: session, Auth: auth, Ops: ops, EmptyData: s.emptyData.Load()}
}

// apply commits c and waits until this node has applied it and dispatched
// the watch events it caused.
func (s *Server) apply(ctx context.Context, c fsm.Command) (*fsm.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	r, err := s.raft.Apply(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("zk: apply: %w", err)
	}
	if r.ZK == nil {
		return nil, errors.New("zk: apply: no answer")
	}
	if err := s.st.WaitIndex(ctx, r.Index); err != nil {
		return nil, fmt.Errorf("zk: wait for index %d: %w", r.Index, err)
	}
	if err := s.w.wait(ctx, r.Index); err != nil {
		return nil, err
	}
	return r, nil
}

// negotiate clamps a requested session timeout into [2, 20] ticks.
func (s *Server) negotiate(ms int32) int32 {
	lo, hi := int32(2*s.cfg.TickTime/time.Millisecond), int32(20*s.cfg.TickTime/time.Millisecond)
	return min(max(ms, lo), hi)
}
