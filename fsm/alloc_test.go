package fsm

import (
	"slices"
	"strings"
	"testing"
)

// readyWorld is gameWorld with g7 and g9 ready on n1 (ports 20000, 20001)
// and gb ready on n2 (20000), at indexes 8..13.
func readyWorld(extra ...Command) []Command {
	return slices.Clip(append(gameWorld(
		placeCmd(place(g7, "n1", 20000), place(g9, "n1", 20001), place(gb, "n2", 20000)),
		report("n1", g7, ShipReady), report("n1", g9, ShipReady), report("n2", gb, ShipReady),
	), extra...))
}

func allocCmd(reqs ...AllocRequest) *ShipAllocate { return &ShipAllocate{Requests: reqs, Now: 40} }

func allocated(r *Result) []string {
	var out []string
	for _, b := range r.Batch {
		if b.Err == nil {
			out = append(out, b.Ships[0].ID)
		}
	}
	return out
}

func shipAllocateCases() []cmdCase {
	game := AllocRequest{Fleet: "game"}
	return []cmdCase{
		{
			name:  "packed takes from the node with most allocated, then fills it",
			setup: readyWorld(allocCmd(AllocRequest{Fleet: "game", Strategy: AllocDistributed})),
			cmd:   allocCmd(game),
			check: func(t *testing.T, h *harness, r *Result) {
				// The first (distributed, no allocations yet) took the
				// first node in name order: g7 on n1. Packed then stays on n1.
				if s := h.ship(g7); s.State != ShipAllocated || s.Updated != 40 {
					t.Fatalf("first allocation %s", jsonString(s))
				}
				if got := allocated(r); !slices.Equal(got, []string{g9}) || r.Count != 1 {
					t.Fatalf("packed got %v (%s)", got, jsonString(r))
				}
				h.requireChanges(h.idx, ch("ship", g9, "put"))
			},
		},
		{
			name:  "distributed takes from the node with fewest allocated",
			setup: readyWorld(allocCmd(game)),
			cmd:   allocCmd(AllocRequest{Fleet: "game", Strategy: AllocDistributed}),
			check: func(t *testing.T, h *harness, r *Result) {
				if got := allocated(r); !slices.Equal(got, []string{gb}) {
					t.Fatalf("distributed got %v", got)
				}
			},
		},
		{
			name:  "requests in one entry never share a ship; the rest conflict",
			setup: readyWorld(),
			cmd:   allocCmd(game, game, game, game),
			check: func(t *testing.T, h *harness, r *Result) {
				got := allocated(r)
				slices.Sort(got)
				if !slices.Equal(got, []string{g7, g9, gb}) || r.Count != 3 {
					t.Fatalf("allocated %v", got)
				}
				requireErr(t, r.Batch[3], ErrConflict, "fleet")
				for _, id := range got {
					if s := h.ship(id); s.State != ShipAllocated {
						t.Fatalf("ship %s", jsonString(s))
					}
				}
			},
		},
		{
			name:  "selector and metadata labels",
			setup: readyWorld(&ShipSDK{Ship: gb, Node: "n2", Op: SDKLabel, Key: "map", Value: "dust", Now: 30}),
			cmd: allocCmd(
				AllocRequest{Fleet: "game", Selector: map[string]string{"map": "dust"}, Labels: map[string]string{"match": "m1"}},
				AllocRequest{Fleet: "game", Selector: map[string]string{"map": "dust"}},
			),
			check: func(t *testing.T, h *harness, r *Result) {
				if got := allocated(r); !slices.Equal(got, []string{gb}) {
					t.Fatalf("allocated %v", got)
				}
				if s := h.ship(gb); s.Labels["match"] != "m1" || s.Labels["map"] != "dust" {
					t.Fatalf("labels %v", s.Labels)
				}
				requireErr(t, r.Batch[1], ErrConflict, "fleet")
			},
		},
		{
			name:  "a request for an unknown fleet or with a bad field fails alone",
			setup: readyWorld(),
			cmd:   allocCmd(AllocRequest{Fleet: "nope"}, AllocRequest{Fleet: "game", Strategy: "random"}, AllocRequest{Fleet: "game", Selector: map[string]string{"bad key": "x"}}, game),
			check: func(t *testing.T, h *harness, r *Result) {
				requireErr(t, r.Batch[0], ErrNotFound, "fleet")
				requireErr(t, r.Batch[1], ErrInvalid, "strategy")
				requireErr(t, r.Batch[2], ErrInvalid, "selector.bad key")
				if r.Batch[3].Err != nil || r.Count != 1 {
					t.Fatalf("good request %s", jsonString(r.Batch[3]))
				}
			},
		},
		{
			name:  "ships on draining or dead nodes are not allocated",
			setup: readyWorld(&NodeDrain{Name: "n1", Enable: true, Now: 30}, upsert("n2", NodeSuspect, 31)),
			cmd:   allocCmd(game),
			check: func(t *testing.T, h *harness, r *Result) {
				requireErr(t, r.Batch[0], ErrConflict, "fleet")
			},
		},
		{
			name:  "a selector that matches nothing fails every request of the entry",
			setup: readyWorld(),
			cmd:   allocCmd(AllocRequest{Fleet: "game", Selector: map[string]string{"map": "none"}}, AllocRequest{Fleet: "game", Selector: map[string]string{"map": "none"}}, game),
			check: func(t *testing.T, h *harness, r *Result) {
				requireErr(t, r.Batch[0], ErrConflict, "fleet")
				requireErr(t, r.Batch[1], ErrConflict, "fleet")
				if r.Batch[2].Err != nil || r.Count != 1 {
					t.Fatalf("the selector-less request: %s", jsonString(r.Batch[2]))
				}
			},
		},
		{
			name:  "starting, reserved and stopping ships are not allocated",
			setup: readyWorld(report("n1", g7, ShipStarting), &ShipSDK{Ship: g9, Node: "n1", Op: SDKReserve, Seconds: 5, Now: 30}, stop(StopUser, gb)),
			cmd:   allocCmd(game),
			check: func(t *testing.T, h *harness, r *Result) {
				requireErr(t, r.Batch[0], ErrConflict, "fleet")
			},
		},
		{
			name:  "a request sent again with its request ID gets the ship it got, until the ID expires",
			setup: readyWorld(allocCmd(AllocRequest{Fleet: "game", RequestID: "r1"})),
			// r1 again, twice in one entry, beside a new r2 and an r1 of another fleet.
			cmd: allocCmd(AllocRequest{Fleet: "game", RequestID: "r1"}, AllocRequest{Fleet: "game", RequestID: "r2"}, AllocRequest{Fleet: "game", RequestID: "r2"}),
			check: func(t *testing.T, h *harness, r *Result) {
				got := allocated(r)
				if len(got) != 3 || got[0] != g7 || got[1] == g7 || got[2] != got[1] || r.Count != 1 {
					t.Fatalf("allocated %v, count %d (r1 first got %s)", got, r.Count, g7)
				}
				var n int
				h.view(func(v *View) {
					for _, s := range v.Ships(ShipFilter{Fleet: "game"}) {
						if s.State == ShipAllocated {
							n++
						}
					}
				})
				if n != 2 {
					t.Fatalf("%d ships allocated, want 2", n)
				}
				// The IDs are due at 40 + AllocIDTTL: the state says so, and
				// an Expire then forgets them.
				h.view(func(v *View) {
					if at, ok := v.NextExpiry(); !ok || at != 40+AllocIDTTL {
						t.Fatalf("next expiry %d %v, want %d", at, ok, 40+AllocIDTTL)
					}
				})
				h.ok(&Expire{Now: 40 + AllocIDTTL})
				again := h.ok(&ShipAllocate{Requests: []AllocRequest{{Fleet: "game", RequestID: "r1"}}, Now: 41 + AllocIDTTL})
				if s := again.Batch[0].Ships[0]; s.ID == g7 || again.Count != 1 {
					t.Fatalf("after expiry r1 got %s again (count %d)", s.ID, again.Count)
				}
				h.view(func(v *View) {
					if at, ok := v.NextExpiry(); !ok || at != 41+2*AllocIDTTL {
						t.Fatalf("next expiry %d %v", at, ok)
					}
				})
			},
		},
		{
			name:  "a request ID whose request conflicted is not remembered",
			setup: readyWorld(allocCmd(game, game, game)),
			cmd:   allocCmd(AllocRequest{Fleet: "game", RequestID: "late"}),
			check: func(t *testing.T, h *harness, r *Result) {
				requireErr(t, r.Batch[0], ErrConflict, "fleet")
				h.view(func(v *View) {
					if at, ok := v.NextExpiry(); ok {
						t.Fatalf("something expires at %d", at)
					}
				})
			},
		},
		{
			name:  "the older form of the command (type 32) still applies",
			setup: readyWorld(),
			cmd:   &shipAllocate1{ShipAllocate{Requests: []AllocRequest{game, game}, Now: 40}},
			check: func(t *testing.T, h *harness, r *Result) {
				if got := allocated(r); len(got) != 2 || r.Count != 2 {
					t.Fatalf("allocated %v", got)
				}
			},
		},
		{name: "no requests", setup: readyWorld(), cmd: allocCmd(), code: ErrInvalid, field: "requests"},
		{name: "no requests, older form", setup: readyWorld(), cmd: &shipAllocate1{ShipAllocate{Now: 40}}, code: ErrInvalid, field: "requests"},
		{
			name: "a request ID too long", setup: readyWorld(),
			cmd: allocCmd(AllocRequest{Fleet: "game", RequestID: strings.Repeat("x", MaxRequestID+1)}),
			check: func(t *testing.T, h *harness, r *Result) {
				requireErr(t, r.Batch[0], ErrInvalid, "request_id")
				if r.Count != 0 {
					t.Fatalf("count %d", r.Count)
				}
			},
		},
	}
}

