package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/armada-orchestrator/armada/fsm"
)

// Node is one running Armada node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	state   *fsm.State
	raft    *raft.Raft
	parts   *raftParts
	logs    raft.LogStore // the log as Raft reads it (through its cache)
	gsp     *gossip
	hb      heartbeats
	peers   peersFile
	fwd     *forwarder            // HTTP requests to other nodes
	batch   *grouper              // leader: groups commands into log entries
	stream  *streamClient         // follower: forwards to the leader
	streams map[net.Conn]struct{} // leader: followers' open streams (under closeMu)
	met     *metrics
	now     func() time.Time
	results *localResults // forwarded writes' results, from this node's apply
	push    *commitPush   // leader: tells followers a commit they wait for
	tagged  cachedCheck   // leader: every server applies fsm.Forwarded
	member  cachedCheck   // this node is a server of the configuration

	notify chan bool
	hooks  []func(ctx context.Context)

	stop      chan struct{}
	wg        sync.WaitGroup
	closeMu   sync.Mutex
	closed    bool
	leaderMu  sync.Mutex
	leading   bool // leadership established (after the barrier)
	leadStart time.Time
}

// New prepares a node; hooks registered with OnLeader before Start run
// on every leadership term.
func New(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Node{cfg: cfg, log: cfg.Logger, now: time.Now, notify: make(chan bool, 16), stop: make(chan struct{}),
		results: newLocalResults(), push: newCommitPush()}, nil
}

// OnLeader registers fn to run while this node is the established leader:
// it starts after a Barrier (so the state holds every committed entry) and
// its context is cancelled when leadership is lost or the node stops.
func (n *Node) OnLeader(fn func(ctx context.Context)) { n.hooks = append(n.hooks, fn) }

// nodeIdentity pins a data directory to the node name that created it.
type nodeIdentity struct {
	Name string `json:"name"`
}

// Start opens the data directory, starts Raft and gossip, and bootstraps or
// joins as the configuration says. self is this node's capacity.
func (n *Node) Start(ctx context.Context, capacity fsm.Resources) error {
	cfg := &n.cfg
	if err := os.MkdirAll(dataPath(cfg.DataDir, "raft"), 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := n.checkIdentity(); err != nil {
		return err
	}
	// The state file is a cache of snapshot + log: rebuild it on every
	// start so it can never disagree with what Raft has committed.
	statePath := dataPath(cfg.DataDir, "state.db")
	if err := fsm.Remove(statePath); err != nil {
		return err
	}
	st, err := fsm.Open(statePath)
	if err != nil {
		return err
	}
	n.state = st
	hl := hclogger(n.log.With("component", "raft"))
	n.parts, err = openRaftParts(cfg, hl, n.log.With("component", "raft"))
	if err != nil {
		st.Close()
		return err
	}
	existing, err := raft.HasExistingState(n.parts.log, n.parts.store, n.parts.snaps)
	if err != nil {
		n.closeStores()
		return fmt.Errorf("read raft state: %w", err)
	}
	logs, err := raft.NewLogCache(1024, n.parts.log)
	n.logs = logs
	if err != nil {
		n.closeStores()
		return fmt.Errorf("log cache: %w", err)
	}
	n.raft, err = raft.NewRaft(raftConfig(cfg, n.notify, hl), raftFSM{st: st, results: n.results, push: n.push}, logs, n.parts.store, n.parts.snaps,
		quietTransport{n.parts.transport, n.push})
	if err != nil {
		n.closeStores()
		return fmt.Errorf("start raft: %w", err)
	}
	raftAddr := string(n.parts.transport.LocalAddr())
	if !existing && len(cfg.Seeds) == 0 {
		if cfg.Role == RoleWorker {
			n.Shutdown()
			return errors.New("a worker cannot start a new cluster: give the gossip address of a member")
		}
		n.log.Info("bootstrapping a new cluster", "node", cfg.Name)
		boot := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(cfg.Name), Address: raft.ServerAddress(raftAddr)}}}
		if err := n.raft.BootstrapCluster(boot).Error(); err != nil {
			n.Shutdown()
			return fmt.Errorf("bootstrap: %w", err)
		}
	}

	self := meta{Role: cfg.Role, Raft: raftAddr, HTTP: cfg.advertised(cfg.HTTPAddr), Labels: cfg.Labels,
		CPUMHz: capacity.CPUMHz, MemoryMB: capacity.MemoryMB, Version: cfg.Version, Ports: cfg.PortsRange, Forwarded: true,
		Features: cfg.features}
	if self.Features == nil {
		self.Features = fsm.Features()
	}
	n.gsp, err = newGossip(cfg, self, n.log.With("component", "gossip"))
	if err != nil {
		n.Shutdown()
		return err
	}
	n.peers = peersFile(dataPath(cfg.DataDir, "peers.json"))
	n.fwd = newForwarder(n)
	n.batch = newGrouper(leaderFlights, n.raftFlush)
	n.stream = newStreamClient(n)
	n.met = newMetrics(n)

	seeds := append(append([]string(nil), cfg.Seeds...), n.peers.load()...)
	n.spawn(func() { n.gsp.join(seeds, n.stop) })
	n.spawn(n.leaderLoop)
	n.spawn(func() { n.batch.run(n.stop) })
	n.spawn(n.memberLoop)
	n.spawn(n.watchHeartbeats)
	n.log.Info("node started", "name", cfg.Name, "role", cfg.Role, "gossip", n.gsp.addr(), "raft", raftAddr,
		"http", cfg.HTTPAddr, "bootstrapped", !existing && len(cfg.Seeds) == 0)
	return nil
}

