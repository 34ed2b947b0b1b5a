package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// The targets of the game-server issue.
const (
	targetAllocRate = 2000.0                // allocations/s
	targetAllocP99  = 20 * time.Millisecond // allocation p99
	agonesAllocLow  = 80.0                  // Agones' published allocations/s, low and high
	agonesAllocHigh = 400.0
)

// allocRound is one fleet of ready ships allocated to the last one.
type allocRound struct {
	ok, conflicts, errors int
	elapsed               time.Duration // first request sent → last answer
	lat                   []time.Duration
	// direct and forwarded split lat: requests sent to the leader, and
	// those sent to a follower, which forwards them.
	direct, forwarded []time.Duration
}

func (r allocRound) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// allocResult is the allocation figure.
type allocResult struct {
	ships, clients int
	ready          time.Duration // fleet PUT → every ship ready, first round
	rounds         []allocRound
	leftover       int
	err            string
}

// runAlloc starts a 3-node cluster of the binary with the exec driver,
// and for each round makes a fleet of cfg.allocShips ready ships and
// allocates all of them with cfg.allocClients concurrent clients spread
// over the three nodes (followers forward to the leader).
func runAlloc(ctx context.Context, cfg config, bin, dir string) (res allocResult, err error) {
	res = allocResult{ships: cfg.allocShips, clients: cfg.allocClients}
	token := randomToken()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	slog.Info("starting a 3-node Armada cluster for the allocation figure", "dir", dir)
	c, err := startArmada(bin, dir, 3, "--driver", "exec")
	defer func() {
		if err != nil && ctx.Err() == nil {
			c.logTails()
			res.err = err.Error()
		}
		c.stop()
		res.leftover = reapShipProcs(token)
	}()
	if err != nil {
		return res, err
	}
	leader, err := c.waitHealthy(ctx, 60*time.Second)
	if err != nil {
		return res, err
	}
	api := &shipsAPI{client: &http.Client{Timeout: 10 * time.Second}}
	bp := map[string]any{
		"name": "server", "unit": "[Service]\nExecStart=/bin/sleep 100000\n",
		"resources": map[string]int64{"cpu_mhz": 1, "memory_mb": 1},
		"env":       map[string]string{"BENCH_SHIP_RUN": token},
	}
	if err := api.write(ctx, leader, http.MethodPut, "/v1/blueprints/server", bp); err != nil {
		return res, err
	}
	for i := range cfg.allocRounds {
		name := fmt.Sprintf("games-%d", i+1)
		start := time.Now()
		fleet := map[string]any{"name": name, "replicas": cfg.allocShips, "versions": []map[string]any{{"blueprint": "server"}},
			"placement": map[string]string{"strategy": "spread"}}
		if err := api.write(ctx, leader, http.MethodPut, "/v1/fleets/"+name, fleet); err != nil {
			return res, err
		}
		if err := waitReady(ctx, api, leader, name, cfg.allocShips, 3*time.Minute); err != nil {
			return res, err
		}
		if i == 0 {
			res.ready = time.Since(start)
		}
		slog.Info("ships ready; allocating", "fleet", name, "ships", cfg.allocShips, "clients", cfg.allocClients)
		round := allocateAll(ctx, c.httpAddrs(), leader.httpAddr, name, cfg.allocShips, cfg.allocClients)
		res.rounds = append(res.rounds, round)
		slog.Info("allocation round", "fleet", name, "ok", round.ok, "409", round.conflicts, "errors", round.errors,
			"per second", fmt.Sprintf("%.0f", round.rate()), "p99", percentile(round.lat, 0.99))
		if round.ok != cfg.allocShips || round.errors > 0 {
			return res, fmt.Errorf("round %d: %d of %d ships allocated, %d errors", i+1, round.ok, cfg.allocShips, round.errors)
		}
		if err := api.deleteFleet(ctx, leader, name, token); err != nil {
			return res, err
		}
	}
	return res, nil
}

