package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// putFunc sends worker's request number seq — a write, committed when it
// returns, or a read — and returns once it is answered.
type putFunc func(ctx context.Context, worker, seq int) error

// loadSpec is one row of the write benchmark.
type loadSpec struct {
	system  string // "Armada", "etcd", …
	op      string // "write" or "read", for the log; "" is "write"
	target  string // where the writes go, for the report
	writers int
	put     putFunc
	// procs are the processes whose CPU use is measured over the window:
	// the servers, leader first, then the benchmark driver itself.
	procs []watched
}

// watched is a process whose CPU use a row measures.
type watched struct {
	name string
	pid  int
}

// loadResult is what one row measured. Only requests that completed
// inside the measurement window (after the warm-up) count.
type loadResult struct {
	loadSpec
	window     time.Duration
	writes     int
	errors     int
	firstErr   string
	p50, p99   time.Duration
	maxLatency time.Duration
	cpu        []time.Duration // CPU each of procs used inside the window, then the whole machine's
}

func (r loadResult) rate() float64 { return float64(r.writes) / r.window.Seconds() }

// workerStats is one writer's share of a row.
type workerStats struct {
	latencies []time.Duration
	errors    int
	firstErr  error
}

// runLoad runs spec.writers concurrent writers, each sending its next
// write as soon as the previous one is answered, for warmup+window, and
// measures the writes that complete inside the window.
func runLoad(ctx context.Context, spec loadSpec, warmup, window time.Duration) (loadResult, error) {
	slog.Info("load", "system", spec.system, "op", orDefault(spec.op, "write"), "target", spec.target, "clients", spec.writers, "duration", window)
	from := time.Now().Add(warmup)
	to := from.Add(window)
	stats := make([]workerStats, spec.writers)
	var wg sync.WaitGroup
	for w := range spec.writers {
		wg.Go(func() { stats[w] = runWriter(ctx, spec.put, w, from, to) })
	}
	var cpu []time.Duration
	var cpuErr error
	wg.Go(func() { cpu, cpuErr = measureCPU(ctx, spec.procs, from, to) })
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return loadResult{}, err
	}
	if cpuErr != nil { // a server died mid-row
		return loadResult{}, cpuErr
	}
	res := loadResult{loadSpec: spec, window: window, cpu: cpu}
	var all []time.Duration
	for _, s := range stats {
		all = append(all, s.latencies...)
		res.errors += s.errors
		if s.firstErr != nil && res.firstErr == "" {
			res.firstErr = s.firstErr.Error()
		}
	}
	slices.Sort(all)
	res.writes = len(all)
	res.p50, res.p99 = percentile(all, 0.50), percentile(all, 0.99)
	if len(all) > 0 {
		res.maxLatency = all[len(all)-1]
	}
	slog.Info("load done", "system", spec.system, "op", orDefault(spec.op, "write"), "clients", spec.writers, "ops/s", int(res.rate()),
		"p50", res.p50, "p99", res.p99, "max", res.maxLatency, "errors", res.errors)
	return res, nil
}

// measureCPU is the CPU each process used between from and to, followed
// by the CPU the whole machine used (every process, kernel included).
func measureCPU(ctx context.Context, procs []watched, from, to time.Time) ([]time.Duration, error) {
	sample := func() ([]time.Duration, error) {
		out := make([]time.Duration, len(procs)+1)
		for i, p := range procs {
			t, err := cpuTime(p.pid)
			if err != nil {
				return nil, fmt.Errorf("CPU of %s: %w", p.name, err)
			}
			out[i] = t
		}
		t, err := machineCPUTime()
		out[len(procs)] = t
		return out, err
	}
	if err := sleepCtx(ctx, time.Until(from)); err != nil {
		return nil, err
	}
	start, err := sample()
	if err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, time.Until(to)); err != nil {
		return nil, err
	}
	end, err := sample()
	if err != nil {
		return nil, err
	}
	for i := range end {
		end[i] -= start[i]
	}
	return end, nil
}

// runWriter writes until to, recording the requests that end in [from, to).
func runWriter(ctx context.Context, put putFunc, worker int, from, to time.Time) workerStats {
	var s workerStats
	for seq := 0; ctx.Err() == nil; seq++ {
		start := time.Now()
		if !start.Before(to) {
			break
		}
		err := put(ctx, worker, seq)
		end := time.Now()
		if end.Before(from) || !end.Before(to) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			s.errors++
			if s.firstErr == nil {
				s.firstErr = err
			}
			continue
		}
		s.latencies = append(s.latencies, end.Sub(start))
	}
	return s
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(float64(len(sorted))*p)) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// newLoadClient is the one HTTP client every writer shares, with enough
// idle connections per host that 64 writers never redial.
func newLoadClient() *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        512,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

// benchValue is an n-byte printable value.
func benchValue(n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	v := make([]byte, n)
	for i := range v {
		v[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return v
}

// do sends one request and fails unless the answer is 200. The body is
// read to the end so that the connection is reused.
func do(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// armadaPut writes bench/<prefix><worker>/<seq> through PUT /v1/kv; writer
// w sends to addrs[w % len(addrs)].
func armadaPut(client *http.Client, addrs []string, prefix string, value []byte) putFunc {
	return func(ctx context.Context, worker, seq int) error {
		url := fmt.Sprintf("http://%s/v1/kv/bench/%s%d/%d", addrs[worker%len(addrs)], prefix, worker, seq)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(value))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		return do(client, req)
	}
}

// etcdPut writes the same keys through etcd's JSON gateway, POST
// /v3/kv/put with base64 key and value.
func etcdPut(client *http.Client, addr, prefix string, value []byte) putFunc {
	b64 := base64.StdEncoding.EncodeToString
	val := b64(value)
	return func(ctx context.Context, worker, seq int) error {
		body, err := json.Marshal(map[string]string{"key": b64(fmt.Appendf(nil, "bench/%s%d/%d", prefix, worker, seq)), "value": val})
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v3/kv/put", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		return do(client, req)
	}
}
