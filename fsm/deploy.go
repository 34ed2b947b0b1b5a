package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Deployment states.
const (
	DeployRunning    = "running"
	DeploySucceeded  = "succeeded"
	DeployFailed     = "failed"
	DeploySuperseded = "superseded"
)

// Deployment defaults.
const (
	DefaultDeployDeadline = time.Minute // no ship of the new versions ready for this long: failed
	MaxDeployHistory      = 20          // deployments kept per fleet, newest first
)

// Deployment is one change of a fleet's versions or weights being rolled
// out (Flotilla's deploy). The leader drives it while it holds the fleet's
// deployment lock: new ships first, at most MaxParallel of them starting at
// a time, an old ship stopped only once a new one is up, until the fleet
// runs To. A deployment that makes no progress for Deadline fails; with
// AutoRollback the fleet goes back to From and the new versions get no
// more ships.
type Deployment struct {
	ID           uint64         `json:"id"`
	Fleet        string         `json:"fleet"`
	State        string         `json:"state"`
	Reason       string         `json:"reason,omitempty"`
	From         []FleetVersion `json:"from"`
	To           []FleetVersion `json:"to"`
	MaxParallel  int            `json:"max_parallel"`
	AutoRollback bool           `json:"auto_rollback,omitempty"`
	DrainLB      bool           `json:"drain_lb,omitempty"`
	Deadline     Duration       `json:"deadline"`
	// Progress, as the leader last recorded it: Total ships wanted of the
	// new versions, Updated of them up (ready or in use), Old ships of
	// other versions still running.
	Total      int   `json:"total"`
	Updated    int   `json:"updated"`
	Old        int   `json:"old"`
	RolledBack bool  `json:"rolled_back,omitempty"`
	Started    int64 `json:"started"`
	Progressed int64 `json:"progressed"` // last time Updated grew (or the start)
	Ended      int64 `json:"ended,omitempty"`
}

// DeployLock is the name of a fleet's deployment lock. A running
// deployment holds it as "deployment:<id>"; an operator who takes it (the
// lock API) holds off version changes until it is released or expires.
func DeployLock(fleet string) string { return "deploy/" + fleet }

const deployOwnerPrefix = "deployment:"

func deployKey(fleet string, id uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(fleet), 0), id)
}

// sameVersions reports whether two version lists run the same blueprint
// versions with the same weights.
func sameVersions(a, b []FleetVersion) bool {
	return slices.Equal(a, b)
}

// maxParallel is how many new ships a deployment starts at once: the
// fleet's update.max_parallel, or a quarter of the replicas (at least 1).
func maxParallel(f *Fleet) int {
	if f.Update != nil && f.Update.MaxParallel > 0 {
		return f.Update.MaxParallel
	}
	return max(1, f.Replicas/4)
}

// startDeployment records a new running deployment of f, from the versions
// it ran; a running one is superseded. It takes the fleet's deployment
// lock, or fails when an operator holds it.
func (t *txn) startDeployment(old, f *Fleet, now int64) (*Deployment, *Error) {
	lock := DeployLock(f.Name)
	if l, held := getJSON[Lock](t.b(bLocks), []byte(lock)); held && l.Expiry > now && !strings.HasPrefix(l.Owner, deployOwnerPrefix) {
		return nil, errf(ErrConflict, "versions", "fleet %q is locked for deployments by %q (lock %s)", f.Name, l.Owner, lock)
	}
	d := &Deployment{
		ID: t.newID(), Fleet: f.Name, State: DeployRunning,
		From: old.Versions, To: f.Versions, MaxParallel: maxParallel(f),
		Deadline: Duration(DefaultDeployDeadline), Started: now, Progressed: now,
	}
	if u := f.Update; u != nil {
		d.AutoRollback, d.DrainLB = u.AutoRollback, u.DrainLB
		if u.Deadline > 0 {
			d.Deadline = u.Deadline
		}
	}
	if cur := t.runningDeployment(f.Name); cur != nil {
		cur.State, cur.Reason, cur.Ended = DeploySuperseded, fmt.Sprintf("superseded by deployment %d", d.ID), now
		t.putDeployment(cur)
	}
	t.putDeployment(d)
	l := &Lock{Name: lock, Owner: deployOwnerPrefix + fmt.Sprint(d.ID), Token: t.newID(), Acquired: now, Expiry: math.MaxInt64}
	t.putJSON(bLocks, []byte(lock), l)
	t.changed("lock", lock, "put")
	t.trimDeployments(f.Name)
	return d, nil
}

func (t *txn) putDeployment(d *Deployment) {
	t.putJSON(bDeployments, deployKey(d.Fleet, d.ID), d)
	t.changed("deployment", d.Fleet+"/"+fmt.Sprint(d.ID), "put")
}

// runningDeployment is the fleet's running deployment, if any: always
// its newest.
func (t *txn) runningDeployment(fleet string) *Deployment {
	list := deployments(t.b(bDeployments).Cursor(), fleet, 1)
	if len(list) == 1 && list[0].State == DeployRunning {
		return list[0]
	}
	return nil
}

