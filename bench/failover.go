package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"
)

// failoverTrial is one leader kill.
type failoverTrial struct {
	killed, elected string
	observedOn      string        // the survivor that first reported the new leader
	elapsed         time.Duration // 0 when no new leader was seen in time
}

// newLeaderTimeout bounds the wait for a new leader in one trial.
const newLeaderTimeout = 15 * time.Second

// runFailovers kills the leader trials times. After each kill it restarts
// the node on the same data dir and waits for the cluster to be whole
// again: one leader, 3 alive voters, the restarted node caught up.
func runFailovers(ctx context.Context, c *armadaCluster, trials int) ([]failoverTrial, error) {
	var out []failoverTrial
	var restarted *armadaNode
	for i := range trials + 1 {
		leader, err := c.waitHealthy(ctx, 60*time.Second)
		if err == nil && restarted != nil {
			err = c.waitCaughtUp(ctx, restarted, leader, 60*time.Second)
		}
		if err != nil {
			return out, fmt.Errorf("cluster not whole after %d failovers: %w", i, err)
		}
		if i == trials {
			return out, nil
		}
		if err := sleepCtx(ctx, settle); err != nil {
			return out, err
		}
		t, err := killLeader(ctx, c, leader)
		if err != nil {
			return out, err
		}
		slog.Info("failover", "trial", i+1, "killed", t.killed, "new leader", t.elected, "after", t.elapsed)
		out = append(out, t)
		if leader.proc, err = leader.proc.restart(); err != nil {
			return out, fmt.Errorf("restart %s: %w", leader.name, err)
		}
		restarted = leader
	}
	return out, nil
}

// settle is how long a whole cluster runs before its leader is killed.
const settle = time.Second

// killLeader SIGKILLs the leader and polls the survivors every 10 ms until
// one of them reports a different, non-empty leader.
func killLeader(ctx context.Context, c *armadaCluster, leader *armadaNode) (failoverTrial, error) {
	t := failoverTrial{killed: leader.name}
	var survivors []*armadaNode
	for _, n := range c.nodes {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	type seen struct {
		node, leader string
		at           time.Time
	}
	pctx, cancel := context.WithTimeout(ctx, newLeaderTimeout)
	defer cancel()
	found := make(chan seen, len(survivors))
	start := time.Now()
	leader.proc.kill()
	for _, n := range survivors {
		go func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				st, err := c.status(pctx, n)
				if err == nil && st.Leader != "" && st.Leader != leader.name {
					found <- seen{node: n.name, leader: st.Leader, at: time.Now()}
					return
				}
				select {
				case <-pctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	select {
	case s := <-found:
		t.elected, t.observedOn, t.elapsed = s.leader, s.node, s.at.Sub(start)
	case <-pctx.Done():
		if err := ctx.Err(); err != nil {
			return t, err
		}
		slog.Warn("no new leader", "killed", leader.name, "within", newLeaderTimeout)
	}
	return t, nil
}

// medianElapsed is the median failover time; a trial without a new
// leader counts as infinitely slow. ok is false when the median is such
// a trial.
func medianElapsed(trials []failoverTrial) (median time.Duration, ok bool) {
	const never = time.Duration(math.MaxInt64)
	if len(trials) == 0 {
		return 0, false
	}
	d := make([]time.Duration, len(trials))
	for i, t := range trials {
		d[i] = t.elapsed
		if t.elapsed == 0 {
			d[i] = never
		}
	}
	slices.Sort(d)
	lo, hi := d[(len(d)-1)/2], d[len(d)/2]
	if hi == never {
		return 0, false
	}
	return lo + (hi-lo)/2, true
}
