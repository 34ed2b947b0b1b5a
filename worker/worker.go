package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/internal/pace"
)

// Store is the replicated state the worker reads.
type Store interface {
	View(fn func(v *fsm.View) error) error
	Changes(since uint64) ([]fsm.Change, <-chan struct{}, error)
	// Published is the index up to which every change is in Changes,
	// and how many times the state was restored from a snapshot.
	Published() (index, restores uint64)
}

// Applier commits commands through Raft.
type Applier interface {
	Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error)
}

// Config is one node's worker.
type Config struct {
	Node       string
	PortsRange string
	Driver     Driver
	// SDKAddr is the local SDK endpoint: each ship gets its own URL on it
	// (SDKPath) as ARMADA_SDK_ADDR.
	SDKAddr string
	// Balancer is told about the ships of fleets with update.drain_lb;
	// default: none.
	Balancer Balancer
	// HealthGrace is how long a ship with a health check may take to pass
	// it first; default 30s, and never less than 2 × failures × interval.
	HealthGrace time.Duration
	// Interval is the periodic sweep; default 5s. Passes run on every
	// change that concerns the node and every driver event: the sweep
	// only catches what no event announced, and reports host ports (only
	// the sweep reads them).
	Interval time.Duration
	// ProcDir is where host ports are read from; default /proc.
	ProcDir string
	Logger  *slog.Logger
}

// Worker reconciles the ships placed on this node with what its driver
// runs: desired state from the replicated state, actual state from the
// driver, on every change and on a timer. Every action is logged with its
// reason, and running a pass twice does nothing the second time.
type Worker struct {
	cfg Config
	st  Store
	ap  Applier
	log *slog.Logger

	health *checker
	passMu sync.Mutex // one pass at a time (Run and tests both call Reconcile)
	idle   bool       // the last pass found nothing to do (under passMu)

	mu        sync.Mutex
	stopping  map[string]bool    // stops in flight
	lb        map[string]lbState // ships in (or going into) the load balancer
	lbTargets map[string]Target  // the registered ships' targets
	mine      map[string]bool    // the ships on this node at the last pass
	ownPorts  map[int]bool       // the host ports they hold
	ships     fsm.ShipCache      // the node's ships, kept up to date between passes
	usage     *usageSample       // the last usage sample (Meter drivers)
	sent      *fsm.UsageReport   // the figures last reported (usageLoop only)
	kick      chan struct{}
	wg        sync.WaitGroup
}

