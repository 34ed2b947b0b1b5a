package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/armada-orchestrator/armada/internal/textdiff"
)

// openState opens a fresh state in a temporary directory and closes it when
// the test ends.
func openState(tb testing.TB) *State {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		// A panic inside Apply leaves the state locked (in production it
		// ends the process); closing it would hang the test binary.
		if _, bad := poisoned.Load(s); !bad {
			s.Close()
		}
	})
	return s
}

// poisoned holds the states whose Apply panicked.
var poisoned sync.Map

// harness applies commands to a state at consecutive indexes.
type harness struct {
	t   testing.TB
	s   *State
	idx uint64
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	return &harness{t: tb, s: openState(tb)}
}

// apply encodes c and applies it at the next index.
func (h *harness) apply(c Command) *Result {
	h.t.Helper()
	h.idx++
	defer func() {
		if p := recover(); p != nil {
			poisoned.Store(h.s, true)
			h.t.Fatalf("Apply(%d, %T) panicked: %v", h.idx, c, p)
		}
	}()
	r := h.s.Apply(h.idx, Encode(c))
	if r == nil {
		h.t.Fatalf("Apply(%d, %T) returned nil", h.idx, c)
	}
	if r.Index != h.idx {
		h.t.Fatalf("Apply(%d, %T): Result.Index = %d", h.idx, c, r.Index)
	}
	if got := h.s.Index(); got != h.idx {
		h.t.Fatalf("after Apply(%d): State.Index() = %d", h.idx, got)
	}
	return r
}

// ok applies c and fails the test if it was rejected.
func (h *harness) ok(c Command) *Result {
	h.t.Helper()
	r := h.apply(c)
	if r.Err != nil {
		h.t.Fatalf("apply %T %+v at %d: unexpected error %+v", c, c, h.idx, r.Err)
	}
	return r
}

// reject applies c, requires the given error code and field, and requires
// that the command changed nothing but the applied index and published no
// change.
func (h *harness) reject(c Command, code, field string) *Result {
	h.t.Helper()
	before := dumpState(h.t, h.s)
	r := h.apply(c)
	requireErr(h.t, r, code, field)
	h.requireUnchanged(before)
	return r
}

// requireUnchanged requires the state (apart from the meta index) to equal
// before and the last applied entry to have published no change.
func (h *harness) requireUnchanged(before string) {
	h.t.Helper()
	if after := dumpState(h.t, h.s); after != before {
		h.t.Fatalf("state changed by entry %d:\n%s", h.idx, diffLines(before, after))
	}
	if ch := h.changesAt(h.idx); len(ch) != 0 {
		h.t.Fatalf("entry %d changed nothing but published %+v", h.idx, ch)
	}
}

// changesAt returns the changes published for one index.
func (h *harness) changesAt(idx uint64) []Change {
	h.t.Helper()
	all, _, err := h.s.Changes(idx - 1)
	if err != nil {
		h.t.Fatalf("Changes(%d): %v", idx-1, err)
	}
	var out []Change
	for _, c := range all {
		if c.Index == idx {
			out = append(out, c)
		}
	}
	return out
}

// requireChanges requires entry idx to have published exactly want
// (Index is filled in from idx).
func (h *harness) requireChanges(idx uint64, want ...Change) {
	h.t.Helper()
	for i := range want {
		want[i].Index = idx
	}
	got := h.changesAt(idx)
	for i := range got {
		// The value a put carries is checked by the feed tests, revisions
		// by the revision tests, a znode's ACL by the adapter's tests.
		got[i].KV, got[i].Rev, got[i].Prev, got[i].ZKACL = nil, 0, nil, nil
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		h.t.Fatalf("changes at %d:\n got  %+v\n want %+v", idx, got, want)
	}
}

func (h *harness) view(fn func(v *View)) {
	h.t.Helper()
	if err := h.s.View(func(v *View) error { fn(v); return nil }); err != nil {
		h.t.Fatalf("View: %v", err)
	}
}

func (h *harness) kv(key string) (*KV, bool) {
	var kv *KV
	var ok bool
	h.view(func(v *View) { kv, ok = v.KV(key) })
	return kv, ok
}

func (h *harness) lease(id uint64) (*Lease, bool) {
	var l *Lease
	var ok bool
	h.view(func(v *View) { l, ok = v.Lease(id) })
	return l, ok
}

func (h *harness) lock(name string) (*Lock, bool) {
	var l *Lock
	var ok bool
	h.view(func(v *View) { l, ok = v.Lock(name) })
	return l, ok
}