func (n *Node) checkIdentity() error {
	path := dataPath(n.cfg.DataDir, "node.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b, _ = json.Marshal(nodeIdentity{Name: n.cfg.Name})
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return fmt.Errorf("write node identity: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read node identity: %w", err)
	}
	var id nodeIdentity
	if err := json.Unmarshal(b, &id); err != nil {
		return fmt.Errorf("read node identity: %w", err)
	}
	if id.Name != n.cfg.Name {
		return fmt.Errorf("data dir %s belongs to node %q, not %q", n.cfg.DataDir, id.Name, n.cfg.Name)
	}
	return nil
}

func (n *Node) spawn(fn func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		fn()
	}()
}

// memberLoop runs on every node: it saves the known peers as soon as
// membership changes (so a restart without seeds finds the cluster again),
// and rejoins gossip through the replicated node records whenever this node
// knows no other live member (e.g. it restarted before it ever saved them).
func (n *Node) memberLoop() {
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	var lastRejoin time.Time
	var saved []string // what the peers file holds, once written or found so
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		case <-n.gsp.changed:
		}
		n.gsp.sweep()
		if addrs := n.gsp.peerAddrs(n.cfg.Name); len(addrs) > 0 {
			// Compared in memory: reading the file back every second was
			// a good part of an idle node's CPU.
			slices.Sort(addrs)
			if !slices.Equal(addrs, saved) {
				if err := n.peers.save(addrs); err != nil {
					n.log.Warn("save peers", "err", err)
				} else {
					saved = addrs
				}
			}
		}
		if n.gsp.alivePeers(n.cfg.Name) == 0 && time.Since(lastRejoin) > 5*time.Second {
			lastRejoin = time.Now()
			if addrs := n.recordedPeers(); len(addrs) > 0 {
				if _, err := n.gsp.ml.Join(addrs); err == nil {
					n.log.Info("rejoined gossip through recorded nodes", "addrs", addrs)
				}
			}
		}
	}
}

// recordedPeers are the gossip addresses of the other nodes in the
// replicated state.
func (n *Node) recordedPeers() []string {
	var out []string
	n.state.View(func(v *fsm.View) error {
		for _, r := range v.Nodes() {
			if r.Name != n.cfg.Name && r.Status != fsm.NodeLeft && r.GossipAddr != "" {
				out = append(out, r.GossipAddr)
			}
		}
		return nil
	})
	return out
}

// Name is this node's name.
func (n *Node) Name() string { return n.cfg.Name }

// State is this node's replicated state.
func (n *Node) State() *fsm.State { return n.state }

// IsLeader reports whether this node is the established leader.
func (n *Node) IsLeader() bool {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leading
}

// Leader returns the leader's name, or "" when there is none.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// Term is the current Raft term.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// Done is closed once the node has stopped (after Leave or Shutdown).
func (n *Node) Done() <-chan struct{} { return n.stop }

// RaftStats is Raft's view of this node, for diagnostics.
func (n *Node) RaftStats() map[string]string { return n.raft.Stats() }

// Leave leaves the cluster gracefully: leadership is handed off, gossip is
// told we left (so the leader removes us from Raft at once rather than
// waiting for the reap timeout), and the node stops.
func (n *Node) Leave(ctx context.Context) error {
	if n.raft.State() == raft.Leader && n.voterCount() > 1 {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("leadership transfer before leave", "err", err)
		}
	}
	if err := n.gsp.markLeaving(5 * time.Second); err != nil {
		n.log.Warn("gossip leave intent", "err", err)
	}
	if err := n.gsp.ml.Leave(5 * time.Second); err != nil {
		n.log.Warn("gossip leave", "err", err)
	}
	// Wait until the leader has taken us out of the Raft configuration.
	for ctx.Err() == nil && n.inConfiguration() && n.voterCount() > 1 {
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return n.Shutdown()
}

func (n *Node) inConfiguration() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(n.cfg.Name) {
			return true
		}
	}
	return false
}

func (n *Node) voterCount() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			c++
		}
	}
	return c
}

// Shutdown stops the node without telling the cluster, as a crash would
// (but cleanly on disk).
func (n *Node) Shutdown() error {
	n.closeMu.Lock()
	if n.closed {
		n.closeMu.Unlock()
		return nil
	}
	n.closed = true
	close(n.stop)
	for c := range n.streams {
		c.Close()
	}
	n.closeMu.Unlock()
	if n.stream != nil {
		n.stream.close()
	}
	if n.gsp != nil {
		n.gsp.ml.Shutdown()
	}
	var err error
	if n.raft != nil {
		err = n.raft.Shutdown().Error()
	}
	n.wg.Wait()
	n.closeStores()
	return err
}

func (n *Node) closeStores() {
	if n.parts != nil {
		n.parts.close()
	}
	if n.state != nil {
		n.state.Close()
	}
}
