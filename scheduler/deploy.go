package scheduler

import (
	"fmt"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// rollout is what a running deployment lets one plan do: creates of ships
// of versions short of their share, and stops of up ships of versions
// with too many. -1: no limit.
type rollout struct {
	creates, upStops int
}

// take takes up to n from budget and returns how many it may.
func (r *rollout) take(budget *int, n int) int {
	if n <= 0 {
		return 0
	}
	if *budget < 0 {
		return n
	}
	n = min(n, *budget)
	*budget -= n
	return n
}

// deployMinReady is how long a new ship must have been up before a
// deployment counts it (and stops an old ship for it).
const deployMinReady = time.Second

// planDeployment paces a fleet's running deployment (Flotilla's rolling
// deploy, with a surge): at most d.MaxParallel ships of the new versions
// start at a time, and an up ship of an old version stops only while the
// fleet has more up ships than its replicas, so the fleet never has fewer
// up ships than it had; ships that are not up stop at once. It records the
// progress, ends the deployment once the fleet runs only its new versions
// and all their ships are up, and fails it (rolling back when asked) when
// no new ship has come up for d.Deadline.
func planDeployment(in *Input, f *fsm.Fleet, d *fsm.Deployment, want map[verKey]int, have map[verKey][]*fsm.Ship, up map[verKey]int, p *Plan) rollout {
	inflight, upTotal, total, updated, old := 0, 0, 0, 0, 0
	done := true
	stable := map[verKey]int{} // up for at least deployMinReady
	for k, ships := range have {
		if want[k] == 0 {
			upTotal += up[k]
			for _, s := range ships {
				if !s.Occupied() {
					old++
				}
			}
			continue
		}
		for _, s := range ships {
			if !s.Up() {
				inflight++
				continue
			}
			// A new ship counts as up once it has stayed up for a moment:
			// a version whose process exits at once may be seen running
			// first, and must not take an old ship's place for that.
			if at := time.UnixMilli(s.Updated).Add(deployMinReady); in.Now.Before(at) {
				inflight++
				p.recheckAt(at)
				continue
			}
			stable[k]++
		}
		upTotal += stable[k]
	}
	for _, v := range f.Versions {
		k := verKey{v.Blueprint, v.Version}
		total += want[k]
		updated += min(stable[k], want[k])
		if len(have[k]) != want[k] || stable[k] < want[k] {
			done = false
		}
	}
	if old > 0 {
		done = false
	}
	roll := rollout{creates: max(0, d.MaxParallel-inflight), upStops: max(0, upTotal-f.Replicas)}
	step := &fsm.DeployUpdate{Fleet: f.Name, ID: d.ID, State: fsm.DeployRunning, Total: total, Updated: updated, Old: old,
		Progress: updated > d.Updated}
	deadline := time.UnixMilli(d.Progressed).Add(time.Duration(d.Deadline))
	switch {
	case done:
		step.State = fsm.DeploySucceeded
		p.why("fleet %s: deployment %d done: %d of %d ships of the new versions up", f.Name, d.ID, updated, total)
	case !step.Progress && !in.Now.Before(deadline):
		step.State, step.Rollback = fsm.DeployFailed, d.AutoRollback
		step.Reason = fmt.Sprintf("no new ship up for %s (%d of %d updated)", time.Duration(d.Deadline), updated, total)
		if d.AutoRollback {
			step.Reason += "; rolled back"
			roll = rollout{creates: 0, upStops: 0} // the old versions come back with the next plan
		}
		p.why("fleet %s: deployment %d failed: %s", f.Name, d.ID, step.Reason)
	case step.Progress || total != d.Total || old != d.Old || updated != d.Updated:
		p.why("fleet %s: deployment %d: %d of %d updated, %d old", f.Name, d.ID, updated, total, old)
	default:
		step = nil
	}
	if step != nil {
		p.Deploy = append(p.Deploy, step)
	}
	if step == nil || step.State == fsm.DeployRunning {
		if step != nil && step.Progress {
			deadline = in.Now.Add(time.Duration(d.Deadline))
		}
		p.recheckAt(deadline)
	}
	return roll
}
