package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/scheduler"
)

// planBenchName is the scheduler's in-process planning benchmark.
const planBenchName = "BenchmarkPlan100kOn5000"

// planResult is what `go test -bench BenchmarkPlan100kOn5000` measured:
// one plan of 100,000 queued ships on 5,000 nodes, no Raft.
type planResult struct {
	command   string
	ran       bool   // false: err says why there is no figure
	err       string // the failure, with the tail of go test's output
	iters     int
	nsPerOp   float64
	rate      float64 // placements/s
	bytesOp   float64
	allocsOp  float64
	goVersion string
}

// runPlanBench runs the scheduler's planning benchmark with go test and
// reads its placements/s. A failure is a row of the report, not the end of
// the run.
func runPlanBench(ctx context.Context, cfg config) (planResult, error) {
	args := []string{"test", "-run", "^$", "-bench", "^" + planBenchName + "$", "-benchtime", cfg.planBenchtime, "-benchmem", "./scheduler"}
	res := planResult{command: "go " + strings.Join(quoteArgs(args), " ")}
	goBin, err := exec.LookPath(cfg.goTool)
	if err != nil {
		res.err = fmt.Sprintf("no Go toolchain: %v", err)
		return res, nil
	}
	slog.Info("scheduler planning benchmark", "command", res.command)
	cmd := exec.CommandContext(ctx, goBin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	for line := range strings.Lines(out.String()) {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], planBenchName) {
			continue
		}
		res.iters, _ = strconv.Atoi(f[1])
		for i := 2; i+1 < len(f); i += 2 {
			v, perr := strconv.ParseFloat(f[i], 64)
			if perr != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				res.nsPerOp = v
			case "placements/s":
				res.rate = v
			case "B/op":
				res.bytesOp = v
			case "allocs/op":
				res.allocsOp = v
			}
		}
	}
	if v, verr := exec.CommandContext(ctx, goBin, "env", "GOVERSION").Output(); verr == nil {
		res.goVersion = strings.TrimSpace(string(v))
	}
	switch {
	case err != nil:
		res.err = fmt.Sprintf("%v: %s", err, lastLines(out.String(), 5))
	case res.rate == 0:
		res.err = "no placements/s in the output: " + lastLines(out.String(), 5)
	default:
		res.ran = true
	}
	if !res.ran {
		slog.Warn("scheduler planning benchmark failed", "err", res.err)
	} else {
		slog.Info("scheduler planning benchmark", "placements/s", int64(res.rate), "ms/plan", res.nsPerOp/1e6)
	}
	return res, nil
}

// schedResult is the committed-placement figure: an in-process 3-node
// cluster places a fleet's ships on simulated worker nodes through Raft.
type schedResult struct {
	nodes, ships int
	setup        time.Duration // applying the simulated nodes and their reports
	elapsed      time.Duration // FleetPut applied → every ship scheduled, as polled
	placed       int           // ships scheduled when the wait ended
	entries      uint64        // Raft log entries the leader applied in that time
	cpu          time.Duration // CPU the driver process (the 3 nodes) used in that time
	peakRSS      int64         // VmHWM of the driver process after the run
	// The breakdown, from the scheduler's side: when its commands came back
	// applied on the leader, since the FleetPut was sent.
	created               time.Duration // ShipCreate
	firstPlace, lastPlace time.Duration // the first and last ShipPlace
	placeCmds             int
	err                   string // why the figure is missing or partial
}

func (r schedResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.placed) / r.elapsed.Seconds()
}

// schedNode is one in-process node and the HTTP server for its internal
// API (forwarding, the catch-up check before a promotion).
type schedNode struct {
	name  string
	node  *cluster.Node
	srv   *http.Server
	timed *timedApplier
}

// schedPoll is how often the committed-placement wait looks at the state.
const schedPoll = 50 * time.Millisecond