func shipSDKCases() []cmdCase {
	sdk := func(op string, mod func(c *ShipSDK)) *ShipSDK {
		c := &ShipSDK{Ship: g7, Node: "n1", Op: op, Now: 50}
		if mod != nil {
			mod(c)
		}
		return c
	}
	return []cmdCase{
		{
			name: "allocate itself", setup: readyWorld(), cmd: sdk(SDKAllocate, nil),
			check: func(t *testing.T, h *harness, r *Result) {
				if s := h.ship(g7); s.State != ShipAllocated {
					t.Fatalf("ship %s", jsonString(s))
				}
				// Again: the ship must learn it is taken.
				h.reject(sdk(SDKAllocate, nil), ErrConflict, "ship")
			},
		},
		{
			name: "reserve, then the leader ends it when the time is up", setup: readyWorld(),
			cmd: sdk(SDKReserve, func(c *ShipSDK) { c.Seconds = 10 }),
			check: func(t *testing.T, h *harness, r *Result) {
				if s := h.ship(g7); s.State != ShipReserved || s.ReservedUntil != 50+10_000 {
					t.Fatalf("ship %s", jsonString(s))
				}
				// Too early: nothing changes.
				h.ok(&ShipSDK{Ship: g7, Op: SDKUnreserve, Now: 9_000})
				if s := h.ship(g7); s.State != ShipReserved {
					t.Fatalf("unreserved early: %s", jsonString(s))
				}
				// A scale-down does not stop it.
				h.ok(&FleetScale{Name: "game", Replicas: 0, Now: 60})
				h.ok(stop(StopSurplus, g7))
				if s := h.ship(g7); s.State != ShipReserved {
					t.Fatalf("surplus stopped a reserved ship: %s", jsonString(s))
				}
				h.ok(&ShipSDK{Ship: g7, Op: SDKUnreserve, Now: 10_050})
				if s := h.ship(g7); s.State != ShipReady || s.ReservedUntil != 0 {
					t.Fatalf("ship %s", jsonString(s))
				}
			},
		},
		{
			name: "shutdown stops it through its worker", setup: readyWorld(allocCmd(AllocRequest{Fleet: "game"})),
			cmd: sdk(SDKShutdown, nil),
			check: func(t *testing.T, h *harness, r *Result) {
				if s := h.ship(g7); s.State != ShipStopping || s.Desired != DesireStop || s.Reason != "shut down by the ship" {
					t.Fatalf("ship %s", jsonString(s))
				}
				h.ok(sdk(SDKShutdown, nil)) // again: fine, nothing to do
				h.requireChanges(h.idx)
			},
		},
		{
			name: "label set and removed", setup: readyWorld(),
			cmd: sdk(SDKLabel, func(c *ShipSDK) { c.Key, c.Value = "players", "3" }),
			check: func(t *testing.T, h *harness, r *Result) {
				if s := h.ship(g7); s.Labels["players"] != "3" {
					t.Fatalf("labels %v", s.Labels)
				}
				// The blueprint's labels map is not shared.
				if s := h.ship(g9); s.Labels["players"] != "" {
					t.Fatalf("g9 labels %v", s.Labels)
				}
				h.ok(sdk(SDKLabel, func(c *ShipSDK) { c.Key = "players" }))
				if s := h.ship(g7); hasKey(s.Labels, "players") {
					t.Fatalf("labels %v", s.Labels)
				}
			},
		},
		{name: "from another node", setup: readyWorld(), cmd: sdk(SDKAllocate, func(c *ShipSDK) { c.Node = "n2" }), code: ErrConflict, field: "ship"},
		{name: "unknown ship", setup: readyWorld(), cmd: sdk(SDKAllocate, func(c *ShipSDK) { c.Ship = "x" }), code: ErrNotFound, field: "ship"},
		{name: "unknown op", setup: readyWorld(), cmd: sdk("explode", nil), code: ErrInvalid, field: "op"},
		{name: "reserve without seconds", setup: readyWorld(), cmd: sdk(SDKReserve, nil), code: ErrInvalid, field: "seconds"},
		{name: "bad label", setup: readyWorld(), cmd: sdk(SDKLabel, func(c *ShipSDK) { c.Key = "a b" }), code: ErrInvalid, field: "labels.a b"},
		{name: "allocate a starting ship", setup: readyWorld(report("n1", g7, ShipStarting)), cmd: sdk(SDKAllocate, nil), code: ErrConflict, field: "ship"},
		{name: "a stopped ship", setup: readyWorld(stop(StopUser, g7), report("n1", g7, ShipStopped)), cmd: sdk(SDKAllocate, nil), code: ErrConflict, field: "ship"},
	}
}

