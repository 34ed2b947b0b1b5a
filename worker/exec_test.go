package worker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var _ Driver = (*Exec)(nil)

// eventually polls cond every 10ms until it holds, failing the test after
// timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestExec(t *testing.T, dir string) (*Exec, *syncBuffer) {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "exec")
	}
	logs := &syncBuffer{}
	e, err := NewExec(dir, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if len(e.List()) != 0 {
			t.Errorf("ships left after Close: %+v", e.List())
		}
	})
	return e, logs
}

func service(lines ...string) string {
	return "[Unit]\nDescription=test\n\n[Service]\n" + strings.Join(lines, "\n") + "\n"
}

func spec(id, unit string) *Spec {
	return &Spec{ID: id, Fleet: "f", Unit: unit, Env: map[string]string{"ARMADA_SHIP_ID": id}}
}

func status(e *Exec, id string) (Status, bool) {
	for _, s := range e.List() {
		if s.ID == id {
			return s, true
		}
	}
	return Status{}, false
}

// waitState waits until ship id is in state and returns its status.
func waitState(t *testing.T, e *Exec, id, state string) Status {
	t.Helper()
	var st Status
	eventually(t, 10*time.Second, func() bool {
		st, _ = status(e, id)
		return st.State == state
	})
	return st
}

// alive says whether pid is a live (non-zombie) process started at start.
func alive(pid int, start uint64) bool {
	s, err := procStartTime(pid)
	return err == nil && s == start
}

