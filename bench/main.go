// Command bench benchmarks a 3-node Armada cluster of the real binary on
// loopback — committed-write throughput and latency, leader failover time
// and idle memory — next to a 3-member etcd cluster measured in the same
// run when etcd is installed; then the scheduler (placements/s planned in
// process and committed through an in-process 3-node cluster) and fleets
// of real ship processes (start latency, recovery from a node loss); then
// the etcd, ZooKeeper and Redis adapters next to a 3-member etcd, a
// 3-member ZooKeeper 3.8 and one redis-server (bench/adapter.go); and
// writes the figures to a Markdown report.
//
//	go run ./bench -armada bin/armada -out docs/BENCHMARKS.md
//
// -only runs some of the parts (see -help), and the size
// flags shrink them, for a quick check.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	armada    string
	etcd      string
	out       string
	duration  time.Duration
	warmup    time.Duration
	idle      time.Duration
	failovers int
	keep      bool

	only          string // comma-separated parts to run; "" runs all
	goTool        string
	planBenchtime string
	schedNodes    int
	schedShips    int
	schedTimeout  time.Duration
	fleetShips    int
	fleetRuns     int
	lossShips     int
	allocShips    int
	allocClients  int
	allocRounds   int
	allocPaced    int
	cpuProfile    string

	eventSubscribers int
	events           int

	adapterDuration time.Duration // measured time of each adapter row
	adapterRounds   int           // rounds of each adapter figure, reference and Armada alternating
}

func parseFlags() config {
	var c config
	flag.StringVar(&c.armada, "armada", "bin/armada", "the armada binary to benchmark")
	flag.StringVar(&c.etcd, "etcd", "/usr/bin/etcd", "the etcd binary for the reference run (skipped when missing)")
	flag.StringVar(&c.out, "out", "docs/BENCHMARKS.md", "where to write the Markdown report")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "measured time of each write-load row")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured warm-up before each write-load and adapter row")
	flag.DurationVar(&c.adapterDuration, "adapter-duration", 5*time.Second, "measured time of each row of the etcd, ZooKeeper and Redis adapter figures")
	flag.IntVar(&c.adapterRounds, "adapter-rounds", 3, "rounds of each adapter figure: the reference then Armada, each started afresh; each row reports its median round")
	flag.DurationVar(&c.idle, "idle", 5*time.Second, "idle time before reading each process's RSS")
	flag.IntVar(&c.failovers, "failovers", 3, "leader kills to time")
	flag.BoolVar(&c.keep, "keep", false, "keep the temp dir (data and logs) instead of removing it")
	flag.StringVar(&c.only, "only", "", "run only these parts, comma-separated: "+strings.Join(allParts, ", ")+" (default: all)")
	flag.StringVar(&c.goTool, "go", "go", "the go command that runs the scheduler's planning benchmark")
	flag.StringVar(&c.planBenchtime, "plan-benchtime", "10x", "-benchtime of the scheduler's planning benchmark")
	flag.IntVar(&c.schedNodes, "sched-nodes", 5000, "simulated worker nodes of the committed-placement figure")
	flag.IntVar(&c.schedShips, "sched-ships", 100_000, "ships of the committed-placement figure's fleet")
	flag.DurationVar(&c.schedTimeout, "sched-timeout", 5*time.Minute, "longest wait for the committed-placement fleet")
	flag.IntVar(&c.fleetShips, "fleet-ships", 100, "ships of each fleet-start run on the real binary")
	flag.IntVar(&c.fleetRuns, "fleet-runs", 3, "fleet-start runs")
	flag.IntVar(&c.lossShips, "loss-ships", 30, "ships of the node-loss fleet (0 skips the node loss)")
	flag.IntVar(&c.allocShips, "alloc-ships", 2000, "ready ships of each allocation round")
	flag.IntVar(&c.allocClients, "alloc-clients", 64, "concurrent allocation clients")
	flag.IntVar(&c.allocRounds, "alloc-rounds", 2, "allocation rounds flat out (a fresh fleet each)")
	flag.IntVar(&c.allocPaced, "alloc-paced", 3, "allocation rounds at the target rate (a fresh fleet each)")
	flag.IntVar(&c.eventSubscribers, "event-subscribers", 100, "subscribers of the event-stream figure")
	flag.IntVar(&c.events, "events", 300, "state changes each event-stream subscriber receives")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the driver process (which hosts the in-process cluster) to this file")
	flag.Parse()
	return c
}