func TestApplyShipAllocate(t *testing.T) { runCmdCases(t, shipAllocateCases()) }
func TestApplyShipSDK(t *testing.T)      { runCmdCases(t, shipSDKCases()) }

// TestAllocatedShipsSurviveScaleDownAndDrain: scale-downs and drains never
// stop an allocated ship; an operator can.
func TestAllocatedShipsSurviveScaleDownAndDrain(t *testing.T) {
	h := newHarness(t)
	for _, c := range readyWorld(allocCmd(AllocRequest{Fleet: "game"})) {
		h.ok(c)
	}
	h.ok(&FleetScale{Name: "game", Replicas: 0, Now: 60})
	h.ok(stop(StopSurplus, g7, g9, gb))
	if s := h.ship(g7); s.State != ShipAllocated {
		t.Fatalf("surplus stop took an allocated ship: %s", jsonString(s))
	}
	if s := h.ship(g9); s.State != ShipStopping {
		t.Fatalf("g9 %s", jsonString(s))
	}
	h.ok(&NodeDrain{Name: "n1", Enable: true, Now: 61})
	h.ok(stop(StopDrain, g7))
	if s := h.ship(g7); s.State != ShipAllocated {
		t.Fatalf("drain took an allocated ship: %s", jsonString(s))
	}
	// A restart of its process does not make it allocatable again.
	h.ok(report("n1", g7, ShipStarting))
	if s := h.ship(g7); s.State != ShipAllocated {
		t.Fatalf("restart lost the allocation: %s", jsonString(s))
	}
	h.ok(stop(StopUser, g7))
	if s := h.ship(g7); s.State != ShipStopping {
		t.Fatalf("operator stop: %s", jsonString(s))
	}
}