func readLog(t *testing.T, e *Exec, id string) string {
	t.Helper()
	b, err := os.ReadFile(e.LogPath(id))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func mustStart(t *testing.T, e *Exec, s *Spec) {
	t.Helper()
	if err := e.Start(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func mustStop(t *testing.T, e *Exec, id string) {
	t.Helper()
	if err := e.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// Not parallel: it sets an environment variable of the test process.
func TestExecEnvironmentAndLog(t *testing.T) {
	t.Setenv("ARMADA_TEST_LEAK", "leaked")
	e, _ := newTestExec(t, "")
	wd := t.TempDir()
	s := spec("env", service(
		`Environment=FROM_UNIT=unit "QUOTED=a b" GREETING=from-unit`,
		"WorkingDirectory="+wd,
		`ExecStart=/bin/sh -c 'echo "id=$ARMADA_SHIP_ID arg=$1 unit=$FROM_UNIT q=$QUOTED leak=${ARMADA_TEST_LEAK:-none} path=$PATH pwd=$(pwd)"; echo oops >&2' sh ${GREETING}`,
	))
	s.Env["GREETING"] = "hello"

	mustStart(t, e, s)
	st := waitState(t, e, "env", ProcExited)
	if st.Failed || st.Reason != "exited with status 0" || st.Restarts != 0 || st.Pid != 0 {
		t.Errorf("status = %+v, want exited with status 0, not failed", st)
	}
	want := fmt.Sprintf("id=env arg=hello unit=unit q=a b leak=none path=%s pwd=%s\noops\n", defaultPath, wd)
	if got := readLog(t, e, "env"); got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
	if e.LogPath("env") != filepath.Join(e.dir, "env.log") {
		t.Errorf("LogPath = %q", e.LogPath("env"))
	}
	if _, err := os.Stat(e.pidPath("env")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid record left after exit: %v", err)
	}

	// Started afresh, the output is appended; a PATH of the ship is kept.
	s.Env["PATH"] = "/bin:/usr/bin"
	mustStart(t, e, s)
	waitState(t, e, "env", ProcExited)
	if got := readLog(t, e, "env"); !strings.HasPrefix(got, want) || !strings.Contains(got[len(want):], "path=/bin:/usr/bin pwd=") {
		t.Errorf("log = %q, want the second run appended", got)
	}

	// Without WorkingDirectory=, a ship runs in /.
	mustStart(t, e, spec("root", service(`ExecStart=/bin/sh -c pwd`)))
	waitState(t, e, "root", ProcExited)
	if got := readLog(t, e, "root"); got != "/\n" {
		t.Errorf("log = %q, want /", got)
	}
	// A command name is looked up in the ship's PATH.
	mustStart(t, e, spec("lookup", service(`ExecStart=sh -c 'echo found'`)))
	waitState(t, e, "lookup", ProcExited)
	if got := readLog(t, e, "lookup"); got != "found\n" {
		t.Errorf("log = %q", got)
	}
}

func TestExecExitStatus(t *testing.T) {
	t.Parallel()
	e, _ := newTestExec(t, "")
	tests := []struct {
		id, exec string
		failed   bool
		reason   string
	}{
		{"zero", `/bin/sh -c 'exit 0'`, false, "exited with status 0"},
		{"three", `/bin/sh -c 'exit 3'`, true, "exited with status 3"},
		// "$$" is systemd's literal "$".
		{"segv", `/bin/sh -c 'kill -SEGV $$$$'`, true, "killed by signal SIGSEGV"},
		{"kill", `/bin/sh -c 'kill -KILL $$$$'`, true, "killed by signal SIGKILL"},
		// systemd counts SIGHUP, SIGINT, SIGTERM and SIGPIPE as clean.
		{"term", `/bin/sh -c 'kill -TERM $$$$'`, false, "killed by signal SIGTERM"},
		{"ignored", `-/bin/sh -c 'exit 3'`, false, "exited with status 3"},
		{"ignored-signal", `-/bin/sh -c 'kill -SEGV $$$$'`, false, "killed by signal SIGSEGV"},
		{"argv0", `@/bin/sh fancy-name -c 'echo $0; exit 4'`, true, "exited with status 4"},
	}
	for _, tt := range tests {
		mustStart(t, e, spec(tt.id, service("ExecStart="+tt.exec)))
	}
	for _, tt := range tests {
		st := waitState(t, e, tt.id, ProcExited)
		if st.Failed != tt.failed || st.Reason != tt.reason || st.Restarts != 0 {
			t.Errorf("%s: status = %+v, want failed=%v reason %q", tt.id, st, tt.failed, tt.reason)
		}
	}
	if got := readLog(t, e, "argv0"); got != "fancy-name\n" {
		t.Errorf("argv0 log = %q", got)
	}
	// Forget drops exited ships.
	e.Forget("zero")
	if _, ok := status(e, "zero"); ok {
		t.Error("Forget kept an exited ship")
	}
}

func TestExecStartFailure(t *testing.T) {
	t.Parallel()
	e, _ := newTestExec(t, "")
	tests := []struct{ id, unit, want string }{
		{"missing", service("ExecStart=/nonexistent/binary"), "no such file"},
		{"notinpath", service("ExecStart=no-such-command-armada"), `"no-such-command-armada" not found in PATH`},
		{"badunit", service("Restart=always"), "ExecStart= is required"},
		{"badquote", service("ExecStart=/bin/echo 'x"), "unterminated"},
		{"baddir", service("ExecStart=/bin/true", "WorkingDirectory=/nonexistent/dir"), "not a directory"},
		{"empty", service("ExecStart=$NOTHING"), "expands to nothing"},
	}
	for _, tt := range tests {
		err := e.Start(context.Background(), spec(tt.id, tt.unit))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Start = %v, want an error with %q", tt.id, err, tt.want)
		}
		st, _ := status(e, tt.id)
		if st.State != ProcExited || !st.Failed || !strings.HasPrefix(st.Reason, "start failed: ") || !strings.Contains(st.Reason, tt.want) {
			t.Errorf("%s: status = %+v", tt.id, st)
		}
	}
	// A bad id is refused outright.
	for _, id := range []string{"", ".hidden", "a/b", ".."} {
		if err := e.Start(context.Background(), spec(id, service("ExecStart=/bin/true"))); err == nil {
			t.Errorf("Start(%q) succeeded", id)
		}
	}
	// A failed ship starts afresh with a good unit; WorkingDirectory=- tolerates a missing directory.
	mustStart(t, e, spec("missing", service("ExecStart=/bin/sh -c 'exit 0'", "WorkingDirectory=-/nonexistent/dir")))
	if st := waitState(t, e, "missing", ProcExited); st.Failed {
		t.Errorf("status = %+v", st)
	}
	// An ended context is refused.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Start(ctx, spec("late", service("ExecStart=/bin/true"))); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled ctx = %v", err)
	}
}

// countingShip exits with code until it has been started n times, then
// sleeps.
func countingShip(dir string, n, code int, restart string) string {
	return service(
		"WorkingDirectory="+dir,
		"Restart="+restart,
		"RestartSec=10ms",
		fmt.Sprintf(`ExecStart=/bin/sh -c 'echo run >> runs; [ $(wc -l < runs) -ge %d ] && exec sleep 1000; exit %d'`, n, code),
	)
}

func TestExecRestartOnFailure(t *testing.T) {
	t.Parallel()
	e, _ := newTestExec(t, "")
	mustStart(t, e, spec("flaky", countingShip(t.TempDir(), 3, 1, RestartOnFailure)))
	var st Status
	eventually(t, 10*time.Second, func() bool {
		st, _ = status(e, "flaky")
		return st.State == ProcRunning && st.Restarts == 2
	})
	if st.Pid <= 0 || st.Failed {
		t.Errorf("status = %+v", st)
	}
	// on-failure does not restart a clean exit.
	mustStart(t, e, spec("clean", countingShip(t.TempDir(), 100, 0, RestartOnFailure)))
	if st := waitState(t, e, "clean", ProcExited); st.Failed || st.Restarts != 0 {
		t.Errorf("clean: status = %+v", st)
	}
	// on-abnormal restarts after a crash, not after a non-zero exit.
	mustStart(t, e, spec("abnormal", service("Restart=on-abnormal", "ExecStart=/bin/sh -c 'exit 2'")))
	if st := waitState(t, e, "abnormal", ProcExited); !st.Failed || st.Restarts != 0 {
		t.Errorf("abnormal: status = %+v", st)
	}
}

func TestExecRestartAlways(t *testing.T) {
	t.Parallel()
	e, _ := newTestExec(t, "")
	mustStart(t, e, spec("always", countingShip(t.TempDir(), 3, 0, RestartAlways)))
	eventually(t, 10*time.Second, func() bool {
		st, _ := status(e, "always")
		return st.State == ProcRunning && st.Restarts == 2
	})
	// Starting a running ship leaves it alone.
	st, _ := status(e, "always")
	mustStart(t, e, spec("always", service("ExecStart=/bin/false")))
	if st2, _ := status(e, "always"); st2 != st {
		t.Errorf("Start changed a running ship: %+v -> %+v", st, st2)
	}
	mustStop(t, e, "always")
	if _, ok := status(e, "always"); ok {
		t.Error("a stopped ship is still listed")
	}
}

func TestExecStartLimit(t *testing.T) {
	t.Parallel()
	e, _ := newTestExec(t, "")
	mustStart(t, e, spec("crashy", service(
		"Restart=on-failure", "RestartSec=10ms", "StartLimitBurst=3",
		"ExecStart=/bin/sh -c 'echo crash; exit 1'")))
	st := waitState(t, e, "crashy", ProcExited)
	want := Status{ID: "crashy", State: ProcExited, Restarts: 2, Failed: true, Reason: "restarted too often: 4 starts in 10s"}
	if st != want {
		t.Errorf("status = %+v, want %+v", st, want)
	}
	if got := readLog(t, e, "crashy"); got != "crash\ncrash\ncrash\n" {
		t.Errorf("log = %q", got)
	}

	// With the limit in [Unit] and a window so short that starts fall out of
	// it, restarts go on.
	mustStart(t, e, spec("slow", fmt.Sprintf(`[Unit]
StartLimitIntervalSec=50ms
StartLimitBurst=1
[Service]
WorkingDirectory=%s
Restart=on-failure
RestartSec=100ms
ExecStart=/bin/sh -c 'echo run >> runs; [ $(wc -l < runs) -ge 4 ] && exec sleep 1000; exit 1'
`, t.TempDir())))
	eventually(t, 10*time.Second, func() bool {
		st, _ := status(e, "slow")
		return st.State == ProcRunning && st.Restarts == 3 || st.State == ProcExited
	})
	if st, _ := status(e, "slow"); st.State != ProcRunning {
		t.Errorf("slow: status = %+v", st)
	}
}

// Stop of a ship that ignores SIGTERM kills it after TimeoutStopSec.
func TestExecStopTimeout(t *testing.T) {
	t.Parallel()
	e, _ := newTestExec(t, "")
	mustStart(t, e, spec("stubborn", service(
		"TimeoutStopSec=300ms",
		`ExecStart=/bin/sh -c 'trap "" TERM; echo ready; while :; do sleep 1; done'`)))
	eventually(t, 5*time.Second, func() bool { return readLog(t, e, "stubborn") == "ready\n" })
	st, _ := status(e, "stubborn")
	start, err := procStartTime(st.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.pidPath("stubborn")); err != nil {
		t.Errorf("no pid record while running: %v", err)
	}
	t0 := time.Now()
	mustStop(t, e, "stubborn")
	if d := time.Since(t0); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("Stop took %v, want about 300ms", d)
	}
	if alive(st.Pid, start) {
		t.Error("process survived Stop")
	}
	if _, ok := status(e, "stubborn"); ok {
		t.Error("stopped ship still listed")
	}
	if _, err := os.Stat(e.pidPath("stubborn")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid record left after Stop: %v", err)
	}
	// Stopping an unknown ship is fine.
	mustStop(t, e, "stubborn")

	// A cooperative process stops at once.
	mustStart(t, e, spec("meek", service("ExecStart=/bin/sleep 1000")))
	waitState(t, e, "meek", ProcRunning)
	t0 = time.Now()
	mustStop(t, e, "meek")
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Stop took %v", d)
	}
}