func main() {
	cfg := parseFlags()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile, err := startCPUProfile(cfg.cpuProfile)
	if err != nil {
		slog.Error("cpu profile", "err", err)
		os.Exit(2)
	}
	err = run(ctx, cfg)
	stopProfile()
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case err == nil:
	case interrupted:
		slog.Error("interrupted; processes stopped and temp files removed")
		os.Exit(130)
	default:
		slog.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

// startCPUProfile profiles the driver process into path ("" : no
// profile) until the function it returns is called.
func startCPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// run does the whole benchmark. Every process it starts is stopped, and
// its temp dir removed, before it returns, whatever happens.
func run(ctx context.Context, cfg config) error {
	if cfg.duration <= 0 || cfg.adapterDuration <= 0 || cfg.adapterRounds < 1 || cfg.warmup < 0 || cfg.idle < 0 || cfg.failovers < 1 {
		return errors.New("-duration, -adapter-duration, -adapter-rounds and -failovers must be positive, -warmup and -idle not negative")
	}
	parts, err := parseParts(cfg.only)
	if err != nil {
		return err
	}
	if cfg.eventSubscribers < 1 || cfg.events < 1 {
		return errors.New("-event-subscribers and -events must be positive")
	}
	if cfg.schedNodes < 1 || cfg.schedShips < 1 || cfg.schedShips > 100_000 || cfg.fleetShips < 1 || cfg.fleetRuns < 1 || cfg.lossShips < 0 ||
		cfg.allocShips < 1 || cfg.allocClients < 1 || cfg.allocRounds < 1 || cfg.allocPaced < 0 {
		return errors.New("-sched-nodes, -fleet-ships and -fleet-runs must be positive, -sched-ships 1..100000, -loss-ships not negative, -alloc-* positive")
	}
	bin, err := filepath.Abs(cfg.armada)
	if err == nil {
		bin, err = filepath.EvalSymlinks(bin) // as /proc/<pid>/smaps names it
	}
	if err != nil {
		return fmt.Errorf("armada binary: %w", err)
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("armada binary %s is not an executable file (run `make build` first)", bin)
	}
	withEtcd := false
	if parts["kv"] {
		if withEtcd, err = etcdInstalled(cfg.etcd); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
		return fmt.Errorf("report dir: %w", err)
	}
	dir, err := os.MkdirTemp("", "armada-bench-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	if cfg.keep {
		slog.Info("keeping data and logs", "dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	rep := &report{started: time.Now(), cfg: cfg, kv: parts["kv"]}
	rep.machine = readMachine(bin)
	client := newLoadClient()
	defer client.CloseIdleConnections()
	value := benchValue(128)
	adapterValue := benchValue(adapterValueSize)

	switch {
	case withEtcd:
		rep.etcdVersion = etcdVersion(cfg.etcd)
		if err := runEtcd(ctx, cfg, filepath.Join(dir, "etcd"), client, value, rep); err != nil {
			return fmt.Errorf("etcd reference: %w", err)
		}
	case parts["kv"]:
		slog.Warn("etcd is not installed: the report will have no reference", "etcd", cfg.etcd)
	}
	if parts["kv"] {
		if err := runArmada(ctx, cfg, bin, filepath.Join(dir, "armada"), client, value, rep); err != nil {
			return err
		}
	}
	if err := runFleetParts(ctx, cfg, parts, bin, dir, rep); err != nil {
		return err
	}
	if parts["events"] {
		res, err := runEvents(ctx, cfg, bin, filepath.Join(dir, "events"))
		if err != nil {
			return fmt.Errorf("event stream: %w", err)
		}
		rep.events = &res
	}
	var zb *adapterBench
	if parts["zk"] {
		if zb, err = runZK(ctx, cfg, bin, filepath.Join(dir, "zk"), adapterValue); err != nil {
			return err
		}
	}
	if parts["systemd"] {
		res, err := runSystemd(ctx, bin)
		rep.systemd = &res
		if err != nil {
			return fmt.Errorf("systemd figures: %w", err)
		}
	}
	var more []*adapterBench
	if parts["etcdapi"] {
		ab, err := runEtcdAPI(ctx, cfg, bin, filepath.Join(dir, "etcdapi"), adapterValue)
		if err != nil {
			return err
		}
		more = append(more, ab)
	}
	if parts["redis"] {
		ab, err := runRedis(ctx, cfg, bin, filepath.Join(dir, "redis"), adapterValue)
		if err != nil {
			return err
		}
		more = append(more, ab)
	}
	rep.took = time.Since(rep.started)
	md := rep.markdown()
	if zb != nil {
		md += zb.markdown()
	}
	for _, ab := range more {
		md += ab.markdown()
	}
	if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	slog.Info("report written", "out", cfg.out, "took", rep.took.Round(time.Second))
	return nil
}

// runArmada starts the cluster and measures, in order: idle RSS of the
// fresh cluster, the write rows, idle RSS after them, the failover trials.
func runArmada(ctx context.Context, cfg config, bin, dir string, client *http.Client, value []byte, rep *report) (err error) {
	slog.Info("starting a 3-node Armada cluster", "dir", dir)
	c, err := startArmada(bin, dir, 3)
	defer func() {
		if err != nil && ctx.Err() == nil {
			c.logTails()
		}
		c.stop()
	}()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := c.waitHealthy(ctx, 60*time.Second); err != nil {
		return fmt.Errorf("armada cluster: %w", err)
	}
	slog.Info("armada cluster ready: one leader, 3 voters", "after", time.Since(t0).Round(time.Millisecond))
	fresh, err := idleRSS(ctx, cfg.idle, bin, c.procs())
	if err != nil {
		return err
	}
	if err := armadaWrites(ctx, cfg, c, client, value, rep); err != nil {
		return err
	}
	leader, err := c.waitHealthy(ctx, 30*time.Second)
	if err != nil {
		return fmt.Errorf("after the write load: %w", err)
	}
	loaded, err := idleRSS(ctx, cfg.idle, bin, c.procs())
	if err != nil {
		return err
	}
	rep.armadaRSS = rssRows(c.procs(), leader.proc.pid(), fresh, loaded)
	rep.failovers, err = runFailovers(ctx, c, cfg.failovers)
	return err
}

// armadaWrites runs the write rows: 1, 16 and 64 writers to the leader,
// then 64 writers spread over all nodes.
func armadaWrites(ctx context.Context, cfg config, c *armadaCluster, client *http.Client, value []byte, rep *report) error {
	rows := []struct {
		writers    int
		roundRobin bool
	}{{1, false}, {16, false}, {64, false}, {64, true}}
	for _, row := range rows {
		leader, err := c.waitHealthy(ctx, 30*time.Second)
		if err != nil {
			return fmt.Errorf("before %d writers: %w", row.writers, err)
		}
		spec := loadSpec{system: "Armada", target: "leader (" + leader.name + ")", writers: row.writers, procs: c.watch(leader),
			put: armadaPut(client, []string{leader.httpAddr}, fmt.Sprintf("c%d-", row.writers), value)}
		if row.roundRobin {
			spec.target = "all 3 nodes, round-robin"
			spec.put = armadaPut(client, c.httpAddrs(), fmt.Sprintf("rr%d-", row.writers), value)
		}
		if err := rep.addLoad(ctx, spec, cfg); err != nil {
			return err
		}
	}
	return nil
}

// runEtcd measures the reference: idle RSS of the fresh cluster, the
// 64-writer row against the etcd leader, then idle RSS again.
func runEtcd(ctx context.Context, cfg config, dir string, client *http.Client, value []byte, rep *report) (err error) {
	slog.Info("starting a 3-member etcd cluster", "etcd", rep.etcdVersion, "dir", dir)
	etcdBin, err := filepath.EvalSymlinks(cfg.etcd) // as /proc/<pid>/smaps names it
	if err != nil {
		return fmt.Errorf("etcd binary: %w", err)
	}
	c, err := startEtcd(etcdBin, dir, 3)
	defer func() {
		if err != nil && ctx.Err() == nil {
			c.logTails()
		}
		c.stop()
	}()
	if err != nil {
		return err
	}
	leader, err := c.waitLeader(ctx, 60*time.Second)
	if err != nil {
		return err
	}
	fresh, err := idleRSS(ctx, cfg.idle, etcdBin, c.procs())
	if err != nil {
		return err
	}
	spec := loadSpec{system: "etcd", target: "leader (" + leader.name + "), JSON gateway", writers: 64, procs: c.watch(leader),
		put: etcdPut(client, leader.clientAddr, "c64-", value)}
	if err := rep.addLoad(ctx, spec, cfg); err != nil {
		return err
	}
	if leader, err = c.waitLeader(ctx, 30*time.Second); err != nil {
		return err
	}
	loaded, err := idleRSS(ctx, cfg.idle, etcdBin, c.procs())
	if err != nil {
		return err
	}
	rep.etcdRSS = rssRows(c.procs(), leader.proc.pid(), fresh, loaded)
	return nil
}

// idleRSS waits idle, then reads the memory of each process.
func idleRSS(ctx context.Context, idle time.Duration, exe string, procs []watched) ([]rss, error) {
	slog.Info("idle before reading RSS", "for", idle)
	if err := sleepCtx(ctx, idle); err != nil {
		return nil, err
	}
	out := make([]rss, len(procs))
	for i, p := range procs {
		r, err := readRSS(p.pid, exe)
		if err != nil {
			return nil, fmt.Errorf("RSS of %s: %w", p.name, err)
		}
		out[i] = r
	}
	return out, nil
}

// rssRows pairs the two readings of each process.
func rssRows(procs []watched, leaderPID int, fresh, loaded []rss) []rssRow {
	rows := make([]rssRow, len(procs))
	for i, p := range procs {
		rows[i] = rssRow{name: p.name, leader: p.pid == leaderPID, fresh: fresh[i], loaded: loaded[i]}
	}
	return rows
}

// commandLine is how this run was invoked, for the report.
func commandLine() string {
	return "go run ./bench " + strings.Join(os.Args[1:], " ")
}