// readyGameFleet makes fleet game of n web ships, all placed and ready,
// spread over 3 big worker nodes a, b and c (ports from 10000 on), in a
// few entries.
func readyGameFleet(h *harness, n int) {
	h.ok(&BlueprintPut{Spec: *validBlueprint(), Now: 1})
	for i := range 3 {
		node := workerNode(string(rune('a'+i)), Resources{CPUMHz: 1 << 30, MemoryMB: 1 << 30})
		h.ok(node)
		h.ok(&NodeReport{Name: node.Node.Name, PortsRange: "10000-19999", Now: 1})
	}
	h.ok(webFleet(n))
	ids := h.create("game", 1, n)
	var places []Place
	var reports [3][]Report
	for i, id := range ids {
		places = append(places, place(id, string(rune('a'+i%3)), 10000+i/3))
		reports[i%3] = append(reports[i%3], Report{Ship: id, State: ShipReady})
	}
	h.ok(&ShipPlace{Places: places, Now: 2})
	for i := range 3 {
		h.ok(&ShipReport{Node: string(rune('a' + i)), Reports: reports[i], Now: 3})
	}
}

// TestAllocateExactlyOnce: 200 requests in random batches against 150
// ready ships: exactly 150 succeed, none twice.
func TestAllocateExactlyOnce(t *testing.T) {
	h := newHarness(t)
	readyGameFleet(h, 150)
	rnd := newRand(7)
	seen := map[string]bool{}
	ok, conflicts := 0, 0
	for left := 200; left > 0; {
		n := min(left, 1+rnd.IntN(40))
		left -= n
		reqs := make([]AllocRequest, n)
		for i := range reqs {
			reqs[i] = AllocRequest{Fleet: "game", Strategy: []string{AllocPacked, AllocDistributed}[rnd.IntN(2)]}
		}
		r := h.ok(allocCmd(reqs...))
		for _, b := range r.Batch {
			if b.Err != nil {
				conflicts++
				continue
			}
			id := b.Ships[0].ID
			if seen[id] {
				t.Fatalf("ship %s allocated twice", id)
			}
			seen[id] = true
			ok++
		}
	}
	checkInvariants(t, h.s)
	n := 0
	h.view(func(v *View) {
		for _, s := range v.Ships(ShipFilter{Fleet: "game"}) {
			if s.State == ShipAllocated {
				n++
			}
		}
	})
	if ok != 150 || conflicts != 50 || n != 150 {
		t.Fatalf("%d allocated, %d conflicts, %d allocated in the state", ok, conflicts, n)
	}
}

