package fsm

import (
	"bytes"
	"testing"
)

// read brings c up to the state and returns what it holds.
func (h *harness) cached(c *ShipCache) []*Ship {
	h.t.Helper()
	refresh := c.Prepare(h.s)
	var out []*Ship
	h.view(func(v *View) { out = refresh(v) })
	return out
}

// requireSameShips compares a cached read with a fresh one.
func requireSameShips(t *testing.T, h *harness, c *ShipCache) {
	t.Helper()
	got := h.cached(c)
	var want []*Ship
	h.view(func(v *View) { want = v.Ships(ShipFilter{Node: c.Node}) })
	if (len(got) > 0 || len(want) > 0) && jsonString(got) != jsonString(want) {
		t.Fatalf("cached ships:\n%s\nfresh:\n%s", jsonString(got), jsonString(want))
	}
}

// A ShipCache follows creates, placements, changes and purges, and
// reloads when the feed no longer has what it missed; one kept for a node
// (a worker's) holds exactly the ships placed there.
func TestShipCache(t *testing.T) {
	h := newHarness(t)
	all, n1, n2 := &ShipCache{}, &ShipCache{Node: "n1"}, &ShipCache{Node: "n2"}
	same := func() {
		t.Helper()
		for _, c := range []*ShipCache{all, n1, n2} {
			requireSameShips(t, h, c)
		}
	}
	same() // empty
	setup := readyWorld()
	for i, cmd := range setup {
		h.ok(cmd)
		if i == len(setup)-4 { // the ships exist, queued, before their placement
			same()
		}
	}
	same()
	h.ok(allocCmd(AllocRequest{Fleet: "game"}))
	h.ok(stop(StopUser, gb))
	same()
	h.ok(report("n2", gb, ShipStopped))
	h.ok(&ShipPurge{Ships: []string{gb}})
	h.ok(&ShipCreate{Fleet: "game", Blueprint: "web", Version: 1, Count: 1, Now: 60})
	same()
	for c, want := range map[*ShipCache]int{all: 3, n1: 2, n2: 0} {
		if got := len(h.cached(c)); got != want {
			t.Fatalf("%d ships cached for node %q, want %d", got, c.Node, want)
		}
	}
	// A feed that moved on: the cache reloads everything.
	h.s.feed = newFeed(2, MaxFeedBytes)
	h.ok(&ShipSDK{Ship: g7, Node: "n1", Op: SDKLabel, Key: "a", Value: "1", Now: 70})
	h.ok(&ShipSDK{Ship: g7, Node: "n1", Op: SDKLabel, Key: "b", Value: "2", Now: 71})
	h.ok(&ShipSDK{Ship: g9, Node: "n1", Op: SDKLabel, Key: "c", Value: "3", Now: 72})
	same()
}

// Restoring an older snapshot takes the state's index back: a cache
// built after it must not keep the ships the snapshot does not have.
func TestShipCacheAfterRestoringAnOlderSnapshot(t *testing.T) {
	h := newHarness(t)
	for _, cmd := range readyWorld() {
		h.ok(cmd)
	}
	snap := snapshotBytes(t, h.s)
	c := &ShipCache{}
	h.ok(&FleetScale{Name: "game", Replicas: 4, Now: 61})
	h.ok(&ShipCreate{Fleet: "game", Blueprint: "web", Version: 1, Count: 1, Now: 62})
	if got := len(h.cached(c)); got != 4 {
		t.Fatalf("%d ships cached before the restore, want 4", got)
	}
	if err := h.s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	requireSameShips(t, h, c)
	if got := len(h.cached(c)); got != 3 {
		t.Fatalf("%d ships cached after the restore, want 3", got)
	}
}