// New makes a worker; Run starts it.
func New(st Store, ap Applier, cfg Config) *Worker {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Balancer == nil {
		cfg.Balancer = noBalancer{}
	}
	if cfg.HealthGrace <= 0 {
		cfg.HealthGrace = 30 * time.Second
	}
	if cfg.ProcDir == "" {
		cfg.ProcDir = "/proc"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Worker{cfg: cfg, st: st, ap: ap, log: cfg.Logger, stopping: map[string]bool{},
		lb: map[string]lbState{}, lbTargets: map[string]Target{}, kick: make(chan struct{}, 1)}
	w.ships.Node = cfg.Node
	w.health = newChecker(w.poke, cfg.HealthGrace)
	return w
}

// LogPath is the file holding a ship's captured output.
func (w *Worker) LogPath(id string) string { return w.cfg.Driver.LogPath(id) }

// OpenJournal reads a ship's output from the journal when its driver logs
// there (systemd with journald); ok is false otherwise.
func (w *Worker) OpenJournal(ctx context.Context, id string, tail int, follow bool) (io.ReadCloser, bool, error) {
	j, ok := w.cfg.Driver.(interface {
		OpenJournal(ctx context.Context, id string, tail int, follow bool) (io.ReadCloser, bool, error)
	})
	if !ok {
		return nil, false, nil
	}
	return j.OpenJournal(ctx, id, tail, follow)
}

func (w *Worker) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx ends, then waits for the stops it started.
// It does not stop the ships: closing the driver does.
//
// Passes run on what can change their outcome — a change of the state
// that concerns this node, a driver event (a unit or process that
// started, ended or was stopped by hand), a stop or a health verdict
// that finished — and on the sweep every Interval, which catches what no
// event announced and reports the host ports. Nothing runs in between: an
// idle worker wakes once per Interval (and per usage sample).
func (w *Worker) Run(ctx context.Context) {
	defer w.wg.Wait()
	defer w.health.close()
	w.catchUp(ctx)
	if meter, ok := w.cfg.Driver.(Meter); ok {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.usageLoop(ctx, meter)
		}()
	}
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	var since uint64
	var lastPorts []int
	sweep := true // report host ports after this pass
	lastPrune := time.Time{}
	quiet := pace.Quiet{Min: minPassGap, Max: maxQuietGap}
	var gap time.Duration
	for {
		if time.Since(lastPrune) >= pruneEvery {
			// Purged ships' logs: no hurry (a ship is purged 10 minutes
			// after it ended), and the scan reads every log's ship.
			lastPrune = time.Now()
			w.pruneLogs()
		}
		passStart := time.Now()
		index, err := w.Reconcile(ctx)
		w.passMu.Lock()
		index = min(index, w.ships.Base())
		gap = quiet.Next(w.idle && err == nil)
		w.passMu.Unlock()
		if err != nil && ctx.Err() == nil {
			w.log.Warn("reconcile", "err", err)
		}
		if sweep {
			// After the pass, which knows the ports this node's ships
			// hold; on an error, again after the next pass.
			if ports, err := w.reportHost(ctx, lastPorts); err == nil {
				lastPorts, sweep = ports, false
			} else if ctx.Err() == nil {
				w.log.Debug("report host ports", "err", err)
			}
		}
		// A pass reads every ship of the node: under a stream of changes
		// to them (allocations, label updates) passes are spaced so that
		// they take at most about a third of a core, and further apart
		// while they find nothing to do (quiet). A placement here or a
		// change of the node's record is not held back by the quiet gap.
		spacing := max(minPassGap, 2*time.Since(passStart))
		nextUrgent, nextPass := passStart.Add(spacing), passStart.Add(max(spacing, gap))
		if index > since {
			since = index
		}
		var due pace.Due // when the changes that concern the node are acted on
	wait:
		for {
			changes, ch, err := w.st.Changes(since)
			if errors.Is(err, fsm.ErrCompacted) {
				break
			}
			if err != nil {
				return
			}
			if len(changes) > 0 {
				since = changes[len(changes)-1].Index
			}
			concern, urgent := w.concerns(changes)
			due.See(concern, urgent, nextPass, nextUrgent)
			timer, now := due.Wait()
			if now {
				break wait
			}
			select {
			case <-ctx.Done():
				return
			case <-timer:
				break wait
			case <-tick.C:
				sweep = true
				break wait
			case <-w.kick:
				break wait
			case <-w.cfg.Driver.Changed():
				break wait
			case <-ch:
			}
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-tick.C: // due while changes kept the passes coming
			sweep = true
		default:
		}
	}
}

// usageLoop samples what the ships use every UsageInterval and reports
// the figures that changed. A sample is only a baseline for the ships it
// sees first (all of them, the first time): their rates follow a second
// later, not a whole interval.
func (w *Worker) usageLoop(ctx context.Context, m Meter) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fresh, err := w.reportUsage(ctx, m)
		if err != nil && ctx.Err() == nil {
			w.log.Debug("report usage", "err", err)
		}
		if fresh {
			t.Reset(time.Second)
		} else {
			t.Reset(UsageInterval)
		}
	}
}

// minPassGap is the least time between the starts of two passes that a
// change to the state started.
const minPassGap = 5 * time.Millisecond

// maxQuietGap bounds the spacing of passes that find nothing to do while
// the node's ships change: in an allocation storm they change hundreds of
// times a second and none of it needs the worker; a change that does is
// acted on at most this late, and driver events, stops and health
// verdicts are not spaced at all.
const maxQuietGap = 100 * time.Millisecond

// concerns reports whether changes touch this node: its record, its
// queue (a ship placed here), or a ship that was here at the last pass;
// urgent when they include a placement or a change of the record.
func (w *Worker) concerns(changes []fsm.Change) (concern, urgent bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range changes {
		switch {
		case c.Topic == "ship" && w.mine[c.Key]:
			concern = true
		case c.Topic == "queue" && c.Key == fsm.WorkerQueue(w.cfg.Node):
			return true, true
		case c.Topic == "node" && c.Key == w.cfg.Node:
			return true, true
		}
	}
	return concern, false
}

// pruneEvery is how often the worker deletes the logs of purged ships.
const pruneEvery = 30 * time.Second

// readIndexer is an Applier that can bring the local state up to date.
type readIndexer interface {
	ReadIndex(ctx context.Context) (uint64, error)
}

