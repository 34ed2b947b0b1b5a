package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// A data dir of an older version keeps its log in raft.db: on start the
// entries move into the WAL and every committed write is still there.
func TestLogInRaftDBMovesToWAL(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("n1", nil)
	c.leader(settle)
	const keys = 300
	for i := range keys {
		put(t, n1, "old/"+strconv.Itoa(i), strconv.Itoa(i))
	}
	n1.stop()

	// Rewrite the data dir into the old layout: the log in raft.db, no WAL.
	dir := n1.cfg.DataDir
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(filepath.Join(dir, "raft", "wal"), wal.WithMetaStore(meta))
	if err != nil {
		t.Fatal(err)
	}
	b, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft", "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	first, last := indexes(t, w)
	if err := moveLogs(b, w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	meta.Close()
	if bf, bl := indexes(t, b); bf != first || bl != last {
		t.Fatalf("old layout holds [%d, %d], want [%d, %d]", bf, bl, first, last)
	}
	b.Close()
	if err := os.RemoveAll(filepath.Join(dir, "raft", "wal")); err != nil {
		t.Fatal(err)
	}

	r := c.restart(n1)
	c.leader(settle)
	for i := range keys {
		if v, ok := kvGet(r, "old/"+strconv.Itoa(i)); !ok || v != strconv.Itoa(i) {
			t.Fatalf("old/%d after the move: %q %v", i, v, ok)
		}
	}
	if bf, bl := indexes(t, r.parts.store); bf != 0 || bl != 0 {
		t.Fatalf("raft.db still holds entries [%d, %d]", bf, bl)
	}
	if wf, wl := indexes(t, r.parts.log); wf != first || wl < last {
		t.Fatalf("WAL holds [%d, %d], want [%d, ≥%d]", wf, wl, first, last)
	}
	put(t, r, "new", "write")
}

// A move cut short resumes where the WAL ends and copies nothing twice.
func TestMoveLogsResumes(t *testing.T) {
	dir := t.TempDir()
	b, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	meta := &metadb.BoltMetaDB{}
	defer meta.Close()
	w, err := wal.Open(dir, wal.WithMetaStore(meta))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	entries := func(from, to uint64) []*raft.Log {
		var ls []*raft.Log
		for i := from; i <= to; i++ {
			ls = append(ls, &raft.Log{Index: i, Term: 2, Type: raft.LogCommand, Data: []byte(fmt.Sprint("entry ", i))})
		}
		return ls
	}
	if err := b.StoreLogs(entries(10, 1500)); err != nil {
		t.Fatal(err)
	}
	if err := w.StoreLogs(entries(10, 700)); err != nil { // the part moved before a crash
		t.Fatal(err)
	}
	if err := moveLogs(w, b); err != nil {
		t.Fatal(err)
	}
	if f, l := indexes(t, w); f != 10 || l != 1500 {
		t.Fatalf("WAL holds [%d, %d], want [10, 1500]", f, l)
	}
	for i := uint64(10); i <= 1500; i++ {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil || string(l.Data) != fmt.Sprint("entry ", i) || l.Term != 2 {
			t.Fatalf("entry %d: %q term %d, %v", i, l.Data, l.Term, err)
		}
	}
	if f, l := indexes(t, b); f != 0 || l != 0 {
		t.Fatalf("raft.db still holds [%d, %d]", f, l)
	}
	// Nothing left to move: a second start changes nothing.
	if err := moveLogs(w, b); err != nil {
		t.Fatal(err)
	}
	if f, l := indexes(t, w); f != 10 || l != 1500 {
		t.Fatalf("after a second move the WAL holds [%d, %d]", f, l)
	}
}

func indexes(t *testing.T, s raft.LogStore) (first, last uint64) {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if last, err = s.LastIndex(); err != nil {
		t.Fatal(err)
	}
	return first, last
}
