// Package cluster runs one Armada node: gossip membership (memberlist),
// the Raft group the servers form, the replicated state behind it, the
// leader's membership reconciliation, leadership hooks, write forwarding and
// consistent reads. Other packages use it through small interfaces of their
// own and never see Raft types.
package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"
)

// Roles a node can run as.
const (
	RoleServer = "server" // Raft voter candidate, runs no ships
	RoleWorker = "worker" // runs ships; a Raft non-voter that is never promoted
	RoleBoth   = "both"   // voter candidate and runs ships
)

// defaultHeartbeatTimeout is Config.HeartbeatTimeout's default.
const defaultHeartbeatTimeout = 500 * time.Millisecond

// Config is what a node needs to run. Zero durations take the defaults
// documented on each field.
type Config struct {
	Name       string
	DataDir    string
	GossipAddr string // host:port to bind gossip to
	RaftAddr   string // host:port to bind Raft to
	HTTPAddr   string // host:port the HTTP API listens on (advertised to peers)
	Advertise  string // IP to advertise instead of the bind addresses' hosts
	Voters     int    // Raft voters the leader aims for (default 3)
	Role       string // server, worker or both (default both)
	Labels     map[string]string
	PortsRange string   // host ports for ships, "20000-29999"; empty on a node that runs none
	Seeds      []string // gossip addresses of members to join through
	Version    string

	// HeartbeatTimeout is Raft's heartbeat and election timeout (default
	// 500ms): a new leader is elected roughly 1-2 of these after the old
	// one dies.
	HeartbeatTimeout time.Duration
	// ProbeInterval is the gossip failure detector's probe interval
	// (default 500ms); a crashed member is declared dead after about
	// 5 of these.
	ProbeInterval time.Duration
	// CommitTimeout is how long a leader with no new entries to send
	// waits before it sends a follower its commit index anyway (default
	// 20ms, staggered up to twice that). A leader also tells its followers
	// each commit as soon as it applies it, so this only bounds how late a
	// follower can learn one when that push was lost (a pipeline being
	// set up, or broken).
	CommitTimeout time.Duration
	// ReconcileInterval is how often the leader sweeps membership even
	// without gossip events (default 1s).
	ReconcileInterval time.Duration
	// ReapTimeout is how long a dead member stays before it is removed
	// from Raft and from the node list (default 24h).
	ReapTimeout time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot
	// (default 8192).
	SnapshotThreshold uint64
	// TrailingLogs is how many entries a snapshot keeps behind it
	// (default 10240).
	TrailingLogs uint64
	// LogSegmentSize is the size of one Raft log segment file (default
	// 16 MiB). Segments are preallocated, and compaction after a snapshot
	// deletes whole segments: entries still in a kept segment stay
	// readable and catch a lagging follower up without a snapshot.
	LogSegmentSize int

	// Token is the bearer token every node's HTTP API requires (empty:
	// none). The node sends it on its calls to other nodes, so every node
	// of a cluster needs the same one.
	Token string

	Logger *slog.Logger

	// features are the fsm features the node gossips it knows (nil:
	// fsm.Features()); a test sets them to play an older version.
	features []string
}

func (c *Config) setDefaults() error {
	if c.Name == "" {
		return errors.New("config: name is required")
	}
	if c.DataDir == "" {
		return errors.New("config: data dir is required")
	}
	if c.Voters == 0 {
		c.Voters = 3
	}
	if c.Voters < 1 {
		return fmt.Errorf("config: voters must be at least 1, not %d", c.Voters)
	}
	switch c.Role {
	case "":
		c.Role = RoleBoth
	case RoleServer, RoleWorker, RoleBoth:
	default:
		return fmt.Errorf("config: role must be server, worker or both, not %q", c.Role)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, defaultHeartbeatTimeout)
	def(&c.ProbeInterval, 500*time.Millisecond)
	def(&c.ReconcileInterval, time.Second)
	def(&c.CommitTimeout, 20*time.Millisecond)
	def(&c.ReapTimeout, 24*time.Hour)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.LogSegmentSize == 0 {
		c.LogSegmentSize = 16 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	for _, a := range []struct{ name, addr string }{{"gossip", c.GossipAddr}, {"raft", c.RaftAddr}, {"http", c.HTTPAddr}} {
		if _, _, err := splitHostPort(a.addr); err != nil {
			return fmt.Errorf("config: %s address: %w", a.name, err)
		}
	}
	if c.Advertise != "" && net.ParseIP(c.Advertise) == nil {
		return fmt.Errorf("config: advertise must be an IP address, not %q", c.Advertise)
	}
	return nil
}

// advertised returns addr with its host replaced by the advertise IP, if set.
func (c *Config) advertised(addr string) string {
	if c.Advertise == "" {
		return addr
	}
	_, port, _ := splitHostPort(addr)
	return net.JoinHostPort(c.Advertise, strconv.Itoa(port))
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}

// dataPath is a path inside the data dir.
func dataPath(dir string, parts ...string) string {
	return filepath.Join(append([]string{dir}, parts...)...)
}
