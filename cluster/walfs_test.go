package cluster

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/types"
	"golang.org/x/sys/unix"
)

// A log being written gets its segments from zeroed spares: a new segment
// is the spare made ahead of it and has no unwritten (fallocated) extent;
// a log written little zeroes nothing; the log reads back whole after a
// restart, and a stale spare is not used.
func TestLogSegmentsAreZeroFilled(t *testing.T) {
	dir := t.TempDir()
	const seg = 64 << 10
	cfg := &Config{Name: "z", DataDir: dir, RaftAddr: "127.0.0.1:0", LogSegmentSize: seg}
	if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	p, err := openRaftParts(cfg, hclog.NewNullLogger(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	walDir := filepath.Join(dir, "raft", "wal")
	spare := filepath.Join(walDir, spareName)
	data := func(i uint64) []byte { return bytes.Repeat([]byte{byte(i)}, 700) }
	next := uint64(1)
	store := func(n int) {
		t.Helper()
		var logs []*raft.Log
		for range n {
			logs = append(logs, &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: data(next)})
			next++
		}
		if err := p.log.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	}

	// The first segment is fallocated; until a segment is half written
	// there is no spare.
	store(1)
	if _, err := os.Stat(spare); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a spare was made for a log written once: %v", err)
	}
	if initial := segments(t, walDir); len(initial) != 1 {
		t.Fatalf("segments at start: %v", initial)
	}
	// spareFor writes until a spare is being made, waits for it, and
	// returns its inode.
	spareFor := func() uint64 {
		t.Helper()
		for range 10 * seg / 700 {
			if _, err := os.Stat(spare); err == nil {
				return inode(t, spare)
			}
			if !waitSpare(p.logFS) {
				store(1)
			}
		}
		t.Fatal("no spare was made while the log was written")
		return 0
	}
	for rotation := range 4 {
		ino := spareFor()
		before := segments(t, walDir)
		for len(segments(t, walDir)) == len(before) {
			store(8)
		}
		after := segments(t, walDir)
		newest := after[len(after)-1]
		if got := inode(t, filepath.Join(walDir, newest)); got != ino {
			t.Fatalf("rotation %d: segment %s is inode %d, not the spare (%d)", rotation, newest, got, ino)
		}
	}
	spareFor()
	for _, name := range append(segments(t, walDir)[1:], spareName) {
		if n := unwrittenExtents(t, filepath.Join(walDir, name)); n != 0 {
			t.Fatalf("%s has %d unwritten extents: it was fallocated, not zero-filled", name, n)
		}
	}
	last := next - 1
	p.close()

	// A spare of another size (the segment size changed) and a half-made
	// one are not used.
	if err := os.WriteFile(spare, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(walDir, spareTmpName), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err = openRaftParts(cfg, hclog.NewNullLogger(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if _, err := os.Stat(filepath.Join(walDir, spareTmpName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("half-made spare left after the restart: %v", err)
	}
	if fi, err := os.Stat(spare); err == nil && fi.Size() != seg {
		t.Fatalf("a spare of %d bytes kept for %d-byte segments", fi.Size(), seg)
	}
	if l, err := p.log.LastIndex(); err != nil || l != last {
		t.Fatalf("last index after restart = %d, %v; want %d", l, err, last)
	}
	first, _ := p.log.FirstIndex()
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := p.log.GetLog(i, &l); err != nil || !bytes.Equal(l.Data, data(i)) {
			t.Fatalf("entry %d after restart: %v", i, err)
		}
	}
	store(200) // the tail segment, recovered, takes more entries and rotates
	if l, _ := p.log.LastIndex(); l != next-1 {
		t.Fatalf("last index = %d, want %d", l, next-1)
	}
}

// TestWALHelperWriter appends to a Raft log for TestLogSurvivesSIGKILL, in
// a process of its own, printing each acknowledged index until it is
// killed; skipped otherwise.
func TestWALHelperWriter(t *testing.T) {
	dir := os.Getenv("ARMADA_WAL_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestLogSurvivesSIGKILL")
	}
	p, err := openRaftParts(killConfig(dir), hclog.NewNullLogger(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	last, err := p.log.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	for next := last + 1; ; {
		var logs []*raft.Log
		for range 1 + next%7 {
			logs = append(logs, &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: killData(next)})
			next++
		}
		if err := p.log.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("acked %d\n", next-1)
	}
}

func killConfig(dir string) *Config {
	return &Config{Name: "k", DataDir: dir, RaftAddr: "127.0.0.1:0", LogSegmentSize: 32 << 10}
}

func killData(i uint64) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 150+int(i%200)) }

// A process appending to the log is killed with SIGKILL three times, while
// segments rotate and spares are zero-filled: every entry it acknowledged
// reads back intact, and the log takes new entries after each restart.
func TestLogSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	var acked uint64
	for round := range 3 {
		helper := exec.Command(os.Args[0], "-test.run=^TestWALHelperWriter$", "-test.count=1")
		helper.Env = append(os.Environ(), "ARMADA_WAL_HELPER_DIR="+dir)
		out, err := helper.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := helper.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill somewhere after a few more segments (about 100 entries each).
		target := acked + 400 + uint64(round)*37
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var n uint64
			if _, err := fmt.Sscanf(sc.Text(), "acked %d", &n); err == nil {
				if n <= acked {
					t.Fatalf("round %d: acknowledged %d after %d", round, n, acked)
				}
				acked = n
			}
			if acked >= target {
				break
			}
		}
		helper.Process.Kill()
		helper.Wait()
		if acked < target {
			t.Fatalf("round %d: the writer stopped at %d (want %d)", round, acked, target)
		}
	}

	p, err := openRaftParts(killConfig(dir), hclog.NewNullLogger(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	first, _ := p.log.FirstIndex()
	last, _ := p.log.LastIndex()
	if first != 1 || last < acked {
		t.Fatalf("log holds [%d, %d] after the kills; %d were acknowledged", first, last, acked)
	}
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := p.log.GetLog(i, &l); err != nil || !bytes.Equal(l.Data, killData(i)) {
			t.Fatalf("entry %d of %d after the kills: %v", i, last, err)
		}
	}
	if n := len(segments(t, filepath.Join(dir, "raft", "wal"))); n < 12 {
		t.Fatalf("only %d segments: the kills did not come while segments rotated", n)
	}
}

