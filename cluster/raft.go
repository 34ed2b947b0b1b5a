package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"go.etcd.io/bbolt"

	"github.com/armada-orchestrator/armada/fsm"
)

// raftFSM adapts fsm.State to Raft's FSM and BatchingFSM: a batch of
// committed entries becomes one BoltDB transaction.
type raftFSM struct {
	st      *fsm.State
	results *localResults
	push    *commitPush
}

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
	f.push.committed(logs[len(logs)-1].Index)
	f.results.deliver(results)
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
	err := f.st.Restore(rc)
	f.results.failAll()
	return err
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
	store     *raftboltdb.BoltStore // term and vote (Raft's stable store)
	log       *wal.WAL              // the log
	logFS     *zeroedFS             // the log's segment files
	logMeta   *metadb.BoltMetaDB    // the log's segment list (WAL.Close leaves it open)
	snaps     raft.SnapshotStore
	transport *raft.NetworkTransport
}

func (p *raftParts) close() {
	if p.transport != nil {
		p.transport.Close()
	}
	if p.log != nil {
		p.log.Close()
		p.logMeta.Close()
	}
	if p.logFS != nil {
		p.logFS.Close()
	}
	if p.store != nil {
		p.store.Close()
	}
}

func openRaftParts(cfg *Config, logger hclog.Logger, slogger *slog.Logger) (*raftParts, error) {
	p := &raftParts{}
	var err error
	// raft.db (BoltDB) keeps Raft's term and vote. The log itself is a
	// segmented append-only file (raft-wal): an append is one write and one
	// sync, where BoltDB's copy-on-write pages cost two syncs and the page
	// writes of a B-tree, on the path of every commit.
	p.store, err = raftboltdb.New(raftboltdb.Options{
		Path:        dataPath(cfg.DataDir, "raft", "raft.db"),
		BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if err != nil {
		return nil, fmt.Errorf("open raft stable store: %w", err)
	}
	walDir := dataPath(cfg.DataDir, "raft", "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		p.close()
		return nil, fmt.Errorf("create raft log dir: %w", err)
	}
	p.logFS = newZeroedFS(walDir, uint64(cfg.LogSegmentSize), slogger)
	meta := &metadb.BoltMetaDB{}
	if p.log, err = wal.Open(walDir, wal.WithMetaStore(meta), wal.WithSegmentSize(cfg.LogSegmentSize),
		wal.WithSegmentFiler(segment.NewFiler(walDir, p.logFS)), wal.WithLogger(logger.Named("wal"))); err != nil {
		meta.Close()
		p.close()
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	p.logMeta = meta
	if err := moveLogs(p.log, p.store); err != nil {
		p.close()
		return nil, fmt.Errorf("move raft log from raft.db: %w", err)
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

// moveLogs moves log entries that an older version kept in raft.db into the
// log. It copies in batches from where the log ends, so a move cut short
// by a crash resumes on the next start, and deletes the old entries only
// once all are in the log (each batch is synced as it is stored).
func moveLogs(dst raft.LogStore, src raft.LogStore) error {
	first, err := src.FirstIndex()
	if err != nil {
		return err
	}
	last, err := src.LastIndex()
	if err != nil || last == 0 {
		return err
	}
	next, err := dst.LastIndex()
	if err != nil {
		return err
	}
	next = max(next+1, first)
	const batch = 512
	logs := make([]*raft.Log, 0, batch)
	for i := next; i <= last; i++ {
		l := new(raft.Log)
		if err := src.GetLog(i, l); err != nil {
			return fmt.Errorf("read entry %d: %w", i, err)
		}
		if logs = append(logs, l); len(logs) == batch || i == last {
			if err := dst.StoreLogs(logs); err != nil {
				return fmt.Errorf("store entries to %d: %w", i, err)
			}
			logs = logs[:0]
		}
	}
	return src.DeleteRange(first, last)
}

func raftConfig(cfg *Config, notify chan bool, logger hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Name)
	// Tuned for a LAN: the defaults (1 s) elect a new leader 1.4-2.2 s
	// after the old one dies; 500 ms brings that under a second.
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.HeartbeatTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	rc.CommitTimeout = cfg.CommitTimeout
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
