package scheduler

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// deployWorld is 3 nodes, blueprint web in versions 1..3, and fleet web
// of 4 replicas of version 1, all ready.
func deployWorld(t *testing.T) *e2e {
	c := newE2E(t)
	key := bytes.Repeat([]byte{7}, 32)
	c.ok(&fsm.ClusterInit{ClusterID: "test", Key: key})
	for _, n := range []string{"n1", "n2", "n3"} {
		c.ok(&fsm.NodeUpsert{Node: e2eNode(n, "a", "web")})
		c.ok(&fsm.NodeReport{Name: n, PortsRange: "40000-40019"})
	}
	for v := range 3 {
		put, err := fsm.PrepareBlueprint(key, &fsm.Blueprint{Name: "web", Unit: fmt.Sprintf("[Service]\nExecStart=/usr/bin/web -v%d\n", v+1),
			Resources: fsm.Resources{CPUMHz: 100, MemoryMB: 64}})
		if err != nil {
			t.Fatal(err)
		}
		c.ok(put)
	}
	c.ok(&fsm.FleetPut{Spec: fsm.Fleet{Name: "web", Replicas: 4, Versions: []fsm.FleetVersion{{Blueprint: "web", Version: 1}}}})
	c.converge()
	c.reportAll()
	return c
}

// reportAll has every node's worker report its ships ready (stopped when
// asked to stop), except ships of versions in failing, which fail.
func (c *e2e) reportAll(failing ...int) {
	c.t.Helper()
	for _, n := range []string{"n1", "n2", "n3"} {
		var reps []fsm.Report
		for _, s := range c.ships("") {
			if s.Node != n || s.Ended() || s.State == fsm.ShipQueued {
				continue
			}
			st := fsm.ShipReady
			switch {
			case s.Desired == fsm.DesireStop:
				st = fsm.ShipStopped
			case len(failing) > 0 && s.Version == failing[0]:
				st = fsm.ShipFailed
			}
			reps = append(reps, fsm.Report{Ship: s.ID, State: st, Reason: "exited with status 1"})
		}
		if len(reps) > 0 {
			c.ok(&fsm.ShipReport{Node: n, Reports: reps})
		}
	}
}

// step applies one plan and returns it.
func (c *e2e) step() *Plan {
	c.t.Helper()
	p := c.plan()
	for _, cmd := range p.Commands() {
		if r := c.apply(cmd); r.Err != nil && r.Err.Code != fsm.ErrConflict {
			c.t.Fatalf("%T rejected: %v\n%s", cmd, r.Err, dumpPlan(p))
		}
	}
	c.checkState()
	return p
}

// counts is the fleet's up ships by version and its ships of version v not
// up yet.
func (c *e2e) counts(v int) (up map[int]int, starting int) {
	up = map[int]int{}
	for _, s := range c.ships("web") {
		if !s.Live() || s.State == fsm.ShipStopping {
			continue
		}
		if s.Up() {
			up[s.Version]++
		} else if s.Version == v {
			starting++
		}
	}
	return up, starting
}

func (c *e2e) deployment() *fsm.Deployment {
	var d *fsm.Deployment
	c.view(func(v *fsm.View) { d = v.Deployments("web")[0] })
	return d
}

// A rolling deployment with max_parallel 1: one new ship at a time, an old
// one stopped only once a new one is up, so the fleet never has fewer than
// its 4 up ships; it ends succeeded with the lock free.
func TestRollingDeployment(t *testing.T) {
	c := deployWorld(t)
	c.ok(&fsm.FleetPut{Spec: fsm.Fleet{Name: "web", Replicas: 4, Versions: []fsm.FleetVersion{{Blueprint: "web", Version: 2}},
		Update: &fsm.Update{MaxParallel: 1}}})
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatalf("no end after 100 steps: %s\n%s", c.dumpShips(), fmt.Sprint(c.deployment()))
		}
		c.step()
		c.now = c.now.Add(300 * time.Millisecond)
		up, starting := c.counts(2)
		if total := up[1] + up[2]; total < 4 || starting > 1 {
			t.Fatalf("step %d: up %v, %d v2 starting: want at least 4 up and at most 1 starting\n%s", i, up, starting, c.dumpShips())
		}
		if d := c.deployment(); d.State != fsm.DeployRunning {
			if d.State != fsm.DeploySucceeded || up[2] != 4 || up[1] != 0 || d.Updated != 4 || d.Total != 4 || d.Old != 0 {
				t.Fatalf("deployment ended %+v with up %v", d, up)
			}
			break
		}
		c.reportAll()
	}
	c.view(func(v *fsm.View) {
		if _, held := v.Lock(fsm.DeployLock("web")); held {
			t.Fatal("deployment lock still held after the deployment")
		}
	})
	requireEmpty(t, c.plan())
}

// A version whose ships fail makes no progress: after the deadline the
// deployment fails, the fleet goes back to the old version, and the old
// ships served all along.
func TestFailingDeploymentRollsBack(t *testing.T) {
	c := deployWorld(t)
	c.ok(&fsm.FleetPut{Spec: fsm.Fleet{Name: "web", Replicas: 4, Versions: []fsm.FleetVersion{{Blueprint: "web", Version: 3}},
		Update: &fsm.Update{MaxParallel: 2, AutoRollback: true, Deadline: fsm.Duration(10 * time.Second)}}})
	start := c.now
	for i := 0; ; i++ {
		if i > 200 {
			t.Fatalf("no end after 200 steps: %+v", c.deployment())
		}
		c.step()
		up, starting := c.counts(3)
		if up[1] != 4 || starting > 2 {
			t.Fatalf("step %d: up %v, %d v3 starting; the old version must keep serving", i, up, starting)
		}
		if d := c.deployment(); d.State != fsm.DeployRunning {
			if d.State != fsm.DeployFailed || !d.RolledBack || c.now.Sub(start) < 10*time.Second {
				t.Fatalf("deployment ended %+v after %s", d, c.now.Sub(start))
			}
			t.Logf("failed after %s: %s", c.now.Sub(start), d.Reason)
			break
		}
		// Version 3's process is seen running for a moment before it
		// exits: a plan made then must not stop a version-1 ship for it.
		c.step() // places what the last plan created
		for _, sh := range c.ships("web") {
			if sh.Version == 3 && sh.Live() && sh.Node != "" && sh.State != fsm.ShipReady {
				c.ok(&fsm.ShipReport{Node: sh.Node, Reports: []fsm.Report{{Ship: sh.ID, State: fsm.ShipReady}}})
			}
		}
		c.step()
		if up, _ := c.counts(3); up[1] != 4 {
			t.Fatalf("step %d: a version-3 ship up for a moment stopped a version-1 ship: up %v", i, up)
		}
		c.reportAll(3)
		c.now = c.now.Add(250 * time.Millisecond)
	}
	var f *fsm.Fleet
	c.view(func(v *fsm.View) { f, _ = v.Fleet("web") })
	if len(f.Versions) != 1 || f.Versions[0].Version != 1 {
		t.Fatalf("fleet after rollback runs %+v", f.Versions)
	}
	// Once the workers stop what is left of version 3, the fleet is
	// version 1 only and the plan is empty.
	for range 3 {
		c.step()
		c.reportAll(3)
	}
	up, starting := c.counts(3)
	if up[1] != 4 || up[3] != 0 || starting != 0 {
		t.Fatalf("after the rollback: up %v, %d v3 starting", up, starting)
	}
	requireEmpty(t, c.plan())
}