// A rolling update under allocations: allocated ships of a version the
// fleet no longer runs count towards its replicas, so creates of the new
// version are capped at what is left.
func TestRetiredShipsCapCreates(t *testing.T) {
	h := newHarness(t)
	for _, c := range readyWorld(allocCmd(AllocRequest{Fleet: "game"}, AllocRequest{Fleet: "game"}), webV2()) {
		h.ok(c)
	}
	h.ok(fleetPut("game", 3, FleetVersion{Blueprint: "web", Version: 2, Weight: 1}))
	r := h.ok(&ShipCreate{Fleet: "game", Blueprint: "web", Version: 2, Count: 3, Now: 50})
	if r.Count != 1 {
		t.Fatalf("created %d ships of v2 with 2 v1 ships allocated out of 3 replicas, want 1", r.Count)
	}
	// The ready v1 ship is surplus; the allocated ones are not.
	r = h.ok(stop(StopSurplus, g7, g9, gb))
	if ids := shipIDsOf(r); len(ids) != 1 || h.ship(ids[0]).State != ShipStopping {
		t.Fatalf("surplus stopped %v", ids)
	}
}

// TestAllocateRunsInOneBatchMatchOneByOne: allocations share the state's
// pools across entries and batches; the state must be the same as when
// each entry is applied alone on a state without pools, interleaved with
// label changes that the pools must not survive.
func TestAllocateRunsInOneBatchMatchOneByOne(t *testing.T) {
	setup := readyWorld()
	dust := AllocRequest{Fleet: "game", Selector: map[string]string{"map": "dust"}}
	log := []Command{
		allocCmd(dust), // nothing matches: the pool remembers that
		&ShipSDK{Ship: gb, Node: "n2", Op: SDKLabel, Key: "map", Value: "dust", Now: 40},
		allocCmd(dust), // gb matches now
	}
	rnd := newRand(3)
	for i := range 12 {
		if i%4 == 3 {
			log = append(log, &ShipSDK{Ship: []string{g7, g9, gb}[rnd.IntN(3)], Node: "n1", Op: SDKLabel, Key: "map", Value: "dust", Now: 40})
			continue
		}
		var reqs []AllocRequest
		for range 1 + rnd.IntN(2) {
			r := AllocRequest{Fleet: "game", Strategy: []string{AllocPacked, AllocDistributed}[rnd.IntN(2)]}
			if rnd.IntN(3) == 0 {
				r.Selector = map[string]string{"map": "dust"}
			}
			reqs = append(reqs, r)
		}
		log = append(log, allocCmd(reqs...))
	}
	one, all := newHarness(t), newHarness(t)
	for _, c := range setup {
		one.ok(c)
		all.ok(c)
	}
	var entries []Entry
	for i, c := range log {
		clear(one.s.pools)
		one.apply(c)
		entries = append(entries, Entry{Index: all.idx + uint64(i) + 1, Data: Encode(c)})
	}
	all.s.ApplyBatch(entries)
	if a, b := dumpState(t, one.s), dumpState(t, all.s); a != b {
		t.Fatalf("one batch differs from one by one:\n%s", diffLines(a, b))
	}
}