// deployments lists a fleet's deployments, newest first, at most limit
// (0: all). It walks forward and reverses: bbolt's Cursor.Last never
// returns when every page of a bucket was emptied in the open write
// transaction (the state keeps one open across many entries), and a
// fleet keeps at most MaxDeployHistory deployments.
func deployments(c cursor, fleet string, limit int) []*Deployment {
	prefix := append([]byte(fleet), 0)
	var out []*Deployment
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) != len(prefix)+8 {
			continue
		}
		if d, ok := decodeJSON[Deployment](v); ok {
			out = append(out, d)
		}
	}
	slices.Reverse(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// trimDeployments keeps a fleet's newest MaxDeployHistory deployments.
func (t *txn) trimDeployments(fleet string) {
	list := deployments(t.b(bDeployments).Cursor(), fleet, 0)
	for _, d := range list[min(len(list), MaxDeployHistory):] {
		t.del(bDeployments, deployKey(fleet, d.ID))
		t.changed("deployment", d.Fleet+"/"+fmt.Sprint(d.ID), "delete")
	}
}

// deleteDeployments forgets a deleted fleet's deployments and frees its
// deployment lock if a deployment holds it.
func (t *txn) deleteDeployments(fleet string) {
	for _, d := range deployments(t.b(bDeployments).Cursor(), fleet, 0) {
		t.del(bDeployments, deployKey(fleet, d.ID))
		t.changed("deployment", d.Fleet+"/"+fmt.Sprint(d.ID), "delete")
	}
	t.releaseDeployLock(fleet, "")
}

// releaseDeployLock frees the fleet's deployment lock when deployment
// owner holds it ("": any deployment).
func (t *txn) releaseDeployLock(fleet, owner string) {
	lock := DeployLock(fleet)
	l, held := getJSON[Lock](t.b(bLocks), []byte(lock))
	if !held || !strings.HasPrefix(l.Owner, deployOwnerPrefix) || (owner != "" && l.Owner != owner) {
		return
	}
	t.del(bLocks, []byte(lock))
	t.changed("lock", lock, "delete")
}

// DeployUpdate is the leader's step of a running deployment: its progress,
// and its end (succeeded, or failed with a reason; Rollback then puts the
// fleet back on the deployment's From versions).
type DeployUpdate struct {
	Fleet    string
	ID       uint64
	State    string // DeployRunning (progress only), DeploySucceeded or DeployFailed
	Reason   string
	Total    int
	Updated  int
	Old      int
	Progress bool // Updated grew: the deadline starts again
	Rollback bool
	Now      int64
}

func (*DeployUpdate) Type() CmdType     { return CmdDeployUpdate }
func (c *DeployUpdate) stamp(now int64) { c.Now = now }
func (c *DeployUpdate) encode(e *encoder) {
	e.str(c.Fleet)
	e.uvarint(c.ID)
	e.str(c.State)
	e.str(c.Reason)
	e.varint(int64(c.Total))
	e.varint(int64(c.Updated))
	e.varint(int64(c.Old))
	e.bool(c.Progress)
	e.bool(c.Rollback)
	e.varint(c.Now)
}
func (c *DeployUpdate) decode(d *decoder) {
	c.Fleet, c.ID, c.State, c.Reason = d.str(), d.uvarint(), d.str(), d.str()
	c.Total, c.Updated, c.Old = int(d.varint()), int(d.varint()), int(d.varint())
	c.Progress, c.Rollback, c.Now = d.bool(), d.bool(), d.varint()
}

func (c *DeployUpdate) apply(t *txn) *Result {
	t.now = c.Now
	switch c.State {
	case DeployRunning, DeploySucceeded, DeployFailed:
	default:
		return fail(errf(ErrInvalid, "state", "must be running, succeeded or failed, not %q", c.State))
	}
	d, ok := getJSON[Deployment](t.b(bDeployments), deployKey(c.Fleet, c.ID))
	if !ok {
		return fail(errf(ErrNotFound, "id", "fleet %q has no deployment %d", c.Fleet, c.ID))
	}
	if d.State != DeployRunning {
		return fail(errf(ErrConflict, "id", "deployment %d of fleet %q is %s", c.ID, c.Fleet, d.State))
	}
	d.Total, d.Updated, d.Old = c.Total, c.Updated, c.Old
	if c.Progress {
		d.Progressed = c.Now
	}
	res := &Result{Deployment: d}
	if c.State != DeployRunning {
		d.State, d.Reason, d.Ended = c.State, c.Reason, c.Now
		t.releaseDeployLock(d.Fleet, deployOwnerPrefix+fmt.Sprint(d.ID))
		if c.State == DeployFailed && c.Rollback && d.AutoRollback {
			if f, ok := getJSON[Fleet](t.b(bFleets), []byte(d.Fleet)); ok && sameVersions(f.Versions, d.To) {
				f.Versions, f.Generation, f.Updated = d.From, f.Generation+1, c.Now
				t.putJSON(bFleets, []byte(f.Name), f)
				t.changed("fleet", f.Name, "put")
				d.RolledBack = true
				res.Fleet = f
			}
		}
	}
	t.putDeployment(d)
	return res
}

// Deployments lists a fleet's deployments, newest first.
func (v *View) Deployments(fleet string) []*Deployment {
	return deployments(v.tx.Bucket(bDeployments).Cursor(), fleet, 0)
}

// Deployment is one of a fleet's deployments.
func (v *View) Deployment(fleet string, id uint64) (*Deployment, bool) {
	return getJSON[Deployment](v.tx.Bucket(bDeployments), deployKey(fleet, id))
}

// RunningDeployment is the fleet's running deployment, if any.
func (v *View) RunningDeployment(fleet string) (*Deployment, bool) {
	list := deployments(v.tx.Bucket(bDeployments).Cursor(), fleet, 1)
	if len(list) == 1 && list[0].State == DeployRunning {
		return list[0], true
	}
	return nil, false
}
