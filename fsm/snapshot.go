package fsm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"go.etcd.io/bbolt"
)

// A snapshot is a logical dump of every bucket, key and value in key order:
// the same state always gives the same bytes, whatever BoltDB's page layout.
//
//	magic "ARMADA-SNAP\x01"
//	records: 'B' path (the bucket the following pairs belong to)
//	         'P' key value
//	         'E' crc32(IEEE) of everything up to and including the 'E', big-endian
//
// Strings are uvarint length + bytes; a path is a count + strings.
var snapMagic = []byte("ARMADA-SNAP\x01")

const (
	recBucket = 'B'
	recPair   = 'P'
	recEnd    = 'E'
)

// Snapshot is a point-in-time view being written out. Release it when done.
type Snapshot struct {
	tx *bbolt.Tx
}

// Snapshot captures the current state. Apply may go on while it is written.
func (s *State) Snapshot() (*Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.flush()
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	return &Snapshot{tx: tx}, nil
}

// Index is the index of the last entry in the snapshot.
func (sn *Snapshot) Index() uint64 { return getU64(sn.tx.Bucket(bMeta).Get(kIndex)) }

// WriteTo streams the snapshot to w.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &crcWriter{w: bufio.NewWriterSize(w, 64<<10)}
	cw.Write(snapMagic)
	var walk func(path [][]byte, b *bbolt.Bucket) error
	walk = func(path [][]byte, b *bbolt.Bucket) error {
		var e encoder
		e.b = append(e.b, recBucket)
		e.uvarint(uint64(len(path)))
		for _, p := range path {
			e.bytes(p)
		}
		cw.Write(e.b)
		var nested [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if v == nil {
				nested = append(nested, append([]byte(nil), k...))
				return nil
			}
			e.b = append(e.b[:0], recPair)
			e.bytes(k)
			e.bytes(v)
			_, err := cw.Write(e.b)
			return err
		})
		if err != nil {
			return err
		}
		for _, k := range nested {
			if err := walk(append(path[:len(path):len(path)], k), b.Bucket(k)); err != nil {
				return err
			}
		}
		return nil
	}
	err := sn.tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
		return walk([][]byte{append([]byte(nil), name...)}, b)
	})
	if err == nil {
		cw.Write([]byte{recEnd})
		sum := cw.crc
		cw.Write([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
		err = cw.err
	}
	if err == nil {
		err = cw.w.(*bufio.Writer).Flush()
	}
	if err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	return cw.n, nil
}

// Release ends the snapshot's read transaction.
func (sn *Snapshot) Release() { _ = sn.tx.Rollback() }

type crcWriter struct {
	w   io.Writer
	crc uint32
	n   int64
	err error
}

func (c *crcWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p)
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// Restore replaces the whole state with a snapshot. The new state is built
// in a side file and swapped in only once it is complete and its checksum
// matches, so a bad snapshot leaves the current state untouched.
func (s *State) Restore(r io.Reader) error {
	tmp := s.path + ".restore"
	_ = os.Remove(tmp)
	db, err := openDB(tmp)
	if err != nil {
		return err
	}
	if err := loadSnapshot(db, bufio.NewReaderSize(r, 64<<10)); err != nil {
		db.Close()
		os.Remove(tmp)
		return fmt.Errorf("restore snapshot: %w", err)
	}
	var index uint64
	db.View(func(tx *bbolt.Tx) error {
		index = getU64(tx.Bucket(bMeta).Get(kIndex))
		return nil
	})
	if err := db.Close(); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.discard()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("swap state: %w", err)
	}
	if s.db, err = openDB(s.path); err != nil {
		return err
	}
	s.index.Store(index)
	var rev uint64
	if err := s.db.View(func(tx *bbolt.Tx) error {
		rev = storedRevision(tx, index)
		return nil
	}); err != nil {
		return fmt.Errorf("read state revision: %w", err)
	}
	s.feed.reset(index, rev)
	return nil
}