func (h *harness) queue(name string) []*QueueItem {
	var q []*QueueItem
	h.view(func(v *View) { q = v.Queue(name) })
	return q
}

func (h *harness) node(name string) (*Node, bool) {
	var n *Node
	var ok bool
	h.view(func(v *View) { n, ok = v.Node(name) })
	return n, ok
}

func ch(topic, key, op string) Change { return Change{Topic: topic, Key: key, Op: op} }

func requireErr(tb testing.TB, r *Result, code, field string) {
	tb.Helper()
	if r.Err == nil {
		tb.Fatalf("expected error %s/%q, got success %s", code, field, jsonString(r))
	}
	if r.Err.Code != code || r.Err.Field != field {
		tb.Fatalf("error = %s/%q (%s), want %s/%q", r.Err.Code, r.Err.Field, r.Err.Message, code, field)
	}
	if r.Err.Message == "" {
		tb.Fatalf("error %s/%q has no message", code, field)
	}
}

func requireEqual[T any](tb testing.TB, what string, got, want T) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("%s:\n got  %s\n want %s", what, jsonString(got), jsonString(want))
	}
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// snapshotBytes writes a snapshot of s.
func snapshotBytes(tb testing.TB, s *State) []byte {
	tb.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		tb.Fatalf("Snapshot: %v", err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	if err != nil {
		tb.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		tb.Fatalf("WriteTo returned %d, wrote %d bytes", n, buf.Len())
	}
	return buf.Bytes()
}

// snapRecord is one key/value pair of a snapshot, or (Key == nil) the
// announcement of a bucket.
type snapRecord struct {
	Path  []string
	Key   []byte
	Value []byte
}

func (r snapRecord) String() string {
	p := strings.Join(r.Path, "/")
	if r.Key == nil {
		return "bucket " + p
	}
	return fmt.Sprintf("%s %s = %s", p, printable(r.Key), printable(r.Value))
}

func printable(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return "0x" + hex.EncodeToString(b)
		}
	}
	return fmt.Sprintf("%q", b)
}

// parseSnapshot decodes the snapshot format independently of the package's
// own reader, verifying the magic, record structure and checksum.
func parseSnapshot(b []byte) ([]snapRecord, error) {
	if !bytes.HasPrefix(b, snapMagic) {
		return nil, errors.New("bad magic")
	}
	d := decoder{b: b[len(snapMagic):]}
	var recs []snapRecord
	var path []string
	for {
		if len(d.b) == 0 {
			return nil, errors.New("no end record")
		}
		typ := d.b[0]
		d.b = d.b[1:]
		switch typ {
		case recBucket:
			n := d.uvarint()
			path = nil
			for range n {
				path = append(path, string(d.bytes()))
			}
			if d.err != nil || n == 0 {
				return nil, fmt.Errorf("bad bucket record: %v", d.err)
			}
			recs = append(recs, snapRecord{Path: path})
		case recPair:
			k, v := d.bytes(), d.bytes()
			if d.err != nil {
				return nil, d.err
			}
			if path == nil {
				return nil, errors.New("pair before bucket")
			}
			recs = append(recs, snapRecord{Path: path, Key: k, Value: v})
		case recEnd:
			end := len(b) - len(d.b)
			if len(d.b) != 4 {
				return nil, fmt.Errorf("%d bytes after end record, want 4", len(d.b))
			}
			if got, want := binary.BigEndian.Uint32(d.b), crc32.ChecksumIEEE(b[:end]); got != want {
				return nil, fmt.Errorf("checksum %08x, want %08x", got, want)
			}
			return recs, nil
		default:
			return nil, fmt.Errorf("unknown record %q", typ)
		}
	}
}

// dumpState renders the whole state, from its snapshot, one record per
// line, leaving out the meta index (which every applied entry changes).
func dumpState(tb testing.TB, s *State) string {
	tb.Helper()
	recs, err := parseSnapshot(snapshotBytes(tb, s))
	if err != nil {
		tb.Fatalf("parse snapshot: %v", err)
	}
	var sb strings.Builder
	for _, r := range recs {
		if len(r.Path) == 1 && r.Path[0] == string(bMeta) && string(r.Key) == string(kIndex) {
			continue
		}
		sb.WriteString(r.String())
		sb.WriteByte('\n')
	}
	return sb.String()
}

