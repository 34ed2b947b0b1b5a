// Package pace spaces the runs of a loop that reacts to a stream of
// changes: the scheduler's plans and a worker's passes. A run that finds
// nothing to do makes the next ones wait longer (Quiet), and a change
// that must not wait for that is acted on at the normal spacing (Due).
package pace

import "time"

// Quiet is the extra spacing of runs that find nothing to do: it doubles
// from Min up to Max with every idle run, and is 0 again once a run acts.
type Quiet struct {
	Min, Max time.Duration
	gap      time.Duration
}

// Next records whether the last run was idle and returns the spacing the
// next run started by a change keeps from it.
func (q *Quiet) Next(idle bool) time.Duration {
	if !idle {
		q.gap = 0
	} else {
		q.gap = min(max(2*q.gap, q.Min), q.Max)
	}
	return q.gap
}

// Due is when the changes seen since the last run are acted on: at the
// urgent time once an urgent change is seen, else at the normal time once
// any relevant change is.
type Due struct{ at time.Time }

// See notes changes: whether any was relevant, and any urgent.
func (d *Due) See(relevant, urgent bool, normal, urgentAt time.Time) {
	switch {
	case urgent:
		d.at = urgentAt
	case relevant && d.at.IsZero():
		d.at = normal
	}
}

// Wait says whether the due time has passed, and if not, returns a
// channel that fires when it does (nil while nothing is due).
func (d *Due) Wait() (fire <-chan time.Time, now bool) {
	if d.at.IsZero() {
		return nil, false
	}
	left := time.Until(d.at)
	if left <= 0 {
		return nil, true
	}
	return time.After(left), false
}
