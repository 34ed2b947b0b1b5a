package fsm

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// deployWorld is readyWorld (fleet game of 3 web v1 ships, ready) with web
// version 2 stored, then extra.
func deployWorld(extra ...Command) []Command {
	return slices.Clip(append(readyWorld(webV2()), extra...))
}

// toV2 moves fleet game to web version 2, with rollback.
func toV2() *FleetPut {
	c := fleetPut("game", 3, FleetVersion{Blueprint: "web", Version: 2})
	c.Spec.Update = &Update{MaxParallel: 1, AutoRollback: true}
	c.Now = 100
	return c
}

func (h *harness) deployments(fleet string) []*Deployment {
	var out []*Deployment
	h.view(func(v *View) { out = v.Deployments(fleet) })
	return out
}

func TestFleetPutStartsDeployments(t *testing.T) {
	h := newHarness(t)
	for _, c := range deployWorld() {
		h.ok(c)
	}
	if got := h.deployments("game"); len(got) != 0 {
		t.Fatalf("a new fleet has deployments: %s", jsonString(got))
	}
	// A change of replicas only is no deployment.
	h.ok(&FleetScale{Name: "game", Replicas: 4, Now: 90})
	h.ok(fleetPut("game", 3, FleetVersion{Blueprint: "web", Version: 1}))
	if got := h.deployments("game"); len(got) != 0 {
		t.Fatalf("a scale started a deployment: %s", jsonString(got))
	}
	r := h.ok(toV2())
	d := r.Deployment
	if d == nil || d.State != DeployRunning || d.MaxParallel != 1 || !d.AutoRollback || d.Started != 100 || d.Progressed != 100 ||
		!slices.Equal(d.From, []FleetVersion{{Blueprint: "web", Version: 1, Weight: 1}}) || !slices.Equal(d.To, []FleetVersion{{Blueprint: "web", Version: 2, Weight: 1}}) ||
		d.Deadline != Duration(DefaultDeployDeadline) {
		t.Fatalf("deployment %s", jsonString(d))
	}
	if l, ok := h.lock(DeployLock("game")); !ok || l.Owner != "deployment:"+itoa(int(d.ID)) {
		t.Fatalf("deployment lock %s", jsonString(l))
	}
	// A second change supersedes it and takes the lock.
	c := fleetPut("game", 3, FleetVersion{Blueprint: "web", Version: 1, Weight: 1}, FleetVersion{Blueprint: "web", Version: 2, Weight: 1})
	c.Now = 110
	d2 := h.ok(c).Deployment
	list := h.deployments("game")
	if len(list) != 2 || list[0].ID != d2.ID || list[1].State != DeploySuperseded || list[1].Ended != 110 || list[1].Reason == "" {
		t.Fatalf("deployments %s", jsonString(list))
	}
	if d2.MaxParallel != 1 { // no update section: a quarter of the replicas, at least 1
		t.Fatalf("default max_parallel %d", d2.MaxParallel)
	}
	if l, _ := h.lock(DeployLock("game")); l.Owner != "deployment:"+itoa(int(d2.ID)) {
		t.Fatalf("lock %s", jsonString(l))
	}
	// Deleting the fleet forgets its deployments and frees the lock.
	h.ok(&FleetDelete{Name: "game", Now: 120})
	if got := h.deployments("game"); len(got) != 0 {
		t.Fatalf("deployments of a deleted fleet: %s", jsonString(got))
	}
	if _, ok := h.lock(DeployLock("game")); ok {
		t.Fatal("the deleted fleet's deployment lock is still held")
	}
}

// An operator holding the deployment lock holds off version changes.
func TestDeployLockHeldByOperator(t *testing.T) {
	h := newHarness(t)
	for _, c := range deployWorld(&LockAcquire{Name: DeployLock("game"), Owner: "alice", TTLms: 60_000, Now: 50}) {
		h.ok(c)
	}
	h.reject(toV2(), ErrConflict, "versions")
	h.ok(&LockRelease{Name: DeployLock("game"), Owner: "alice"})
	h.ok(toV2())
}

