package scheduler

import (
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// Crash backoff: a version whose ships keep failing gets its replacements
// later and later, so that a crashing version cannot loop hot. n recent
// failures (within the retention of ended ships) delay the next create by
// backoffBase << (n-1), at most backoffMax, counted from the last failure.
const (
	backoffBase = time.Second
	backoffMax  = 30 * time.Second
)

// backoff returns when a version that failed n times, last at last, may
// get a new ship.
func backoff(n int, last time.Time) time.Time {
	if n <= 0 {
		return time.Time{}
	}
	d := backoffMax
	if n <= 6 {
		d = min(backoffBase<<(n-1), backoffMax)
	}
	return last.Add(d)
}

// failures counts, per fleet version, the ships that failed within the
// retention, and the time of the latest.
type failures struct {
	n    map[verKey]int
	last map[verKey]time.Time
}

func recentFailures(in *Input, fleet []*fsm.Ship) failures {
	f := failures{n: map[verKey]int{}, last: map[verKey]time.Time{}}
	window := in.Retention
	if window <= 0 {
		window = 10 * time.Minute
	}
	cut := in.Now.Add(-window).UnixMilli()
	for _, s := range fleet {
		if s.State != fsm.ShipFailed || s.Updated < cut {
			continue
		}
		k := verKey{s.Blueprint, s.Version}
		f.n[k]++
		if at := time.UnixMilli(s.Updated); at.After(f.last[k]) {
			f.last[k] = at
		}
	}
	return f
}

// bufferReplicas is what a fleet with a buffer should have: its occupied
// (allocated or reserved) ships plus the ready ships it keeps spare,
// within [min, max].
func bufferReplicas(f *fsm.Fleet, occupied int) int {
	b := f.Buffer
	return min(max(occupied+b.Ready, b.Min), b.Max)
}

// planReservations ends the reservations whose time is up.
func planReservations(in *Input, p *Plan) {
	now := in.Now.UnixMilli()
	for _, s := range in.Ships {
		if s.State != fsm.ShipReserved || s.Desired != fsm.DesireRun {
			continue
		}
		if s.ReservedUntil <= now {
			p.SDK = append(p.SDK, &fsm.ShipSDK{Ship: s.ID, Op: fsm.SDKUnreserve})
			p.why("ship %s: reservation ended", s.ID)
			continue
		}
		p.recheckAt(time.UnixMilli(s.ReservedUntil))
	}
}

func (p *Plan) recheckAt(t time.Time) {
	if p.Recheck.IsZero() || t.Before(p.Recheck) {
		p.Recheck = t
	}
}
