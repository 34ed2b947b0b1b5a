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
	paced                 float64 // offered allocations/s; 0: flat out
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
	rounds         []allocRound  // flat out, then paced at the target rate
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
	for i := range cfg.allocRounds + cfg.allocPaced {
		rate := 0.0 // the first rounds run flat out, the others at the target rate
		if i >= cfg.allocRounds {
			rate = targetAllocRate
		}
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
		slog.Info("ships ready; allocating", "fleet", name, "ships", cfg.allocShips, "clients", cfg.allocClients, "offered per second", rate)
		round := allocateAll(ctx, c.httpAddrs(), leader.httpAddr, name, cfg.allocShips, cfg.allocClients, rate)
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
//
// With rate 0 every client sends its next request as soon as the last is
// answered (flat out). With a rate, request k is due at start + k/rate and
// goes to client k mod clients, which sends it when due or, if its last
// request is still out, as soon as that is answered; its latency runs from
// when it was due, so a stall counts in full for every request it delays.
func allocateAll(ctx context.Context, addrs []string, leader, fleet string, n, clients int, rate float64) allocRound {
	hc := newLoadClient()
	defer hc.CloseIdleConnections()
	warm(ctx, hc, addrs, clients)
	body := []byte(`{"fleet": "` + fleet + `"}`)
	var mu sync.Mutex
	round := allocRound{paced: rate}
	next := make(chan int, n)
	for k := range n {
		next <- k
	}
	close(next)
	start := time.Now()
	due := func(k int) time.Time {
		if rate == 0 {
			return time.Now()
		}
		return start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
	}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := "http://" + addrs[i%len(addrs)] + "/v1/allocate"
			send := func(k int) {
				t0 := due(k)
				if wait := time.Until(t0); wait > 0 {
					time.Sleep(wait)
				}
				status := postStatus(ctx, hc, url, body)
				d := time.Since(t0)
				mu.Lock()
				defer mu.Unlock()
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
			}
			if rate == 0 {
				for k := range next {
					send(k)
				}
				return
			}
			for k := i; k < n; k += clients {
				send(k)
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

// warm opens the clients' connections before the clock starts, as
// long-lived allocator clients would have them.
func warm(ctx context.Context, hc *http.Client, addrs []string, clients int) {
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addrs[i%len(addrs)]+"/v1/status", nil)
			if err != nil {
				return
			}
			if resp, err := hc.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
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
	var flat, paced []allocRound
	for _, rd := range a.rounds {
		if rd.paced == 0 {
			flat = append(flat, rd)
		} else {
			paced = append(paced, rd)
		}
	}
	fmt.Fprintf(b, "## Game-server allocation\n\n")
	fmt.Fprintf(b, "3 nodes of the real binary (exec driver) on loopback; for each round a spread fleet of %s ready ships (real `sleep` processes; "+
		"all ready %s after the first fleet was applied); %d concurrent clients spread over the 3 nodes (followers forward to the leader), "+
		"their connections opened before the clock starts, send `POST /v1/allocate` until every ship is allocated. "+
		"Requests that arrive together are batched into one Raft entry, with no fixed wait. Latency is per request at the client; "+
		"the last two columns split the p99 between the clients of the leader and those of the followers, whose requests travel on to the leader. "+
		"Agones publishes %.0f–%.0f allocations/s.\n\n",
		fmtRate(float64(a.ships)), fmtMs(a.ready), a.clients, agonesAllocLow, agonesAllocHigh)
	fmt.Fprintf(b, "**Flat out**: each client sends its next request as soon as the last is answered, so the machine is saturated "+
		"and the latency includes the queueing that saturation causes.\n\n")
	fmt.Fprintf(b, "| Round | Allocated | 409 | Errors | Time | Allocations/s | p50 | p99 | Target | Verdict | p99 at the leader | p99 via a follower |\n|---|--:|--:|--:|--:|--:|--:|--:|---|---|--:|--:|\n")
	ratePass := len(flat) > 0
	for i, rd := range flat {
		pass := rd.rate() >= targetAllocRate && rd.ok == a.ships && rd.errors == 0
		ratePass = ratePass && pass
		fmt.Fprintf(b, "| %d | %d | %d | %d | %s | %s | %s | %s | ≥ %s/s | %s | %s | %s |\n", i+1, rd.ok, rd.conflicts, rd.errors,
			fmtMs(rd.elapsed), fmtRate(rd.rate()), fmtMs(percentile(rd.lat, 0.5)), fmtMs(percentile(rd.lat, 0.99)), fmtRate(targetAllocRate),
			judge(pass, fmt.Sprintf("%.0f× Agones' best published figure", rd.rate()/agonesAllocHigh)),
			fmtMs(percentile(rd.direct, 0.99)), fmtMs(percentile(rd.forwarded, 0.99)))
	}
	fmt.Fprintf(b, "\n**At the target rate**: the %d clients together send %s requests/s: request k is due %s after the start "+
		"and goes to client k mod %d, which sends it when due, or as soon as its previous request is answered if that is still out. "+
		"Latency runs from when the request was due, so a stall counts in full for every request it holds back.\n\n",
		a.clients, fmtRate(targetAllocRate), "k/rate", a.clients)
	fmt.Fprintf(b, "| Round | Offered/s | Allocated | 409 | Errors | Time | p50 | p99 | Max | Target | Verdict | p99 at the leader | p99 via a follower |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|--:|--:|\n")
	latPass := len(paced) > 0
	for i, rd := range paced {
		p99 := percentile(rd.lat, 0.99)
		pass := p99 <= targetAllocP99 && rd.ok == a.ships && rd.errors == 0
		latPass = latPass && pass
		fmt.Fprintf(b, "| %d | %s | %d | %d | %d | %s | %s | %s | %s | p99 ≤ %s | %s | %s | %s |\n", i+1, fmtRate(rd.paced), rd.ok, rd.conflicts, rd.errors,
			fmtMs(rd.elapsed), fmtMs(percentile(rd.lat, 0.5)), fmtMs(p99), fmtMs(percentile(rd.lat, 1)), fmtMs(targetAllocP99),
			judge(pass, ""), fmtMs(percentile(rd.direct, 0.99)), fmtMs(percentile(rd.forwarded, 0.99)))
	}
	fmt.Fprintf(b, "\nTarget: ≥ %s allocations/s with p99 ≤ %s — throughput flat out in every round: %s; p99 at %s/s in every round: %s.\n",
		fmtRate(targetAllocRate), fmtMs(targetAllocP99), judge(ratePass, ""), fmtRate(targetAllocRate), judge(latPass, ""))
	if a.err != "" {
		fmt.Fprintf(b, "\nThe run failed: %s\n", mdCell(a.err))
	}
	fmt.Fprintf(b, "\nShip processes left after the cluster stopped: %d.\n\n", a.leftover)
}