// runSched starts 3 in-process server nodes with the scheduler on the
// leader, exactly as `armada join` wires it, records cfg.schedNodes
// simulated worker nodes, then times a fleet of cfg.schedShips ships from
// its FleetPut to every ship scheduled.
func runSched(ctx context.Context, cfg config, dir string) (res schedResult, err error) {
	res = schedResult{nodes: cfg.schedNodes, ships: cfg.schedShips}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	logPath := filepath.Join(dir, "cluster.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return res, err
	}
	defer logf.Close()
	logger := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.Info("starting a 3-node in-process cluster for the scheduler", "dir", dir)

	var nodes []*schedNode
	defer func() {
		for _, n := range nodes {
			n.srv.Close()
			n.node.Shutdown()
		}
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "--- last lines of the in-process cluster's log (%s) ---\n%s\n", logPath, fileTail(logPath, 20))
		}
	}()
	ports, err := freePorts(9)
	if err != nil {
		return res, err
	}
	for i := range 3 {
		n, err := startSchedNode(i, ports, dir, logger)
		if err != nil {
			return res, err
		}
		nodes = append(nodes, n)
	}
	leader, err := waitSchedLeader(ctx, nodes, 60*time.Second)
	if err != nil {
		return res, err
	}
	slog.Info("in-process cluster ready", "leader", leader.name)

	t0 := time.Now()
	if err := addSimNodes(ctx, leader.node, cfg.schedNodes); err != nil {
		return res, err
	}
	res.setup = time.Since(t0)
	slog.Info("simulated worker nodes recorded", "nodes", cfg.schedNodes, "took", res.setup.Round(time.Millisecond))

	var key []byte
	st := leader.node.State()
	st.View(func(v *fsm.View) error {
		key = v.SecretKey()
		return nil
	})
	put, err := fsm.PrepareBlueprint(key, &fsm.Blueprint{
		Name: "arena", Unit: "[Service]\nExecStart=/bin/sleep 100000\n",
		Resources: fsm.Resources{CPUMHz: 100, MemoryMB: 128}, Ports: []fsm.Port{{Name: "game", Protocol: "udp"}},
	})
	if err != nil {
		return res, fmt.Errorf("blueprint: %w", err)
	}
	if _, err := leader.node.Apply(ctx, put); err != nil {
		return res, fmt.Errorf("apply blueprint: %w", err)
	}
	// Let the scheduler's passes over the new nodes end first.
	if err := sleepCtx(ctx, time.Second); err != nil {
		return res, err
	}

	slog.Info("fleet put", "replicas", cfg.schedShips)
	leader.timed.reset()
	cpu0, _ := cpuTime(os.Getpid())
	idx0 := st.Index()
	start := time.Now()
	fleet := &fsm.FleetPut{Spec: fsm.Fleet{Name: "arena", Replicas: cfg.schedShips,
		Versions: []fsm.FleetVersion{{Blueprint: "arena", Weight: 1}}}}
	if _, err := leader.node.Apply(ctx, fleet); err != nil {
		return res, fmt.Errorf("apply fleet: %w", err)
	}
	res.placed, res.elapsed, err = waitPlaced(ctx, st, cfg.schedShips, start, cfg.schedTimeout)
	if err != nil {
		return res, err
	}
	cpu1, _ := cpuTime(os.Getpid())
	res.cpu, res.entries = cpu1-cpu0, st.Index()-idx0
	t := leader.timed
	t.mu.Lock()
	since := func(at time.Time) time.Duration {
		if at.IsZero() {
			return 0
		}
		return at.Sub(start)
	}
	res.created, res.firstPlace, res.lastPlace, res.placeCmds = since(t.created), since(t.firstPlace), since(t.lastPlace), t.places
	t.mu.Unlock()
	if res.placed < cfg.schedShips {
		res.err = fmt.Sprintf("only %d of %d ships scheduled after %s", res.placed, cfg.schedShips, cfg.schedTimeout)
		slog.Warn("committed placements", "err", res.err)
	} else {
		slog.Info("committed placements", "ships", res.placed, "took", res.elapsed.Round(time.Millisecond),
			"placements/s", int64(res.rate()), "raft entries", res.entries, "ShipCreate applied", res.created.Round(time.Millisecond),
			"ShipPlace applied", fmt.Sprintf("%s..%s (%d)", res.firstPlace.Round(time.Millisecond), res.lastPlace.Round(time.Millisecond), res.placeCmds))
	}
	// Check with the ship records themselves, outside the timing.
	st.View(func(v *fsm.View) error {
		scheduled := len(v.Ships(fsm.ShipFilter{Fleet: "arena", State: fsm.ShipScheduled}))
		queued := len(v.Queue(fsm.SchedulerQueue))
		if scheduled != res.placed || queued != cfg.schedShips-res.placed {
			res.err = strings.TrimPrefix(res.err+fmt.Sprintf("; the records say %d scheduled and %d queued", scheduled, queued), "; ")
		}
		return nil
	})
	res.peakRSS = peakRSS()
	return res, nil
}

