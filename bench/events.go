package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/armada-orchestrator/armada/web"
)

// The targets of the event stream and UI issue.
const (
	targetEventP99  = 50 * time.Millisecond
	targetFirstLoad = 300 << 10 // bytes
	eventWriteGap   = 20 * time.Millisecond
)

// eventsResult is the event-stream and UI figures.
type eventsResult struct {
	subscribers, events int
	latencies           []time.Duration // one per event per subscriber, sorted
	missing             int             // events a subscriber never received
	writeP50            time.Duration   // the PUTs' own round trip
	staticBytes         int             // index.html + its CSS and JS
	staticTime          time.Duration   // fetching them over a fresh connection
	browser             *browserLoad    // nil when chromium is not installed
	browserErr          string
}

// browserLoad is a first load measured in headless chromium.
type browserLoad struct {
	live      time.Duration // navigation start → the page rendered and following events
	bytes     int           // every response of the load: page, assets, API reads
	resources int
}

// runEvents starts a 3-node cluster, subscribes subscribers spread over
// its nodes to the blueprint events, writes blueprints one at a time to
// the leader and times each event's arrival at every subscriber; then
// measures the UI's first load.
func runEvents(ctx context.Context, cfg config, bin, dir string) (res eventsResult, err error) {
	slog.Info("starting a 3-node Armada cluster for the event stream", "dir", dir)
	c, err := startArmada(bin, dir, 3)
	defer func() {
		if err != nil && ctx.Err() == nil {
			c.logTails()
		}
		c.stop()
	}()
	if err != nil {
		return res, err
	}
	leader, err := c.waitHealthy(ctx, 60*time.Second)
	if err != nil {
		return res, err
	}
	res.subscribers, res.events = cfg.eventSubscribers, cfg.events
	sent := make([]atomic.Int64, res.events)
	lat := make([][]time.Duration, res.subscribers)
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	var connected, done sync.WaitGroup
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: res.subscribers}}
	defer hc.CloseIdleConnections()
	subErrs := make(chan error, res.subscribers)
	for i := range res.subscribers {
		connected.Add(1)
		done.Add(1)
		node := c.nodes[i%len(c.nodes)]
		go func() {
			defer done.Done()
			subErrs <- subscribeEvents(subCtx, hc, node.httpAddr, res.events, sent, &lat[i], connected.Done)
		}()
	}
	connected.Wait()
	slog.Info("subscribers connected", "subscribers", res.subscribers)

	writes := make([]time.Duration, 0, res.events)
	for i := range res.events {
		body := fmt.Sprintf(`{"unit":"[Service]\nExecStart=/bin/true\n","env":{"N":"%d"}}`, i)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+leader.httpAddr+"/v1/blueprints/ev-"+strconv.Itoa(i), strings.NewReader(body))
		if err != nil {
			return res, err
		}
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		sent[i].Store(start.UnixNano())
		if err := do(hc, req); err != nil {
			return res, fmt.Errorf("blueprint write %d: %w", i, err)
		}
		writes = append(writes, time.Since(start))
		if err := sleepCtx(ctx, eventWriteGap); err != nil {
			return res, err
		}
	}
	// Every subscriber has everything within a few seconds, or is late.
	waited := make(chan struct{})
	go func() { done.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		stopSubs()
		<-waited
	case <-ctx.Done():
		return res, ctx.Err()
	}
	close(subErrs)
	for e := range subErrs {
		if e != nil && !errors.Is(e, context.Canceled) {
			return res, fmt.Errorf("subscriber: %w", e)
		}
	}
	for _, l := range lat {
		res.latencies = append(res.latencies, l...)
		res.missing += res.events - len(l)
	}
	slices.Sort(res.latencies)
	slices.Sort(writes)
	res.writeP50 = percentile(writes, 0.50)

	base := "http://" + leader.httpAddr
	if res.staticBytes, res.staticTime, err = fetchUI(ctx, base); err != nil {
		return res, err
	}
	res.browser, err = browserFirstLoad(ctx, base)
	if err != nil {
		res.browserErr = err.Error()
		slog.Warn("UI first load in chromium", "err", err)
	}
	return res, nil
}

// subscribeEvents follows the blueprint events of one node until it has
// seen want of the benchmark's blueprints, recording each one's delay
// after its write was sent.
func subscribeEvents(ctx context.Context, hc *http.Client, addr string, want int, sent []atomic.Int64, out *[]time.Duration, connected func()) error {
	once := sync.OnceFunc(connected)
	defer once()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/events?topic=blueprint", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/events on %s: HTTP %d", addr, resp.StatusCode)
	}
	errDone := errors.New("done")
	err = web.ReadEvents(resp.Body, func(ev web.StreamEvent) error {
		now := time.Now()
		if ev.Type == "leader" {
			once() // the stream is open: the first event is the leader
			return nil
		}
		var e web.Event
		if ev.Type != "blueprint" || json.Unmarshal(ev.Data, &e) != nil {
			return nil
		}
		i, err := strconv.Atoi(strings.TrimPrefix(e.Key, "ev-"))
		if err != nil || i < 0 || i >= len(sent) || e.Op != "put" {
			return nil
		}
		*out = append(*out, now.Sub(time.Unix(0, sent[i].Load())))
		if len(*out) == want {
			return errDone
		}
		return nil
	})
	if errors.Is(err, errDone) {
		return nil
	}
	return err
}

var assetRef = regexp.MustCompile(`(?:href|src)="([^":]+\.(?:css|js))"`)

