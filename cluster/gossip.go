package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/armada-orchestrator/armada/fsm"
)

// meta is what each node gossips about itself. It must fit memberlist's
// 512-byte limit, hence the short keys.
type meta struct {
	Role     string            `json:"r"`
	Raft     string            `json:"ra,omitempty"`
	HTTP     string            `json:"h"`
	Labels   map[string]string `json:"l,omitempty"`
	CPUMHz   int64             `json:"c,omitempty"`
	MemoryMB int64             `json:"m,omitempty"`
	Version  string            `json:"v,omitempty"`
	// Ports is the range ship ports come from, so the leader can record
	// it with the node and the node is schedulable from its first record.
	Ports string `json:"pr,omitempty"`
	// Leaving is set just before a graceful leave: memberlist does not
	// tell NotifyLeave whether a member left or died (Node.State is
	// always StateAlive there, hashicorp/memberlist#293).
	Leaving bool `json:"lv,omitempty"`
	// Forwarded: this node applies fsm.Forwarded log entries and takes
	// tagged writes on its forwarding stream (localResults).
	Forwarded bool `json:"fw,omitempty"`
	// Features are the fsm features this node can apply (fsm.Features):
	// the leader switches one on once every server lists it.
	Features []string `json:"ft,omitempty"`
}

// member is a gossip member as this node sees it.
type member struct {
	Name   string
	Addr   string // gossip host:port
	Meta   meta
	Status string // fsm.NodeAlive, NodeSuspect, NodeDead, NodeLeft
	Since  time.Time
}

// gossip wraps memberlist: it publishes this node's metadata, keeps a map
// of every member it has heard of (including dead and left ones, which
// memberlist's Members omits), and signals the leader's reconciler.
type gossip struct {
	ml      *memberlist.Memberlist
	metaMu  sync.Mutex
	self    meta
	metaBuf []byte
	events  chan struct{} // poked on every membership change, for the leader
	changed chan struct{} // poked on every membership change, for the member loop
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	members map[string]*member
}

func newGossip(cfg *Config, self meta, logger *slog.Logger) (*gossip, error) {
	buf, err := json.Marshal(self)
	if err != nil {
		return nil, fmt.Errorf("encode gossip meta: %w", err)
	}
	if len(buf) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("gossip meta is %d bytes (labels too long?); the limit is %d", len(buf), memberlist.MetaMaxSize)
	}
	g := &gossip{self: self, metaBuf: buf, events: make(chan struct{}, 1), changed: make(chan struct{}, 1), log: logger, now: time.Now, members: map[string]*member{}}

	host, port, _ := splitHostPort(cfg.GossipAddr)
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr, mc.BindPort = host, port
	if cfg.Advertise != "" {
		mc.AdvertiseAddr, mc.AdvertisePort = cfg.Advertise, port
	}
	// Faster failure detection than the LAN default (≈6 s to dead): probe
	// every ProbeInterval, and suspect for 3 intervals (scaled by log10 of
	// the cluster size) before declaring a member dead.
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeInterval / 2
	mc.SuspicionMult = 3
	mc.GossipInterval = 100 * time.Millisecond
	mc.PushPullInterval = 15 * time.Second
	// Gossip messages are small: compressing each one (a new LZW writer
	// every time) cost more CPU on an idle node than anything else but
	// Raft's heartbeats. Receivers still read compressed messages.
	mc.EnableCompression = false
	// A node restarted on a new address may take its name back after this.
	mc.DeadNodeReclaimTime = 5 * time.Second
	mc.Delegate = g
	mc.Events = g
	mc.Logger = log.New(&levelLog{log: logger}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip: %w", err)
	}
	g.ml = ml
	return g, nil
}

// addr is the gossip address peers reach this node at.
func (g *gossip) addr() string {
	n := g.ml.LocalNode()
	return n.Address()
}

