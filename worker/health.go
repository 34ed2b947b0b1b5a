package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// Health verdicts for a running ship.
const (
	healthReady   = "ready"
	healthWaiting = "waiting" // not passed yet
	healthFailed  = "failed"
)

// checker runs the blueprint's health check of every ship running on this
// node: http and tcp probes on the ship's host port, or, for sdk, the
// ship's own calls (/ready once, /health as heartbeat).
//
// A ship is ready once its check passes. Until then failed probes only
// show in its reason; it fails if it has not passed within the start
// grace (at least 2 × failures × interval). Once it has passed, it fails
// after `failures` probes in a row fail (for sdk: no heartbeat for
// failures × interval). A probe belongs to one run of the ship's process:
// a restart starts it afresh.
type checker struct {
	mu     sync.Mutex
	probes map[string]*probe
	// early holds the /ready calls of ships whose probe has not started
	// yet (a ship calling /ready before the reconciler saw it running),
	// for a minute.
	early  map[string]time.Time
	client *http.Client
	notify func() // wakes the reconciler when a verdict changes
	now    func() time.Time
	grace  time.Duration // the least start grace
}

type probe struct {
	run     int // the driver's restart count when the probe began
	spec    fsm.Health
	addr    string // 127.0.0.1:port for http and tcp
	passed  bool
	fails   int
	lastErr string
	beat    time.Time // sdk: last /ready or /health
	start   time.Time // when the probe began
	grace   time.Duration
	failed  string // set once the ship failed its check
	cancel  context.CancelFunc
	done    chan struct{}
}

func newChecker(notify func(), grace time.Duration) *checker {
	return &checker{
		probes: map[string]*probe{},
		early:  map[string]time.Time{},
		// Probes go to loopback ports: no proxy, no keep-alive between runs.
		client: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		notify: notify,
		now:    time.Now,
		grace:  grace,
	}
}

// verdict returns the check's verdict for a running ship, starting its
// probe when needed. h nil or type none: ready at once.
func (c *checker) verdict(s *fsm.Ship, h *fsm.Health, run int) (string, string) {
	if h == nil || h.Type == "" || h.Type == "none" {
		return healthReady, ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.probes[s.ID]
	restarted := p != nil && p.run != run
	if restarted {
		p.cancel() // a new run of the process: start over
		p = nil
	}
	if p == nil {
		// A ship already up that this worker sees for the first time (it
		// restarted) stays up until its check fails; a new run of the
		// ship's process must pass again.
		now := c.now()
		p = &probe{run: run, spec: *h, beat: now, start: now, done: make(chan struct{}), passed: s.Up() && !restarted,
			grace: max(c.grace, 2*time.Duration(h.Failures)*time.Duration(h.Interval))}
		if _, ok := c.early[s.ID]; ok && h.Type == "sdk" {
			p.passed = true
			delete(c.early, s.ID)
		}
		if h.Type == "http" || h.Type == "tcp" {
			p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Ports[h.Port]))
		}
		var ctx context.Context
		ctx, p.cancel = context.WithCancel(context.Background())
		c.probes[s.ID] = p
		go c.loop(ctx, s.ID, p)
	}
	switch {
	case p.failed != "":
		return healthFailed, p.failed
	case p.passed:
		return healthReady, ""
	case h.Type == "sdk":
		return healthWaiting, "waiting for the ship to call /ready"
	case p.lastErr != "":
		return healthWaiting, "health check: " + p.lastErr
	default:
		return healthWaiting, "waiting for the first health check"
	}
}

func (p *probe) stop() {
	p.cancel()
	<-p.done
}

// forget stops the probes of ships not in keep.
func (c *checker) forget(keep map[string]bool) {
	c.mu.Lock()
	var gone []*probe
	for id, p := range c.probes {
		if !keep[id] {
			gone = append(gone, p)
			delete(c.probes, id)
		}
	}
	for id, at := range c.early {
		if c.now().Sub(at) > time.Minute || keep == nil {
			delete(c.early, id)
		}
	}
	c.mu.Unlock()
	for _, p := range gone {
		p.stop()
	}
}

// close stops every probe.
func (c *checker) close() { c.forget(nil) }

// sdkCall records a ship's /ready (ready true) or /health call. It reports
// false when the ship has no sdk check running here.
func (c *checker) sdkCall(id string, ready bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.probes[id]
	if p == nil {
		if ready {
			c.early[id] = c.now()
		}
		return true
	}
	if p.spec.Type != "sdk" || p.failed != "" {
		return false
	}
	p.beat = c.now()
	if ready && !p.passed {
		p.passed = true
		go c.notify()
	}
	return true
}

func (c *checker) loop(ctx context.Context, id string, p *probe) {
	defer close(p.done)
	interval := time.Duration(p.spec.Interval)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	first := time.After(0)
	if p.spec.Type == "sdk" {
		first = nil // nothing to probe: only the deadline to watch
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-first:
			first = nil
		case <-tick.C:
		}
		var changed bool
		if c.startDeadline(p) {
			changed = true
		} else if p.spec.Type == "sdk" {
			changed = c.sdkDeadline(p)
		} else {
			err := c.check(ctx, p)
			if ctx.Err() != nil {
				return
			}
			changed = c.record(p, err)
		}
		if changed {
			c.notify()
		}
		c.mu.Lock()
		failed := p.failed != ""
		c.mu.Unlock()
		if failed {
			return
		}
	}
}

// startDeadline fails a ship that has not passed its check within the
// start grace.
func (c *checker) startDeadline(p *probe) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.passed || p.failed != "" || c.now().Sub(p.start) <= p.grace {
		return false
	}
	p.failed = fmt.Sprintf("not healthy within %s of starting", p.grace)
	if p.lastErr != "" {
		p.failed += ": " + p.lastErr
	}
	return true
}

// sdkDeadline fails a ready sdk ship whose heartbeats stopped.
func (c *checker) sdkDeadline(p *probe) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !p.passed {
		return false // the start grace applies
	}
	limit := time.Duration(p.spec.Failures) * time.Duration(p.spec.Interval)
	if since := c.now().Sub(p.beat); since > limit {
		p.failed = fmt.Sprintf("health check failed: no SDK heartbeat for %s (limit %d × %s)", since.Round(time.Millisecond), p.spec.Failures, time.Duration(p.spec.Interval))
		return true
	}
	return false
}

// record notes one probe's result and reports whether the verdict changed.
func (c *checker) record(p *probe, err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		p.fails, p.lastErr = 0, ""
		if !p.passed {
			p.passed = true
			return true
		}
		return false
	}
	p.fails++
	p.lastErr = err.Error()
	if p.passed && p.fails >= p.spec.Failures {
		p.failed = fmt.Sprintf("health check failed %d times in a row: %s", p.fails, p.lastErr)
		return true
	}
	return !p.passed && p.fails == 1 // the waiting reason shows the error
}

// check runs one http or tcp probe.
func (c *checker) check(ctx context.Context, p *probe) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(p.spec.Timeout))
	defer cancel()
	switch p.spec.Type {
	case "tcp":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return fmt.Errorf("connect %s: %w", p.addr, unwrapOp(err))
		}
		return conn.Close()
	case "http":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+p.spec.Path, nil)
		if err != nil {
			return err
		}
		resp, err := c.client.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", p.spec.Path, unwrapOp(err))
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: status %d", p.spec.Path, resp.StatusCode)
		}
		return nil
	}
	return fmt.Errorf("unknown health check type %q", p.spec.Type)
}

// unwrapOp drops the address noise of net errors: "connection refused"
// reads better in a ship's reason than the whole dial chain.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timed out")
	}
	return err
}
