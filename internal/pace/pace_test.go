package pace

import (
	"slices"
	"testing"
	"time"
)

// Idle runs back off from Min up to Max; a run that acts ends it.
func TestQuiet(t *testing.T) {
	q := Quiet{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	var seen []time.Duration
	for range 5 {
		seen = append(seen, q.Next(true))
	}
	want := []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	if !slices.Equal(seen, want) {
		t.Fatalf("idle runs spaced %v, want %v", seen, want)
	}
	if gap := q.Next(false); gap != 0 {
		t.Fatalf("a run that acted left a gap of %s", gap)
	}
	if gap := q.Next(true); gap != q.Min {
		t.Fatalf("the back-off starts again at %s, want %s", gap, q.Min)
	}
}

// A relevant change is due at the normal time, an urgent one at the
// urgent time even after a relevant one; nothing is due before either.
func TestDue(t *testing.T) {
	now := time.Now()
	normal, urgent := now.Add(time.Hour), now.Add(-time.Millisecond)
	var d Due
	if fire, ready := d.Wait(); fire != nil || ready {
		t.Fatal("due with no change seen")
	}
	d.See(false, false, normal, urgent)
	if fire, ready := d.Wait(); fire != nil || ready {
		t.Fatal("due after an irrelevant change")
	}
	d.See(true, false, normal, urgent)
	if fire, ready := d.Wait(); fire == nil || ready {
		t.Fatal("a relevant change is not due at the normal time")
	}
	d.See(true, false, now.Add(-time.Hour), urgent) // a later relevant change keeps the first time
	if _, ready := d.Wait(); ready {
		t.Fatal("a later relevant change moved the due time")
	}
	d.See(true, true, normal, urgent)
	if _, ready := d.Wait(); !ready {
		t.Fatal("an urgent change is not due at the urgent time")
	}
}
