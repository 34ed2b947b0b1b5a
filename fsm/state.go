// Package fsm is Armada's replicated state machine: the commands that make
// up the Raft log, their deterministic application to a BoltDB state, reads
// from immutable views, snapshots, and watches over the change feed.
//
// Nothing here knows about Raft: the cluster package feeds committed entries
// to Apply/ApplyBatch and snapshots through Snapshot/Restore.
package fsm

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

var (
	bMeta        = []byte("meta")
	bKV          = []byte("kv")
	bLeases      = []byte("leases")
	bLeaseExp    = []byte("lease_expiry") // expiry(8) id(8) -> nil
	bLeaseKeys   = []byte("lease_keys")   // id(8) key -> nil
	bQueues      = []byte("queues")       // queue name -> bucket of id(8) -> item
	bLocks       = []byte("locks")
	bNodes       = []byte("nodes")
	bBlueprints  = []byte("blueprints")      // name -> BlueprintInfo
	bBPVersions  = []byte("bp_versions")     // name 0 version(8) -> storedBlueprint
	bFleets      = []byte("fleets")          // name -> Fleet
	bShips       = []byte("ships")           // id -> Ship
	bFleetShips  = []byte("fleet_ships")     // fleet 0 id -> shipSummary
	bNodeShips   = []byte("node_ships")      // node 0 id -> nil
	bRedisNodes  = []byte("redis_nodes")     // node name -> its Redis adapter's address
	bDeployments = []byte("deployments")     // fleet 0 id(8) -> Deployment
	bAllocIDs    = []byte("alloc_ids")       // fleet 0 request id -> ship id, expiry
	bAllocIDExp  = []byte("alloc_id_expiry") // expiry(8) fleet 0 request id -> nil

	kIndex     = []byte("index")
	kClusterID = []byte("cluster_id")
	kKey       = []byte("secret_key")
	kLastID    = []byte("last_id")

	allBuckets = [][]byte{bMeta, bKV, bLeases, bLeaseExp, bLeaseKeys, bQueues, bLocks, bNodes, bBlueprints, bBPVersions, bFleets, bShips, bFleetShips, bNodeShips, bRedisNodes,
		bZKNodes, bZKChildren, bZKSessions, bZKEphemerals, bDeployments, bAllocIDs, bAllocIDExp}
)

// State is the replicated state of one node. Apply and Restore are called
// by one goroutine at a time (Raft's FSM contract); reads run concurrently.
type State struct {
	path string

	mu sync.RWMutex // held for reading by views, for writing by Restore
	db *bbolt.DB

	// Applied entries accumulate in one open write transaction that is
	// committed every flushBytes of entries, and before any view or
	// snapshot reads the state: readers always see every applied entry, and
	// a write-heavy load pays BoltDB's commit (page spills and writes) once
	// per many batches instead of once per batch. The file is a cache of the
	// log, so an uncommitted tail lost in a crash is simply re-applied.
	wmu            sync.Mutex // guards wtx and the pending counts
	wtx            *bbolt.Tx
	pending        int // bytes of entries applied to wtx
	pendingEntries int
	pendingChanges int
	commits        int // write transactions committed (tests check the splitting)

	index atomic.Uint64
	feed  *feed
	// pools are allocation's per-fleet pools of ready ships (see txn),
	// used by the applying goroutine under wmu.
	pools map[string]*allocPool
}

// Flush thresholds for the open write transaction.
const (
	flushBytes   = 1 << 20
	flushEntries = 1024
	// flushChanges bounds the keys written in one transaction: BoltDB
	// splits nodes only when it commits, so every insert into a node that
	// grew in this transaction moves all the keys after it, and a
	// transaction of N inserts costs O(N²). Ship commands write thousands.
	flushChanges = 4096
)

// flush commits the open write transaction, if any. Callers hold s.mu.
func (s *State) flush() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.flushLocked()
}

