// The exec driver (Exec) runs each ship's [Service]
// ExecStart= as a child of the worker, in a process group of its own, and
// supervises it the way systemd would for Type=simple: Restart=,
// RestartSec=, the start limit (StartLimitBurst=, StartLimitIntervalSec=)
// and, on stop, SIGTERM to the whole group followed by SIGKILL after
// TimeoutStopSec=. When a ship's main process ends, whatever is left of
// its group is ended too.
//
// Leftovers of an earlier worker: each running ship has a pid record
// <dir>/<id>.pid (pid, process group, the process's start time from
// /proc/<pid>/stat and the kernel boot id). A worker that dies without
// stopping its ships (SIGKILL, crash) leaves them behind; its direct
// children die with it (Pdeathsig), their children do not. NewExec
// therefore cleans up, it does not re-adopt: for every record left in dir
// it ends the recorded process group (SIGTERM, 2s, SIGKILL) if the
// recorded process still runs with the recorded start time, or, if that
// process is gone, if processes that started no earlier are still in its
// group. A recycled pid (different start time, other boot) is never
// signalled. The records are then deleted, and the reconciler starts the
// ships that should run afresh.

package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrClosed is returned by Start once the driver is closed.
var ErrClosed = errors.New("driver closed")

const (
	// defaultPath is the PATH a ship gets if its environment sets none
	// (systemd's default).
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// orphanGrace is how long a leftover process group gets between SIGTERM
	// and SIGKILL.
	orphanGrace = 2 * time.Second
	// killWait bounds the wait for a SIGKILLed group's stragglers (a
	// process in uninterruptible sleep) once the main process is reaped.
	killWait = 5 * time.Second
	// pollEvery is how often a process group is checked for life.
	pollEvery = 10 * time.Millisecond
)

// Exec is the "exec" driver: ships are child processes of the worker. It
// is safe for concurrent use.
//
// Start starts the ship's main process before it returns. If the unit
// cannot be parsed or the process cannot be started, Start returns the
// error and also records the ship as exited and failed with the error as
// Reason ("start failed: ..."), so List reports it like any other failure.
// Start on a ship being stopped waits for the stop, then starts it afresh.
//
// A ship's environment is exactly its unit's Environment= overlaid with
// Spec.Env (Spec.Env wins), plus systemd's default PATH if neither sets
// one; nothing of the worker's own environment is passed. ExecStart= is
// split and expanded (SplitCommand) with that environment, and a command
// without a slash is looked up in that PATH. The working directory is
// WorkingDirectory= or, as in systemd, "/". Stdin is /dev/null; stdout and
// stderr are appended to LogPath.
//
// How a run ended follows systemd: death by SIGHUP, SIGINT, SIGTERM or
// SIGPIPE counts as a clean exit (not Failed, not restarted by
// on-failure), like exit status 0; the "-" prefix makes any end clean.
// Reason always says what happened: "exited with status 3", "killed by
// signal SIGSEGV", "restarted too often: 6 starts in 10s".
type Exec struct {
	dir     string
	log     *slog.Logger
	boot    string
	changed chan struct{}

	mu     sync.Mutex
	ships  map[string]*ship
	closed bool
}

// ship is one ship of the driver.
type ship struct {
	id      string
	unit    *Unit
	path    string   // the executable
	args    []string // argv, argv[0] included
	env     []string
	wd      string
	logPath string
	pidPath string

	// Guarded by Exec.mu.
	st       Status
	stopping bool
	stopReq  chan struct{} // closed when stopping is set
	done     chan struct{} // closed when no process of the ship is left, nor will be

	// Owned by whoever starts processes: Start, then the supervisor.
	starts []time.Time
}

// NewExec returns an exec driver that keeps its logs and pid records in dir
// (created 0700). Before it returns it ends the processes an earlier
// worker left behind in dir; see the package documentation. A nil log
// discards.
func NewExec(dir string, log *slog.Logger) (*Exec, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("exec driver: %w", err)
	}
	e := &Exec{
		dir:     dir,
		log:     log,
		boot:    bootID(),
		changed: make(chan struct{}, 1),
		ships:   map[string]*ship{},
	}
	if err := e.cleanOrphans(); err != nil {
		return nil, fmt.Errorf("exec driver: %w", err)
	}
	return e, nil
}

// Name implements Driver.
func (e *Exec) Name() string { return "exec" }

// Changed implements Driver.
func (e *Exec) Changed() <-chan struct{} { return e.changed }

// LogPath implements Driver: <dir>/<id>.log.
func (e *Exec) LogPath(id string) string { return filepath.Join(e.dir, id+".log") }