// dumpDB renders the state by walking BoltDB directly, to check the
// snapshot against.
func dumpDB(tb testing.TB, s *State) []snapRecord {
	tb.Helper()
	var recs []snapRecord
	var walk func(path []string, b *bbolt.Bucket)
	walk = func(path []string, b *bbolt.Bucket) {
		recs = append(recs, snapRecord{Path: path})
		var nested []string
		b.ForEach(func(k, v []byte) error {
			if v == nil {
				nested = append(nested, string(k))
			} else {
				recs = append(recs, snapRecord{Path: path, Key: bytes.Clone(k), Value: bytes.Clone(v)})
			}
			return nil
		})
		for _, n := range nested {
			walk(append(path[:len(path):len(path)], n), b.Bucket([]byte(n)))
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.flush()
	if err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			walk([]string{string(name)}, b)
			return nil
		})
	}); err != nil {
		tb.Fatalf("walk db: %v", err)
	}
	return recs
}

// diffLines shows the first lines where two dumps differ.
func diffLines(a, b string) string {
	return textdiff.Lines(strings.Split(a, "\n"), strings.Split(b, "\n"), "first", "second", 10)
}

// fullView is everything the views can return, for comparing states.
type fullView struct {
	Index      uint64
	KVs        []*KV
	Leases     map[uint64]*Lease
	Locks      []*Lock
	Queues     []string
	Items      map[string][]*QueueItem
	Nodes      []*Node
	Blueprints []*BlueprintInfo
	Versions   map[string][]*Blueprint
	Secrets    map[string]map[string]string
	ClusterID  string
	SecretKey  []byte
	NextExpiry int64
	HasExpiry  bool
	Fleets     []*Fleet
	Ships      []*Ship
	Queued     []*Ship
}

// readFullView collects every view. Leases cannot be listed, so the leases
// of every key plus the given IDs are probed.
func readFullView(tb testing.TB, s *State, leaseIDs ...uint64) *fullView {
	tb.Helper()
	fv := &fullView{Leases: map[uint64]*Lease{}, Items: map[string][]*QueueItem{}, Versions: map[string][]*Blueprint{}, Secrets: map[string]map[string]string{}}
	err := s.View(func(v *View) error {
		fv.Index = v.Index()
		fv.KVs = v.KVPrefix("", 0)
		ids := append([]uint64(nil), leaseIDs...)
		for _, kv := range fv.KVs {
			ids = append(ids, kv.Lease)
		}
		for _, id := range ids {
			if l, ok := v.Lease(id); ok {
				fv.Leases[id] = l
			}
		}
		fv.Locks = v.Locks()
		fv.Queues = v.Queues()
		for _, q := range fv.Queues {
			fv.Items[q] = v.Queue(q)
		}
		fv.Nodes = v.Nodes()
		fv.Blueprints = v.Blueprints()
		for _, info := range fv.Blueprints {
			for _, ver := range info.Versions {
				bp, ok := v.Blueprint(info.Name, ver)
				if !ok {
					return fmt.Errorf("blueprint %s v%d listed but missing", info.Name, ver)
				}
				fv.Versions[info.Name] = append(fv.Versions[info.Name], bp)
			}
			if v.SecretKey() != nil {
				sec, err := v.BlueprintSecrets(info.Name, 0)
				if err != nil {
					return err
				}
				fv.Secrets[info.Name] = sec
			}
		}
		fv.ClusterID = v.ClusterID()
		fv.SecretKey = v.SecretKey()
		fv.NextExpiry, fv.HasExpiry = v.NextExpiry()
		fv.Fleets = v.Fleets()
		for _, f := range fv.Fleets {
			if g, ok := v.Fleet(f.Name); !ok || !reflect.DeepEqual(g, f) {
				return fmt.Errorf("fleet %s listed but reads as %+v", f.Name, g)
			}
		}
		fv.Ships = v.Ships(ShipFilter{})
		for _, s := range fv.Ships {
			if got, ok := v.Ship(s.ID); !ok || !reflect.DeepEqual(got, s) {
				return fmt.Errorf("ship %s listed but reads as %+v", s.ID, got)
			}
		}
		fv.Queued = v.Queued()
		return nil
	})
	if err != nil {
		tb.Fatalf("View: %v", err)
	}
	return fv
}

// testKey is a fixed 32-byte cluster key.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// validBlueprint returns a small valid blueprint with a fresh copy of every
// map and slice.
func validBlueprint() *Blueprint {
	return &Blueprint{
		Name:      "web",
		Unit:      "[Service]\nExecStart=/usr/bin/web --port ${ARMADA_PORT_HTTP}\n",
		Resources: Resources{CPUMHz: 100, MemoryMB: 64},
		Ports:     []Port{{Name: "http", Protocol: "tcp"}},
		Env:       map[string]string{"MODE": "prod"},
		Health:    &Health{Type: "http", Port: "http", Path: "/healthz"},
		Labels:    map[string]string{"app": "web"},
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