func (s *State) flushLocked() {
	if s.wtx == nil {
		return
	}
	err := s.wtx.Commit()
	s.wtx, s.pending, s.pendingEntries, s.pendingChanges = nil, 0, 0, 0
	s.commits++
	if err != nil {
		// The entries are committed in the log: a state that cannot record
		// them would silently diverge. Stop; a restart rebuilds from the log.
		panic(fmt.Sprintf("commit state: %v", err))
	}
}

// discard drops the open write transaction (the state is being replaced).
func (s *State) discard() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	clear(s.pools)
	if s.wtx != nil {
		_ = s.wtx.Rollback()
		s.wtx, s.pending, s.pendingEntries, s.pendingChanges = nil, 0, 0, 0
	}
}

// Open opens (creating if needed) the state at path.
//
// The state is a cache of the Raft log: durability comes from the log and
// snapshots, so the file is written without fsync and callers rebuild it at
// boot (cluster removes it and lets Raft restore snapshot + log).
func Open(path string) (*State, error) {
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	s := &State{path: path, db: db, feed: newFeed(16384, MaxFeedBytes), pools: map[string]*allocPool{}}
	var rev uint64
	if err := db.View(func(tx *bbolt.Tx) error {
		s.index.Store(getU64(tx.Bucket(bMeta).Get(kIndex)))
		rev = storedRevision(tx, s.index.Load())
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("read state index: %w", err)
	}
	s.feed.reset(s.index.Load(), rev)
	return s, nil
}

// storedRevision is the revision of a state at index: the index or the
// last ID given, whichever is higher; the index until FeatureOwnRevisions
// is on.
func storedRevision(tx *bbolt.Tx, index uint64) uint64 {
	if !featureOn(tx, FeatureOwnRevisions) {
		return index
	}
	return max(index, lastGivenID(tx))
}

// lastGivenID is the last ID the state's allocator gave (txn.newID).
func lastGivenID(tx *bbolt.Tx) uint64 { return getU64(tx.Bucket(bMeta).Get(kLastID)) }

func openDB(path string) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:        time.Second,
		NoSync:         true,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
		// A snapshot holds a read transaction while it streams; a large
		// initial mmap keeps writers from waiting on a remap meanwhile.
		// It is address space, not memory.
		InitialMmapSize: 1 << 30,
	})
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("create buckets: %w", err)
	}
	return db, nil
}

// Close closes the state file.
func (s *State) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flush()
	s.feed.close()
	return s.db.Close()
}

// Index is the index of the last applied log entry.
func (s *State) Index() uint64 { return s.index.Load() }

// View runs fn over an immutable view of the state at one index. The read
// transaction begins under wmu, right after the flush: an ApplyBatch that
// came in between could commit part of a big Batch entry (its splits) and
// the view would see some of an entry's writes under the index before it.
func (s *State) View(fn func(v *View) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.wmu.Lock()
	s.flushLocked()
	tx, err := s.db.Begin(false)
	s.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("view: %w", err)
	}
	defer tx.Rollback()
	return fn(&View{tx: tx, index: getU64(tx.Bucket(bMeta).Get(kIndex))})
}

// Entry is one committed log entry. Data is nil for entries that only
// advance the index (Raft configuration changes).
type Entry struct {
	Index uint64
	Data  []byte
}

// Apply applies one committed entry.
func (s *State) Apply(index uint64, data []byte) *Result {
	return s.ApplyBatch([]Entry{{Index: index, Data: data}})[0]
}