func startSchedNode(i int, ports []int, dir string, logger *slog.Logger) (*schedNode, error) {
	name := fmt.Sprintf("s%d", i+1)
	ln, err := net.Listen("tcp", loopback(ports[3*i+2]))
	if err != nil {
		return nil, fmt.Errorf("listen http for %s: %w", name, err)
	}
	ccfg := cluster.Config{
		Name: name, DataDir: filepath.Join(dir, name),
		GossipAddr: loopback(ports[3*i]), RaftAddr: loopback(ports[3*i+1]), HTTPAddr: ln.Addr().String(),
		// Servers only: the simulated nodes are the only workers.
		Role: cluster.RoleServer,
		// The simulated nodes exist as records only, not in gossip. The
		// leader's reconciler marks a record gossip does not know dead once
		// it has led for 10 probe intervals; a 1 h interval keeps it from
		// doing so during the run. Nothing on the scheduling path reads it.
		ProbeInterval: time.Hour,
		Logger:        logger.With("node", name),
	}
	if i > 0 {
		ccfg.Seeds = []string{loopback(ports[0])}
	}
	node, err := cluster.New(ccfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	schedLog := logger.With("node", name, "component", "scheduler")
	timed := &timedApplier{node: node}
	node.OnLeader(func(ctx context.Context) {
		scheduler.Run(ctx, node.State(), timed, scheduler.Config{Logger: schedLog})
	})
	if err := node.Start(context.Background(), fsm.Resources{}); err != nil {
		ln.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	srv := &http.Server{Handler: node.InternalHandler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &schedNode{name: name, node: node, srv: srv, timed: timed}, nil
}

// timedApplier passes the scheduler's commands to the node unchanged and
// notes when the ShipCreate and ShipPlace commands came back applied, for
// the breakdown of the committed figure.
type timedApplier struct {
	node *cluster.Node

	mu                    sync.Mutex
	created               time.Time // the last ShipCreate applied
	firstPlace, lastPlace time.Time
	places                int // ShipPlace commands applied
}

func (a *timedApplier) Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error) {
	r, err := a.node.Apply(ctx, c)
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	switch c.(type) {
	case *fsm.ShipCreate:
		a.created = now
	case *fsm.ShipPlace:
		if a.places == 0 {
			a.firstPlace = now
		}
		a.lastPlace = now
		a.places++
	}
	return r, err
}

func (a *timedApplier) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.created, a.firstPlace, a.lastPlace, a.places = time.Time{}, time.Time{}, time.Time{}, 0
}

// waitSchedLeader waits for one node to lead a cluster of 3 alive voters
// that has its key.
func waitSchedLeader(ctx context.Context, nodes []*schedNode, timeout time.Duration) (*schedNode, error) {
	deadline := time.Now().Add(timeout)
	why := "no leader"
	for {
		for _, n := range nodes {
			if !n.node.IsLeader() {
				continue
			}
			voters, keyed := 0, false
			n.node.State().View(func(v *fsm.View) error {
				for _, r := range v.Nodes() {
					if r.Role == fsm.RoleVoter && r.Status == fsm.NodeAlive {
						voters++
					}
				}
				keyed = v.SecretKey() != nil
				return nil
			})
			if voters == len(nodes) && keyed {
				return n, nil
			}
			why = fmt.Sprintf("leader %s sees %d alive voters, key %v", n.name, voters, keyed)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("in-process cluster not ready after %s: %s", timeout, why)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// simNode is the name of simulated worker node i.
func simNode(i int) string { return fmt.Sprintf("sim-%05d", i) }

// addSimNodes records n alive worker nodes with room for far more ships
// than the fleet has, and a ports range for each, as a worker's first
// report would. The commands go in concurrently, so the leader groups them
// into few log entries.
func addSimNodes(ctx context.Context, node *cluster.Node, n int) error {
	const writers = 128
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range writers {
		wg.Go(func() {
			for i := range next {
				name := simNode(i)
				_, err := node.Apply(ctx, &fsm.NodeUpsert{Node: fsm.Node{
					Name: name, Address: "10.0.0.1", Role: fsm.RoleWorker, Worker: true, Status: fsm.NodeAlive,
					Capacity: fsm.Resources{CPUMHz: 64000, MemoryMB: 256 << 10},
				}})
				if err == nil {
					_, err = node.Apply(ctx, &fsm.NodeReport{Name: name, PortsRange: "20000-29999"})
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("record simulated node %s: %w", name, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// waitPlaced polls the leader's state every schedPoll until want ships
// are placed or timeout. It reads the node records (a ship the scheduler
// places counts on its node) only when the applied index has moved, so
// the polling costs next to nothing while the leader works.
func waitPlaced(ctx context.Context, st *fsm.State, want int, start time.Time, timeout time.Duration) (int, time.Duration, error) {
	tick := time.NewTicker(schedPoll)
	defer tick.Stop()
	var seen uint64
	placed := 0
	for {
		if idx := st.Index(); idx != seen {
			seen = idx
			placed = 0
			st.View(func(v *fsm.View) error {
				for _, n := range v.Nodes() {
					if strings.HasPrefix(n.Name, "sim-") {
						placed += n.Ships
					}
				}
				return nil
			})
			if placed >= want {
				return placed, time.Since(start), nil
			}
		}
		if time.Since(start) > timeout {
			return placed, time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return placed, 0, ctx.Err()
		case <-tick.C:
		}
	}
}

// peakRSS is this process's peak resident memory (VmHWM), 0 if unknown.
func peakRSS() int64 {
	var kb int64
	scanProc(os.Getpid(), "status", func(f []string) error {
		if f[0] == "VmHWM:" && len(f) >= 2 {
			kb, _ = strconv.ParseInt(f[1], 10, 64)
		}
		return nil
	})
	return kb * 1024
}

// quoteArgs shell-quotes the arguments that need it, for the report.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$ *'\"") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}

func lastLines(s string, n int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(all[max(0, len(all)-n):], " | ")
}

func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-n):], "\n")
}