func loadSnapshot(db *bbolt.DB, r *bufio.Reader) error {
	var crc uint32
	read := func(p []byte) error {
		if _, err := io.ReadFull(r, p); err != nil {
			return err
		}
		crc = crc32.Update(crc, crc32.IEEETable, p)
		return nil
	}
	readUvarint := func() (uint64, error) {
		var x uint64
		for shift := uint(0); shift < 64; shift += 7 {
			var b [1]byte
			if err := read(b[:]); err != nil {
				return 0, err
			}
			x |= uint64(b[0]&0x7f) << shift
			if b[0] < 0x80 {
				return x, nil
			}
		}
		return 0, errors.New("bad varint")
	}
	readBytes := func() ([]byte, error) {
		n, err := readUvarint()
		if err != nil {
			return nil, err
		}
		if n > 1<<30 {
			return nil, errors.New("record too large")
		}
		p := make([]byte, n)
		return p, read(p)
	}

	magic := make([]byte, len(snapMagic))
	if err := read(magic); err != nil || !bytes.Equal(magic, snapMagic) {
		return errors.New("not an armada snapshot")
	}
	tx, err := db.Begin(true)
	if err != nil {
		return err
	}
	defer func() { tx.Rollback() }()
	var cur *bbolt.Bucket
	pending := 0
	var path [][]byte
	for {
		var typ [1]byte
		if err := read(typ[:]); err != nil {
			return fmt.Errorf("read record: %w", err)
		}
		switch typ[0] {
		case recBucket:
			n, err := readUvarint()
			if err != nil || n == 0 || n > 16 {
				return errors.New("bad bucket path")
			}
			path = path[:0]
			for range n {
				p, err := readBytes()
				if err != nil {
					return err
				}
				path = append(path, p)
			}
			if cur, err = bucketAt(tx, path); err != nil {
				return err
			}
		case recPair:
			k, err := readBytes()
			if err != nil {
				return err
			}
			v, err := readBytes()
			if err != nil {
				return err
			}
			if cur == nil {
				return errors.New("pair outside a bucket")
			}
			if err := cur.Put(k, v); err != nil {
				return err
			}
			// Commit in chunks to bound the transaction's memory.
			if pending++; pending == 50_000 {
				if err := tx.Commit(); err != nil {
					return err
				}
				if tx, err = db.Begin(true); err != nil {
					return err
				}
				if cur, err = bucketAt(tx, path); err != nil {
					return err
				}
				pending = 0
			}
		case recEnd:
			want := crc
			var sum [4]byte
			if _, err := io.ReadFull(r, sum[:]); err != nil {
				return fmt.Errorf("read checksum: %w", err)
			}
			if got := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3]); got != want {
				return fmt.Errorf("checksum mismatch: %08x != %08x", got, want)
			}
			return tx.Commit()
		default:
			return fmt.Errorf("unknown record %q", typ[0])
		}
	}
}

func bucketAt(tx *bbolt.Tx, path [][]byte) (*bbolt.Bucket, error) {
	b, err := tx.CreateBucketIfNotExists(path[0])
	for _, p := range path[1:] {
		if err != nil {
			break
		}
		b, err = b.CreateBucketIfNotExists(p)
	}
	return b, err
}

