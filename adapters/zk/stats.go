package zk

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// version is what the admin words report as the server's version.
const version = "3.8.0-armada"

// stats are the server's counters behind srvr, stat and mntr, as
// ZooKeeper's ServerStats keeps them: packets in and out (four-letter
// words included), requests being handled, and the time from a request's
// arrival to its reply, in whole milliseconds.
type stats struct {
	start       time.Time
	received    atomic.Int64
	sent        atomic.Int64
	outstanding atomic.Int64

	mu       sync.Mutex
	latCount int64
	latSum   int64
	latMin   int64
	latMax   int64
}

// handled records one request that took d from arrival to reply.
func (s *stats) handled(d time.Duration) {
	ms := d.Milliseconds()
	s.mu.Lock()
	if s.latCount == 0 || ms < s.latMin {
		s.latMin = ms
	}
	s.latMax = max(s.latMax, ms)
	s.latSum += ms
	s.latCount++
	s.mu.Unlock()
}

// latency is min, average and max; all 0 before the first request.
func (s *stats) latency() (lo int64, avg float64, hi int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latCount > 0 {
		avg = float64(s.latSum) / float64(s.latCount)
	}
	return s.latMin, avg, s.latMax
}

// javaFloat formats a float as Java's Double.toString does for the values
// seen here: always with a fraction ("0.0", "1.5").
func javaFloat(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// fourLetter answers a four-letter admin word.
func (s *Server) fourLetter(w string) string {
	switch w {
	case "ruok":
		return "imok"
	case "isro":
		return "rw"
	case "srvr":
		return s.srvr(false)
	case "stat":
		return s.srvr(true)
	case "mntr":
		return s.mntr()
	}
	return w + " is not executed because it is not in the whitelist.\n"
}

// mode is the node's part in the ensemble, as ZooKeeper names it: the
// Raft leader leads, voters follow, and a Raft non-voter (a server not
// promoted yet, or a worker-only node) observes, as ZooKeeper's observers
// take the log without voting.
func (s *Server) mode(v *fsm.View) string {
	if s.raft.IsLeader() {
		return "leader"
	}
	for _, n := range v.Nodes() {
		if n.Name == s.cfg.Node && observes(n) {
			return "observer"
		}
	}
	return "follower"
}

func observes(n *fsm.Node) bool { return n.Role == fsm.RoleNonvoter || n.Role == fsm.RoleWorker }

// snapshot is what the admin words read from the state.
type snapshot struct {
	mode   string
	zxid   int64
	totals fsm.ZKTotals
	// quorum counts the Raft voters; learners the other Raft members, and
	// followers and observers those of them that are alive (by gossip).
	quorum, learners, followers, observers int
}

func (s *Server) snapshot() snapshot {
	var sn snapshot
	s.st.View(func(v *fsm.View) error {
		sn.mode, sn.zxid, sn.totals = s.mode(v), v.ZKZxid(), v.ZKTotals()
		for _, n := range v.Nodes() {
			voter := n.Role == fsm.RoleVoter
			if n.Status == fsm.NodeLeft || !voter && !observes(n) {
				continue // out of Raft: a server that left (it keeps the role it had), or an older record of one joining
			}
			if voter {
				sn.quorum++
			}
			if n.Name == s.cfg.Node {
				continue
			}
			sn.learners++
			switch {
			case n.Status != fsm.NodeAlive:
			case voter:
				sn.followers++
			default:
				sn.observers++
			}
		}
		return nil
	})
	return sn
}

// connList is the client lines of stat, as ZooKeeper prints them: the
// address, 1 for a connection with a session (0 for an admin word's),
// and the connection's queued, received and sent packets.
func (s *Server) connList() string {
	var b strings.Builder
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		ops := 0
		if c.sessionID() != 0 {
			ops = 1
		}
		fmt.Fprintf(&b, " /%s[%d](queued=%d,recved=%d,sent=%d)\n",
			c.nc.RemoteAddr(), ops, len(c.out), c.received.Load(), c.sent.Load())
	}
	return b.String()
}

func (s *Server) numConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// srvr is the srvr word's answer, or stat's with the connections listed.
func (s *Server) srvr(clients bool) string {
	sn := s.snapshot()
	var b strings.Builder
	fmt.Fprintf(&b, "Zookeeper version: %s\n", version)
	if clients {
		fmt.Fprintf(&b, "Clients:\n%s\n", s.connList())
	}
	lo, avg, hi := s.stats.latency()
	fmt.Fprintf(&b, "Latency min/avg/max: %d/%s/%d\n", lo, javaFloat(avg), hi)
	fmt.Fprintf(&b, "Received: %d\nSent: %d\nConnections: %d\nOutstanding: %d\n",
		s.stats.received.Load(), s.stats.sent.Load(), s.numConns(), s.stats.outstanding.Load())
	fmt.Fprintf(&b, "Zxid: 0x%x\nMode: %s\nNode count: %d\n", sn.zxid, sn.mode, sn.totals.Nodes)
	return b.String()
}

// mntr is the mntr word's answer: ZooKeeper's classic monitoring keys, a
// tab between key and value, and the leader's view of its followers.
func (s *Server) mntr() string {
	sn := s.snapshot()
	lo, avg, hi := s.stats.latency()
	open, limit := fileDescriptors()
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "zk_%s\t%v\n", k, v) }
	line("version", version)
	line("server_state", sn.mode)
	line("ephemerals_count", sn.totals.Ephemerals)
	line("num_alive_connections", s.numConns())
	line("avg_latency", javaFloat(avg))
	line("outstanding_requests", s.stats.outstanding.Load())
	line("znode_count", sn.totals.Nodes)
	line("global_sessions", sn.totals.Sessions)
	line("local_sessions", 0)
	line("packets_sent", s.stats.sent.Load())
	line("packets_received", s.stats.received.Load())
	line("watch_count", s.w.count())
	line("min_latency", lo)
	line("max_latency", hi)
	line("approximate_data_size", sn.totals.DataSize)
	line("open_file_descriptor_count", open)
	line("max_file_descriptor_count", limit)
	line("uptime", time.Since(s.stats.start).Milliseconds())
	line("quorum_size", sn.quorum)
	if sn.mode == "leader" {
		line("learners", sn.learners)
		line("synced_followers", sn.followers)
		line("synced_non_voting_followers", 0)
		line("synced_observers", sn.observers)
		line("pending_syncs", 0)
	}
	return b.String()
}

// fileDescriptors is the process's open descriptors and its limit, -1
// where the system does not say.
func fileDescriptors() (open, limit int64) {
	open, limit = -1, -1
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		open = int64(len(fds))
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		limit = int64(rl.Cur)
	}
	return open, limit
}
