package worker

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// Balancer puts ships in and out of a load balancer around their lives,
// for fleets with update.drain_lb (Flotilla's ELB drain): a new ship is
// registered once it is healthy and reported ready only after, and a ship
// is deregistered, and drained, before it is stopped. So a deployment
// goes drain → wait → stop old / start new → health → register → wait,
// and no request is sent to a ship that is not there. It is small enough
// for AWS ELBv2 target groups (RegisterTargets and the target's health,
// DeregisterTargets and its deregistration delay) and the HAProxy runtime
// API (set server state ready / drain, and its current sessions).
// Implementations must be safe for concurrent use and idempotent.
type Balancer interface {
	// Register adds the target and returns once it takes traffic.
	Register(ctx context.Context, t Target) error
	// Deregister stops new traffic to the target and returns once what
	// it was serving is done (or the balancer's own drain time is up).
	Deregister(ctx context.Context, t Target) error
}

// Target is one ship as a load balancer sees it.
type Target struct {
	Fleet   string
	Ship    string
	Address string
	Port    int
}

func (t Target) String() string { return t.Address + ":" + strconv.Itoa(t.Port) }

// maxDrain bounds the wait for a load balancer to drain a ship.
const maxDrain = 5 * time.Minute

// noBalancer is the default: there is no load balancer to tell.
type noBalancer struct{}

func (noBalancer) Register(context.Context, Target) error   { return nil }
func (noBalancer) Deregister(context.Context, Target) error { return nil }

// lbTargets returns a lookup of the load-balancer target of each ship of
// a fleet with update.drain_lb (nil for the others), reading each fleet
// and blueprint version once per pass. The target's port is the one the
// blueprint's health check uses, else its first port.
func lbTargets(v *fsm.View) func(s *fsm.Ship) *Target {
	drains := map[string]bool{}
	return func(s *fsm.Ship) *Target {
		if s.Fleet == "" || len(s.Ports) == 0 {
			return nil
		}
		d, seen := drains[s.Fleet]
		if !seen {
			f, ok := v.Fleet(s.Fleet)
			d = ok && f.Update != nil && f.Update.DrainLB
			drains[s.Fleet] = d
		}
		if !d {
			return nil
		}
		name := ""
		if bp, ok := v.Blueprint(s.Blueprint, s.Version); ok {
			if bp.Health != nil && bp.Health.Port != "" {
				name = bp.Health.Port
			} else if len(bp.Ports) > 0 {
				name = bp.Ports[0].Name
			}
		}
		port, ok := s.Ports[name]
		if !ok {
			names := make([]string, 0, len(s.Ports))
			for n := range s.Ports {
				names = append(names, n)
			}
			port = s.Ports[slices.Min(names)]
		}
		return &Target{Fleet: s.Fleet, Ship: s.ID, Address: s.Address, Port: port}
	}
}

// lbState is whether a ship is in the load balancer: registering (a
// Register call in flight), or registered.
type lbState int

const (
	lbRegistering lbState = iota + 1
	lbRegistered
)

// registerAsync registers a ship's target without holding up the pass;
// the pass after it reports the ship ready.
func (w *Worker) registerAsync(ctx context.Context, t Target) {
	w.mu.Lock()
	if w.lb[t.Ship] != 0 {
		w.mu.Unlock()
		return
	}
	w.lb[t.Ship] = lbRegistering
	w.mu.Unlock()
	w.log.Info("register ship with the load balancer", "ship", t.Ship, "target", t.String())
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		err := w.cfg.Balancer.Register(ctx, t)
		w.mu.Lock()
		if err != nil {
			delete(w.lb, t.Ship) // the next pass tries again
		} else {
			w.lb[t.Ship] = lbRegistered
			w.lbTargets[t.Ship] = t
		}
		w.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			w.log.Warn("register with the load balancer failed", "ship", t.Ship, "err", err)
		}
		w.poke()
	}()
}

// deregister takes a ship out of the load balancer, if it is in, and
// waits for it to drain.
func (w *Worker) deregister(ctx context.Context, id string) {
	w.mu.Lock()
	t, in := w.lbTargets[id]
	delete(w.lb, id)
	delete(w.lbTargets, id)
	w.mu.Unlock()
	if !in {
		return
	}
	w.log.Info("drain ship from the load balancer", "ship", id, "target", t.String())
	ctx, cancel := context.WithTimeout(ctx, maxDrain)
	defer cancel()
	if err := w.cfg.Balancer.Deregister(ctx, t); err != nil {
		w.log.Warn("drain from the load balancer failed; stopping anyway", "ship", id, "err", err)
	}
}
