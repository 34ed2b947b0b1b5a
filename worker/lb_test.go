package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// gateBalancer records the calls and holds each until the test lets it
// through, so that the test can see what happens meanwhile.
type gateBalancer struct {
	mu    sync.Mutex
	calls []string
	gate  chan struct{}
}

func (b *gateBalancer) call(ctx context.Context, what string, t Target) error {
	b.mu.Lock()
	b.calls = append(b.calls, what+" "+t.Ship+" "+t.String())
	b.mu.Unlock()
	select {
	case <-b.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *gateBalancer) Register(ctx context.Context, t Target) error {
	return b.call(ctx, "register", t)
}
func (b *gateBalancer) Deregister(ctx context.Context, t Target) error {
	return b.call(ctx, "deregister", t)
}

func (b *gateBalancer) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

// With update.drain_lb a ship is registered before it is reported ready,
// and drained from the load balancer before its process is stopped.
func TestLoadBalancerAroundAShipsLife(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.blueprint("game", sleeper())
	h.ok(&fsm.FleetPut{Spec: fsm.Fleet{Name: "arena", Replicas: 1, Versions: []fsm.FleetVersion{{Blueprint: "game", Weight: 1}},
		Update: &fsm.Update{DrainLB: true}}})
	lb := &gateBalancer{gate: make(chan struct{})}
	d := h.driver("")
	h.run(h.worker(nil, d, func(c *Config) { c.Balancer = lb }))
	id := h.place("arena", "game", "n1", 20007)

	h.waitReason(id, fsm.ShipStarting, "registering with the load balancer")
	eventually(t, 5*time.Second, func() bool { return len(lb.seen()) == 1 })
	if got := lb.seen()[0]; got != "register "+id+" 10.0.0.1:20007" {
		t.Fatalf("first call %q", got)
	}
	lb.gate <- struct{}{} // registered
	h.waitShip(id, fsm.ShipReady)

	pid := h.waitProc(d, id, ProcRunning).Pid
	h.ok(&fsm.ShipStop{Ships: []string{id}, Why: fsm.StopUser})
	eventually(t, 5*time.Second, func() bool { return len(lb.seen()) == 2 })
	if got := lb.seen()[1]; got != "deregister "+id+" 10.0.0.1:20007" {
		t.Fatalf("second call %q", got)
	}
	// Draining: the process still serves.
	time.Sleep(200 * time.Millisecond) // a span during which it must not stop
	if pidGone(pid) {
		t.Fatal("the ship's process stopped before it was drained from the load balancer")
	}
	lb.gate <- struct{}{} // drained
	h.waitShip(id, fsm.ShipStopped)
	h.waitGone(d, id)
}
