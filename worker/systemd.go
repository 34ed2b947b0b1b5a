// The systemd driver (Systemd) runs each ship as a systemd service of its
// own, armada-<ship id>.service (a fleet ship's id is <fleet>-<n>, so the
// unit is armada-<fleet>-<n>.service): the blueprint's unit text is written
// to <UnitDir>/armada-<id>.service as it is, and a drop-in
// <UnitDir>/armada-<id>.service.d/armada.conf adds what armada controls:
//
//   - EnvironmentFile= naming <EnvDir>/armada-<id>.service.env (mode 0600 in
//     a 0700 directory), which holds the ship's whole environment, secrets
//     included. The unit file never does, so neither does
//     `systemctl show -p Environment` (it shows only the unit's own
//     Environment=); as in the exec driver the ship's variables win over
//     the unit's Environment=.
//   - CPUQuota= (the ship's cpu_mhz over one core's clock) and MemoryMax=
//     (memory_mb), with CPU and memory accounting on.
//   - StandardOutput=/StandardError= appended to <LogDir>/<id>.log when
//     journald does not run; where it runs the output goes to the journal.
//
// A unit systemd has not loaded yet is loaded from disk by its start job,
// so a new ship needs no daemon-reload; a unit rewritten while loaded does,
// and those reloads are batched: the starts that need one while a reload
// runs share the next. Starts and stops go through systemd jobs whose
// results are checked; Start returns once the files are written and the
// ship shows as starting until its job has ended.
//
// State comes from systemd: the driver subscribes to its unit property
// signals, so a unit that crashes or is stopped by hand is seen at once,
// and sweeps its units with ListUnitsByPatterns every 5 seconds in case a
// signal was missed. Units outlive the worker: New adopts every unit that
// carries armada's drop-in, the reconciler then keeps those still placed
// here and stops the others. Units without the drop-in are never touched.
// Close leaves the units running.

package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Where the systemd driver keeps its files by default.
const (
	DefaultUnitDir = "/run/systemd/system"
	DefaultEnvDir  = "/run/armada/env"
	// SystemdSocket is systemd's private socket; the driver talks to it
	// directly and falls back to the system bus.
	SystemdSocket = "/run/systemd/private"
	// journalSocket is where journald takes services' output.
	journalSocket = "/run/systemd/journal/stdout"

	unitPrefix = "armada-"
	unitSuffix = ".service"
	dropInName = "armada.conf"
	// sdSweep is how often every unit is listed, in case a signal was
	// missed; a dropped signal (a full buffer) brings a sweep at once.
	// With 200 units a sweep every 5 s was a sixth of an idle worker's
	// CPU.
	sdSweep     = 15 * time.Second
	sdJobResult = "done"
)

// SystemdConfig configures the systemd driver.
type SystemdConfig struct {
	// UnitDir, EnvDir and LogDir default to DefaultUnitDir, DefaultEnvDir
	// and, for LogDir, nothing: it is required.
	UnitDir, EnvDir, LogDir string
	// CoreMHz is one core's clock, to turn cpu_mhz into CPUQuota=; 0 reads
	// it from /proc/cpuinfo.
	CoreMHz float64
	// Journal says whether ships log to the journal; nil looks for
	// journald's socket.
	Journal *bool
	Logger  *slog.Logger
}

// Systemd is the "systemd" driver. It is safe for concurrent use.
type Systemd struct {
	cfg     SystemdConfig
	conn    *sdbus.Conn
	log     *slog.Logger
	changed chan struct{}
	reload  batcher
	bg      context.Context // ends with Close: start jobs in flight
	stop    context.CancelFunc
	done    chan struct{}
	jobs    sync.WaitGroup

	mu     sync.Mutex
	ships  map[string]*unitShip
	closed bool

	usageMu  sync.Mutex
	counters map[string]*unitCounters // by ship: the cgroup files Usage holds open
	usageBuf []byte
}

// unitShip is one ship of the driver.
type unitShip struct {
	id, unit string
	// Guarded by Systemd.mu.
	st       Status
	active   string // ActiveState/SubState last seen
	sub      string
	cgroup   string
	busy     bool          // a start or stop is in flight: it sets st itself
	op       chan struct{} // closed when that start or stop ends
	stopping bool
}

