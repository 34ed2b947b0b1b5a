package worker

import (
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestUnitNames(t *testing.T) {
	for id, unit := range map[string]string{"web-1a": "armada-web-1a.service", "arena-eu-2": "armada-arena-eu-2.service"} {
		if got := UnitName(id); got != unit {
			t.Errorf("UnitName(%q) = %q, want %q", id, got, unit)
		}
		if got := shipOfUnit(unit); got != id {
			t.Errorf("shipOfUnit(%q) = %q, want %q", unit, got, id)
		}
	}
	for _, unit := range []string{"sshd.service", "armada-.service", "armada-x.socket", "armada-a/b.service", "armada-.x.service", "xarmada-a.service"} {
		if got := shipOfUnit(unit); got != "" {
			t.Errorf("shipOfUnit(%q) = %q, want not an armada unit", unit, got)
		}
	}
}

func TestCPUQuota(t *testing.T) {
	for _, c := range []struct {
		mhz  int64
		core float64
		want int64
	}{{0, 2500, 0}, {500, 2500, 20}, {501, 2500, 21}, {5000, 2500, 200}, {1, 2500, 1}, {100, 0, 0}} {
		if got := CPUQuota(c.mhz, c.core); got != c.want {
			t.Errorf("CPUQuota(%d, %v) = %d, want %d", c.mhz, c.core, got, c.want)
		}
	}
}

func TestEnvFile(t *testing.T) {
	got := string(envFile(map[string]string{"B": `a "b" $c \d` + "`e`", "A": "x\ny", "EMPTY": ""}))
	want := "A=\"x\ny\"\nB=\"a \\\"b\\\" \\$c \\\\d\\`e\\`\"\nEMPTY=\"\"\n"
	if got != want {
		t.Fatalf("envFile:\n%q\nwant\n%q", got, want)
	}
}

func TestUnitStatus(t *testing.T) {
	for _, c := range []struct {
		name string
		p    unitProps
		want Status
	}{
		{"running", unitProps{active: "active", sub: "running", mainPID: 42, restarts: 2},
			Status{ID: "s", State: ProcRunning, Pid: 42, Restarts: 2}},
		{"starting", unitProps{active: "activating", sub: "start"}, Status{ID: "s", State: ProcStarting}},
		{"waiting to restart", unitProps{active: "activating", sub: "auto-restart", result: "signal", execCode: cldKilled, execStat: 9},
			Status{ID: "s", State: ProcStarting, Reason: "killed by signal SIGKILL"}},
		{"failed exit", unitProps{active: "failed", sub: "failed", result: "exit-code", execCode: cldExited, execStat: 3},
			Status{ID: "s", State: ProcExited, Failed: true, Reason: "exited with status 3"}},
		{"start limit", unitProps{active: "failed", result: "start-limit-hit", execCode: cldExited, execStat: 1},
			Status{ID: "s", State: ProcExited, Failed: true, Reason: "restarted too often: start limit hit"}},
		{"oom", unitProps{active: "failed", result: "oom-kill", execCode: cldKilled, execStat: 9},
			Status{ID: "s", State: ProcExited, Failed: true, Reason: "killed by the OOM killer (MemoryMax=)"}},
		{"clean exit", unitProps{active: "inactive", sub: "dead", result: "success", execCode: cldExited},
			Status{ID: "s", State: ProcExited, Reason: "exited with status 0"}},
		{"stopped by hand", unitProps{active: "inactive", sub: "dead", result: "success", execCode: cldKilled, execStat: 15},
			Status{ID: "s", State: ProcExited, Reason: "killed by signal SIGTERM"}},
		{"gone", unitProps{active: "inactive", sub: "dead"}, Status{ID: "s", State: ProcExited, Reason: "unit stopped"}},
		{"odd result", unitProps{active: "failed", result: "resources"}, Status{ID: "s", State: ProcExited, Failed: true, Reason: "unit failed: resources"}},
	} {
		if got := c.p.status("s"); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestBatcherShares checks that callers arriving while a run is under way
// share the next run, and that errors reach every caller of a run.
func TestBatcherShares(t *testing.T) {
	var runs atomic.Int32
	release := make(chan struct{})
	b := &batcher{fn: func() error {
		if runs.Add(1) == 1 {
			<-release
		}
		return errors.New("boom")
	}}
	first := make(chan error, 1)
	go func() { first <- b.do(context.Background()) }()
	for runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() { errs[i] = b.do(context.Background()) })
	}
	// Wait until all ten have joined the pending batch.
	for {
		b.mu.Lock()
		joined := b.next != nil && b.next.callers == len(errs)
		b.mu.Unlock()
		if joined {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if err := <-first; err == nil {
		t.Fatal("first caller got no error")
	}
	for _, err := range errs {
		if err == nil {
			t.Fatal("a caller got no error")
		}
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d runs for 11 callers in two waves, want 2", n)
	}
}

type fakeMeter map[string]Usage

func (m fakeMeter) Usage(context.Context) (map[string]Usage, error) { return m, nil }

func TestSampleUsage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cpuinfo", "processor\t: 0\ncpu MHz\t\t: 2000.000\nprocessor\t: 1\ncpu MHz\t\t: 2000.000\n")
	write("meminfo", "MemTotal:        4194304 kB\nMemFree: 1 kB\nMemAvailable:    3145728 kB\n")
	write("stat", "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n")
	m := fakeMeter{"a": {CPUNanos: 1e9, MemoryBytes: 64 << 20}}
	first, err := sampleUsage(context.Background(), m, dir, "n1", 2000, nil)
	if err != nil || first.report != nil {
		t.Fatalf("first sample: %+v %v", first, err)
	}
	// 1s later: busy +200 of +400 jiffies (half of 4000 MHz), ship a used
	// 0.5s of CPU (1000 MHz of a 2000 MHz core), ship b is new.
	write("stat", "cpu  200 0 200 900 100 0 0 0 0 0\n")
	first.at = first.at.Add(-time.Second)
	m = fakeMeter{"a": {CPUNanos: 1.5e9, MemoryBytes: 64 << 20}, "b": {CPUNanos: 5e9, MemoryBytes: 1 << 20}}
	s, err := sampleUsage(context.Background(), m, dir, "n1", 2000, first)
	if err != nil || s.report == nil {
		t.Fatalf("second sample: %+v %v", s, err)
	}
	r := s.report
	if r.Node != "n1" || r.MemoryMB != 1024 || r.CPUMHz < 1990 || r.CPUMHz > 2000 {
		t.Fatalf("node figures %+v", r)
	}
	if len(r.Ships) != 2 || r.Ships[0].Ship != "a" || r.Ships[0].MemoryMB != 64 || r.Ships[0].CPUMHz < 950 || r.Ships[0].CPUMHz > 1000 ||
		r.Ships[1].Ship != "b" || r.Ships[1].CPUMHz != 0 || r.Ships[1].MemoryMB != 1 {
		t.Fatalf("ship figures %+v", r.Ships)
	}
}

func TestJournalArgs(t *testing.T) {
	got := journalArgs("armada-web-1.service", 5, true)
	want := []string{"journalctl", "--no-pager", "--output=cat", "--all", "--lines=5", "_SYSTEMD_UNIT=armada-web-1.service", "--follow"}
	if !slices.Equal(got, want) {
		t.Fatalf("journalArgs = %q, want %q", got, want)
	}
	if got := journalArgs("u", -1, false); !slices.Contains(got, "--lines=all") || slices.Contains(got, "--follow") {
		t.Fatalf("journalArgs(all, no follow) = %q", got)
	}
}

// TestOpenJournalReader checks the reader around journalctl with a stand-in
// command: it streams the output, and Close ends a command that would run
// on.
func TestOpenJournalReader(t *testing.T) {
	rc, err := openJournal(context.Background(), []string{"sh", "-c", "echo one; echo two"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != "one\ntwo\n" {
		t.Fatalf("read %q %v", b, err)
	}
	rc.Close()
	rc, err = openJournal(context.Background(), []string{"sleep", "1000"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { rc.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the command")
	}
}

// A counter file is read again from its start on every read, so a file
// held open follows the counter; the first candidate that opens wins.
func TestCounterFile(t *testing.T) {
	dir := t.TempDir()
	stat := filepath.Join(dir, "cpu.stat")
	if err := os.WriteFile(stat, []byte("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := openCounter(
		counterFile{path: filepath.Join(dir, "missing"), scale: 1},
		counterFile{path: stat, field: "usage_usec", scale: 1000})
	if c == nil {
		t.Fatal("no counter opened")
	}
	defer c.close()
	var buf []byte
	if v, ok := c.read(&buf); !ok || v != 1_500_000 {
		t.Fatalf("read = %d %v, want 1500000", v, ok)
	}
	// Rewritten in place (same file, as the kernel updates it): the open
	// file reads the new figure, longer than the old.
	if err := os.WriteFile(stat, []byte("usage_usec 123456789\nuser_usec 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.read(&buf); !ok || v != 123_456_789_000 {
		t.Fatalf("read after the update = %d %v", v, ok)
	}
	if c := openCounter(counterFile{path: filepath.Join(dir, "missing")}); c != nil {
		t.Errorf("a missing file opened: %+v", c)
	}
	for _, tc := range []struct {
		text, field string
		want        uint64
		ok          bool
	}{
		{"4096\n", "", 4096, true},
		{"usage_usec 7\n", "usage_usec", 7, true},
		{"nr_periods 3\nusage_usec 7", "usage_usec", 7, true},
		{"usage_usec_x 9\nusage_usec 7\n", "usage_usec", 7, true},
		{"user_usec 7\n", "usage_usec", 0, false},
		{"max\n", "", 0, false},
		{"", "", 0, false},
		{"99999999999999999999999\n", "", 0, false},
	} {
		if v, ok := parseCounter([]byte(tc.text), tc.field); v != tc.want || ok != tc.ok {
			t.Errorf("parseCounter(%q, %q) = %d %v, want %d %v", tc.text, tc.field, v, ok, tc.want, tc.ok)
		}
	}
}

// A usage sample is a baseline for the ships it sees first: the worker
// samples again a second later for them rather than a whole interval.
func TestReportUsageFreshShips(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"cpuinfo": "processor\t: 0\ncpu MHz\t\t: 2000.000\n",
		"meminfo": "MemTotal:        4194304 kB\nMemAvailable:    3145728 kB\n",
		"stat":    "cpu  100 0 100 700 100 0 0 0 0 0\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t)
	w := New(h.st, h.ap, Config{Node: "n1", ProcDir: dir, Driver: h.driver("")})
	for i, step := range []struct {
		ships fakeMeter
		fresh bool
	}{
		{fakeMeter{"a": {CPUNanos: 1}}, true}, // the first sample
		{fakeMeter{"a": {CPUNanos: 2}}, false},
		{fakeMeter{"a": {CPUNanos: 3}, "b": {CPUNanos: 1}}, true},
		{fakeMeter{"a": {CPUNanos: 4}, "b": {CPUNanos: 2}}, false},
		{fakeMeter{"b": {CPUNanos: 3}}, false}, // a ended
	} {
		fresh, _ := w.reportUsage(context.Background(), step.ships) // the ships are not in the state: the report may fail
		if fresh != step.fresh {
			t.Errorf("sample %d of %v: fresh %v, want %v", i, slices.Sorted(maps.Keys(step.ships)), fresh, step.fresh)
		}
	}
}