func (e *Exec) pidPath(id string) string { return filepath.Join(e.dir, id+".pid") }

// Logs implements Driver: the ids of the log files in the driver's dir.
func (e *Exec) Logs() []string { return listLogs(e.dir) }

// listLogs lists the ship ids of the <id>.log files in dir.
func listLogs(dir string) []string {
	names, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	ids := make([]string, 0, len(names))
	for _, n := range names {
		ids = append(ids, strings.TrimSuffix(filepath.Base(n), ".log"))
	}
	return ids
}

// RemoveLog implements Driver.
func (e *Exec) RemoveLog(id string) error {
	if !validID(id) {
		return fmt.Errorf("remove log: bad ship id %q", id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return removeLog(id, e.ships[id] != nil, e.LogPath(id))
}

// removeLog deletes a ship's log file unless the driver still knows the
// ship.
func removeLog(id string, known bool, path string) error {
	if known {
		return fmt.Errorf("remove log of %s: the ship is still known to the driver", id)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove log: %w", err)
	}
	return nil
}

func (e *Exec) notify() {
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// validID refuses ship ids that would not make a plain file name in dir.
func validID(id string) bool {
	return id != "" && len(id) <= 200 && !strings.HasPrefix(id, ".") &&
		!strings.ContainsAny(id, "/\x00")
}

// Start implements Driver.
func (e *Exec) Start(ctx context.Context, s *Spec) error {
	if s == nil || !validID(s.ID) {
		return errors.New("start: bad ship id")
	}
	var sh *ship
	for sh == nil {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("start %s: %w", s.ID, err)
		}
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return fmt.Errorf("start %s: %w", s.ID, ErrClosed)
		}
		old := e.ships[s.ID]
		switch {
		case old != nil && old.stopping:
			// Let the stop finish, then start afresh.
			e.mu.Unlock()
			select {
			case <-old.done:
			case <-ctx.Done():
			}
			continue
		case old != nil && old.st.State != ProcExited:
			e.mu.Unlock()
			return nil
		}
		sh = &ship{
			id:      s.ID,
			logPath: e.LogPath(s.ID),
			pidPath: e.pidPath(s.ID),
			st:      Status{ID: s.ID, State: ProcStarting},
			stopReq: make(chan struct{}),
			done:    make(chan struct{}),
		}
		e.ships[s.ID] = sh
		e.mu.Unlock()
	}
	e.notify()

	if err := e.prepare(sh, s); err != nil {
		e.failStart(sh, err)
		return fmt.Errorf("start %s: %w", s.ID, err)
	}
	sh.starts = append(sh.starts, time.Now())
	cmd, err := e.launch(sh)
	if err != nil {
		e.failStart(sh, err)
		return fmt.Errorf("start %s: %w", s.ID, err)
	}
	e.setRunning(sh, cmd.Process.Pid, false)
	go e.supervise(sh, cmd)
	return nil
}

// failStart records a ship that could not be started at all.
func (e *Exec) failStart(sh *ship, err error) {
	e.log.Warn("exec: ship failed to start", "ship", sh.id, "err", err)
	e.mu.Lock()
	sh.st = Status{ID: sh.id, State: ProcExited, Failed: true, Reason: "start failed: " + err.Error()}
	close(sh.done)
	e.mu.Unlock()
	e.notify()
}

// prepare works out the ship's command line, environment and directory.
func (e *Exec) prepare(sh *ship, s *Spec) error {
	u, err := ParseUnit(s.Unit)
	if err != nil {
		return err
	}
	env := make(map[string]string, len(u.Environment)+len(s.Env)+1)
	for k, v := range u.Environment {
		env[k] = v
	}
	for k, v := range s.Env {
		env[k] = v
	}
	if _, ok := env["PATH"]; !ok {
		env["PATH"] = defaultPath
	}
	words, err := SplitCommand(u.ExecStart, env)
	if err != nil {
		return err
	}
	if u.SetArgv0 {
		if len(words) < 2 {
			return errors.New("ExecStart=@ needs a command and its argv[0]")
		}
		sh.path, sh.args = words[0], words[1:]
	} else {
		if len(words) == 0 {
			return errors.New("ExecStart= expands to nothing")
		}
		sh.path, sh.args = words[0], words
	}

	sh.wd = "/"
	switch wd := u.WorkingDirectory; {
	case wd == "~":
		if sh.wd = env["HOME"]; sh.wd == "" {
			return errors.New("WorkingDirectory=~ but HOME is not set")
		}
	case wd != "":
		if !filepath.IsAbs(wd) {
			return fmt.Errorf("WorkingDirectory=%s is not absolute", wd)
		}
		if fi, err := os.Stat(wd); err == nil && fi.IsDir() {
			sh.wd = wd
		} else if !u.WorkingDirectoryOptional {
			return fmt.Errorf("WorkingDirectory=%s: not a directory", wd)
		}
	}
	if sh.path, err = lookPath(sh.path, env["PATH"]); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		sh.env = append(sh.env, k+"="+env[k])
	}
	sh.unit = u
	return nil
}