// SystemdAvailable reports whether systemd's private socket answers here.
func SystemdAvailable() bool {
	c, err := net.DialTimeout("unix", SystemdSocket, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// NewSystemd connects to systemd (private socket first, then the system
// bus), adopts the armada units it finds and starts following their state.
func NewSystemd(ctx context.Context, cfg SystemdConfig) (*Systemd, error) {
	if cfg.LogDir == "" {
		return nil, errors.New("systemd driver: no log directory")
	}
	if cfg.UnitDir == "" {
		cfg.UnitDir = DefaultUnitDir
	}
	if cfg.EnvDir == "" {
		cfg.EnvDir = DefaultEnvDir
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CoreMHz <= 0 {
		mhz, err := CoreMHz("/proc")
		if err != nil {
			return nil, fmt.Errorf("systemd driver: %w", err)
		}
		cfg.CoreMHz = mhz
	}
	if cfg.Journal == nil {
		_, err := os.Stat(journalSocket)
		j := err == nil
		cfg.Journal = &j
	}
	for _, d := range []struct {
		path string
		mode fs.FileMode
	}{{cfg.UnitDir, 0o755}, {cfg.EnvDir, 0o700}, {cfg.LogDir, 0o700}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("systemd driver: %w", err)
		}
	}
	if err := os.Chmod(cfg.EnvDir, 0o700); err != nil {
		return nil, fmt.Errorf("systemd driver: %w", err)
	}
	via := SystemdSocket
	conn, err := sdbus.NewSystemdConnectionContext(ctx)
	if err != nil {
		var err2 error
		if conn, err2 = sdbus.NewSystemConnectionContext(ctx); err2 != nil {
			return nil, fmt.Errorf("systemd driver: connect: %w", errors.Join(err, err2))
		}
		via = "system bus"
	}
	d := &Systemd{
		cfg:     cfg,
		conn:    conn,
		log:     cfg.Logger,
		changed: make(chan struct{}, 1),
		ships:   map[string]*unitShip{},
		done:    make(chan struct{}),
	}
	d.reload.fn = func() error { return conn.ReloadContext(context.Background()) }
	// Subscribe before adopting, so no change in between is missed.
	props := make(chan *sdbus.PropertiesUpdate, 4096)
	errs := make(chan error, 16)
	conn.SetPropertiesSubscriber(props, errs)
	if err := conn.Subscribe(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("systemd driver: subscribe: %w", err)
	}
	if err := d.adopt(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("systemd driver: %w", err)
	}
	d.bg, d.stop = context.WithCancel(context.Background())
	go d.watch(d.bg, props, errs)
	d.log.Info("systemd driver ready", "via", via, "units", cfg.UnitDir, "journal", *cfg.Journal, "adopted", len(d.List()))
	return d, nil
}

// Name implements Driver.
func (d *Systemd) Name() string { return "systemd" }

// Changed implements Driver.
func (d *Systemd) Changed() <-chan struct{} { return d.changed }

// Journal reports whether ships log to the journal rather than to LogPath.
func (d *Systemd) Journal() bool { return *d.cfg.Journal }

// UnitName is the unit that runs ship id.
func UnitName(id string) string { return unitPrefix + id + unitSuffix }

// shipOfUnit is the ship id of an armada unit name, "" for other units.
func shipOfUnit(unit string) string {
	id, ok := strings.CutPrefix(unit, unitPrefix)
	if !ok {
		return ""
	}
	if id, ok = strings.CutSuffix(id, unitSuffix); !ok || !validUnitID(id) {
		return ""
	}
	return id
}

// validUnitID refuses ship ids that would not make a plain unit name.
func validUnitID(id string) bool {
	if id == "" || len(id) > 200 || strings.HasPrefix(id, ".") {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func (d *Systemd) unitPath(unit string) string  { return filepath.Join(d.cfg.UnitDir, unit) }
func (d *Systemd) dropInDir(unit string) string { return filepath.Join(d.cfg.UnitDir, unit+".d") }
func (d *Systemd) envPath(unit string) string   { return filepath.Join(d.cfg.EnvDir, unit+".env") }

// LogPath implements Driver: <LogDir>/<id>.log, written when journald
// does not run.
func (d *Systemd) LogPath(id string) string { return filepath.Join(d.cfg.LogDir, id+".log") }

// Logs implements Driver.
func (d *Systemd) Logs() []string { return listLogs(d.cfg.LogDir) }

// RemoveLog implements Driver.
func (d *Systemd) RemoveLog(id string) error {
	if !validUnitID(id) {
		return fmt.Errorf("remove log: bad ship id %q", id)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return removeLog(id, d.ships[id] != nil, d.LogPath(id))
}

func (d *Systemd) notify() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// Start implements Driver: it writes the unit, its drop-in and its
// environment file and returns; the unit is then started through a job
// whose result is checked, while the ship shows as starting. A unit
// systemd has not loaded yet (a new ship) is loaded from disk by its start
// (systemd retries a unit it did not find once its unit directories
// changed), so only a unit that is rewritten while loaded (an exited ship
// started afresh) needs a daemon-reload; those reloads are batched. A unit
// that cannot be written, or whose start job fails, leaves the ship exited
// and failed with the reason, as in the exec driver.
func (d *Systemd) Start(ctx context.Context, s *Spec) error {
	if s == nil || !validUnitID(s.ID) {
		return errors.New("start: bad ship id")
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("start %s: %w", s.ID, ErrClosed)
	}
	sh := d.ships[s.ID]
	switch {
	case sh != nil && sh.busy:
		d.mu.Unlock()
		return nil // a start or stop is under way; the reconciler comes back
	case sh != nil && sh.st.State != ProcExited:
		d.mu.Unlock()
		return nil
	}
	loaded := sh != nil
	if sh == nil {
		sh = &unitShip{id: s.ID, unit: UnitName(s.ID)}
		d.ships[s.ID] = sh
	}
	sh.busy, sh.stopping, sh.op = true, false, make(chan struct{})
	sh.st = Status{ID: s.ID, State: ProcStarting}
	d.jobs.Add(1)
	d.mu.Unlock()
	d.notify()

	err := d.prepare(sh, s)
	if err != nil {
		d.finishStart(sh, err)
		return fmt.Errorf("start %s: %w", s.ID, err)
	}
	go func() {
		ctx, cancel := context.WithTimeout(d.bg, 2*time.Minute)
		defer cancel()
		err := d.startJob(ctx, sh, loaded)
		d.finishStart(sh, err)
		if err != nil {
			return
		}
		// A process that exits as it starts may end while the start job
		// is in flight, when the unit's signals are not taken: look again
		// soon after, instead of leaving it to the next sweep.
		for _, wait := range []time.Duration{0, 100 * time.Millisecond, 400 * time.Millisecond, time.Second} {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			d.refresh(ctx, sh)
		}
	}()
	return nil
}

// prepare checks the unit and writes its files.
func (d *Systemd) prepare(sh *unitShip, s *Spec) error {
	if _, err := ParseUnit(s.Unit); err != nil {
		return err
	}
	return d.writeUnit(sh.unit, s)
}

// finishStart ends a start: err nil leaves the status the job's end read.
func (d *Systemd) finishStart(sh *unitShip, err error) {
	d.mu.Lock()
	sh.busy = false
	if err != nil {
		sh.st = Status{ID: sh.id, State: ProcExited, Failed: true, Reason: "start failed: " + err.Error()}
	}
	close(sh.op)
	d.mu.Unlock()
	d.jobs.Done()
	d.notify()
	if err != nil {
		d.log.Warn("systemd: ship failed to start", "ship", sh.id, "unit", sh.unit, "err", err)
	}
}

// startJob reloads systemd if the unit was loaded before, and starts it
// through a job whose result it checks.
func (d *Systemd) startJob(ctx context.Context, sh *unitShip, loaded bool) error {
	if loaded {
		if err := d.reload.do(ctx); err != nil {
			return fmt.Errorf("daemon-reload: %w", err)
		}
		// A unit that failed before keeps its failed state and its start
		// limit counter until reset.
		_ = d.conn.ResetFailedUnitContext(ctx, sh.unit)
	}
	ch := make(chan string, 1)
	_, err := d.conn.StartUnitContext(ctx, sh.unit, "replace", ch)
	if err != nil && !loaded {
		// systemd did not see the new file (an older systemd, or a unit
		// it had cached as not found): reload, then try once more.
		d.log.Info("systemd: start refused; reloading", "unit", sh.unit, "err", err)
		if rerr := d.reload.do(ctx); rerr != nil {
			return fmt.Errorf("daemon-reload: %w", rerr)
		}
		_, err = d.conn.StartUnitContext(ctx, sh.unit, "replace", ch)
	}
	if err != nil {
		return fmt.Errorf("start job: %w", err)
	}
	select {
	case r := <-ch:
		if r != sdJobResult {
			return fmt.Errorf("start job %s", r)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	d.refreshNow(ctx, sh)
	return nil
}

// writeUnit writes the unit file, its drop-in and its environment file.
func (d *Systemd) writeUnit(unit string, s *Spec) error {
	if err := writeFileAtomic(d.envPath(unit), envFile(s.Env), 0o600); err != nil {
		return fmt.Errorf("write environment file: %w", err)
	}
	if err := writeFileAtomic(d.unitPath(unit), []byte(s.Unit), 0o644); err != nil {
		return fmt.Errorf("write unit: %w", err)
	}
	if err := os.MkdirAll(d.dropInDir(unit), 0o755); err != nil {
		return fmt.Errorf("write unit: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(d.dropInDir(unit), dropInName), d.dropIn(unit, s), 0o644); err != nil {
		return fmt.Errorf("write unit: %w", err)
	}
	return nil
}

// dropIn is what armada adds to a ship's unit.
func (d *Systemd) dropIn(unit string, s *Spec) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by armada for ship %s; removed when the ship stops.\n[Service]\n", s.ID)
	fmt.Fprintf(&b, "EnvironmentFile=%s\n", d.envPath(unit))
	b.WriteString("CPUAccounting=yes\nMemoryAccounting=yes\n")
	if q := CPUQuota(s.CPUMHz, d.cfg.CoreMHz); q > 0 {
		fmt.Fprintf(&b, "CPUQuota=%d%%\n", q)
	}
	if s.MemoryMB > 0 {
		fmt.Fprintf(&b, "MemoryMax=%dM\n", s.MemoryMB)
	}
	if !*d.cfg.Journal {
		fmt.Fprintf(&b, "StandardOutput=append:%s\nStandardError=append:%s\n", d.LogPath(s.ID), d.LogPath(s.ID))
	}
	return []byte(b.String())
}

// CPUQuota turns a ship's cpu_mhz into a CPUQuota= percentage of one
// core (rounded up; 0: no quota).
func CPUQuota(cpuMHz int64, coreMHz float64) int64 {
	if cpuMHz <= 0 || coreMHz <= 0 {
		return 0
	}
	return int64(math.Ceil(float64(cpuMHz) * 100 / coreMHz))
}

// envFile renders an EnvironmentFile=: one NAME="value" per line, in name
// order, with \, ", ` and $ escaped (systemd takes them literally then)
// and newlines kept inside the quotes.
func envFile(env map[string]string) []byte {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(env)) {
		b.WriteString(k)
		b.WriteString(`="`)
		v := env[k]
		for i := 0; i < len(v); i++ {
			if strings.IndexByte("\\\"`$", v[i]) >= 0 {
				b.WriteByte('\\')
			}
			b.WriteByte(v[i])
		}
		b.WriteString("\"\n")
	}
	return []byte(b.String())
}

func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// Stop implements Driver: a stop job (SIGTERM, then SIGKILL after the
// unit's TimeoutStopSec=, done by systemd) whose result is checked, then
// the unit's files go and systemd forgets the unit.
func (d *Systemd) Stop(ctx context.Context, id string) error {
	var sh *unitShip
	for {
		d.mu.Lock()
		sh = d.ships[id]
		if sh == nil {
			d.mu.Unlock()
			return nil
		}
		if !sh.busy {
			break
		}
		// Let the start (or another stop) in flight end first.
		op := sh.op
		d.mu.Unlock()
		select {
		case <-op:
		case <-ctx.Done():
			return fmt.Errorf("stop %s: %w", id, ctx.Err())
		}
	}
	sh.busy, sh.stopping, sh.op = true, true, make(chan struct{})
	d.mu.Unlock()
	err := d.stopUnit(ctx, sh)
	d.mu.Lock()
	sh.busy = false
	close(sh.op)
	if err == nil && d.ships[id] == sh {
		delete(d.ships, id)
	}
	d.mu.Unlock()
	d.notify()
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	return nil
}

func (d *Systemd) stopUnit(ctx context.Context, sh *unitShip) error {
	ch := make(chan string, 1)
	if _, err := d.conn.StopUnitContext(ctx, sh.unit, "replace", ch); err != nil {
		var de dbus.Error
		if !errors.As(err, &de) || de.Name != "org.freedesktop.systemd1.NoSuchUnit" {
			return fmt.Errorf("stop job: %w", err)
		}
	} else {
		select {
		case r := <-ch:
			if r != sdJobResult {
				return fmt.Errorf("stop job %s", r)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return d.removeUnit(ctx, sh.unit)
}

// removeUnit deletes a unit's files and has systemd forget it.
func (d *Systemd) removeUnit(ctx context.Context, unit string) error {
	var errs []error
	for _, p := range []string{d.envPath(unit), filepath.Join(d.dropInDir(unit), dropInName), d.unitPath(unit)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(d.dropInDir(unit)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	// A stopped unit without files is unloaded by systemd's garbage
	// collection once it is not failed: no reload needed.
	_ = d.conn.ResetFailedUnitContext(ctx, unit)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove unit %s: %w", unit, err)
	}
	return nil
}

// List implements Driver.
func (d *Systemd) List() []Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return statuses(d.ships, func(sh *unitShip) Status { return sh.st })
}

// Forget implements Driver: an exited ship is dropped and its unit's files
// removed.
func (d *Systemd) Forget(id string) {
	d.mu.Lock()
	sh := d.ships[id]
	if sh == nil || sh.st.State != ProcExited || sh.busy {
		d.mu.Unlock()
		return
	}
	delete(d.ships, id)
	d.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.removeUnit(ctx, sh.unit); err != nil {
			d.log.Warn("systemd: remove unit", "ship", id, "err", err)
		}
	}()
}

// Close implements Driver. Unlike the exec driver it leaves the units
// running: a worker that comes back adopts them.
func (d *Systemd) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.stop()
	<-d.done
	d.jobs.Wait()
	d.closeCounters()
	d.conn.Close()
	return nil
}

// adopt takes over the armada units found in UnitDir (those with
// armada's drop-in) and those systemd still has loaded.
func (d *Systemd) adopt(ctx context.Context) error {
	names := map[string]bool{}
	files, err := filepath.Glob(filepath.Join(d.cfg.UnitDir, unitPrefix+"*"+unitSuffix+".d", dropInName))
	if err != nil {
		return err
	}
	for _, f := range files {
		names[strings.TrimSuffix(filepath.Base(filepath.Dir(f)), ".d")] = true
	}
	units, err := d.conn.ListUnitsByPatternsContext(ctx, nil, []string{unitPrefix + "*" + unitSuffix})
	if err != nil {
		return fmt.Errorf("list units: %w", err)
	}
	loaded := map[string]sdbus.UnitStatus{}
	for _, u := range units {
		loaded[u.Name] = u
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		id := shipOfUnit(name)
		if id == "" {
			continue
		}
		sh := &unitShip{id: id, unit: name}
		u, ok := loaded[name]
		if !ok {
			u = sdbus.UnitStatus{ActiveState: "inactive", SubState: "dead"}
		}
		d.mu.Lock()
		d.ships[id] = sh
		d.mu.Unlock()
		d.update(ctx, sh, u.ActiveState, u.SubState)
		d.mu.Lock()
		st := sh.st
		d.mu.Unlock()
		d.log.Info("systemd: adopted unit", "ship", id, "unit", name, "state", st.State, "pid", st.Pid)
	}
	return nil
}

// watch follows systemd's signals and sweeps the units every sdSweep,
// and soon after signals were dropped.
func (d *Systemd) watch(ctx context.Context, props <-chan *sdbus.PropertiesUpdate, errs <-chan error) {
	defer close(d.done)
	tick := time.NewTicker(sdSweep)
	defer tick.Stop()
	var catchUp <-chan time.Time // a sweep after dropped signals
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-props:
			id := shipOfUnit(u.UnitName)
			if id == "" {
				continue
			}
			active, _ := u.Changed["ActiveState"].Value().(string)
			sub, _ := u.Changed["SubState"].Value().(string)
			if active == "" && sub == "" {
				continue
			}
			d.mu.Lock()
			sh := d.ships[id]
			d.mu.Unlock()
			if sh != nil {
				d.update(ctx, sh, active, sub)
			}
		case err := <-errs:
			// A full signal buffer dropped some: a sweep catches up once
			// the burst is over.
			d.log.Debug("systemd: signal", "err", err)
			if catchUp == nil {
				catchUp = time.After(100 * time.Millisecond)
			}
		case <-catchUp:
			catchUp = nil
			d.sweep(ctx)
		case <-tick.C:
			d.sweep(ctx)
		}
	}
}

// sweep compares every known unit with what systemd lists.
func (d *Systemd) sweep(ctx context.Context) {
	units, err := d.conn.ListUnitsByPatternsContext(ctx, nil, []string{unitPrefix + "*" + unitSuffix})
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("systemd: list units", "err", err)
		}
		return
	}
	loaded := map[string]sdbus.UnitStatus{}
	for _, u := range units {
		loaded[u.Name] = u
	}
	d.mu.Lock()
	ships := slices.Collect(maps.Values(d.ships))
	d.mu.Unlock()
	for _, sh := range ships {
		u, ok := loaded[sh.unit]
		if !ok {
			// Unloaded by systemd's garbage collection: it ended.
			u.ActiveState, u.SubState = "inactive", "dead"
		}
		d.update(ctx, sh, u.ActiveState, u.SubState)
	}
}

// update takes a unit's new ActiveState/SubState (either may be empty:
// unknown) and, if they changed, reads the rest and recomputes its status.
func (d *Systemd) update(ctx context.Context, sh *unitShip, active, sub string) {
	d.mu.Lock()
	same := (active == "" || active == sh.active) && (sub == "" || sub == sh.sub) && sh.active != ""
	busy := sh.busy
	d.mu.Unlock()
	if same || busy {
		return
	}
	d.refresh(ctx, sh)
}

// refresh reads a unit's state from systemd and recomputes its status,
// unless a start or stop is in flight.
func (d *Systemd) refresh(ctx context.Context, sh *unitShip) {
	p, err := d.props(ctx, sh.unit)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Debug("systemd: read unit", "unit", sh.unit, "err", err)
		}
		return
	}
	d.mu.Lock()
	if sh.busy {
		d.mu.Unlock()
		return
	}
	d.set(sh, p)
	d.mu.Unlock()
}

// refreshNow is refresh for the start or stop in flight.
func (d *Systemd) refreshNow(ctx context.Context, sh *unitShip) {
	p, err := d.props(ctx, sh.unit)
	if err != nil {
		p = unitProps{active: "activating"}
	}
	d.mu.Lock()
	d.set(sh, p)
	d.mu.Unlock()
}

// set records a unit's properties; d.mu is held.
func (d *Systemd) set(sh *unitShip, p unitProps) {
	st := p.status(sh.id)
	changed := st != sh.st
	if changed && st.State == ProcExited && sh.st.State != ProcExited {
		d.log.Info("systemd: unit ended", "ship", sh.id, "unit", sh.unit, "reason", st.Reason)
	}
	sh.st, sh.active, sh.sub, sh.cgroup = st, p.active, p.sub, p.cgroup
	if changed {
		d.notify()
	}
}

// unitProps is what the driver reads of a unit.
type unitProps struct {
	active, sub, result string
	mainPID             int
	execCode, execStat  int32
	restarts            int
	cgroup              string
}

func (d *Systemd) props(ctx context.Context, unit string) (unitProps, error) {
	var p unitProps
	us, err := d.conn.ListUnitsByNamesContext(ctx, []string{unit})
	if err != nil {
		return p, err
	}
	if len(us) == 1 {
		p.active, p.sub = us[0].ActiveState, us[0].SubState
	}
	if p.active == "" {
		p.active, p.sub = "inactive", "dead"
	}
	m, err := d.conn.GetUnitTypePropertiesContext(ctx, unit, "Service")
	if err != nil {
		return p, err
	}
	p.result, _ = m["Result"].(string)
	if v, ok := m["MainPID"].(uint32); ok {
		p.mainPID = int(v)
	}
	p.execCode, _ = m["ExecMainCode"].(int32)
	p.execStat, _ = m["ExecMainStatus"].(int32)
	if v, ok := m["NRestarts"].(uint32); ok {
		p.restarts = int(v)
	}
	p.cgroup, _ = m["ControlGroup"].(string)
	return p, nil
}

// Child exit codes (ExecMainCode), as in waitid(2).
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// status maps systemd's view of a unit to the driver's.
func (p unitProps) status(id string) Status {
	st := Status{ID: id, Restarts: p.restarts}
	switch p.active {
	case "active", "reloading", "deactivating":
		st.State, st.Pid = ProcRunning, p.mainPID
	case "activating":
		st.State, st.Pid = ProcStarting, p.mainPID
		if p.sub == "auto-restart" {
			st.Reason = p.reason()
		}
	case "failed":
		st.State, st.Failed, st.Reason = ProcExited, true, p.reason()
	default: // inactive, maintenance
		st.State, st.Reason = ProcExited, p.reason()
		if p.result != "" && p.result != "success" {
			st.Failed = true
		}
	}
	return st
}

// reason says in words how the unit's main process ended.
func (p unitProps) reason() string {
	ended := ""
	switch p.execCode {
	case cldExited:
		ended = "exited with status " + strconv.Itoa(int(p.execStat))
	case cldKilled, cldDumped:
		ended = "killed by signal " + signalName(syscall.Signal(p.execStat))
	}
	switch p.result {
	case "", "success":
		if ended == "" {
			return "unit stopped"
		}
		return ended
	case "exit-code", "signal", "core-dump":
		if ended != "" {
			return ended
		}
	case "start-limit-hit":
		return "restarted too often: start limit hit"
	case "oom-kill":
		return "killed by the OOM killer (MemoryMax=)"
	case "timeout":
		return "timed out"
	}
	if ended != "" {
		return p.result + ": " + ended
	}
	return "unit failed: " + p.result
}

// Usage implements Meter: each running unit's CPU time and memory, read
// from its cgroup — the files systemd's CPUUsageNSec and MemoryCurrent
// come from (cgroup v2 cpu.stat and memory.current; on v1 or hybrid
// hosts cpuacct.usage or the unified cpu.stat, and
// memory.usage_in_bytes). The files stay open between samples and are
// read again from the start: opening a cgroup file costs the kernel
// several times what reading it does, and with 200 units the opens were a
// quarter of an idle worker's CPU. Where a file is missing the figure is
// asked of systemd.
func (d *Systemd) Usage(ctx context.Context) (map[string]Usage, error) {
	d.mu.Lock()
	type unitCg struct{ id, unit, cg string }
	var run []unitCg
	for _, sh := range d.ships {
		if sh.st.State == ProcRunning {
			run = append(run, unitCg{sh.id, sh.unit, sh.cgroup})
		}
	}
	d.mu.Unlock()
	d.usageMu.Lock()
	defer d.usageMu.Unlock()
	if d.counters == nil {
		d.counters = map[string]*unitCounters{}
	}
	out := make(map[string]Usage, len(run))
	seen := make(map[string]bool, len(run))
	for _, u := range run {
		seen[u.id] = true
		c := d.counters[u.id]
		if c == nil || c.cg != u.cg {
			c.close()
			c = openCounters(u.cg)
			d.counters[u.id] = c
		}
		cpu, okCPU := c.cpu.read(&d.usageBuf)
		mem, okMem := c.mem.read(&d.usageBuf)
		if !okCPU || !okMem {
			// Gone or recreated (a restarted unit's new cgroup): open
			// the files again, once.
			c.close()
			c = openCounters(u.cg)
			d.counters[u.id] = c
			cpu, okCPU = c.cpu.read(&d.usageBuf)
			mem, okMem = c.mem.read(&d.usageBuf)
		}
		if !okCPU {
			cpu = d.serviceCounter(ctx, u.unit, "CPUUsageNSec")
		}
		if !okMem {
			mem = d.serviceCounter(ctx, u.unit, "MemoryCurrent")
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read usage: %w", err)
		}
		out[u.id] = Usage{CPUNanos: cpu, MemoryBytes: mem}
	}
	for id, c := range d.counters {
		if !seen[id] {
			c.close()
			delete(d.counters, id)
		}
	}
	return out, nil
}

// closeCounters closes every cgroup file Usage holds open.
func (d *Systemd) closeCounters() {
	d.usageMu.Lock()
	defer d.usageMu.Unlock()
	for id, c := range d.counters {
		c.close()
		delete(d.counters, id)
	}
}

// serviceCounter reads a uint64 property of a service; 0 if unset.
func (d *Systemd) serviceCounter(ctx context.Context, unit, name string) uint64 {
	p, err := d.conn.GetServicePropertyContext(ctx, unit, name)
	if err != nil {
		return 0
	}
	if v, ok := p.Value.Value().(uint64); ok && v != math.MaxUint64 {
		return v
	}
	return 0
}

// cgroupRoot is where cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// unitCounters are a unit's open cgroup files.
type unitCounters struct {
	cg       string // the cgroup they belong to
	cpu, mem *counterFile
}

// openCounters opens the CPU and memory files of cgroup cg; a file that
// is not there is nil.
func openCounters(cg string) *unitCounters {
	c := &unitCounters{cg: cg}
	if cg == "" {
		return c
	}
	c.cpu = openCounter(
		counterFile{path: filepath.Join(cgroupRoot, cg, "cpu.stat"), field: "usage_usec", scale: 1000},
		counterFile{path: filepath.Join(cgroupRoot, "unified", cg, "cpu.stat"), field: "usage_usec", scale: 1000},
		counterFile{path: filepath.Join(cgroupRoot, "cpuacct", cg, "cpuacct.usage"), scale: 1})
	c.mem = openCounter(
		counterFile{path: filepath.Join(cgroupRoot, cg, "memory.current"), scale: 1},
		counterFile{path: filepath.Join(cgroupRoot, "memory", cg, "memory.usage_in_bytes"), scale: 1})
	return c
}

func (c *unitCounters) close() {
	if c == nil {
		return
	}
	c.cpu.close()
	c.mem.close()
}

// counterFile is a cgroup file holding a counter: the file is one number,
// or field names the line of a flat-keyed file ("name value") to read;
// the value times scale is the figure.
type counterFile struct {
	path  string
	field string
	scale uint64
	f     *os.File
}

// openCounter opens the first of the candidates that opens and reads;
// nil if none does.
func openCounter(candidates ...counterFile) *counterFile {
	var buf []byte
	for _, c := range candidates {
		f, err := os.Open(c.path)
		if err != nil {
			continue
		}
		c.f = f
		if _, ok := c.read(&buf); ok {
			return &c
		}
		f.Close()
	}
	return nil
}

// read reads the counter again from the start of its file, into *buf.
func (c *counterFile) read(buf *[]byte) (uint64, bool) {
	if c == nil {
		return 0, false
	}
	if cap(*buf) < 4096 {
		*buf = make([]byte, 4096)
	}
	b := (*buf)[:cap(*buf)]
	n, err := c.f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, false
	}
	v, ok := parseCounter(b[:n], c.field)
	return v * c.scale, ok
}

