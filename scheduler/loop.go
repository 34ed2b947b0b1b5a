package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/internal/pace"
)

// Store is the replicated state the scheduler reads.
type Store interface {
	View(fn func(v *fsm.View) error) error
	Changes(since uint64) ([]fsm.Change, <-chan struct{}, error)
	// Published is the index up to which every change is in Changes,
	// and how many times the state was restored from a snapshot.
	Published() (index, restores uint64)
}

// Applier commits commands through Raft.
type Applier interface {
	Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error)
}

// Config tunes the loop.
type Config struct {
	LostGrace  time.Duration // default 2s
	Retention  time.Duration // default 10m
	Interval   time.Duration // periodic pass even without changes; default 1s
	MaxPerPlan int           // placements per command; default 2000
	Logger     *slog.Logger
	Now        func() time.Time
}

func (c *Config) defaults() {
	if c.LostGrace <= 0 {
		c.LostGrace = 2 * time.Second
	}
	if c.Retention <= 0 {
		c.Retention = 10 * time.Minute
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.MaxPerPlan <= 0 {
		c.MaxPerPlan = 2000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// minPlanGap is the least time between the starts of two plans that a
// change (not the ticker) started.
const minPlanGap = 20 * time.Millisecond

// maxQuietGap bounds the spacing of plans that find nothing to do while
// ship changes stream in: a change that needs a plan is then planned at
// most this late; the ticker and grace periods that end are not spaced.
const maxQuietGap = 100 * time.Millisecond

// Run plans and applies until ctx ends: after every change to the state
// that concerns ships, and every Interval (node grace periods expire
// without any change). Only the leader runs it.
func Run(ctx context.Context, st Store, ap Applier, cfg Config) {
	cfg.defaults()
	log := cfg.Logger
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	var since uint64
	quiet := pace.Quiet{Min: minPlanGap, Max: maxQuietGap}
	cache := &fsm.ShipCache{}
	for {
		planStart := time.Now()
		plan, index, err := makePlan(st, &cfg, cache)
		index = min(index, cache.Base())
		// Plans read every ship: under a stream of changes (allocations,
		// reports) they are spaced so that planning takes at most about a
		// fifth of a core. A plan's own commands usually take longer than
		// the gap to apply, so a create → place → start chain is not slowed.
		// Plans that find nothing to do while ship changes stream in (an
		// allocation storm on a fleet without a buffer) back off further;
		// a change of a fleet, node, blueprint or deployment does not wait
		// for that.
		spacing := max(minPlanGap, 4*time.Since(planStart))
		nextUrgent, nextPlan := planStart.Add(spacing), planStart.Add(max(spacing, quiet.Next(err == nil && plan.Empty())))
		if err != nil {
			log.Error("read state for planning", "err", err)
		} else if !plan.Empty() {
			for _, r := range plan.Reasons {
				log.Info("scheduler", "action", r)
			}
			if err := applyPlan(ctx, ap, plan); err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("apply plan", "err", err)
			}
		}
		if since == 0 || index > since {
			since = index
		}
		// A grace period ending is a change no entry announces: wake for it.
		var recheck <-chan time.Time
		var timer *time.Timer
		if plan != nil && !plan.Recheck.IsZero() {
			timer = time.NewTimer(max(time.Until(plan.Recheck), 0) + time.Millisecond)
			recheck = timer.C
		}
		// Wait for a change that matters, or the tick.
		var due pace.Due // when the changes seen are planned for
	wait:
		for {
			changes, ch, err := st.Changes(since)
			if errors.Is(err, fsm.ErrCompacted) {
				break // too far behind: plan again from scratch
			}
			if err != nil {
				return
			}
			if len(changes) > 0 {
				since = changes[len(changes)-1].Index
			}
			rel, urgent := relevant(changes)
			due.See(rel, urgent, nextPlan, nextUrgent)
			soon, now := due.Wait()
			if now {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-soon:
				break wait
			case <-tick.C:
				break wait
			case <-recheck:
				break wait
			case <-ch:
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// relevant reports whether changes can matter to a plan; urgent when one
// is not a ship's (ships change in storms, the rest by operators).
func relevant(changes []fsm.Change) (rel, urgent bool) {
	for _, c := range changes {
		switch c.Topic {
		case "ship":
			rel = true
		case "fleet", "node", "blueprint", "deployment":
			return true, true
		}
	}
	return rel, false
}

func makePlan(st Store, cfg *Config, cache *fsm.ShipCache) (*Plan, uint64, error) {
	var plan *Plan
	var index uint64
	refresh := cache.Prepare(st)
	err := st.View(func(v *fsm.View) error {
		index = v.Index()
		in := &Input{
			Now: cfg.Now(), LostGrace: cfg.LostGrace, Retention: cfg.Retention, MaxPerPlan: cfg.MaxPerPlan,
			Nodes: v.Nodes(), Fleets: v.Fleets(), Ships: refresh(v),
			Blueprint: cachedBlueprints(v),
		}
		in.Deployments = map[string]*fsm.Deployment{}
		for _, f := range in.Fleets {
			if d, ok := v.RunningDeployment(f.Name); ok {
				in.Deployments[f.Name] = d
			}
		}
		// The queue's order, over the ships just read (no second decode).
		byID := make(map[string]*fsm.Ship, len(in.Ships))
		for _, s := range in.Ships {
			byID[s.ID] = s
		}
		for _, it := range v.Queue(fsm.SchedulerQueue) {
			if s, ok := byID[string(it.Data)]; ok && s.State == fsm.ShipQueued {
				in.Queued = append(in.Queued, s)
			}
		}
		plan = Make(in)
		return nil
	})
	return plan, index, err
}

func cachedBlueprints(v *fsm.View) func(string, int) (*fsm.Blueprint, bool) {
	type key struct {
		name string
		v    int
	}
	cache := map[key]*fsm.Blueprint{}
	return func(name string, version int) (*fsm.Blueprint, bool) {
		k := key{name, version}
		if bp, ok := cache[k]; ok {
			return bp, bp != nil
		}
		bp, _ := v.Blueprint(name, version)
		cache[k] = bp
		return bp, bp != nil
	}
}

// applyPlan applies the plan's commands in order: lost ships, creates,
// stops, placements, purge. Commands of one kind are independent of each
// other, so they go out together and Raft batches them into few entries.
func applyPlan(ctx context.Context, ap Applier, p *Plan) error {
	var errs []error
	for _, cmds := range p.groups() {
		done := make(chan error, len(cmds))
		for _, c := range cmds {
			go func() {
				r, err := ap.Apply(ctx, c)
				if err == nil && r.Err != nil {
					err = r.Err
				}
				// A conflict is a plan overtaken by the state (another
				// leader's plan, or a change since): the next plan sees it.
				var fe *fsm.Error
				if errors.As(err, &fe) && fe.Code == fsm.ErrConflict {
					err = nil
				}
				done <- err
			}()
		}
		for range cmds {
			if err := <-done; err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
