package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/armada-orchestrator/armada/internal/sandbox"
)

// The targets of issue 4 for the systemd driver.
const (
	targetUnitActive = 200 * time.Millisecond // ship placed → its unit active
	targetIdleCPU    = 0.01                   // worker CPU share with 200 units running
	sdSingles        = 20                     // one-ship placements timed one by one
	sdUnits          = 200                    // units running during the idle measurement
	sdIdle           = 30 * time.Second       // idle measurement
	sdBaseIdle       = 15 * time.Second       // idle measurement without units
)

// systemdResult is what the systemd part measured.
type systemdResult struct {
	singles   []time.Duration // placement → unit active, one ship at a time
	batch     time.Duration   // fleet PUT → all sdUnits ships ready
	batchLast time.Duration   // the slowest placement → unit active of the batch
	baseCPU   float64         // worker CPU share over sdBaseIdle before any unit
	idleCPU   float64         // worker CPU share (of one core) over sdIdle
	idleRSS   int64           // worker VmRSS after it
	systemd   float64         // systemd's (PID 1's) CPU share over the same time
	units     int             // active armada units during the idle measurement
	rollouts  []rolloutRun    // deployments of sdRollShips ships
}

// rolloutRun is one deployment timed: PUT of the new version → the
// deployment succeeded.
type rolloutRun struct {
	parallel int
	took     time.Duration
	err      string
}

// sdRollShips is the size of the fleet whose deployments are timed.
const sdRollShips = 20