// fetchUI loads /ui/ and the assets it names over a fresh connection, as a
// browser's first visit does, and returns their size and the time taken.
func fetchUI(ctx context.Context, base string) (int, time.Duration, error) {
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	get := func(url string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
		}
		return io.ReadAll(resp.Body)
	}
	start := time.Now()
	html, err := get(base + "/ui/")
	if err != nil {
		return 0, 0, err
	}
	total := len(html)
	for _, m := range assetRef.FindAllSubmatch(html, -1) {
		b, err := get(base + "/ui/" + string(m[1]))
		if err != nil {
			return 0, 0, err
		}
		total += len(b)
	}
	return total, time.Since(start), nil
}

// browserFirstLoad opens the UI in headless chromium and reads, from the
// page's own timings, when it was rendered and following the event stream
// and how many bytes every response of the load took.
func browserFirstLoad(ctx context.Context, base string) (*browserLoad, error) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		return nil, fmt.Errorf("chromium is not installed: %w", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Headless, chromedp.NoFirstRun, chromedp.WindowSize(1440, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		return nil, fmt.Errorf("start chromium: %w", err)
	}
	tctx, cancelT := context.WithTimeout(bctx, 30*time.Second)
	defer cancelT()
	if err := chromedp.Do(tctx, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#conn.live"))); err != nil {
		return nil, fmt.Errorf("load the UI: %w", err)
	}
	raw, err := chromedp.Run(tctx, chromedp.Evaluate[string](`JSON.stringify({live: window.armadaLiveAt || 0,
		entries: [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")]
			.filter(e => !e.name.includes("/v1/events")).map(e => e.transferSize || e.encodedBodySize || 0)})`))
	if err != nil {
		return nil, fmt.Errorf("read the page's timings: %w", err)
	}
	var t struct {
		Live    float64 `json:"live"`
		Entries []int   `json:"entries"`
	}
	if err := json.Unmarshal([]byte(raw), &t); err != nil {
		return nil, fmt.Errorf("page timings %s: %w", raw, err)
	}
	out := &browserLoad{live: time.Duration(t.Live * float64(time.Millisecond)), resources: len(t.Entries)}
	for _, n := range t.Entries {
		out.bytes += n
	}
	return out, nil
}

func (r *report) writeEvents(b *strings.Builder) {
	e := r.events
	if e == nil {
		return
	}
	fmt.Fprintf(b, "## Event stream and UI\n\n")
	fmt.Fprintf(b, "A fresh 3-node cluster of the real binary (default flags, loopback). %d subscribers follow `GET /v1/events?topic=blueprint`, "+
		"spread round-robin over the three nodes (one HTTP connection each, read by one goroutine each in the benchmark process). "+
		"The driver then writes %d blueprints one at a time to the leader, %d ms apart; each event's delay runs from just before "+
		"its `PUT` is sent (so it includes the Raft commit, whose own round trip had a median of %s) until the subscriber "+
		"has read and decoded it. Command: `%s`.\n\n", e.subscribers, e.events, eventWriteGap.Milliseconds(), fmtMs(e.writeP50), commandLine())
	fmt.Fprintf(b, "| Figure | Value | Target | Verdict |\n|---|--:|---|---|\n")
	n := len(e.latencies)
	if n > 0 {
		p50, p99 := percentile(e.latencies, 0.50), percentile(e.latencies, 0.99)
		fmt.Fprintf(b, "| Change → event at a subscriber, p50 (%s events) | %s | — | — |\n", fmtRate(float64(n)), fmtMs(p50))
		fmt.Fprintf(b, "| Change → event at a subscriber, p99 | %s | ≤ %s | %s |\n", fmtMs(p99), fmtMs(targetEventP99), judge(p99 <= targetEventP99, ""))
		fmt.Fprintf(b, "| Change → event at a subscriber, max | %s | — | — |\n", fmtMs(e.latencies[n-1]))
	}
	fmt.Fprintf(b, "| Events a subscriber never received | %d | 0 | %s |\n", e.missing, judge(e.missing == 0, ""))
	fmt.Fprintf(b, "| UI first load: `/ui/` with its CSS and JS, bytes | %s | ≤ %d KB | %s |\n", fmtKB(e.staticBytes), targetFirstLoad>>10,
		judge(e.staticBytes <= targetFirstLoad, ""))
	fmt.Fprintf(b, "| UI first load: those three over a fresh connection | %s | — | — |\n", fmtMs(e.staticTime))
	if bl := e.browser; bl != nil {
		fmt.Fprintf(b, "| UI first load in chromium: every response (page, assets, API reads of %d blueprints), bytes | %s in %d responses | ≤ %d KB | %s |\n",
			e.events, fmtKB(bl.bytes), bl.resources, targetFirstLoad>>10, judge(bl.bytes <= targetFirstLoad, ""))
		fmt.Fprintf(b, "| UI first load in chromium: navigation → page rendered and following events | %s | — | — |\n", fmtMs(bl.live))
	} else {
		fmt.Fprintf(b, "| UI first load in chromium | not measured: %s | — | — |\n", mdCell(e.browserErr))
	}
	b.WriteString("\nThe UI is plain JavaScript embedded in the binary (`web/ui`, no build step, no library), served uncompressed. " +
		"The chromium figures come from the page's own Resource Timing entries (headless, the cluster loaded with the benchmark's blueprints).\n\n")
}

func fmtKB(n int) string { return fmt.Sprintf("%.1f KB", float64(n)/1024) }