func (c *counterFile) close() {
	if c != nil {
		c.f.Close()
	}
}

// parseCounter reads the number in b, or with a field, the number on the
// line "field value" of b.
func parseCounter(b []byte, field string) (uint64, bool) {
	if field != "" {
		line := b
		for {
			if len(line) > len(field) && string(line[:len(field)]) == field && line[len(field)] == ' ' {
				b = line[len(field)+1:]
				break
			}
			i := bytes.IndexByte(line, '\n')
			if i < 0 {
				return 0, false
			}
			line = line[i+1:]
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[:i]
		}
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' || v > (math.MaxUint64-9)/10 {
			return 0, false
		}
		v = v*10 + uint64(ch-'0')
	}
	return v, true
}

// batcher runs fn for every caller of do, sharing runs: callers that come
// while a run is under way share the next one (group commit, no fixed
// wait).
type batcher struct {
	fn func() error

	mu      sync.Mutex
	next    *batch
	running bool
}

type batch struct {
	done    chan struct{}
	err     error
	callers int
}

func (b *batcher) do(ctx context.Context) error {
	b.mu.Lock()
	g := b.next
	if g == nil {
		g = &batch{done: make(chan struct{})}
		b.next = g
	}
	g.callers++
	if !b.running {
		b.running = true
		go b.loop()
	}
	b.mu.Unlock()
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher) loop() {
	for {
		b.mu.Lock()
		g := b.next
		b.next = nil
		if g == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		g.err = b.fn()
		close(g.done)
	}
}
