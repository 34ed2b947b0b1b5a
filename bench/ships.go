package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// shipPoll is how often the fleet figures read the ship list.
const shipPoll = 5 * time.Millisecond

// Ship states the fleet figures read.
const (
	stateReady = "ready"
	stateLost  = "lost"
)

// shipRec is the part of a ship record the benchmark reads.
type shipRec struct {
	ID      string `json:"id"`
	Node    string `json:"node"`
	State   string `json:"state"`
	Desired string `json:"desired"`
	Created int64  `json:"created"` // Unix ms, the leader's clock
	Updated int64  `json:"updated"`
}

func (s shipRec) ended() bool {
	return s.State == "stopped" || s.State == "failed" || s.State == stateLost
}

// startRun is one fleet start: PUT of the fleet → first ship ready, → all
// ready, as the polling client saw it.
type startRun struct {
	fleet      string
	put        time.Duration // the PUT's round trip
	first, all time.Duration // 0: not reached
	ready      int           // ready when the wait ended
	procs      int           // ship processes of the run running then
}

// lossResult is one node loss: SIGKILL of a non-leader → the fleet whole
// again on the survivors. The breakdown comes from the records: the
// victim's down_since (when the leader recorded it suspect or dead) and the lost
// ships' updated (when they were marked lost), both the leader's clock on
// this same machine.
type lossResult struct {
	ships       int
	victim      string
	leader      string
	victimShips int
	whole       time.Duration // kill → all ships ready on the survivors; 0: not reached
	dead        time.Duration // kill → victim recorded down (suspect or dead)
	lost        time.Duration // kill → its ships recorded lost (the latest)
	replaced    time.Duration // kill → replacements created (the earliest)
	err         string
}

// shipsResult is everything the real-binary fleet figures measured.
type shipsResult struct {
	ships     int // per start run
	lostGrace string
	starts    []startRun
	loss      *lossResult
	leftover  int // ship processes still there after the cluster stopped
}

// shipsAPI talks to the cluster's HTTP API.
type shipsAPI struct {
	client *http.Client
}