// lookPath finds a command in the ship's PATH (not the worker's). A name
// with a slash is taken as it is.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, d := range filepath.SplitList(path) {
		if !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found in PATH", name)
}

// launch starts the ship's main process, with output appended to its log,
// and writes its pid record.
func (e *Exec) launch(sh *ship) (*exec.Cmd, error) {
	logf, err := os.OpenFile(sh.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := &exec.Cmd{
		Path:        sh.path,
		Args:        sh.args,
		Env:         sh.env,
		Dir:         sh.wd,
		Stdout:      logf,
		Stderr:      logf,
		SysProcAttr: sysProcAttr(),
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	start, err := procStartTime(pid)
	if err == nil {
		err = e.writeRecord(sh.pidPath, pidRecord{pid: pid, pgid: pid, start: start, boot: e.boot})
	}
	if err != nil {
		// Only the clean-up after a worker crash suffers.
		e.log.Warn("exec: no pid record", "ship", sh.id, "pid", pid, "err", err)
	}
	return cmd, nil
}

func (e *Exec) setRunning(sh *ship, pid int, restarted bool) {
	e.mu.Lock()
	sh.st.State, sh.st.Pid, sh.st.Failed, sh.st.Reason = ProcRunning, pid, false, ""
	if restarted {
		sh.st.Restarts++
	}
	e.mu.Unlock()
	e.notify()
}

// outcome is how a run of a ship's main process ended.
type outcome struct {
	reason   string
	success  bool // counts as success, the "-" prefix applied
	abnormal bool // an unclean signal and not success
}

func classify(sh *ship, ps *os.ProcessState, werr error) outcome {
	var o outcome
	var ws syscall.WaitStatus
	ok := ps != nil
	if ok {
		ws, ok = ps.Sys().(syscall.WaitStatus)
	}
	switch {
	case !ok:
		o.reason = fmt.Sprintf("lost: %v", werr)
	case ws.Signaled():
		o.reason = "killed by signal " + signalName(ws.Signal())
		o.success = cleanSignal(ws.Signal())
		o.abnormal = !o.success
	default:
		o.reason = "exited with status " + strconv.Itoa(ws.ExitStatus())
		o.success = ws.ExitStatus() == 0
	}
	if sh.unit.IgnoreFailure {
		o.success, o.abnormal = true, false
	}
	return o
}

func (o outcome) restart(policy string) bool {
	switch policy {
	case RestartAlways:
		return true
	case RestartOnSuccess:
		return o.success
	case RestartOnFailure:
		return !o.success
	case RestartOnAbnormal, RestartOnAbort:
		return o.abnormal
	}
	return false
}

// supervise waits for the ship's main process, restarts it as the unit
// says, and ends it when the ship is stopped. It closes sh.done when no
// process of the ship is left and none will be started.
func (e *Exec) supervise(sh *ship, cmd *exec.Cmd) {
	defer close(sh.done)
	var out outcome
	for {
		if cmd != nil {
			var stopped bool
			out, stopped = e.wait(sh, cmd)
			if stopped {
				e.finishStop(sh)
				return
			}
			e.log.Info("exec: ship ended", "ship", sh.id, "reason", out.reason)
		}
		if !out.restart(sh.unit.Restart) {
			e.mu.Lock()
			sh.st = Status{ID: sh.id, State: ProcExited, Restarts: sh.st.Restarts, Failed: !out.success, Reason: out.reason}
			e.mu.Unlock()
			e.notify()
			return
		}
		e.mu.Lock()
		sh.st.State, sh.st.Pid, sh.st.Reason = ProcStarting, 0, out.reason
		e.mu.Unlock()
		e.notify()

		t := time.NewTimer(sh.unit.RestartDelay)
		select {
		case <-t.C:
		case <-sh.stopReq:
			t.Stop()
			e.finishStop(sh)
			return
		}
		if reason, ok := e.startLimit(sh); !ok {
			e.log.Warn("exec: ship gives up", "ship", sh.id, "reason", reason)
			e.mu.Lock()
			sh.st = Status{ID: sh.id, State: ProcExited, Restarts: sh.st.Restarts, Failed: true, Reason: reason}
			e.mu.Unlock()
			e.notify()
			return
		}
		var err error
		if cmd, err = e.launch(sh); err != nil {
			e.log.Warn("exec: ship failed to restart", "ship", sh.id, "err", err)
			out = outcome{reason: "start failed: " + err.Error()}
			e.mu.Lock()
			sh.st.Restarts++
			e.mu.Unlock()
			continue
		}
		e.setRunning(sh, cmd.Process.Pid, true)
	}
}

// startLimit records a start about to be made, or refuses it if it would
// be more than StartLimitBurst starts within StartLimitInterval.
func (e *Exec) startLimit(sh *ship) (string, bool) {
	now := time.Now()
	u := sh.unit
	if u.StartLimitBurst > 0 && u.StartLimitInterval > 0 {
		sh.starts = slices.DeleteFunc(sh.starts, func(t time.Time) bool { return now.Sub(t) >= u.StartLimitInterval })
		if len(sh.starts)+1 > u.StartLimitBurst {
			return fmt.Sprintf("restarted too often: %d starts in %s", len(sh.starts)+1, u.StartLimitInterval), false
		}
	}
	sh.starts = append(sh.starts, now)
	return "", true
}

// wait waits for the main process to end, or ends it on a stop request,
// then ends what is left of its process group and removes the pid record.
func (e *Exec) wait(sh *ship, cmd *exec.Cmd) (o outcome, stopped bool) {
	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	var werr error
	go func() {
		werr = cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
		select {
		case <-sh.stopReq:
			stopped = true
		default:
		}
		if groupAlive(pgid) {
			// Type=simple: the service is over when its main process is.
			e.log.Info("exec: ending what is left of a ship's process group", "ship", sh.id, "pgid", pgid)
			e.endGroup(pgid, sh.unit.TimeoutStop, nil)
		}
	case <-sh.stopReq:
		stopped = true
		e.endGroup(pgid, sh.unit.TimeoutStop, exited)
	}
	if err := os.Remove(sh.pidPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		e.log.Warn("exec: remove pid record", "ship", sh.id, "err", err)
	}
	return classify(sh, cmd.ProcessState, werr), stopped
}

// endGroup ends process group pgid: SIGTERM, and SIGKILL after grace (0:
// no SIGKILL). If exited is not nil it is the group leader's reaping, which
// endGroup always waits for; then it waits until no live process is left in
// the group, but gives up on stragglers killWait after SIGKILL.
func (e *Exec) endGroup(pgid int, grace time.Duration, exited <-chan struct{}) {
	signalGroup(pgid, syscall.SIGTERM)
	var deadline <-chan time.Time
	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var killed time.Time
	for {
		if exited == nil {
			if !groupAlive(pgid) {
				return
			}
			if !killed.IsZero() && time.Since(killed) > killWait {
				e.log.Warn("exec: processes survive SIGKILL", "pgid", pgid)
				return
			}
		}
		select {
		case <-exited:
			exited = nil
		case <-deadline:
			signalGroup(pgid, syscall.SIGKILL)
			killed, deadline = time.Now(), nil
		case <-tick.C:
		}
	}
}

// finishStop forgets a stopped ship.
func (e *Exec) finishStop(sh *ship) {
	e.mu.Lock()
	if e.ships[sh.id] == sh {
		delete(e.ships, sh.id)
	}
	sh.st = Status{ID: sh.id, State: ProcExited, Restarts: sh.st.Restarts, Reason: "stopped"}
	e.mu.Unlock()
	e.notify()
}

// Stop implements Driver: it cancels a pending restart, sends SIGTERM to
// the ship's process group and SIGKILL after TimeoutStopSec= (never for
// "infinity"), and returns nil once the main process is reaped, nothing
// live is left in its group and the pid record is gone. A ctx that ends
// first only cuts the waiting short: Stop returns ctx's error, the stop
// goes on, the ship stays listed until it is done, and another Stop waits
// for the same stop.
func (e *Exec) Stop(ctx context.Context, id string) error {
	e.mu.Lock()
	sh := e.ships[id]
	if sh == nil {
		e.mu.Unlock()
		return nil
	}
	if !sh.stopping {
		sh.stopping = true
		close(sh.stopReq)
	}
	e.mu.Unlock()
	select {
	case <-sh.done:
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", id, ctx.Err())
	}
	e.mu.Lock()
	removed := e.ships[id] == sh
	if removed {
		delete(e.ships, id)
	}
	e.mu.Unlock()
	if removed {
		e.notify()
	}
	return nil
}

// List implements Driver.
func (e *Exec) List() []Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return statuses(e.ships, func(sh *ship) Status { return sh.st })
}

// statuses lists the statuses of a driver's ships, by id.
func statuses[T any](ships map[string]T, st func(T) Status) []Status {
	out := make([]Status, 0, len(ships))
	for _, sh := range ships {
		out = append(out, st(sh))
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Forget implements Driver; ships that have not exited are kept.
func (e *Exec) Forget(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if sh := e.ships[id]; sh != nil && sh.st.State == ProcExited && !sh.stopping {
		delete(e.ships, id)
	}
}

// Close implements Driver: it stops every ship at once and returns when
// they are all gone. Start fails afterwards.
func (e *Exec) Close() error {
	e.mu.Lock()
	e.closed = true
	ids := make([]string, 0, len(e.ships))
	for id := range e.ships {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { errs[i] = e.Stop(context.Background(), id) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pidRecord is the content of <dir>/<id>.pid.
type pidRecord struct {
	pid, pgid int
	start     uint64 // /proc/<pid>/stat field 22
	boot      string // kernel boot id, "" if unknown
}

func (r pidRecord) String() string {
	boot := r.boot
	if boot == "" {
		boot = "-"
	}
	return fmt.Sprintf("pid=%d pgid=%d start=%d boot=%s\n", r.pid, r.pgid, r.start, boot)
}

func parsePidRecord(s string) (pidRecord, error) {
	var r pidRecord
	seen := 0
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "pid":
			r.pid, err = strconv.Atoi(v)
		case "pgid":
			r.pgid, err = strconv.Atoi(v)
		case "start":
			r.start, err = strconv.ParseUint(v, 10, 64)
		case "boot":
			if v != "-" {
				r.boot = v
			}
		default:
			continue
		}
		if err != nil {
			return r, fmt.Errorf("bad %s", k)
		}
		seen++
	}
	if seen != 4 || r.pid <= 1 || r.pgid <= 1 {
		return r, errors.New("malformed pid record")
	}
	return r, nil
}

// writeRecord writes a pid record atomically.
func (e *Exec) writeRecord(path string, r pidRecord) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(r.String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// cleanOrphans ends, concurrently, what the pid records in dir name; see
// the package documentation.
func (e *Exec) cleanOrphans() error {
	tmps, _ := filepath.Glob(filepath.Join(e.dir, ".*.pid.tmp"))
	for _, p := range tmps {
		_ = os.Remove(p)
	}
	paths, err := filepath.Glob(filepath.Join(e.dir, "*.pid"))
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, p := range paths {
		wg.Go(func() { e.cleanOrphan(p) })
	}
	wg.Wait()
	return nil
}

func (e *Exec) cleanOrphan(path string) {
	id := strings.TrimSuffix(filepath.Base(path), ".pid")
	defer func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			e.log.Warn("exec: remove pid record", "ship", id, "err", err)
		}
	}()
	b, err := os.ReadFile(path)
	if err == nil {
		var r pidRecord
		if r, err = parsePidRecord(string(b)); err == nil {
			e.cleanRecord(id, r)
			return
		}
	}
	e.log.Warn("exec: dropping unreadable pid record", "ship", id, "path", path, "err", err)
}

func (e *Exec) cleanRecord(id string, r pidRecord) {
	log := e.log.With("ship", id, "pid", r.pid, "pgid", r.pgid)
	if r.boot != "" && e.boot != "" && r.boot != e.boot {
		log.Info("exec: dropping pid record of an earlier boot")
		return
	}
	var reason string
	if start, err := procStartTime(r.pid); err == nil {
		if start != r.start {
			log.Info("exec: pid record names a recycled pid; leaving that process alone",
				"recorded_start", r.start, "start", start)
			return
		}
		reason = "ship process left running by an earlier worker"
	} else {
		// The leader is gone (Pdeathsig killed it with the worker), so the
		// group's id cannot have been reused while anything is left in it:
		// members that started after the leader are its descendants.
		n := 0
		for _, st := range groupMembers(r.pgid) {
			if st >= r.start {
				n++
			}
		}
		if n == 0 {
			log.Debug("exec: stale pid record; nothing left running")
			return
		}
		reason = fmt.Sprintf("%d process(es) left in the group of a ship whose main process is gone", n)
	}
	log.Warn("exec: ending leftover ship processes", "reason", reason)
	e.endGroup(r.pgid, orphanGrace, nil)
}