// Stop honours ctx while waiting; the stop goes on and a later Stop finishes it.
func TestExecStopContext(t *testing.T) {
	t.Parallel()
	e, _ := newTestExec(t, "")
	mustStart(t, e, spec("forever", service(
		"TimeoutStopSec=infinity",
		`ExecStart=/bin/sh -c 'trap "" TERM; echo ready; while :; do sleep 1; done'`)))
	eventually(t, 5*time.Second, func() bool { return readLog(t, e, "forever") == "ready\n" })
	st, _ := status(e, "forever")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.Stop(ctx, "forever"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want deadline exceeded", err)
	}
	if _, ok := status(e, "forever"); !ok {
		t.Fatal("a ship still stopping is not listed")
	}
	// Forget leaves a ship that is not exited alone.
	e.Forget("forever")
	if _, ok := status(e, "forever"); !ok {
		t.Fatal("Forget dropped a running ship")
	}
	signalGroup(st.Pid, syscall.SIGKILL)
	mustStop(t, e, "forever")
	if _, ok := status(e, "forever"); ok {
		t.Error("stopped ship still listed")
	}
}

// Stop cancels a pending restart.
func TestExecStopDuringRestartWait(t *testing.T) {
	t.Parallel()
	e, _ := newTestExec(t, "")
	mustStart(t, e, spec("waiting", service("Restart=always", "RestartSec=1h", "ExecStart=/bin/true")))
	st := waitState(t, e, "waiting", ProcStarting)
	if st.Reason != "exited with status 0" || st.Pid != 0 {
		t.Errorf("status = %+v", st)
	}
	t0 := time.Now()
	mustStop(t, e, "waiting")
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Stop took %v", d)
	}
	if _, ok := status(e, "waiting"); ok {
		t.Error("stopped ship still listed")
	}
}