// TestAllocatePoolsFollowNodes: the state keeps a fleet's allocation pool
// from one entry to the next; a node drained in between (a write of the
// node alone, no ship changes) must take its ready ships out of it.
func TestAllocatePoolsFollowNodes(t *testing.T) {
	h := newHarness(t)
	for _, c := range readyWorld() {
		h.ok(c)
	}
	// Distributed: the first goes to n1 (name order), building the pool.
	if got := allocated(h.ok(allocCmd(AllocRequest{Fleet: "game", Strategy: AllocDistributed}))); len(got) != 1 || h.ship(got[0]).Node != "n1" {
		t.Fatalf("first allocation %v", got)
	}
	if len(h.s.pools) == 0 {
		t.Fatal("no pool kept after an allocation")
	}
	h.ok(&NodeDrain{Name: "n1", Enable: true, Now: 41})
	// Packed would stay on n1, which still has a ready ship; it drains.
	got := allocated(h.ok(allocCmd(AllocRequest{Fleet: "game"})))
	if len(got) != 1 {
		t.Fatalf("allocation after n1 drained took %v, want one ship", got)
	}
	if node := h.ship(got[0]).Node; node != "n2" {
		t.Fatalf("allocation after n1 drained took %s on %s, want the ship on n2", got[0], node)
	}
}