// runSystemd boots a systemd sandbox, runs a worker-only node of the
// binary in it with --driver systemd (joined to a server node outside,
// which leads), and measures: placement → unit active for single
// ships, a 200-ship fleet's start, and the worker's idle CPU and memory
// while the 200 units run.
func runSystemd(ctx context.Context, bin string) (res systemdResult, err error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = "/var/cache"
	}
	// Not under /tmp: the sandbox has its own.
	if err := os.MkdirAll(filepath.Join(base, "armada-sandbox"), 0o700); err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp(filepath.Join(base, "armada-sandbox"), "bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	bctx, cancel := context.WithTimeout(ctx, time.Minute)
	sb, err := sandbox.Boot(bctx)
	cancel()
	if err != nil {
		return res, fmt.Errorf("systemd sandbox: %w", err)
	}
	defer sb.Close()
	// The leader (scheduler, Raft) runs outside, as a server; the
	// sandbox holds a worker-only node, so its process is the worker.
	srv, err := startArmada(bin, filepath.Join(dir, "server"), 1, "--role", "server")
	defer srv.stop()
	if err != nil {
		return res, err
	}
	if _, err := srv.waitHealthy(ctx, 60*time.Second); err != nil {
		return res, fmt.Errorf("server node: %w", err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return res, err
	}
	logPath := filepath.Join(dir, "node.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return res, err
	}
	defer logf.Close()
	args := []string{"join", "--name", "sd1", "--data-dir", filepath.Join(dir, "data"),
		"--http-addr", loopback(ports[0]), "--gossip-addr", loopback(ports[1]), "--raft-addr", loopback(ports[2]),
		"--driver", "systemd", "--role", "worker"}
	// ARMADA_BENCH_SD_PROFILE=file: a CPU profile of the worker over the
	// idle measurement with units (it costs the worker a little CPU).
	profile := os.Getenv("ARMADA_BENCH_SD_PROFILE")
	if profile != "" {
		args = append(args, "--debug-addr", loopback(ports[3]))
	}
	cmd := sb.Command(context.Background(), bin, append(args, srv.nodes[0].gossipAddr)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start armada in the sandbox: %w", err)
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(string(b), "\n")
			slog.Error("systemd part failed; node log tail", "log", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
		sandbox.KillInner(cmd)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	node := srv.nodes[0] // the API: the leader
	api := &shipsAPI{client: &http.Client{Timeout: 10 * time.Second}}
	if err := waitNodeReady(ctx, api, node, "sd1"); err != nil {
		return res, err
	}
	// The floor: the same worker idle with no unit at all.
	if res.baseCPU, err = idleShare(ctx, sandbox.InnerPID(cmd), sdBaseIdle); err != nil {
		return res, err
	}
	bp := map[string]any{"name": "sleeper", "unit": "[Service]\nExecStart=/bin/sleep 100000\n",
		"resources": map[string]int64{"cpu_mhz": 5, "memory_mb": 8}}
	if err := api.write(ctx, node, http.MethodPut, "/v1/blueprints/sleeper", bp); err != nil {
		return res, err
	}
	for range sdSingles {
		d, err := timeSingle(ctx, api, node, sb)
		if err != nil {
			return res, err
		}
		res.singles = append(res.singles, d)
	}
	slog.Info("systemd: single placements timed", "n", len(res.singles))
	if res.batch, res.batchLast, err = timeBatch(ctx, api, node, sb); err != nil {
		return res, err
	}
	slog.Info("systemd: fleet started", "ships", sdUnits, "all ready after", res.batch)
	worker := sandbox.InnerPID(cmd)
	units, err := activeUnits(ctx, sb)
	if err != nil {
		return res, err
	}
	res.units = units
	// Let the start settle, then measure idle.
	if err := sleepCtx(ctx, 5*time.Second); err != nil {
		return res, err
	}
	s0, err := cpuTime(sb.PID)
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	profiled := make(chan error, 1)
	if profile != "" {
		go func() { profiled <- fetchProfile(ctx, loopback(ports[3]), sdIdle-5*time.Second, profile) }()
	} else {
		profiled <- nil
	}
	if res.idleCPU, err = idleShare(ctx, worker, sdIdle); err != nil {
		return res, err
	}
	if err := <-profiled; err != nil {
		return res, fmt.Errorf("profile the worker: %w", err)
	}
	s1, err := cpuTime(sb.PID)
	if err != nil {
		return res, err
	}
	res.systemd = float64(s1-s0) / float64(time.Since(t0))
	r, err := readRSS(worker, bin)
	if err != nil {
		return res, err
	}
	res.idleRSS = r.total
	slog.Info("systemd: idle with units", "units", units, "worker cpu", res.idleCPU, "rss", r.total)
	res.rollouts, err = timeRollouts(ctx, api, node)
	return res, err
}

// timeRollouts times deployments of a fleet of sdRollShips ships from one
// version to another at max_parallel 1, then back at 5.
func timeRollouts(ctx context.Context, api *shipsAPI, n *armadaNode) ([]rolloutRun, error) {
	bp := map[string]any{"name": "roller", "unit": "[Service]\nExecStart=/bin/sleep 100000\n",
		"resources": map[string]int64{"cpu_mhz": 5, "memory_mb": 8}}
	if err := api.write(ctx, n, http.MethodPut, "/v1/blueprints/roller", bp); err != nil {
		return nil, err
	}
	bp["unit"] = "[Service]\nExecStart=/bin/sleep 99999\n"
	if err := api.write(ctx, n, http.MethodPut, "/v1/blueprints/roller", bp); err != nil {
		return nil, err
	}
	fleet := func(version, parallel int) map[string]any {
		return map[string]any{"name": "roll", "replicas": sdRollShips, "versions": []map[string]any{{"blueprint": "roller", "version": version}},
			"update": map[string]any{"max_parallel": parallel, "deadline": "2m"}}
	}
	if err := api.write(ctx, n, http.MethodPut, "/v1/fleets/roll", fleet(1, 1)); err != nil {
		return nil, err
	}
	if err := waitReady(ctx, api, n, "roll", sdRollShips, 2*time.Minute); err != nil {
		return nil, err
	}
	var out []rolloutRun
	for i, parallel := range []int{1, 5} {
		start := time.Now()
		if err := api.write(ctx, n, http.MethodPut, "/v1/fleets/roll", fleet(2-i, parallel)); err != nil {
			return out, err
		}
		run := rolloutRun{parallel: parallel}
		for {
			var deps []struct {
				State  string `json:"state"`
				Reason string `json:"reason"`
			}
			if err := api.do(ctx, n, http.MethodGet, "/v1/fleets/roll/deployments", nil, &deps); err != nil {
				return out, err
			}
			if len(deps) > 0 && deps[0].State != "running" {
				run.took = time.Since(start)
				if deps[0].State != "succeeded" {
					run.err = deps[0].State + ": " + deps[0].Reason
				}
				break
			}
			if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
				return out, err
			}
		}
		slog.Info("systemd: rollout", "ships", sdRollShips, "max_parallel", parallel, "took", run.took, "err", run.err)
		out = append(out, run)
	}
	return out, nil
}

// fetchProfile saves a CPU profile of d from the pprof endpoint at addr.
func fetchProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// idleShare is the share of one core a process uses over d.
func idleShare(ctx context.Context, pid int, d time.Duration) (float64, error) {
	c0, err := cpuTime(pid)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := sleepCtx(ctx, d); err != nil {
		return 0, err
	}
	c1, err := cpuTime(pid)
	if err != nil {
		return 0, err
	}
	return float64(c1-c0) / float64(time.Since(t0)), nil
}

// waitNodeReady waits until the worker node name is alive and has
// reported its ports range (its worker runs), as n sees it.
func waitNodeReady(ctx context.Context, api *shipsAPI, n *armadaNode, name string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		var rec struct {
			Status     string `json:"status"`
			PortsRange string `json:"ports_range"`
		}
		err := api.do(ctx, n, http.MethodGet, "/v1/nodes/"+name, nil, &rec)
		if err == nil && rec.Status == "alive" && rec.PortsRange != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node in the sandbox not ready after 60s: %v %+v", err, rec)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// timeSingle creates one ship and returns the time from its placement (the
// leader's stamp on the placing write, seen while polling) to its unit's
// ActiveEnterTimestamp (systemd's clock; the same machine).
func timeSingle(ctx context.Context, api *shipsAPI, n *armadaNode, sb *sandbox.Sandbox) (time.Duration, error) {
	var ship shipRec
	body, _ := json.Marshal(map[string]any{"blueprint": "sleeper"})
	if err := api.do(ctx, n, http.MethodPost, "/v1/ships", body, &ship); err != nil {
		return 0, fmt.Errorf("create ship: %w", err)
	}
	placed, err := waitPlacedReady(ctx, api, n, ship.ID)
	if err != nil {
		return 0, err
	}
	active, err := unitActiveAt(ctx, sb, ship.ID)
	if err != nil {
		return 0, err
	}
	if err := api.do(ctx, n, http.MethodDelete, "/v1/ships/"+ship.ID, nil, nil); err != nil {
		return 0, err
	}
	return active.Sub(placed), nil
}

// waitPlacedReady polls a ship until it is ready and returns when it was
// placed: the updated stamp of the first listing that shows it scheduled
// (or its creation, if placing and starting were too quick to be seen).
func waitPlacedReady(ctx context.Context, api *shipsAPI, n *armadaNode, id string) (time.Time, error) {
	var placed time.Time
	deadline := time.Now().Add(30 * time.Second)
	for {
		var s shipRec
		if err := api.do(ctx, n, http.MethodGet, "/v1/ships/"+id, nil, &s); err != nil {
			return placed, err
		}
		if placed.IsZero() && s.State == "scheduled" {
			placed = time.UnixMilli(s.Updated)
		}
		if s.State == stateReady {
			if placed.IsZero() {
				placed = time.UnixMilli(s.Created)
			}
			return placed, nil
		}
		if time.Now().After(deadline) {
			return placed, fmt.Errorf("ship %s not ready after 30s: %+v", id, s)
		}
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return placed, err
		}
	}
}

// unitActiveAt is when a ship's unit last became active.
func unitActiveAt(ctx context.Context, sb *sandbox.Sandbox, id string) (time.Time, error) {
	out, err := sb.Run(ctx, "systemctl", "show", "--timestamp=us+utc", "-p", "ActiveEnterTimestamp", "--value", "armada-"+id+".service")
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse("Mon 2006-01-02 15:04:05.000000 MST", out)
	if err != nil {
		return time.Time{}, fmt.Errorf("ActiveEnterTimestamp of %s: %w", id, err)
	}
	return t, nil
}

// timeBatch puts a fleet of sdUnits ships and returns the time until all
// are ready, and the slowest placement → unit active among them.
func timeBatch(ctx context.Context, api *shipsAPI, n *armadaNode, sb *sandbox.Sandbox) (time.Duration, time.Duration, error) {
	fleet := map[string]any{"name": "idle", "replicas": sdUnits, "versions": []map[string]any{{"blueprint": "sleeper"}}}
	start := time.Now()
	if err := api.write(ctx, n, http.MethodPut, "/v1/fleets/idle", fleet); err != nil {
		return 0, 0, err
	}
	placed := map[string]time.Time{}
	deadline := start.Add(2 * time.Minute)
	for {
		ships, err := api.ships(ctx, n, "idle")
		if err != nil {
			return 0, 0, err
		}
		ready := 0
		for _, s := range ships {
			if _, ok := placed[s.ID]; !ok && s.State == "scheduled" {
				placed[s.ID] = time.UnixMilli(s.Updated)
			}
			if s.State == stateReady {
				ready++
			}
		}
		if ready == sdUnits {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%d of %d ships ready after 2 minutes", ready, sdUnits)
		}
		if err := sleepCtx(ctx, shipPoll); err != nil {
			return 0, 0, err
		}
	}
	all := time.Since(start)
	var slowest time.Duration
	for id, p := range placed {
		at, err := unitActiveAt(ctx, sb, id)
		if err != nil {
			return 0, 0, err
		}
		slowest = max(slowest, at.Sub(p))
	}
	return all, slowest, nil
}

// activeUnits counts the active armada units in the sandbox.
func activeUnits(ctx context.Context, sb *sandbox.Sandbox) (int, error) {
	out, err := sb.Run(ctx, "systemctl", "list-units", "--state=active", "--plain", "--no-legend", "armada-*.service")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "armada-") {
			n++
		}
	}
	return n, nil
}