// groupOf waits until process group pgid has n live members and returns
// them with their start times.
func groupOf(t *testing.T, pgid, n int) map[int]uint64 {
	t.Helper()
	var m map[int]uint64
	eventually(t, 5*time.Second, func() bool {
		m = groupMembers(pgid)
		return len(m) == n
	})
	return m
}

func assertGone(t *testing.T, procs map[int]uint64) {
	t.Helper()
	for pid, start := range procs {
		if alive(pid, start) {
			t.Errorf("process %d is still alive", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func TestExecStopKillsGroup(t *testing.T) {
	t.Parallel()
	e, _ := newTestExec(t, "")
	mustStart(t, e, spec("family", service(`ExecStart=/bin/sh -c 'sleep 1000 & sleep 1000; wait'`)))
	st := waitState(t, e, "family", ProcRunning)
	procs := groupOf(t, st.Pid, 3)
	mustStop(t, e, "family")
	assertGone(t, procs)

	// When the main process ends by itself, what is left of its group
	// goes too.
	dir := t.TempDir()
	mustStart(t, e, spec("parent", service("WorkingDirectory="+dir,
		`ExecStart=/bin/sh -c 'sleep 1000 & echo $! > bg; exit 0'`)))
	waitState(t, e, "parent", ProcExited)
	b, err := os.ReadFile(filepath.Join(dir, "bg"))
	if err != nil {
		t.Fatal(err)
	}
	bg, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if _, err := procStartTime(bg); err == nil {
		t.Errorf("background process %d outlived its ship", bg)
		_ = syscall.Kill(bg, syscall.SIGKILL)
	}
}

func TestExecConcurrent(t *testing.T) {
	t.Parallel()
	e, _ := newTestExec(t, "")
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s := spec(fmt.Sprintf("ship-%02d", n-1-i), service("ExecStart=/bin/sleep 1000"))
			for range 3 { // repeated starts are no-ops
				if err := e.Start(context.Background(), s); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-e.Changed():
	default:
		t.Error("no change signalled")
	}
	eventually(t, 5*time.Second, func() bool {
		l := e.List()
		return len(l) == n && !slices.ContainsFunc(l, func(s Status) bool { return s.State != ProcRunning })
	})
	l := e.List()
	if !slices.IsSortedFunc(l, func(a, b Status) int { return strings.Compare(a.ID, b.ID) }) {
		t.Errorf("List is not sorted: %+v", l)
	}
	for i := range n / 2 {
		wg.Go(func() {
			if err := e.Stop(context.Background(), fmt.Sprintf("ship-%02d", i)); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() { _ = e.List() })
	}
	wg.Wait()
	if got := len(e.List()); got != n-n/2 {
		t.Errorf("%d ships listed, want %d", got, n-n/2)
	}
	// Close stops the rest; afterwards Start fails.
	starts := map[int]uint64{}
	for _, st := range e.List() {
		start, err := procStartTime(st.Pid)
		if err != nil {
			t.Fatal(err)
		}
		starts[st.Pid] = start
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, starts)
	if len(e.List()) != 0 {
		t.Errorf("ships listed after Close: %+v", e.List())
	}
	if err := e.Start(context.Background(), spec("late", service("ExecStart=/bin/true"))); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v", err)
	}
}

// Start on a ship being stopped waits for the stop, then starts afresh.
func TestExecStartWhileStopping(t *testing.T) {
	t.Parallel()
	e, _ := newTestExec(t, "")
	s := spec("phoenix", service("TimeoutStopSec=300ms",
		`ExecStart=/bin/sh -c 'trap "" TERM; echo ready; while :; do sleep 1; done'`))
	mustStart(t, e, s)
	eventually(t, 5*time.Second, func() bool { return readLog(t, e, "phoenix") == "ready\n" })
	old, _ := status(e, "phoenix")
	stopped := make(chan error, 1)
	go func() { stopped <- e.Stop(context.Background(), "phoenix") }()
	eventually(t, 5*time.Second, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.ships["phoenix"] != nil && e.ships["phoenix"].stopping
	})
	mustStart(t, e, s)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	st, _ := status(e, "phoenix")
	if st.State != ProcRunning || st.Pid == old.Pid || st.Restarts != 0 {
		t.Errorf("status = %+v (was %+v)", st, old)
	}
}

// spawnGroup starts script under /bin/sh in a process group of its own,
// the way the driver does, and returns the command.
func spawnGroup(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

func writeTestRecord(t *testing.T, dir, id string, r pidRecord) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id+".pid"), []byte(r.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A worker that dies without Close leaves its ships running; the next
// NewExec on the same dir ends them.
func TestExecOrphansOfAbandonedDriver(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "exec")
	first, _ := newTestExec(t, dir)
	mustStart(t, first, spec("orphan", service(`ExecStart=/bin/sh -c 'sleep 1000 & sleep 1000; wait'`)))
	st := waitState(t, first, "orphan", ProcRunning)
	procs := groupOf(t, st.Pid, 3)

	_, logs := newTestExec(t, dir) // first is abandoned: no Close
	assertGone(t, procs)
	if _, err := os.Stat(filepath.Join(dir, "orphan.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid record left: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "ending leftover ship processes") || !strings.Contains(l, "ship=orphan") ||
		!strings.Contains(l, "reason=\"ship process left running by an earlier worker\"") {
		t.Errorf("logs = %s", l)
	}
}

// The main process died with the worker (Pdeathsig), its children did not:
// they are found by their process group.
func TestExecOrphansWithoutLeader(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "exec")
	cmd := exec.Command("/bin/sh", "-c", "sleep 1000 & echo $!; read x")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { signalGroup(pid, syscall.SIGKILL) })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(line))
	start, err := procStartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	childStart, err := procStartTime(child)
	if err != nil {
		t.Fatal(err)
	}
	writeTestRecord(t, dir, "headless", pidRecord{pid: pid, pgid: pid, start: start, boot: bootID()})
	stdin.Close()
	_ = cmd.Wait() // the leader is gone
	if !alive(child, childStart) {
		t.Fatal("the child died with its parent")
	}

	_, logs := newTestExec(t, dir)
	assertGone(t, map[int]uint64{child: childStart})
	if l := logs.String(); !strings.Contains(l, "whose main process is gone") {
		t.Errorf("logs = %s", l)
	}
}

// A pid record whose process is not the recorded one is left alone.
func TestExecOrphanRecordsNotOurs(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "exec")
	sleeper := spawnGroup(t, "exec sleep 1000")
	pid := sleeper.Process.Pid
	start, err := procStartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	writeTestRecord(t, dir, "recycled", pidRecord{pid: pid, pgid: pid, start: start + 1, boot: bootID()})
	if bootID() != "" {
		writeTestRecord(t, dir, "oldboot", pidRecord{pid: pid, pgid: pid, start: start, boot: "another-boot"})
	}
	writeTestRecord(t, dir, "gone", pidRecord{pid: 1 << 30, pgid: 1 << 30, start: 1, boot: bootID()})
	if err := os.WriteFile(filepath.Join(dir, "garbage.pid"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	_, logs := newTestExec(t, dir)
	if !alive(pid, start) {
		t.Fatal("a process that is not the recorded one was killed")
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	if len(left) != 0 {
		t.Errorf("records left: %v", left)
	}
	l := logs.String()
	for _, want := range []string{"recycled pid", "unreadable pid record"} {
		if !strings.Contains(l, want) {
			t.Errorf("logs lack %q: %s", want, l)
		}
	}
}

// TestExecHelperWorker is a worker for TestExecWorkerKilled, run in a
// process of its own; skipped otherwise.
func TestExecHelperWorker(t *testing.T) {
	dir := os.Getenv("ARMADA_EXEC_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestExecWorkerKilled")
	}
	e, err := NewExec(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background(), spec("crew", service(`ExecStart=/bin/sh -c 'sleep 1000 & sleep 1000; wait'`))); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ready %d\n", e.List()[0].Pid)
	select {} // until SIGKILLed
}

// A worker killed by SIGKILL takes its ships' main processes with it; the
// next worker on the same dir ends what is left.
func TestExecWorkerKilled(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "exec")
	helper := exec.Command(os.Args[0], "-test.run=^TestExecHelperWorker$", "-test.count=1")
	helper.Env = append(os.Environ(), "ARMADA_EXEC_HELPER_DIR="+dir)
	out, _ := helper.StdoutPipe()
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = helper.Process.Kill()
		_ = helper.Wait()
	})
	var main int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "ready %d", &main); err == nil {
			break
		}
	}
	if main == 0 {
		t.Fatal("the helper worker did not start its ship")
	}
	procs := groupOf(t, main, 3)
	t.Cleanup(func() { signalGroup(main, syscall.SIGKILL) })

	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	eventually(t, 5*time.Second, func() bool { return !alive(main, procs[main]) })
	delete(procs, main)
	for pid, start := range procs {
		if !alive(pid, start) {
			t.Fatalf("grandchild %d died with the worker", pid)
		}
	}

	_, logs := newTestExec(t, dir)
	assertGone(t, procs)
	if l := logs.String(); !strings.Contains(l, "ending leftover ship processes") || !strings.Contains(l, "ship=crew") {
		t.Errorf("logs = %s", l)
	}
}

func TestPidRecordRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range []pidRecord{{pid: 12, pgid: 12, start: 345, boot: "b"}, {pid: 2, pgid: 3, start: 0}} {
		got, err := parsePidRecord(r.String())
		if err != nil || got != r {
			t.Errorf("parse(%q) = %+v, %v", r.String(), got, err)
		}
	}
	for _, s := range []string{"", "pid=1 pgid=1 start=1 boot=x", "pid=5 pgid=5 start=x boot=-", "pid=5 pgid=5"} {
		if _, err := parsePidRecord(s); err == nil {
			t.Errorf("parse(%q) succeeded", s)
		}
	}
	if _, err := parseProcStat("1 (a) b) S 0 7 0"); err == nil {
		t.Error("short stat parsed")
	}
	st, err := parseProcStat("42 (we ird) name) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 2")
	if err != nil || st.state != 'S' || st.pgrp != 42 || st.start != 987654 {
		t.Errorf("parseProcStat = %+v, %v", st, err)
	}
}