func TestDeploymentHistoryIsBounded(t *testing.T) {
	h := newHarness(t)
	for _, c := range deployWorld() {
		h.ok(c)
	}
	for i := range MaxDeployHistory + 5 {
		c := fleetPut("game", 3, FleetVersion{Blueprint: "web", Version: 1 + i%2})
		c.Now = int64(200 + i)
		h.ok(c)
	}
	if got := h.deployments("game"); len(got) != MaxDeployHistory || got[0].State != DeployRunning {
		t.Fatalf("%d deployments kept", len(got))
	}
}

func deployUpdateCases() []cmdCase {
	started := deployWorld(toV2()) // the deployment is id 15 (one id taken by its lock after it)
	id := uint64(len(started))
	up := func(mod func(c *DeployUpdate)) *DeployUpdate {
		c := &DeployUpdate{Fleet: "game", ID: id, State: DeployRunning, Total: 3, Updated: 1, Old: 2, Progress: true, Now: 150}
		if mod != nil {
			mod(c)
		}
		return c
	}
	return []cmdCase{
		{
			name: "progress", setup: started, cmd: up(nil),
			check: func(t *testing.T, h *harness, r *Result) {
				d := h.deployments("game")[0]
				if d.ID != id || d.Updated != 1 || d.Old != 2 || d.Total != 3 || d.Progressed != 150 || d.State != DeployRunning {
					t.Fatalf("deployment %s", jsonString(d))
				}
			},
		},
		{
			name: "succeeded: the lock is released", setup: started, cmd: up(func(c *DeployUpdate) { c.State, c.Updated, c.Old = DeploySucceeded, 3, 0 }),
			check: func(t *testing.T, h *harness, r *Result) {
				d := h.deployments("game")[0]
				if d.State != DeploySucceeded || d.Ended != 150 {
					t.Fatalf("deployment %s", jsonString(d))
				}
				if _, ok := h.lock(DeployLock("game")); ok {
					t.Fatal("lock still held")
				}
				h.reject(up(nil), ErrConflict, "id") // over
			},
		},
		{
			name: "failed with rollback: the fleet runs the old versions again", setup: started,
			cmd: up(func(c *DeployUpdate) {
				c.State, c.Reason, c.Rollback = DeployFailed, "no new ship ready for 1m0s", true
			}),
			check: func(t *testing.T, h *harness, r *Result) {
				d := h.deployments("game")[0]
				f, _ := h.fleet("game")
				if d.State != DeployFailed || !d.RolledBack || !slices.Equal(f.Versions, d.From) || r.Fleet == nil {
					t.Fatalf("deployment %s fleet %s", jsonString(d), jsonString(f))
				}
			},
		},
		{name: "unknown deployment", setup: started, cmd: up(func(c *DeployUpdate) { c.ID = 999 }), code: ErrNotFound, field: "id"},
		{name: "bad state", setup: started, cmd: up(func(c *DeployUpdate) { c.State = "done" }), code: ErrInvalid, field: "state"},
	}
}

// Deleting every deployment of a bucket that spans pages, inside the one
// write transaction the state keeps open across entries, leaves only
// empty pages: a lookup must still answer (bbolt's Cursor.Last spins
// forever there, so the lookups walk forward).
func TestDeploymentLookupAfterEveryDeploymentIsDeleted(t *testing.T) {
	h := newHarness(t)
	for _, c := range readyWorld(webV2()) {
		h.ok(c)
	}
	const fleets = 120
	for i := range fleets {
		name := fmt.Sprintf("f%03d", i)
		h.ok(fleetPut(name, 0, FleetVersion{Blueprint: "web", Version: 1}))
		h.ok(fleetPut(name, 0, FleetVersion{Blueprint: "web", Version: 2}))
	}
	if n := len(h.deployments("f000")); n != 1 { // also commits the transaction
		t.Fatalf("f000 has %d deployments", n)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range fleets {
			h.ok(&FleetDelete{Name: fmt.Sprintf("f%03d", i), Now: 200})
		}
		// Every deployment is gone; this lookup found the pages empty.
		h.ok(fleetPut("game", 3, FleetVersion{Blueprint: "web", Version: 2}))
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a deployment lookup did not return")
	}
	if got := h.deployments("game"); len(got) != 1 || got[0].State != DeployRunning {
		t.Fatalf("game's deployments %s", jsonString(got))
	}
}
