package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/armada-orchestrator/armada/fsm"
)

// raftFSM adapts fsm.State to Raft's FSM and BatchingFSM: a batch of
// committed entries becomes one BoltDB transaction.
type raftFSM struct{ st *fsm.State }

func (f raftFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f raftFSM) ApplyBatch(logs []*raft.Log) []any {
	entries := make([]fsm.Entry, len(logs))
	for i, l := range logs {
		entries[i].Index = l.Index
		if l.Type == raft.LogCommand {
			entries[i].Data = l.Data
		}
	}
	results := f.st.ApplyBatch(entries)
	out := make([]any, len(results))
	for i, r := range results {
		out[i] = r
	}
	return out
}

func (f raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	sn, err := f.st.Snapshot()
	if err != nil {
		return nil, err
	}
	return raftSnapshot{sn}, nil
}

func (f raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.st.Restore(rc)
}

type raftSnapshot struct{ sn *fsm.Snapshot }

func (s raftSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.sn.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s raftSnapshot) Release() { s.sn.Release() }

// raftParts are the stores and transport behind a Raft instance.
type raftParts struct {
	store     *raftboltdb.BoltStore
	snaps     raft.SnapshotStore
	transport *raft.NetworkTransport
}

func (p *raftParts) close() {
	if p.transport != nil {
		p.transport.Close()
	}
	if p.store != nil {
		p.store.Close()
	}
}

func openRaftParts(cfg *Config, logger hclog.Logger) (*raftParts, error) {
	p := &raftParts{}
	var err error
	// The log is appended at its end and truncated at its start after
	// snapshots, so BoltDB's freelist grows with every compaction: keeping
	// it in memory (rebuilt by a scan on open) spares every append of
	// writing it out. Durability is unchanged: each append still syncs.
	p.store, err = raftboltdb.New(raftboltdb.Options{
		Path:        dataPath(cfg.DataDir, "raft", "raft.db"),
		BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	p.snaps, err = raft.NewFileSnapshotStoreWithLogger(dataPath(cfg.DataDir, "raft"), 2, logger)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("open snapshots: %w", err)
	}
	// Without --advertise, Raft advertises the address it is bound to
	// (so port 0 works); binding a wildcard address then fails, as it should.
	var adv *net.TCPAddr
	if cfg.Advertise != "" {
		if adv, err = resolveTCP(cfg.advertised(cfg.RaftAddr)); err != nil {
			p.close()
			return nil, fmt.Errorf("raft address: %w", err)
		}
	}
	p.transport, err = raft.NewTCPTransportWithLogger(cfg.RaftAddr, tcpAddr(adv), 8, 10*time.Second, logger)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("listen raft: %w", err)
	}
	return p, nil
}

func raftConfig(cfg *Config, notify chan bool, logger hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Name)
	// Tuned for a LAN: the defaults (1 s) elect a new leader 1.4-2.2 s
	// after the old one dies; 500 ms brings that under a second.
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.HeartbeatTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	rc.CommitTimeout = 20 * time.Millisecond
	// Concurrent applies are grouped into one log write and one FSM
	// transaction.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.SnapshotInterval = 30 * time.Second
	rc.NotifyCh = notify
	rc.Logger = logger
	rc.NoLegacyTelemetry = true
	return rc
}

// hclogger routes Raft's hclog output into slog.
func hclogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Info,
		Output:      &levelLog{log: l},
		DisableTime: true,
	})
}

// tcpAddr avoids handing Raft a typed nil inside a net.Addr.
func tcpAddr(a *net.TCPAddr) net.Addr {
	if a == nil {
		return nil
	}
	return a
}

func resolveTCP(addr string) (*net.TCPAddr, error) { return net.ResolveTCPAddr("tcp", addr) }