// catchUp waits, when the driver already runs ships (units adopted from an
// earlier run), until the local state holds every committed write: a state
// still being replayed would not place them here yet, and the first pass
// would stop them.
func (w *Worker) catchUp(ctx context.Context) {
	ri, ok := w.ap.(readIndexer)
	if !ok || len(w.cfg.Driver.List()) == 0 {
		return
	}
	for ctx.Err() == nil {
		idx, err := ri.ReadIndex(ctx)
		if err == nil {
			w.log.Info("state caught up; reconciling adopted ships", "index", idx, "ships", len(w.cfg.Driver.List()))
			return
		}
		w.log.Info("waiting for the cluster before touching adopted ships", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// reportHost tells the cluster this node's port range and the ports in it
// that something other than its ships uses (as of the last pass), when
// they changed.
func (w *Worker) reportHost(ctx context.Context, last []int) ([]int, error) {
	lo, hi, err := fsm.ParsePortsRange(w.cfg.PortsRange)
	if err != nil {
		return nil, err
	}
	inUse, err := ListeningPorts(w.cfg.ProcDir, lo, hi)
	if err != nil {
		return nil, err
	}
	var node *fsm.Node
	w.st.View(func(v *fsm.View) error {
		node, _ = v.Node(w.cfg.Node)
		return nil
	})
	if node == nil {
		return nil, errors.New("node not recorded yet")
	}
	w.mu.Lock()
	own := w.ownPorts
	w.mu.Unlock()
	var ports []int
	for _, p := range inUse {
		if !own[p] {
			ports = append(ports, p)
		}
	}
	if node.PortsRange == w.cfg.PortsRange && slices.Equal(node.HostPorts, ports) && slices.Equal(last, ports) {
		return ports, nil
	}
	r, err := w.ap.Apply(ctx, &fsm.NodeReport{Name: w.cfg.Node, PortsRange: w.cfg.PortsRange, HostPorts: ports})
	if err == nil && r.Err != nil {
		err = r.Err
	}
	return ports, err
}

// action is one thing a pass decided, with its reason.
type action struct {
	ship     *fsm.Ship
	spec     *Spec
	report   *fsm.Report
	stop     bool
	forget   bool
	register *Target // into the load balancer
	// checked: the ship has a health check, so running is not yet ready.
	checked bool
	why     string
}

// Reconcile runs one pass and returns the index of the state it read.
func (w *Worker) Reconcile(ctx context.Context) (uint64, error) {
	procs := map[string]Status{}
	running := map[string]bool{}
	for _, s := range w.cfg.Driver.List() {
		procs[s.ID] = s
		running[s.ID] = s.State != ProcExited
	}
	w.health.forget(running)
	var acts []action
	var index uint64
	w.passMu.Lock()
	defer w.passMu.Unlock()
	ships := w.ships.Prepare(w.st)
	err := w.st.View(func(v *fsm.View) error {
		index = v.Index()
		mine := map[string]bool{}
		own := map[int]bool{}
		checks, targets := healthSpecs(v), lbTargets(v)
		for _, s := range ships(v) {
			if s.Node != w.cfg.Node {
				continue
			}
			mine[s.ID] = true
			if !s.Ended() && s.State != fsm.ShipQueued { // else its ports are free again
				for _, p := range s.Ports {
					own[p] = true
				}
			}
			if a, ok := w.decide(v, s, procs[s.ID], procs[s.ID].ID != "", checks(s), targets(s)); ok {
				acts = append(acts, a)
			}
		}
		// Whatever runs here that the state does not place here stops:
		// a node that comes back after its ships were moved stops them.
		w.mu.Lock()
		w.mine, w.ownPorts = mine, own
		w.mu.Unlock()
		for _, id := range slices.Sorted(maps.Keys(procs)) {
			if mine[id] {
				continue
			}
			why := "not assigned to this node"
			if s, ok := v.Ship(id); ok && s.Node != "" {
				why = "assigned to node " + s.Node
			}
			acts = append(acts, action{ship: &fsm.Ship{ID: id}, stop: procs[id].State != ProcExited, forget: procs[id].State == ProcExited, why: why})
		}
		return nil
	})
	w.idle = len(acts) == 0
	if err != nil {
		return 0, fmt.Errorf("read state: %w", err)
	}
	var reports []fsm.Report
	for _, a := range acts {
		switch {
		case a.spec != nil:
			w.log.Info("start ship", "ship", a.ship.ID, "why", a.why)
			if err := w.cfg.Driver.Start(ctx, a.spec); err != nil {
				if ctx.Err() != nil {
					return index, ctx.Err() // shutting down: not the ship's fault
				}
				w.log.Warn("start ship failed", "ship", a.ship.ID, "err", err)
				reports = append(reports, fsm.Report{Ship: a.ship.ID, State: fsm.ShipFailed, Reason: "start: " + err.Error()})
				continue
			}
			st := fsm.ShipStarting
			for _, p := range w.cfg.Driver.List() {
				if p.ID == a.ship.ID && p.State == ProcRunning && !a.checked {
					st = fsm.ShipReady
				}
			}
			reports = append(reports, fsm.Report{Ship: a.ship.ID, State: st})
		case a.register != nil:
			w.registerAsync(ctx, *a.register)
			if a.report != nil {
				reports = append(reports, *a.report)
			}
		case a.stop:
			w.stopAsync(ctx, a.ship, a.why)
		case a.report != nil:
			w.log.Info("report ship", "ship", a.ship.ID, "state", a.report.State, "why", a.why)
			reports = append(reports, *a.report)
		case a.forget:
			w.cfg.Driver.Forget(a.ship.ID)
		}
	}
	if len(reports) == 0 {
		return index, nil
	}
	r, err := w.ap.Apply(ctx, &fsm.ShipReport{Node: w.cfg.Node, Reports: reports})
	if err == nil && r.Err != nil {
		err = r.Err
	}
	if err != nil {
		return index, fmt.Errorf("report %d ships: %w", len(reports), err)
	}
	return index, nil
}

// decide compares one ship of this node with its process. known says
// whether the driver has the ship at all.
func (w *Worker) decide(v *fsm.View, s *fsm.Ship, p Status, known bool, check *fsm.Health, lb *Target) (action, bool) {
	a := action{ship: s, checked: (check != nil && check.Type != "none") || lb != nil}
	report := func(state, reason, why string) (action, bool) {
		if s.State == state && s.Reason == reason && s.Item == 0 {
			return a, false
		}
		a.report, a.why = &fsm.Report{Ship: s.ID, State: state, Reason: reason}, why
		return a, true
	}
	w.mu.Lock()
	inFlight := w.stopping[s.ID]
	w.mu.Unlock()
	if inFlight {
		return a, false
	}
	switch {
	case s.State == fsm.ShipStopping:
		if known && p.State != ProcExited {
			a.stop, a.why = true, "ship is to stop: "+s.Reason
			return a, true
		}
		return report(fsm.ShipStopped, s.Reason, "ship is to stop and nothing runs")
	case s.Ended() || s.State == fsm.ShipQueued:
		if known && p.State != ProcExited {
			a.stop, a.why = true, "ship is "+s.State
			return a, true
		}
		if s.State == fsm.ShipLostState && !s.Released {
			// Its resources and ports stay held until this node says
			// nothing of it runs.
			a.report, a.why = &fsm.Report{Ship: s.ID, State: fsm.ShipStopped, Reason: s.Reason}, "lost ship: nothing of it runs here"
			return a, true
		}
		if known {
			a.forget, a.why = true, "ship is "+s.State
			return a, true
		}
		return a, false
	}
	// The ship should run here.
	switch {
	case !known:
		spec, err := w.spec(v, s)
		if err != nil {
			return report(fsm.ShipFailed, err.Error(), "cannot build the ship's spec")
		}
		a.spec, a.why = spec, "placed here and not running"
		if s.State != fsm.ShipScheduled {
			a.why = "ship is " + s.State + " but not running (worker restarted?)"
		}
		return a, true
	case p.State == ProcExited:
		// Forgotten only once the state has the ship ended, so a report
		// that fails to commit is made again.
		if p.Failed {
			return report(fsm.ShipFailed, p.Reason, "process exited")
		}
		return report(fsm.ShipStopped, p.Reason, "process exited")
	case p.State == ProcStarting:
		if s.State == fsm.ShipScheduled {
			return report(fsm.ShipStarting, "", "process is starting")
		}
		if s.State == fsm.ShipReady {
			return report(fsm.ShipStarting, p.Reason, "process is restarting")
		}
		return a, false
	default: // running
		verdict, why := w.health.verdict(s, check, p.Pid)
		switch {
		case verdict == healthFailed:
			return report(fsm.ShipFailed, why, "health check failed")
		case s.Occupied():
			// In use by players: its state is theirs until it fails.
			return report(s.State, s.Reason, "process is running")
		case verdict == healthWaiting:
			return report(fsm.ShipStarting, why, "process is running, not healthy yet")
		}
		if lb != nil {
			w.mu.Lock()
			st := w.lb[s.ID]
			w.mu.Unlock()
			switch {
			case st == 0:
				// Healthy: into the load balancer first, ready after.
				a.register, a.why = lb, "healthy; registering with the load balancer"
				if s.State != fsm.ShipReady {
					a.report = &fsm.Report{Ship: s.ID, State: fsm.ShipStarting, Reason: "registering with the load balancer"}
				}
				return a, true
			case st == lbRegistering && s.State != fsm.ShipReady:
				return report(fsm.ShipStarting, "registering with the load balancer", "waiting for the load balancer")
			}
		}
		return report(fsm.ShipReady, "", "process is running and healthy")
	}
}

// healthSpecs returns a lookup of the health check of each ship's
// blueprint version, reading each version once per pass.
func healthSpecs(v *fsm.View) func(s *fsm.Ship) *fsm.Health {
	type key struct {
		bp string
		v  int
	}
	cache := map[key]*fsm.Health{}
	return func(s *fsm.Ship) *fsm.Health {
		k := key{s.Blueprint, s.Version}
		h, ok := cache[k]
		if !ok {
			if bp, found := v.Blueprint(s.Blueprint, s.Version); found {
				h = bp.Health
			}
			cache[k] = h
		}
		return h
	}
}

// spec builds what the driver needs to run a ship.
func (w *Worker) spec(v *fsm.View, s *fsm.Ship) (*Spec, error) {
	bp, ok := v.Blueprint(s.Blueprint, s.Version)
	if !ok {
		return nil, fmt.Errorf("blueprint %s version %d not found", s.Blueprint, s.Version)
	}
	secrets, err := v.BlueprintSecrets(s.Blueprint, s.Version)
	if err != nil {
		return nil, fmt.Errorf("open secrets: %w", err)
	}
	env := map[string]string{}
	maps.Copy(env, bp.Env)
	maps.Copy(env, secrets)
	env["ARMADA_SHIP_ID"] = s.ID
	env["ARMADA_FLEET"] = s.Fleet
	env["ARMADA_NODE"] = w.cfg.Node
	env["ARMADA_BLUEPRINT"] = s.Blueprint
	env["ARMADA_VERSION"] = fmt.Sprint(s.Version)
	env["ARMADA_ADDRESS"] = s.Address
	if w.cfg.SDKAddr != "" {
		token := SDKToken(v.SecretKey(), s.ID)
		env["ARMADA_SDK_ADDR"] = strings.TrimSuffix(w.cfg.SDKAddr, "/") + SDKPath(s.ID, token)
		env["ARMADA_SDK_TOKEN"] = token
	}
	for name, port := range s.Ports {
		env["ARMADA_PORT_"+strings.ToUpper(name)] = fmt.Sprint(port)
	}
	return &Spec{ID: s.ID, Fleet: s.Fleet, Unit: bp.Unit, Env: env, CPUMHz: s.Resources.CPUMHz, MemoryMB: s.Resources.MemoryMB}, nil
}

// stopAsync stops a ship without holding up the pass; the pass after it
// reports the ship stopped.
func (w *Worker) stopAsync(ctx context.Context, s *fsm.Ship, why string) {
	id := s.ID
	w.mu.Lock()
	if w.stopping[id] {
		w.mu.Unlock()
		return
	}
	w.stopping[id] = true
	w.mu.Unlock()
	w.log.Info("stop ship", "ship", id, "why", why)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.deregister(context.WithoutCancel(ctx), id) // drained before it stops
		if err := w.cfg.Driver.Stop(context.WithoutCancel(ctx), id); err != nil {
			w.log.Warn("stop ship failed", "ship", id, "err", err)
		}
		w.mu.Lock()
		delete(w.stopping, id)
		w.mu.Unlock()
		w.poke()
	}()
}

// pruneLogs deletes the captured output of ships the cluster has purged
// and the driver no longer runs.
func (w *Worker) pruneLogs() {
	known := map[string]bool{}
	for _, p := range w.cfg.Driver.List() {
		known[p.ID] = true
	}
	var gone []string
	w.st.View(func(v *fsm.View) error {
		for _, id := range w.cfg.Driver.Logs() {
			if _, ok := v.Ship(id); !ok && !known[id] {
				gone = append(gone, id)
			}
		}
		return nil
	})
	for _, id := range gone {
		if err := w.cfg.Driver.RemoveLog(id); err != nil {
			w.log.Debug("remove log", "ship", id, "err", err)
			continue
		}
		w.log.Info("removed log", "ship", id, "why", "the ship was purged")
	}
}