// ApplyBatch applies committed entries to the open BoltDB transaction and
// then publishes their changes. It is deterministic: the same entries on the same
// state give the same state on every node. Entries at or below the current
// index were applied before and are skipped.
func (s *State) ApplyBatch(entries []Entry) []*Result {
	results := make([]*Result, len(entries))
	var changes []Change
	last := s.index.Load()
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.wmu.Lock()
	var err error
	if s.wtx == nil {
		s.wtx, err = s.db.Begin(true)
	}
	if err == nil {
		t := newTxn(s.wtx)
		t.pools = s.pools
		// A big batch commits as it goes, between entries and between a
		// Batch entry's commands (views wait for the whole batch: they
		// need wmu to flush).
		t.split = func(done uint64) error {
			if s.pendingChanges+len(t.changes)-t.flushed < flushChanges {
				return nil
			}
			t.saveLastID()
			if err := t.tx.Bucket(bMeta).Put(kIndex, u64(done)); err != nil {
				return err
			}
			s.pendingChanges += len(t.changes) - t.flushed
			t.flushed = len(t.changes)
			s.wtx = t.tx
			s.flushLocked()
			tx, err := s.db.Begin(true)
			if err != nil {
				return err
			}
			s.wtx, t.tx = tx, tx
			return nil
		}
		for i, en := range entries {
			if en.Index <= last {
				results[i] = &Result{Index: en.Index, Err: errf(ErrConflict, "", "entry %d already applied", en.Index)}
				continue
			}
			t.applied = last
			last = en.Index
			t.index = en.Index
			if en.Data == nil {
				results[i] = &Result{Index: en.Index}
				continue
			}
			var r *Result
			if c, err := Decode(en.Data); err != nil {
				r = fail(errf(ErrInvalid, "", "%v", err))
			} else {
				t.startCommand()
				r = c.apply(t)
				t.flushNodes()
				r.Rev = t.current()
			}
			r.Index = en.Index
			results[i] = r
			if i < len(entries)-1 {
				t.applied = last
				t.checkpoint()
			}
			if err = t.splitErr; err != nil {
				break
			}
		}
		changes = t.changes
		tx := t.tx
		if err == nil {
			t.saveLastID()
			err = tx.Bucket(bMeta).Put(kIndex, u64(last))
		}
		s.pendingChanges += len(t.changes) - t.flushed
		s.pendingEntries += len(entries)
		for _, en := range entries {
			s.pending += len(en.Data)
		}
		if err == nil && (s.pending >= flushBytes || s.pendingEntries >= flushEntries || s.pendingChanges >= flushChanges) {
			s.flushLocked()
		}
	}
	s.wmu.Unlock()
	if err != nil {
		// The log is committed: a state that cannot record it would silently
		// diverge from its peers. Stop here; a restart rebuilds from the log.
		panic(fmt.Sprintf("apply entries: %v", err))
	}
	s.index.Store(last)
	s.feed.publish(last, changes)
	return results
}

// WaitIndex blocks until the applied index reaches at least n. It fails
// when ctx is done or the state is closed first.
func (s *State) WaitIndex(ctx context.Context, n uint64) error {
	for {
		ch, err := s.feed.wait()
		if s.index.Load() >= n {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Published is the index up to which every change is in the feed
// (Changes): entries are applied first and published just after, so it
// may lag Index for a moment. Restores counts the times the state was
// replaced by a snapshot (which may take its index back): a reader that
// keeps state between reads must start over when it changes.
func (s *State) Published() (index, restores uint64) { return s.feed.published() }

// Changes returns the changes after index since that are still in the
// feed, and a channel that is closed when more arrive. It fails with
// ErrCompacted when changes after since have already left the feed, and
// with an error once the state is closed.
func (s *State) Changes(since uint64) ([]Change, <-chan struct{}, error) {
	return s.feed.since(since)
}

// ChangesAfterRev returns the changes in the feed whose revision is above
// rev, and the index they run to, from which Changes carries on. It fails
// with ErrCompacted when changes above rev have left the feed.
func (s *State) ChangesAfterRev(rev uint64) (changes []Change, through uint64, wake <-chan struct{}, err error) {
	return s.feed.sinceRev(rev)
}

// OldestRev is the oldest start revision the feed still covers: a watcher
// told its start is compacted may start again from it.
func (s *State) OldestRev() uint64 { return s.feed.oldestRev() }

// Remove deletes a state file that is about to be rebuilt.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove state: %w", err)
	}
	return nil
}