// CheckSnapshot reads a whole snapshot, loading it into a scratch state
// under dir, and returns its index: a snapshot that passes loads for sure.
func CheckSnapshot(r io.Reader, dir string) (uint64, error) {
	f, err := os.CreateTemp(dir, "check-*.db")
	if err != nil {
		return 0, fmt.Errorf("check snapshot: %w", err)
	}
	path := f.Name()
	f.Close()
	os.Remove(path)
	defer os.Remove(path)
	db, err := openDB(path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if err := loadSnapshot(db, bufio.NewReaderSize(r, 64<<10)); err != nil {
		return 0, fmt.Errorf("check snapshot: %w", err)
	}
	var index uint64
	err = db.View(func(tx *bbolt.Tx) error {
		if err := checkLayout(tx); err != nil {
			return fmt.Errorf("check snapshot: %w", err)
		}
		index = getU64(tx.Bucket(bMeta).Get(kIndex))
		return nil
	})
	return index, err
}

// checkLayout verifies that a loaded snapshot has exactly the shape Apply
// relies on: the known buckets, nesting only under queues, and values that
// decode. A checksum proves a file is intact, not that it is Armada's: a
// crafted snapshot that passed could make every node's Apply panic at the
// same entry, forever.
func checkLayout(tx *bbolt.Tx) error {
	known := map[string]bool{}
	for _, b := range allBuckets {
		known[string(b)] = true
	}
	err := tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
		if !known[string(name)] {
			return fmt.Errorf("unknown bucket %q", name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(tx.Bucket(bMeta).Get(kIndex)) != 8 {
		return errors.New("no applied index")
	}
	jsonOf := map[string]func([]byte) error{
		string(bLeases):      func(v []byte) error { return json.Unmarshal(v, new(Lease)) },
		string(bLocks):       func(v []byte) error { return json.Unmarshal(v, new(Lock)) },
		string(bBlueprints):  func(v []byte) error { return json.Unmarshal(v, new(BlueprintInfo)) },
		string(bBPVersions):  func(v []byte) error { return json.Unmarshal(v, new(storedBlueprint)) },
		string(bDeployments): func(v []byte) error { return json.Unmarshal(v, new(Deployment)) },
	}
	for _, name := range allBuckets {
		b := tx.Bucket(name)
		if b == nil {
			continue
		}
		err := b.ForEach(func(k, v []byte) error {
			switch {
			case string(name) == string(bQueues):
				q := b.Bucket(k)
				if v != nil || q == nil {
					return fmt.Errorf("queues: %q is not a queue", k)
				}
				return q.ForEach(func(id, item []byte) error {
					if item == nil || len(id) != 8 || decodeItem(id, item) == nil {
						return fmt.Errorf("queue %q: bad item %x", k, id)
					}
					return nil
				})
			case v == nil:
				return fmt.Errorf("%s: unexpected nested bucket %q", name, k)
			case string(name) == string(bKV):
				kv := decodeKV(string(k), v)
				if len(k) == 0 || kv == nil || (kv.Type != KVString && !validRedisValue(kv.Type, kv.Value)) {
					return fmt.Errorf("kv: bad entry %q", k)
				}
			case string(name) == string(bLeaseExp):
				if len(k) != 16 {
					return fmt.Errorf("lease_expiry: bad key %x", k)
				}
			case string(name) == string(bShips):
				if sh, ok := decodeShip(v); !ok || sh.ID != string(k) {
					return fmt.Errorf("ships: bad entry %q", k)
				}
			case string(name) == string(bFleets):
				var f Fleet
				if err := json.Unmarshal(v, &f); err != nil || f.Name != string(k) {
					return fmt.Errorf("fleets: bad entry %q", k)
				}
			case string(name) == string(bNodes):
				var n Node
				if err := json.Unmarshal(v, &n); err != nil || n.Name != string(k) {
					return fmt.Errorf("nodes: bad entry %q", k)
				}
			case string(name) == string(bFleetShips):
				if _, ok := decodeSummary(v); !ok || !bytes.Contains(k, []byte{0}) {
					return fmt.Errorf("fleet_ships: bad entry %q", k)
				}
			case string(name) == string(bAllocIDExp):
				if len(k) <= 8 || !bytes.Contains(k[8:], []byte{0}) {
					return fmt.Errorf("alloc_id_expiry: bad key %x", k)
				}
			case string(name) == string(bAllocIDs):
				if _, _, ok := decodeAllocID(v); !ok || !bytes.Contains(k, []byte{0}) {
					return fmt.Errorf("alloc_ids: bad entry %q", k)
				}
			case string(name) == string(bLeaseKeys):
				if len(k) <= 8 {
					return fmt.Errorf("lease_keys: bad key %x", k)
				}
			case jsonOf[string(name)] != nil:
				if err := jsonOf[string(name)](v); err != nil {
					return fmt.Errorf("%s: bad entry %q: %v", name, k, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