// waitSpare waits for the spare being made, if any, and reports whether
// there was one.
func waitSpare(z *zeroedFS) bool {
	z.mu.Lock()
	making := z.making
	z.mu.Unlock()
	if making == nil {
		return false
	}
	<-making
	return true
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".wal") {
			out = append(out, e.Name())
		}
	}
	return out
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// unwrittenExtents counts a file's extents that are allocated but were
// never written (FIEMAP_EXTENT_UNWRITTEN), as fallocate leaves them.
func unwrittenExtents(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const (
		fsIocFiemap      = 0xC020660B
		extentUnwritten  = 0x800
		extentLast       = 0x1
		maxExtents       = 64
		fiemapHeaderSize = 32
		extentSize       = 56
	)
	unwritten, start := 0, uint64(0)
	for {
		buf := make([]byte, fiemapHeaderSize+maxExtents*extentSize)
		ne := binary.NativeEndian
		ne.PutUint64(buf[0:], start)
		ne.PutUint64(buf[8:], ^uint64(0)-start)
		ne.PutUint32(buf[16:], 1) // FIEMAP_FLAG_SYNC
		ne.PutUint32(buf[24:], maxExtents)
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
			t.Fatalf("FIEMAP on %s: %v (the test needs a file system that maps extents, such as ext4 or xfs)", path, errno)
		}
		mapped := int(ne.Uint32(buf[20:]))
		if mapped == 0 {
			return unwritten
		}
		for i := range mapped {
			e := buf[fiemapHeaderSize+i*extentSize:]
			flags := ne.Uint32(e[40:])
			if flags&extentUnwritten != 0 {
				unwritten++
			}
			if flags&extentLast != 0 {
				return unwritten
			}
			start = ne.Uint64(e[0:]) + ne.Uint64(e[16:])
		}
	}
}

// BenchmarkSegmentSync is one 4 KiB commit (write and sync) to a segment
// as raft-wal makes it (fallocated, fsync) and as this package does
// (zero-filled, fdatasync), side by side; cpu-µs/op is the process's
// user+system time per commit.
//
//	go test -run '^$' -bench SegmentSync ./cluster
func BenchmarkSegmentSync(b *testing.B) {
	const size = 16 << 20
	for _, zeroed := range []bool{false, true} {
		name := map[bool]string{false: "fallocated", true: "zero-filled"}[zeroed]
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			var fs interface {
				Create(dir, name string, size uint64) (types.WritableFile, error)
			} = walfs.New()
			var z *zeroedFS
			if zeroed {
				z = newZeroedFS(dir, size, slog.New(slog.DiscardHandler))
				defer z.Close()
				fs = z
			}
			block := bytes.Repeat([]byte{1}, 4096)
			var f types.WritableFile
			var seg, off int
			var r0, r1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
			for b.Loop() {
				if f == nil || off+len(block) > size {
					b.StopTimer()
					if f != nil {
						f.Close()
					}
					seg++
					if z != nil { // every segment from a spare, made outside the timing
						z.startSpare()
						waitSpare(z)
					}
					var err error
					if f, err = fs.Create(dir, fmt.Sprintf("%020d-%016x.wal", seg, seg), size); err != nil {
						b.Fatal(err)
					}
					off = 0
					b.StartTimer()
				}
				if _, err := f.WriteAt(block, int64(off)); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				off += len(block)
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
			f.Close()
			cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