func (r *report) writeSystemd(b *strings.Builder) {
	s := r.systemd
	if s == nil {
		return
	}
	fmt.Fprintf(b, "## systemd driver\n\n")
	fmt.Fprintf(b, "A worker-only node of the real binary (`--role worker --driver systemd`, joined to a `--role server` node outside that leads and schedules) inside a systemd 252 booted as PID 1 of a PID and mount namespace (`internal/sandbox`, as the e2e tests do); ships run `/bin/sleep`. Placement → unit active is the ship's placement (the leader's stamp on the placing write, seen by polling its record every 2 ms) to the unit's `ActiveEnterTimestamp` (same machine clock): the worker writes the unit, its drop-in and its environment file and starts the unit through a job (a unit systemd has not loaded needs no daemon-reload).\n\n")
	if len(s.singles) > 0 {
		d := slices.Clone(s.singles)
		slices.Sort(d)
		p50, worst := d[len(d)/2], d[len(d)-1]
		fmt.Fprintf(b, "| Figure | Value | Target | Verdict |\n|---|--:|---|---|\n")
		fmt.Fprintf(b, "| placement → unit active, %d single ships, p50 | %s | ≤ %s | %s |\n", len(d), fmtMs(p50), fmtMs(targetUnitActive), judge(p50 <= targetUnitActive, ""))
		fmt.Fprintf(b, "| placement → unit active, %d single ships, worst | %s | ≤ %s | %s |\n", len(d), fmtMs(worst), fmtMs(targetUnitActive), judge(worst <= targetUnitActive, ""))
		if s.batch > 0 {
			fmt.Fprintf(b, "| %d-ship fleet: PUT → all ready | %s | — | — |\n", sdUnits, fmtMs(s.batch))
			fmt.Fprintf(b, "| %d-ship fleet: slowest placement → unit active | %s | — | — (systemd runs the start jobs one after another: a fork and a cgroup each) |\n", sdUnits, fmtMs(s.batchLast))
		}
		if s.units > 0 {
			fmt.Fprintf(b, "| worker CPU, idle over %s with %d units active | %.2f%% of a core | < %.0f%% | %s |\n", sdIdle, s.units, s.idleCPU*100, targetIdleCPU*100, judge(s.idleCPU < targetIdleCPU && s.units == sdUnits, ""))
			fmt.Fprintf(b, "| worker CPU, idle over %s before any unit (the floor) | %.2f%% of a core | — | — |\n", sdBaseIdle, s.baseCPU*100)
			fmt.Fprintf(b, "| systemd (PID 1) CPU over the same time | %.2f%% of a core | — | — |\n", s.systemd*100)
			fmt.Fprintf(b, "| worker VmRSS after it | %s | — | — |\n", fmtMB(s.idleRSS))
		}
		for _, r := range s.rollouts {
			verdict := "—"
			if r.err != "" {
				verdict = "**FAIL** (" + mdCell(r.err) + ")"
			}
			fmt.Fprintf(b, "| deployment of a %d-ship fleet to a new version, max_parallel %d: PUT → succeeded | %s | — | %s |\n", sdRollShips, r.parallel, fmtMs(r.took), verdict)
		}
		fmt.Fprintf(b, "\nThe idle worker follows its units through systemd's property signals (a unit that crashes or is stopped by hand is seen at once) and a `ListUnitsByPatterns` sweep every 15 s; it reconciles on every change of the state that concerns its node and every driver event, and otherwise only on its own sweep every 5 s, which also reads the host ports; every 10 s it reads each unit's CPU and memory from its cgroup files, which it holds open, and reports the figures that changed through Raft. The floor row is the same worker before any unit ran: Raft's heartbeats from the leader (every 50–100 ms at the 500 ms heartbeat timeout), gossip (a probe every 500 ms, a gossip round every 100 ms) and the Go runtime's wake-ups for them. Both rows move by about 0.1 point from run to run on a shared machine. A 60 s CPU profile of the idle worker with 200 units (`ARMADA_BENCH_SD_PROFILE=file` runs it with `--debug-addr` and saves one over the idle measurement) put about a quarter of its samples in answering heartbeats, a third in the scheduler's thread wake-ups, a tenth each in gossip, the usage samples and the garbage collector. Before, the same profile was dominated by what is gone: the empty appends Raft's pipeline sent every 20–40 ms with nothing new (the leader's transport now repeats one only every 500 ms), the usage samples opening two cgroup files per unit every 5 s, the unit sweep every 5 s and a peers file read back every second.\n\n")
	}
}
