package worker

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// testRange is the port range node n1 gives ship ports from.
const testRange = "20000-20099"

// testApplier commits commands the way Raft does on a single node: the
// leader stamps its clock into the command, the entry is encoded, and it
// is applied to the state at the next index, one at a time.
type testApplier struct {
	st *fsm.State

	mu      sync.Mutex
	idx     uint64
	applied []fsm.CmdType
}

func (a *testApplier) Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fsm.Stamp(c, time.Now())
	a.idx++
	r := a.st.Apply(a.idx, fsm.Encode(c))
	a.applied = append(a.applied, c.Type())
	return r, nil
}

// count is how many commands of a type were applied.
func (a *testApplier) count(typ fsm.CmdType) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, t := range a.applied {
		if t == typ {
			n++
		}
	}
	return n
}

// countingStore is the real state, counting the views taken of it: every
// pass of the worker (a reconcile or a host report) takes one, so a test
// can wait for passes to have happened instead of sleeping.
type countingStore struct {
	*fsm.State
	views atomic.Int64
}

func (c *countingStore) View(fn func(v *fsm.View) error) error {
	c.views.Add(1)
	return c.State.View(fn)
}

// harness is a single-node cluster whose scheduler is the test: a real
// state, an applier, node n1 alive with the port range testRange, and
// drivers and workers that are stopped, and whose processes are checked
// gone, when the test ends.
type harness struct {
	t    *testing.T
	st   *fsm.State
	ap   *testApplier
	key  []byte
	out  string // where env-dumping ships write their environment
	logs *syncBuffer

	mu   sync.Mutex
	pids map[int]bool // every ship process seen
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st, err := fsm.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{
		t:    t,
		st:   st,
		ap:   &testApplier{st: st},
		key:  make([]byte, 32),
		out:  t.TempDir(),
		logs: &syncBuffer{},
		pids: map[int]bool{},
	}
	// Cleanups run last first: these run after every driver (made later)
	// is closed.
	t.Cleanup(h.checkProcessesGone)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", h.logs)
		}
	})
	if _, err := rand.Read(h.key); err != nil {
		t.Fatal(err)
	}
	h.ok(&fsm.ClusterInit{ClusterID: "test-cluster", Key: h.key})
	h.ok(&fsm.NodeUpsert{Node: nodeSpec("n1", fsm.NodeAlive)})
	h.ok(&fsm.NodeReport{Name: "n1", PortsRange: testRange})
	return h
}

// nodeSpec is a worker node as gossip reports it.
func nodeSpec(name, status string) fsm.Node {
	return fsm.Node{
		Name: name, Address: "10.0.0.1", GossipAddr: "10.0.0.1:7946", HTTPAddr: "10.0.0.1:8080",
		Role: fsm.RoleWorker, Worker: true, Status: status,
		Capacity: fsm.Resources{CPUMHz: 8000, MemoryMB: 16384},
	}
}

// ok applies a command and fails the test if the state refuses it.
func (h *harness) ok(c fsm.Command) *fsm.Result {
	h.t.Helper()
	r, err := h.ap.Apply(context.Background(), c)
	if err != nil {
		h.t.Fatalf("apply %T: %v", c, err)
	}
	if r.Err != nil {
		h.t.Fatalf("apply %T: refused: %v", c, r.Err)
	}
	return r
}