// runShips starts a fresh 3-node cluster of the binary with the exec
// driver and measures fleet start latency and the recovery from a node
// loss. Every ship process carries BENCH_SHIP_RUN=<token> in its
// environment, so that the benchmark can check that none is left.
func runShips(ctx context.Context, cfg config, bin, dir string) (res shipsResult, err error) {
	res = shipsResult{ships: cfg.fleetShips, lostGrace: "2 s, the default"}
	token := randomToken()
	slog.Info("starting a 3-node Armada cluster for the fleet figures", "dir", dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	c, err := startArmada(bin, dir, 3, "--driver", "exec")
	defer func() {
		if err != nil && ctx.Err() == nil {
			c.logTails()
		}
		c.stop()
		res.leftover = reapShipProcs(token)
	}()
	if err != nil {
		return res, err
	}
	leader, err := c.waitHealthy(ctx, 60*time.Second)
	if err != nil {
		return res, fmt.Errorf("armada cluster for fleets: %w", err)
	}
	api := &shipsAPI{client: &http.Client{Timeout: 10 * time.Second}}
	bp := map[string]any{
		"name": "sleeper", "unit": "[Service]\nExecStart=/bin/sleep 100000\n",
		"resources": map[string]int64{"cpu_mhz": 10, "memory_mb": 8},
		"ports":     []map[string]string{{"name": "web"}},
		"env":       map[string]string{"BENCH_SHIP_RUN": token},
	}
	if err := api.write(ctx, leader, http.MethodPut, "/v1/blueprints/sleeper", bp); err != nil {
		return res, err
	}
	for i := range cfg.fleetRuns {
		if leader, err = c.waitHealthy(ctx, 30*time.Second); err != nil {
			return res, err
		}
		run, err := api.timeStart(ctx, leader, fmt.Sprintf("start-%d", i+1), token, cfg.fleetShips)
		if err != nil {
			return res, err
		}
		res.starts = append(res.starts, run)
		slog.Info("fleet start", "run", i+1, "ships", cfg.fleetShips, "first ready", run.first, "all ready", run.all)
		if err := api.deleteFleet(ctx, leader, run.fleet, token); err != nil {
			return res, err
		}
	}
	if cfg.lossShips > 0 {
		if leader, err = c.waitHealthy(ctx, 30*time.Second); err != nil {
			return res, err
		}
		loss, err := api.timeLoss(ctx, c, leader, token, cfg.lossShips)
		res.loss = &loss
		if err != nil {
			return res, err
		}
		slog.Info("node loss", "killed", loss.victim, "fleet whole again after", loss.whole,
			"dead after", loss.dead, "lost after", loss.lost)
		if err := api.deleteFleet(ctx, leader, "loss", token); err != nil {
			return res, err
		}
	}
	return res, nil
}

// timeStart puts a spread fleet of n sleepers and polls its ships until
// all are ready.
func (a *shipsAPI) timeStart(ctx context.Context, leader *armadaNode, name, token string, n int) (startRun, error) {
	run := startRun{fleet: name}
	fleet := map[string]any{"name": name, "replicas": n, "versions": []map[string]any{{"blueprint": "sleeper"}},
		"placement": map[string]string{"strategy": "spread"}}
	body, _ := json.Marshal(fleet)
	start := time.Now()
	if err := a.do(ctx, leader, http.MethodPut, "/v1/fleets/"+name, body, nil); err != nil {
		return run, fmt.Errorf("put fleet %s: %w", name, err)
	}
	run.put = time.Since(start)
	tick := time.NewTicker(shipPoll)
	defer tick.Stop()
	for {
		ships, err := a.ships(ctx, leader, name)
		at := time.Since(start)
		if err == nil {
			run.ready = 0
			for _, s := range ships {
				if s.State == stateReady {
					run.ready++
				}
			}
			if run.ready > 0 && run.first == 0 {
				run.first = at
			}
			if run.ready >= n {
				run.all = at
				run.procs = len(shipProcs(token))
				return run, nil
			}
		}
		if at > startTimeout {
			slog.Warn("fleet not ready", "fleet", name, "ready", run.ready, "of", n, "after", at)
			return run, nil
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-tick.C:
		}
	}
}

// startTimeout bounds the wait for one fleet's ships.
const startTimeout = 60 * time.Second

// timeLoss puts a spread fleet of n ships, waits for all ready, SIGKILLs a
// non-leader node and polls until n ships are ready on the survivors.
func (a *shipsAPI) timeLoss(ctx context.Context, c *armadaCluster, leader *armadaNode, token string, n int) (lossResult, error) {
	res := lossResult{ships: n, leader: leader.name}
	run, err := a.timeStart(ctx, leader, "loss", token, n)
	if err != nil {
		return res, err
	}
	if run.all == 0 {
		res.err = fmt.Sprintf("only %d of %d ships ready before the kill", run.ready, n)
		return res, nil
	}
	ships, err := a.ships(ctx, leader, "loss")
	if err != nil {
		return res, err
	}
	var victim *armadaNode
	for _, node := range c.nodes {
		if node != leader && slices.ContainsFunc(ships, func(s shipRec) bool { return s.Node == node.name }) {
			victim = node
			break
		}
	}
	if victim == nil {
		res.err = "no non-leader node runs a ship of the fleet"
		return res, nil
	}
	var victimShips []string
	for _, s := range ships {
		if s.Node == victim.name {
			victimShips = append(victimShips, s.ID)
		}
	}
	res.victim, res.victimShips = victim.name, len(victimShips)
	if err := sleepCtx(ctx, settle); err != nil {
		return res, err
	}
	killed := time.Now()
	victim.proc.kill()
	slog.Info("node loss: SIGKILLed a non-leader", "node", victim.name, "its ships", len(victimShips))
	tick := time.NewTicker(shipPoll)
	defer tick.Stop()
	for {
		ships, err := a.ships(ctx, leader, "loss")
		at := time.Since(killed)
		if err == nil {
			ready := 0
			for _, s := range ships {
				if s.State == stateReady && s.Node != victim.name {
					ready++
				}
			}
			if ready >= n {
				res.whole = at
				break
			}
		}
		if at > lossTimeout {
			res.err = fmt.Sprintf("the fleet was not whole on the survivors %s after the kill", lossTimeout)
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
	}
	// The breakdown, from the records.
	sinceKill := func(ms int64) time.Duration { return time.UnixMilli(ms).Sub(killed) }
	var node struct {
		Status    string `json:"status"`
		DownSince int64  `json:"down_since"`
	}
	if err := a.do(ctx, leader, http.MethodGet, "/v1/nodes/"+victim.name, nil, &node); err == nil && node.DownSince > 0 {
		res.dead = sinceKill(node.DownSince)
	}
	if ships, err = a.ships(ctx, leader, "loss"); err == nil {
		for _, s := range ships {
			switch {
			case slices.Contains(victimShips, s.ID) && s.State == stateLost:
				res.lost = max(res.lost, sinceKill(s.Updated))
			case !slices.Contains(victimShips, s.ID) && s.Created > killed.UnixMilli():
				if d := sinceKill(s.Created); res.replaced == 0 || d < res.replaced {
					res.replaced = d
				}
			}
		}
	}
	return res, nil
}

// lossTimeout bounds the wait for the fleet to be whole after the kill.
const lossTimeout = 60 * time.Second

// deleteFleet deletes a fleet and waits until its ships have stopped and
// no ship process of the run is left.
func (a *shipsAPI) deleteFleet(ctx context.Context, leader *armadaNode, name, token string) error {
	if err := a.do(ctx, leader, http.MethodDelete, "/v1/fleets/"+name, nil, nil); err != nil {
		return fmt.Errorf("delete fleet %s: %w", name, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ships, err := a.ships(ctx, leader, name)
		live := 0
		for _, s := range ships {
			if !s.ended() {
				live++
			}
		}
		procs := len(shipProcs(token))
		if err == nil && live == 0 && procs == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleet %s deleted, but after 60s %d of its ships have not stopped and %d ship processes remain (err %v)", name, live, procs, err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

func (a *shipsAPI) ships(ctx context.Context, n *armadaNode, fleet string) ([]shipRec, error) {
	var out []shipRec
	err := a.do(ctx, n, http.MethodGet, "/v1/ships?fleet="+fleet, nil, &out)
	return out, err
}

// write sends a JSON write, retrying while the cluster answers 503 (no
// leader yet) for up to 20 s.
func (a *shipsAPI) write(ctx context.Context, n *armadaNode, method, path string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := a.do(ctx, n, method, path, body, nil)
		if err == nil {
			return nil
		}
		var se statusErr
		if !errors.As(err, &se) || se.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

type statusErr struct {
	status int
	body   string
}

func (e statusErr) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// do sends one request and decodes a 2xx answer into out (when not nil).
func (a *shipsAPI) do(ctx context.Context, n *armadaNode, method, path string, body []byte, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.httpAddr+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return statusErr{status: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// shipProcs lists the processes whose environment carries this run's
// token: the ship processes the benchmark's clusters started.
func shipProcs(token string) []int {
	want := []byte("BENCH_SHIP_RUN=" + token + "\x00")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// reapShipProcs waits up to 5 s for this run's ship processes to be gone
// once the cluster has stopped, SIGKILLs any left (by pid: only processes
// carrying this run's token) and returns how many it had to kill.
func reapShipProcs(token string) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := shipProcs(token)
		if len(pids) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			slog.Warn("ship processes left after the cluster stopped; killing them", "pids", pids)
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return len(pids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func randomToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