// waitReady polls a fleet until want of its ships are ready.
func waitReady(ctx context.Context, api *shipsAPI, n *armadaNode, fleet string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ships, err := api.ships(ctx, n, fleet)
		ready := 0
		for _, s := range ships {
			if s.State == "ready" {
				ready++
			}
		}
		if err == nil && ready == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleet %s: %d of %d ships ready after %s (%v)", fleet, ready, want, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// allocateAll sends exactly n allocations for fleet from clients
// concurrent clients, client i talking to node i mod len(addrs); leader is
// the leader's address, to tell forwarded requests apart.
func allocateAll(ctx context.Context, addrs []string, leader, fleet string, n, clients int) allocRound {
	hc := newLoadClient()
	defer hc.CloseIdleConnections()
	body := []byte(`{"fleet": "` + fleet + `"}`)
	var mu sync.Mutex
	var round allocRound
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := "http://" + addrs[i%len(addrs)] + "/v1/allocate"
			for range next {
				t0 := time.Now()
				status := postStatus(ctx, hc, url, body)
				d := time.Since(t0)
				mu.Lock()
				switch status {
				case http.StatusOK:
					round.ok++
					round.lat = append(round.lat, d)
					if addrs[i%len(addrs)] == leader {
						round.direct = append(round.direct, d)
					} else {
						round.forwarded = append(round.forwarded, d)
					}
				case http.StatusConflict:
					round.conflicts++
				default:
					round.errors++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	round.elapsed = time.Since(start)
	slices.Sort(round.lat)
	slices.Sort(round.direct)
	slices.Sort(round.forwarded)
	return round
}

func postStatus(ctx context.Context, hc *http.Client, url string, body []byte) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (r *report) writeAlloc(b *strings.Builder) {
	a := r.alloc
	if a == nil {
		return
	}
	fmt.Fprintf(b, "## Game-server allocation\n\n")
	fmt.Fprintf(b, "3 nodes of the real binary (exec driver) on loopback; a spread fleet of %s ready ships (real `sleep` processes; "+
		"all ready %s after the fleet was applied); %d concurrent clients spread over the 3 nodes (followers forward to the leader) "+
		"send `POST /v1/allocate` until every ship is allocated. Requests that arrive together are batched into one Raft entry, "+
		"with no fixed wait. Latency is per request at the client; the last two columns split the p99 between the clients of the leader "+
		"and those of the followers, whose requests travel on to the leader. Agones publishes %.0f–%.0f allocations/s.\n\n",
		fmtRate(float64(a.ships)), fmtMs(a.ready), a.clients, agonesAllocLow, agonesAllocHigh)
	fmt.Fprintf(b, "| Round | Allocated | 409 | Errors | Time | Allocations/s | p50 | p99 | Target | Verdict | p99 at the leader | p99 via a follower |\n|---|--:|--:|--:|--:|--:|--:|--:|---|---|--:|--:|\n")
	for i, rd := range a.rounds {
		p99 := percentile(rd.lat, 0.99)
		pass := rd.rate() >= targetAllocRate && p99 <= targetAllocP99 && rd.ok == a.ships
		fmt.Fprintf(b, "| %d | %d | %d | %d | %s | %s | %s | %s | ≥ %s/s, p99 ≤ %s | %s | %s | %s |\n", i+1, rd.ok, rd.conflicts, rd.errors,
			fmtMs(rd.elapsed), fmtRate(rd.rate()), fmtMs(percentile(rd.lat, 0.5)), fmtMs(p99), fmtRate(targetAllocRate), fmtMs(targetAllocP99),
			judge(pass, fmt.Sprintf("%.0f× Agones' best published figure", rd.rate()/agonesAllocHigh)),
			fmtMs(percentile(rd.direct, 0.99)), fmtMs(percentile(rd.forwarded, 0.99)))
	}
	if a.err != "" {
		fmt.Fprintf(b, "\nThe run failed: %s\n", mdCell(a.err))
	}
	fmt.Fprintf(b, "\nShip processes left after the cluster stopped: %d.\n\n", a.leftover)
}