// blueprint stores a blueprint with one port ("web"), env and a secret.
func (h *harness) blueprint(name, unit string) {
	h.t.Helper()
	put, err := fsm.PrepareBlueprint(h.key, &fsm.Blueprint{
		Name:      name,
		Unit:      unit,
		Resources: fsm.Resources{CPUMHz: 100, MemoryMB: 64},
		Ports:     []fsm.Port{{Name: "web"}},
		Env:       map[string]string{"OUT": h.out, "GREETING": "hello world"},
		Secrets:   map[string]string{"DB_PASSWORD": "s3cret"},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if r := h.ok(put); r.Blueprint == nil || r.Blueprint.Version != 1 {
		h.t.Fatalf("blueprint %s stored as %+v, want version 1", name, r.Blueprint)
	}
}

// fleet stores a fleet of one blueprint.
func (h *harness) fleet(name, bp string, replicas int) {
	h.t.Helper()
	h.ok(&fsm.FleetPut{Spec: fsm.Fleet{Name: name, Replicas: replicas, Versions: []fsm.FleetVersion{{Blueprint: bp, Weight: 1}}}})
}

// place creates a ship of blueprint bp (in fleet, if not "") and places it
// on node with host port port, as the scheduler does.
func (h *harness) place(fleet, bp, node string, port int) string {
	h.t.Helper()
	r := h.ok(&fsm.ShipCreate{Fleet: fleet, Blueprint: bp, Version: 1, Count: 1})
	if len(r.Ships) != 1 {
		h.t.Fatalf("ShipCreate made %d ships", len(r.Ships))
	}
	id := r.Ships[0].ID
	if r := h.ok(&fsm.ShipPlace{Places: []fsm.Place{{Ship: id, Node: node, Ports: []int{port}}}}); r.Count != 1 {
		h.t.Fatalf("placement of %s on %s port %d refused: %q", id, node, port, h.ship(id).Reason)
	}
	s := h.ship(id)
	if s.State != fsm.ShipScheduled || s.Item == 0 || s.Ports["web"] != port {
		h.t.Fatalf("placed ship = %+v", s)
	}
	return id
}

func (h *harness) view(fn func(v *fsm.View)) {
	h.t.Helper()
	if err := h.st.View(func(v *fsm.View) error { fn(v); return nil }); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) ship(id string) *fsm.Ship {
	h.t.Helper()
	var s *fsm.Ship
	h.view(func(v *fsm.View) { s, _ = v.Ship(id) })
	if s == nil {
		h.t.Fatalf("ship %s not in the state", id)
	}
	return s
}

func (h *harness) node(name string) *fsm.Node {
	h.t.Helper()
	var n *fsm.Node
	h.view(func(v *fsm.View) { n, _ = v.Node(name) })
	if n == nil {
		h.t.Fatalf("node %s not in the state", name)
	}
	return n
}

// waitShip waits until the state has ship id in state and returns it.
func (h *harness) waitShip(id, state string) *fsm.Ship {
	h.t.Helper()
	var s *fsm.Ship
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.view(func(v *fsm.View) { s, _ = v.Ship(id) })
		if s != nil && s.State == state {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("ship %s never %s; it is %+v", id, state, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// driver makes an exec driver on dir (a fresh one if ""), closed when the
// test ends.
func (h *harness) driver(dir string) *Exec {
	h.t.Helper()
	if dir == "" {
		dir = h.t.TempDir()
	}
	d, err := NewExec(dir, slog.New(slog.NewTextHandler(h.logs, nil)).With("driver", dir))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		if err := d.Close(); err != nil {
			h.t.Errorf("close driver: %v", err)
		}
		if l := d.List(); len(l) != 0 {
			h.t.Errorf("ships left after Close: %+v", l)
		}
	})
	return d
}

// worker makes the worker of node n1 over st (the state if nil).
func (h *harness) worker(st Store, d Driver, mod func(*Config)) *Worker {
	h.t.Helper()
	if st == nil {
		st = h.st
	}
	cfg := Config{
		Node:       "n1",
		PortsRange: testRange,
		Driver:     d,
		Interval:   100 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(h.logs, nil)).With("worker", "n1"),
	}
	if mod != nil {
		mod(&cfg)
	}
	w := New(st, h.ap, cfg)
	h.t.Cleanup(w.wg.Wait) // stops started by passes, before the driver closes
	return w
}

// run runs w until the returned function (also called when the test ends)
// stops it.
func (h *harness) run(w *Worker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	stop = sync.OnceFunc(func() {
		cancel()
		<-done
	})
	h.t.Cleanup(stop)
	return stop
}

// reconcile runs one pass and returns the index it read.
func (h *harness) reconcile(w *Worker) uint64 {
	h.t.Helper()
	index, err := w.Reconcile(context.Background())
	if err != nil {
		h.t.Fatalf("reconcile: %v", err)
	}
	return index
}

// proc is what driver d knows of ship id.
func (h *harness) proc(d Driver, id string) (Status, bool) {
	for _, s := range d.List() {
		if s.Pid > 0 {
			h.mu.Lock()
			h.pids[s.Pid] = true
			h.mu.Unlock()
		}
		if s.ID == id {
			return s, true
		}
	}
	return Status{}, false
}

// waitProc waits until d has ship id in state and returns its status.
func (h *harness) waitProc(d Driver, id, state string) Status {
	h.t.Helper()
	var st Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		if st, ok = h.proc(d, id); ok && st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("driver never has %s %s; it has %+v", id, state, d.List())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits until d no longer lists ship id.
func (h *harness) waitGone(d Driver, id string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := h.proc(d, id); !ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("driver still has %s: %+v", id, d.List())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pidGone says whether no process (not even a zombie) has pid.
func pidGone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// checkProcessesGone checks, once every driver is closed, that no ship
// process the test saw survives.
func (h *harness) checkProcessesGone() {
	h.mu.Lock()
	pids := slices.Sorted(maps.Keys(h.pids))
	h.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for !pidGone(pid) {
			if time.Now().After(deadline) {
				h.t.Errorf("ship process %d survives the test", pid)
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// sleeper is a unit that runs until it is stopped.
func sleeper(extra ...string) string {
	return service(append(extra, "ExecStart=/bin/sleep 1000")...)
}

// envDumper is a unit that writes its environment to $OUT/<ship id>.env and
// then runs until it is stopped.
var envDumper = service(`ExecStart=/bin/sh -c 'env > $OUT/$ARMADA_SHIP_ID.tmp && mv $OUT/$ARMADA_SHIP_ID.tmp $OUT/$ARMADA_SHIP_ID.env; exec sleep 1000'`)

// readEnv waits for the environment a ship of envDumper wrote.
func (h *harness) readEnv(id string) map[string]string {
	h.t.Helper()
	path := filepath.Join(h.out, id+".env")
	var b []byte
	eventually(h.t, 10*time.Second, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil
	})
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

func randomID(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// A ship the scheduler places on the node is started with its whole
// environment and reported ready, which takes it off the node's queue.
func TestWorkerStartsPlacedShip(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blueprint("game", envDumper)
	h.fleet("arena", "game", 2)
	ids := []string{h.place("arena", "game", "n1", 20000), h.place("arena", "game", "n1", 20042)}
	var queued []*fsm.QueueItem
	h.view(func(v *fsm.View) { queued = v.Queue(fsm.WorkerQueue("n1")) })
	if len(queued) != 2 {
		t.Fatalf("worker queue holds %d items before the worker runs, want 2", len(queued))
	}

	d := h.driver("")
	h.run(h.worker(nil, d, func(c *Config) { c.SDKAddr = "127.0.0.1:7070" }))

	for i, id := range ids {
		s := h.waitShip(id, fsm.ShipReady)
		if s.Item != 0 || s.Reason != "" || s.Desired != fsm.DesireRun {
			t.Errorf("ready ship = %+v, want no queue item, no reason", s)
		}
		p := h.waitProc(d, id, ProcRunning)
		if p.Pid <= 0 || pidGone(p.Pid) {
			t.Errorf("ship %s: process %+v is not running", id, p)
		}
		env := h.readEnv(id)
		want := map[string]string{
			"ARMADA_SHIP_ID":   id,
			"ARMADA_FLEET":     "arena",
			"ARMADA_NODE":      "n1",
			"ARMADA_BLUEPRINT": "game",
			"ARMADA_VERSION":   "1",
			"ARMADA_ADDRESS":   "10.0.0.1",
			"ARMADA_SDK_ADDR":  "127.0.0.1:7070" + SDKPath(id, SDKToken(h.key, id)),
			"ARMADA_SDK_TOKEN": SDKToken(h.key, id),
			"ARMADA_PORT_WEB":  fmt.Sprint([]int{20000, 20042}[i]),
			"OUT":              h.out,
			"GREETING":         "hello world",
			"DB_PASSWORD":      "s3cret",
			"PATH":             defaultPath,
		}
		if got := env["ARMADA_PORT_WEB"]; got != fmt.Sprint(s.Ports["web"]) {
			t.Errorf("ship %s: ARMADA_PORT_WEB=%s, state says port %d", id, got, s.Ports["web"])
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("ship %s: %s=%q, want %q", id, k, env[k], v)
			}
		}
		for k := range env {
			if strings.HasPrefix(k, "ARMADA_") {
				if _, ok := want[k]; !ok {
					t.Errorf("ship %s: unexpected %s=%q", id, k, env[k])
				}
			}
		}
	}
	h.view(func(v *fsm.View) { queued = v.Queue(fsm.WorkerQueue("n1")) })
	if len(queued) != 0 {
		t.Errorf("worker queue still holds %d items once the ships are ready", len(queued))
	}
	// The decrypted secret is in the ship's environment only, never in the
	// state's blueprint.
	h.view(func(v *fsm.View) {
		bp, _ := v.Blueprint("game", 1)
		if len(bp.Secrets) != 0 || !slices.Equal(bp.SecretNames, []string{"DB_PASSWORD"}) {
			t.Errorf("stored blueprint secrets = %v, names %v", bp.Secrets, bp.SecretNames)
		}
	})
}

// Once the worker has converged, a pass changes nothing: no command is
// applied and nothing is started.
func TestWorkerReconcileIsIdempotent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blueprint("game", sleeper())
	id := h.place("", "game", "n1", 20000)
	d := h.driver("")
	w := h.worker(nil, d, nil)

	before := h.st.Index()
	if got := h.reconcile(w); got != before {
		t.Errorf("first pass read index %d, state at %d", got, before)
	}
	if h.st.Index() != before+1 || h.ap.count(fsm.CmdShipReport) != 1 {
		t.Fatalf("first pass: index %d -> %d, %d reports; want one report", before, h.st.Index(), h.ap.count(fsm.CmdShipReport))
	}
	s := h.ship(id)
	if s.State != fsm.ShipReady || s.Item != 0 {
		t.Fatalf("after the first pass the ship is %+v, want ready off the queue", s)
	}
	procs := d.List()
	p, _ := h.proc(d, id)
	if len(procs) != 1 || p.State != ProcRunning || p.Pid <= 0 {
		t.Fatalf("driver runs %+v", procs)
	}

	for i := range 3 {
		index := h.st.Index()
		if got := h.reconcile(w); got != index {
			t.Errorf("pass %d read index %d, state at %d", i+2, got, index)
		}
		if h.st.Index() != index {
			t.Errorf("pass %d moved the state from %d to %d", i+2, index, h.st.Index())
		}
		if got := d.List(); !slices.Equal(got, procs) {
			t.Errorf("pass %d: driver runs %+v, before %+v", i+2, got, procs)
		}
	}
	if n := h.ap.count(fsm.CmdShipReport); n != 1 {
		t.Errorf("%d ship reports applied, want 1", n)
	}
	if strings.Count(h.logs.String(), "start ship") != 1 {
		t.Errorf("worker log does not have exactly one start:\n%s", h.logs)
	}
}

// A process that ends is reported, with the reason, as failed (non-zero
// status, or no start at all) or stopped (status 0); the driver forgets it
// only on a pass after the state has it ended.
func TestWorkerReportsExit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, unit string
		state      string
		reason     string // a prefix for start failures
	}{
		{"status3", service("Restart=no", "ExecStart=/bin/sh -c 'exit 3'"), fsm.ShipFailed, "exited with status 3"},
		{"status0", service("Restart=no", "ExecStart=/bin/sh -c 'exit 0'"), fsm.ShipStopped, "exited with status 0"},
		{"nostart", service("ExecStart=no-such-command-armada-test"), fsm.ShipFailed, "start: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.blueprint("game", tc.unit)
			id := h.place("", "game", "n1", 20000)
			d := h.driver("")
			w := h.worker(nil, d, nil)

			var s *fsm.Ship
			for pass := 1; ; pass++ {
				if pass > 5 {
					t.Fatalf("ship not ended after 5 passes: %+v, driver %+v", s, d.List())
				}
				h.reconcile(w)
				if s = h.ship(id); s.Ended() {
					break
				}
				// Let the process end before the next pass.
				h.waitProc(d, id, ProcExited)
			}
			if s.State != tc.state || !strings.HasPrefix(s.Reason, tc.reason) || s.Item != 0 {
				t.Errorf("ship = %s %q (item %d), want %s %q", s.State, s.Reason, s.Item, tc.state, tc.reason)
			}
			if p, ok := h.proc(d, id); !ok || p.State != ProcExited {
				t.Errorf("the pass that reported the ship ended already changed the driver: %+v", d.List())
			}
			index := h.st.Index()
			h.reconcile(w)
			if _, ok := h.proc(d, id); ok {
				t.Errorf("the pass after the ship ended did not forget it: %+v", d.List())
			}
			h.reconcile(w)
			if h.st.Index() != index {
				t.Errorf("passes over an ended ship moved the state from %d to %d", index, h.st.Index())
			}
			if got := h.ship(id); got.State != tc.state {
				t.Errorf("ship then %+v", got)
			}
		})
	}
}

// Run reacts to the state and to the driver, not just to its timer.
func TestWorkerWakesOnChanges(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blueprint("game", service("ExecStart=/bin/sh -c 'sleep 0.3; exit 3'"))
	d := h.driver("")
	h.run(h.worker(nil, d, func(c *Config) { c.Interval = time.Hour }))

	id := h.place("", "game", "n1", 20000) // after Run started
	h.waitShip(id, fsm.ShipFailed)
	if s := h.ship(id); s.Reason != "exited with status 3" {
		t.Errorf("ship = %+v", s)
	}
	h.waitGone(d, id)
}

// With a sweep that never comes, every pass runs on an event alone: the
// host ports are reported after the first pass, a placement starts its
// ship, a process killed by hand is reported (a driver event), and a ship
// the user stops is stopped and reported stopped (a state change, then
// the stop's end).
func TestWorkerRunsOnEventsWithoutSweep(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blueprint("game", sleeper("Restart=no"))
	d := h.driver("")
	const rng = "20000-20999" // not testRange: the report is seen
	h.run(h.worker(nil, d, func(c *Config) { c.Interval, c.PortsRange = time.Hour, rng }))
	eventually(t, 10*time.Second, func() bool { return h.node("n1").PortsRange == rng })

	killed := h.place("", "game", "n1", 20000)
	h.waitShip(killed, fsm.ShipReady)
	p := h.waitProc(d, killed, ProcRunning)
	if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if s := h.waitShip(killed, fsm.ShipFailed); !strings.Contains(s.Reason, "killed") {
		t.Errorf("killed ship = %+v", s)
	}

	stopped := h.place("", "game", "n1", 20001)
	h.waitShip(stopped, fsm.ShipReady)
	p = h.waitProc(d, stopped, ProcRunning)
	h.ok(&fsm.ShipStop{Ships: []string{stopped}, Why: fsm.StopUser})
	h.waitShip(stopped, fsm.ShipStopped)
	if !pidGone(p.Pid) {
		t.Errorf("ship reported stopped while its process %d lives", p.Pid)
	}

}

// A ship the user stops is stopped by the worker, and reported stopped
// once its process is gone.
func TestWorkerStopsShip(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blueprint("game", sleeper("Restart=always"))
	id := h.place("", "game", "n1", 20000)
	d := h.driver("")
	h.run(h.worker(nil, d, nil))

	h.waitShip(id, fsm.ShipReady)
	p := h.waitProc(d, id, ProcRunning)
	h.ok(&fsm.ShipStop{Ships: []string{id}, Why: fsm.StopUser})
	if s := h.ship(id); s.State != fsm.ShipStopping {
		t.Fatalf("after ShipStop the ship is %+v", s)
	}
	s := h.waitShip(id, fsm.ShipStopped)
	if s.Reason != "stopped by user" || s.Desired != fsm.DesireStop {
		t.Errorf("stopped ship = %+v", s)
	}
	if !pidGone(p.Pid) {
		t.Errorf("ship reported stopped while its process %d lives", p.Pid)
	}
	if l := d.List(); len(l) != 0 {
		t.Errorf("driver still has %+v", l)
	}
}

// A node that comes back stops the ships it no longer has: here its ship
// was marked lost while the node was dead.
func TestWorkerStopsLostShip(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blueprint("game", sleeper())
	id := h.place("", "game", "n1", 20000)
	d := h.driver("")
	w := h.worker(nil, d, nil)
	h.reconcile(w)
	if s := h.ship(id); s.State != fsm.ShipReady {
		t.Fatalf("ship = %+v", s)
	}
	p := h.waitProc(d, id, ProcRunning)

	h.ok(&fsm.NodeUpsert{Node: nodeSpec("n1", fsm.NodeDead)})
	if r := h.ok(&fsm.ShipLost{Node: "n1", Reason: "node n1 is dead"}); r.Count != 1 {
		t.Fatalf("ShipLost marked %d ships", r.Count)
	}
	h.ok(&fsm.NodeUpsert{Node: nodeSpec("n1", fsm.NodeAlive)})

	index := h.st.Index()
	h.reconcile(w)
	h.waitGone(d, id)
	if !pidGone(p.Pid) {
		t.Errorf("process %d of the lost ship survives", p.Pid)
	}
	if !strings.Contains(h.logs.String(), `why="ship is lost"`) {
		t.Errorf("no stop logged for the lost ship:\n%s", h.logs)
	}
	h.reconcile(w) // releases it: one report
	if h.st.Index() != index+1 || !h.ship(id).Released {
		t.Errorf("the state moved from %d to %d, want one release report; ship %+v", index, h.st.Index(), h.ship(id))
	}
	h.reconcile(w)
	h.reconcile(w)
	if h.st.Index() != index+1 {
		t.Errorf("the state moved from %d to %d after the release", index+1, h.st.Index())
	}
	if s := h.ship(id); s.State != fsm.ShipLostState || s.Reason != "node n1 is dead" {
		t.Errorf("ship = %+v, want it left lost", s)
	}
}

// Whatever the driver runs that the state does not place on this node is
// stopped; what already ended is forgotten.
func TestWorkerStopsUnknownProcesses(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ok(&fsm.NodeUpsert{Node: nodeSpec("n2", fsm.NodeAlive)})
	h.ok(&fsm.NodeReport{Name: "n2", PortsRange: testRange})
	h.blueprint("game", sleeper())
	elsewhere := h.place("", "game", "n2", 20000)
	d := h.driver("")
	stray, ended := randomID("stray"), randomID("ended")
	for _, id := range []string{stray, elsewhere} {
		if err := d.Start(context.Background(), spec(id, sleeper())); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Start(context.Background(), spec(ended, service("ExecStart=/bin/true"))); err != nil {
		t.Fatal(err)
	}
	pStray := h.waitProc(d, stray, ProcRunning)
	pElsewhere := h.waitProc(d, elsewhere, ProcRunning)
	h.waitProc(d, ended, ProcExited)

	w := h.worker(nil, d, nil)
	index := h.st.Index()
	h.reconcile(w)
	if _, ok := h.proc(d, ended); ok {
		t.Errorf("an ended process the state does not know is not forgotten: %+v", d.List())
	}
	h.waitGone(d, stray)
	h.waitGone(d, elsewhere)
	for _, pid := range []int{pStray.Pid, pElsewhere.Pid} {
		if !pidGone(pid) {
			t.Errorf("process %d survives", pid)
		}
	}
	logs := h.logs.String()
	for _, want := range []string{
		`ship=` + stray + ` why="not assigned to this node"`,
		`ship=` + elsewhere + ` why="assigned to node n2"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	h.reconcile(w)
	if h.st.Index() != index {
		t.Errorf("the state moved from %d to %d", index, h.st.Index())
	}
	if s := h.ship(elsewhere); s.State != fsm.ShipScheduled || s.Node != "n2" || s.Item == 0 {
		t.Errorf("n2's ship = %+v, want it untouched by n1's worker", s)
	}
}

// A worker that crashed leaves its ships running; the next one's driver
// ends them and the worker starts them afresh.
func TestWorkerRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blueprint("game", sleeper())
	id := h.place("", "game", "n1", 20000)
	dir := filepath.Join(t.TempDir(), "ships")

	dA := h.driver(dir) // closed only at the end: the crash leaves it be
	stopA := h.run(h.worker(nil, dA, nil))
	h.waitShip(id, fsm.ShipReady)
	pA := h.waitProc(dA, id, ProcRunning)
	stopA()
	reports := h.ap.count(fsm.CmdShipReport)

	dB := h.driver(dir)
	eventually(t, 10*time.Second, func() bool { return pidGone(pA.Pid) })
	if l := dB.List(); len(l) != 0 {
		t.Fatalf("new driver starts with %+v", l)
	}
	h.run(h.worker(nil, dB, nil))
	pB := h.waitProc(dB, id, ProcRunning)
	if pB.Pid == pA.Pid {
		t.Errorf("ship runs as the old pid %d", pA.Pid)
	}
	eventually(t, 10*time.Second, func() bool { return h.ap.count(fsm.CmdShipReport) > reports })
	if s := h.ship(id); s.State != fsm.ShipReady || s.Item != 0 {
		t.Errorf("ship = %+v, want ready", s)
	}
	if !strings.Contains(h.logs.String(), "worker restarted?") {
		t.Errorf("restart not logged:\n%s", h.logs)
	}
	if pidGone(pB.Pid) {
		t.Errorf("new process %d is gone", pB.Pid)
	}
}

// A ready ship whose process the driver restarts is reported starting,
// with the reason, and ready again once it runs.
func TestWorkerReportsRestarts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blueprint("game", sleeper("Restart=always", "RestartSec=1s"))
	id := h.place("", "game", "n1", 20000)
	d := h.driver("")
	w := h.worker(nil, d, nil)
	h.reconcile(w)
	p1 := h.waitProc(d, id, ProcRunning)
	if s := h.ship(id); s.State != fsm.ShipReady {
		t.Fatalf("ship = %+v", s)
	}

	if err := syscall.Kill(p1.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitProc(d, id, ProcStarting)
	h.reconcile(w)
	if s := h.ship(id); s.State != fsm.ShipStarting || s.Reason != "killed by signal SIGKILL" {
		t.Errorf("restarting ship = %s %q, want starting %q", s.State, s.Reason, "killed by signal SIGKILL")
	}
	index := h.st.Index()
	h.reconcile(w)
	if p, _ := h.proc(d, id); p.State == ProcStarting && h.st.Index() != index {
		t.Errorf("a second pass while the ship waits to restart moved the state")
	}

	p2 := h.waitProc(d, id, ProcRunning)
	if p2.Pid == p1.Pid || p2.Restarts != 1 {
		t.Errorf("restarted process = %+v", p2)
	}
	h.reconcile(w)
	if s := h.ship(id); s.State != fsm.ShipReady || s.Reason != "" {
		t.Errorf("ship = %s %q, want ready", s.State, s.Reason)
	}
}

// writeNetFile writes procDir/net/name atomically.
func writeNetFile(t *testing.T, procDir, name, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(procDir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(procDir, "net", "."+name)
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(procDir, "net", name)); err != nil {
		t.Fatal(err)
	}
}

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

// The worker reports the host ports in its range that its ships do not
// hold, once, and again when they change. Here 20000 is the ship's.
func TestWorkerReportsHostPorts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	procDir := t.TempDir()
	writeNetFile(t, procDir, "tcp", tcpHeader+
		"   0: 00000000:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1001 1 0000000000000000 100 0 0 10 0\n"+
		"   1: 00000000:4E25 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1002 1 0000000000000000 100 0 0 10 0\n"+
		"   2: 0100007F:4E52 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 1003 1 0000000000000000 20 4 30 10 -1\n"+
		"   3: 00000000:4EE8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1004 1 0000000000000000 100 0 0 10 0\n")
	writeNetFile(t, procDir, "udp", "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"+
		"  77: 00000000:4E27 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 1005 2 0000000000000000 0\n")
	h.blueprint("game", sleeper())
	id := h.place("", "game", "n1", 20000)

	st := &countingStore{State: h.st}
	d := h.driver("")
	reports := h.ap.count(fsm.CmdNodeReport)
	h.run(h.worker(st, d, func(c *Config) {
		c.ProcDir = procDir
		c.Interval = 20 * time.Millisecond
	}))
	h.waitShip(id, fsm.ShipReady)
	eventually(t, 10*time.Second, func() bool { return slices.Equal(h.node("n1").HostPorts, []int{20005, 20007}) })
	if n := h.node("n1"); n.PortsRange != testRange || !slices.Equal(n.UsedPorts, []int{20000}) {
		t.Errorf("node = %+v", n)
	}

	// Unchanged ports are not reported again, however many sweeps pass.
	views := st.views.Load()
	eventually(t, 10*time.Second, func() bool { return st.views.Load() >= views+20 })
	if n := h.ap.count(fsm.CmdNodeReport) - reports; n != 1 {
		t.Errorf("%d node reports for unchanged host ports, want 1", n)
	}

	// A port freed on the host is reported on the next sweep.
	writeNetFile(t, procDir, "tcp", tcpHeader+
		"   0: 00000000:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1001 1 0000000000000000 100 0 0 10 0\n")
	eventually(t, 10*time.Second, func() bool { return slices.Equal(h.node("n1").HostPorts, []int{20007}) })
	if n := h.ap.count(fsm.CmdNodeReport) - reports; n != 2 {
		t.Errorf("%d node reports, want 2", n)
	}
}

// The same against the host's real sockets: a listener in the range is
// reported, the port of a ship is not, and a closed listener's port goes.
func TestWorkerReportsRealHostPorts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	p := host.Addr().(*net.TCPAddr).Port
	hi := min(p+10, 65535)
	rng := fmt.Sprintf("%d-%d", p, hi)
	// The ship's own listener, in the same range (the ship itself is a
	// sleeper: what matters is that its port is in use on the host).
	var shipL net.Listener
	for q := p + 1; q <= hi && shipL == nil; q++ {
		shipL, _ = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", q))
	}
	if shipL == nil {
		t.Skipf("no free port in %s", rng)
	}
	defer shipL.Close()
	shipPort := shipL.Addr().(*net.TCPAddr).Port

	h.ok(&fsm.NodeReport{Name: "n1", PortsRange: rng})
	h.blueprint("game", sleeper())
	id := h.place("", "game", "n1", shipPort)
	d := h.driver("")
	h.run(h.worker(nil, d, func(c *Config) {
		c.PortsRange = rng
		c.Interval = 20 * time.Millisecond
	}))
	h.waitShip(id, fsm.ShipReady)
	eventually(t, 10*time.Second, func() bool { return slices.Contains(h.node("n1").HostPorts, p) })
	if n := h.node("n1"); slices.Contains(n.HostPorts, shipPort) || n.PortsRange != rng {
		t.Errorf("node = %+v: ship port %d reported as a host port", n, shipPort)
	}
	host.Close()
	eventually(t, 10*time.Second, func() bool { return !slices.Contains(h.node("n1").HostPorts, p) })
}

// Once a ship has ended it holds no port any more (the state frees it for
// other ships), so something else listening on its old port is a host port
// and must be reported: otherwise the scheduler places a new ship on a port
// in use.
func TestWorkerReportsHostPortOfEndedShip(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	procDir := t.TempDir()
	// Something else on the host listens on 20001, which the ended ship had.
	writeNetFile(t, procDir, "tcp", tcpHeader+
		"   0: 00000000:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1001 1 0000000000000000 100 0 0 10 0\n")
	h.blueprint("game", service("ExecStart=/bin/sh -c 'exit 3'"))
	id := h.place("", "game", "n1", 20001)
	d := h.driver("")
	st := &countingStore{State: h.st}
	h.run(h.worker(st, d, func(c *Config) {
		c.ProcDir = procDir
		c.Interval = 20 * time.Millisecond
	}))
	h.waitShip(id, fsm.ShipFailed)
	if n := h.node("n1"); slices.Contains(n.UsedPorts, 20001) {
		t.Fatalf("the ended ship still holds its port: %+v", n)
	}
	views := st.views.Load()
	eventually(t, 10*time.Second, func() bool { return st.views.Load() >= views+20 })
	if n := h.node("n1"); !slices.Contains(n.HostPorts, 20001) {
		t.Errorf("host ports = %v, want 20001 (in use on the host; its ship %s has %s)", n.HostPorts, id, fsm.ShipFailed)
		// What it leads to: the state lets the scheduler put a new ship on
		// the port something else listens on.
		r, _ := h.ap.Apply(context.Background(), &fsm.ShipCreate{Blueprint: "game", Version: 1, Count: 1})
		if r.Err == nil {
			r2, _ := h.ap.Apply(context.Background(), &fsm.ShipPlace{Places: []fsm.Place{{Ship: r.Ships[0].ID, Node: "n1", Ports: []int{20001}}}})
			if r2.Count == 1 {
				t.Errorf("consequence: ship %s placed on port 20001, which is in use on the host", r.Ships[0].ID)
			}
		}
	}
}

// TestWorkerReleasesLostShip: a node back from the dead stops its lost
// ship and then tells the cluster nothing of it runs, which frees the
// ship's port on the node for a replacement.
func TestWorkerReleasesLostShip(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blueprint("game", sleeper())
	old := h.place("", "game", "n1", 20000)
	d := h.driver("")
	w := h.worker(nil, d, nil)
	h.reconcile(w)
	p := h.waitProc(d, old, ProcRunning)

	h.ok(&fsm.NodeUpsert{Node: nodeSpec("n1", fsm.NodeDead)})
	h.ok(&fsm.ShipLost{Node: "n1", Reason: "node n1 is dead"})
	h.ok(&fsm.NodeUpsert{Node: nodeSpec("n1", fsm.NodeAlive)})
	if n := h.node("n1"); !slices.Contains(n.UsedPorts, 20000) {
		t.Fatalf("lost ship's port freed while its process may run: %+v", n)
	}
	r := h.ok(&fsm.ShipCreate{Blueprint: "game", Version: 1, Count: 1})
	repl := r.Ships[0].ID
	h.ok(&fsm.ShipPlace{Places: []fsm.Place{{Ship: repl, Node: "n1", Ports: []int{20000}}}})
	if s := h.ship(repl); s.State != fsm.ShipQueued {
		t.Fatalf("replacement placed on the held port: %+v", s)
	}

	h.reconcile(w) // stops the old process
	h.waitGone(d, old)
	if !pidGone(p.Pid) {
		t.Fatalf("old process %d survives its stop", p.Pid)
	}
	h.reconcile(w) // reports it gone
	if s := h.ship(old); s.State != fsm.ShipLostState || !s.Released {
		t.Fatalf("old ship = %+v, want lost and released", s)
	}
	if n := h.node("n1"); slices.Contains(n.UsedPorts, 20000) || n.Ships != 0 {
		t.Fatalf("node after the release: %+v", n)
	}
	h.ok(&fsm.ShipPlace{Places: []fsm.Place{{Ship: repl, Node: "n1", Ports: []int{20000}}}})
	h.reconcile(w)
	h.waitProc(d, repl, ProcRunning)
}

// TestWorkerRemovesLogsOfPurgedShips: once an ended ship is purged from
// the state, its captured output goes too; a live ship's log stays.
func TestWorkerRemovesLogsOfPurgedShips(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blueprint("game", service("ExecStart=/bin/sh -c 'echo hello; exec sleep 1000'"))
	gone := h.place("", "game", "n1", 20000)
	kept := h.place("", "game", "n1", 20001)
	d := h.driver("")
	w := h.worker(nil, d, nil)
	h.reconcile(w)
	h.waitProc(d, gone, ProcRunning)
	h.waitProc(d, kept, ProcRunning)
	h.ok(&fsm.ShipStop{Ships: []string{gone}, Why: fsm.StopUser})
	h.reconcile(w)
	h.waitGone(d, gone)
	h.reconcile(w) // reports it stopped
	if s := h.ship(gone); s.State != fsm.ShipStopped {
		t.Fatalf("ship = %+v, want stopped", s)
	}
	if _, err := os.Stat(d.LogPath(gone)); err != nil {
		t.Fatalf("an ended ship keeps its log until purged: %v", err)
	}
	h.ok(&fsm.ShipPurge{Ships: []string{gone}})
	w.pruneLogs()
	if _, err := os.Stat(d.LogPath(gone)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log of the purged ship: %v, want it removed", err)
	}
	if _, err := os.Stat(d.LogPath(kept)); err != nil {
		t.Errorf("log of the live ship: %v, want it kept", err)
	}
}