// join tries the seeds until one answers or ctx-like stop is closed.
func (g *gossip) join(seeds []string, stop <-chan struct{}) {
	if len(seeds) == 0 {
		return
	}
	delay := 200 * time.Millisecond
	for {
		n, err := g.ml.Join(seeds)
		if n > 0 {
			g.log.Info("joined gossip", "contacted", n)
			return
		}
		g.log.Warn("join gossip failed; retrying", "seeds", seeds, "err", err)
		select {
		case <-stop:
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (g *gossip) poke() {
	for _, ch := range []chan struct{}{g.events, g.changed} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (g *gossip) update(n *memberlist.Node, status string) { g.updateIfOlder(n, status, time.Time{}) }

// updateIfOlder records a member's status; with a non-zero notAfter it
// changes nothing if the member's status changed after notAfter.
func (g *gossip) updateIfOlder(n *memberlist.Node, status string, notAfter time.Time) {
	var m meta
	if err := json.Unmarshal(n.Meta, &m); err != nil {
		g.log.Warn("bad gossip meta", "node", n.Name, "err", err)
	}
	g.mu.Lock()
	cur, ok := g.members[n.Name]
	if ok && !notAfter.IsZero() && cur.Since.After(notAfter) {
		g.mu.Unlock()
		return
	}
	if !ok || cur.Status != status {
		cur = &member{Name: n.Name, Since: g.now()}
		g.members[n.Name] = cur
	}
	cur.Addr, cur.Meta, cur.Status = n.Address(), m, status
	g.mu.Unlock()
	g.poke()
}

// sweep reconciles the member map with memberlist's list of live members,
// in case an event was missed: listed members are alive, tracked members
// missing from the list are dead. A member whose status changed after the
// list was taken is left alone, so a sweep never undoes a newer event
// (memberlist declares a node dead, and calls NotifyLeave, under its own
// lock, possibly between our list and our update). memberlist v0.6 does not
// expose suspicion (Node.State stays StateAlive, hashicorp/memberlist#293),
// so members go from alive to dead.
func (g *gossip) sweep() {
	taken := g.now()
	live := map[string]*memberlist.Node{}
	for _, n := range g.ml.Members() {
		live[n.Name] = n
	}
	g.mu.Lock()
	var stale []*memberlist.Node
	for name, n := range live {
		if cur, ok := g.members[name]; !ok || cur.Status != fsm.NodeAlive && cur.Since.Before(taken) {
			stale = append(stale, n)
		}
	}
	changed := false
	for name, cur := range g.members {
		if _, ok := live[name]; !ok && cur.Status == fsm.NodeAlive && cur.Since.Before(taken) {
			cur.Status, cur.Since = fsm.NodeDead, g.now()
			changed = true
		}
	}
	g.mu.Unlock()
	for _, n := range stale {
		g.updateIfOlder(n, fsm.NodeAlive, taken)
	}
	if changed {
		g.poke()
	}
}

// peerAddrs returns the gossip addresses of the other members that have
// not left.
func (g *gossip) peerAddrs(self string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, m := range g.members {
		if m.Name != self && m.Status != fsm.NodeLeft {
			out = append(out, m.Addr)
		}
	}
	return out
}

// alivePeers counts the other members that are alive.
func (g *gossip) alivePeers(self string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := 0
	for _, m := range g.members {
		if m.Name != self && m.Status == fsm.NodeAlive {
			c++
		}
	}
	return c
}

// snapshot returns a copy of every known member.
func (g *gossip) snapshot() map[string]member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]member, len(g.members))
	for k, v := range g.members {
		out[k] = *v
	}
	return out
}

func (g *gossip) member(name string) (member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.members[name]
	if !ok {
		return member{}, false
	}
	return *m, true
}

// forget drops a reaped member from the map.
func (g *gossip) forget(name string) {
	g.mu.Lock()
	delete(g.members, name)
	g.mu.Unlock()
}

func (g *gossip) counts() map[string]int {
	c := map[string]int{fsm.NodeAlive: 0, fsm.NodeSuspect: 0, fsm.NodeDead: 0, fsm.NodeLeft: 0}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range g.members {
		c[m.Status]++
	}
	return c
}

// memberlist.Delegate

func (g *gossip) NodeMeta(limit int) []byte {
	g.metaMu.Lock()
	defer g.metaMu.Unlock()
	return g.metaBuf
}

// markLeaving gossips that this node is about to leave, so that peers
// record it as left rather than dead when it goes.
func (g *gossip) markLeaving(timeout time.Duration) error {
	g.metaMu.Lock()
	g.self.Leaving = true
	buf, err := json.Marshal(g.self)
	if err == nil {
		g.metaBuf = buf
	}
	g.metaMu.Unlock()
	if err != nil {
		return err
	}
	return g.ml.UpdateNode(timeout)
}
func (g *gossip) NotifyMsg([]byte)                           {}
func (g *gossip) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (g *gossip) LocalState(join bool) []byte                { return nil }
func (g *gossip) MergeRemoteState(buf []byte, join bool)     {}

// memberlist.EventDelegate

func (g *gossip) NotifyJoin(n *memberlist.Node)   { g.update(n, fsm.NodeAlive) }
func (g *gossip) NotifyUpdate(n *memberlist.Node) { g.update(n, fsm.NodeAlive) }
func (g *gossip) NotifyLeave(n *memberlist.Node) {
	var m meta
	_ = json.Unmarshal(n.Meta, &m)
	if m.Leaving || n.State == memberlist.StateLeft {
		g.update(n, fsm.NodeLeft)
	} else {
		g.update(n, fsm.NodeDead)
	}
}

// levelLog turns the "[LEVEL] ..." lines memberlist and Raft's hclog
// write into slog records; debug and trace chatter is dropped.
type levelLog struct{ log *slog.Logger }

func (w *levelLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level, msg := slog.LevelInfo, line
	if i := strings.Index(line, "["); i >= 0 {
		if j := strings.Index(line[i:], "]"); j > 0 {
			tag := line[i+1 : i+j]
			msg = strings.TrimSpace(line[i+j+1:])
			switch tag {
			case "DEBUG", "TRACE":
				return len(p), nil
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
		}
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// peersFile remembers the gossip addresses of known members, so a node
// restarted without seeds finds its cluster again.
type peersFile string

func (p peersFile) load() []string {
	b, err := os.ReadFile(string(p))
	if err != nil {
		return nil
	}
	var addrs []string
	_ = json.Unmarshal(b, &addrs)
	return addrs
}

func (p peersFile) save(addrs []string) error {
	sort.Strings(addrs)
	b, _ := json.Marshal(addrs)
	if old, err := os.ReadFile(string(p)); err == nil && bytes.Equal(old, b) {
		return nil
	}
	tmp := string(p) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save peers: %w", err)
	}
	return os.Rename(tmp, string(p))
}
