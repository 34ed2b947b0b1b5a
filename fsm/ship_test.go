package fsm

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// shipWorld is the setup most ship tests start from, at indexes 1..5: the
// blueprint web (one port "http", 100 MHz, 64 MB) and two alive worker
// nodes, n1 and n2, each giving ship ports from 20000-20009.
func shipWorld() []Command {
	return []Command{
		&BlueprintPut{Spec: *validBlueprint(), Now: 1},
		upsert("n1", NodeAlive, 1),
		&NodeReport{Name: "n1", PortsRange: "20000-20009", Now: 1},
		upsert("n2", NodeAlive, 1),
		&NodeReport{Name: "n2", PortsRange: "20000-20009", Now: 1},
	}
}

// gameWorld is shipWorld, the fleet game of 3 web ships at index 6 and its
// three ships created at index 7 (g7, g9 and gb, queued with the items 8,
// 10 and 12), then extra from index 8 on.
func gameWorld(extra ...Command) []Command {
	// Clipped, so that cases appending to the same world never share an
	// array.
	return slices.Clip(append(append(shipWorld(), webFleet(3), &ShipCreate{Fleet: "game", Blueprint: "web", Version: 1, Count: 3, Now: 7}), extra...))
}

// The ships of gameWorld: ids are the fleet and a base-36 ID taken from
// the index.
var g7, g9, gb = sid("game", 7), sid("game", 9), sid("game", 11)

func sid(prefix string, id uint64) string { return prefix + "-" + strconv.FormatUint(id, 36) }

func place(ship, node string, ports ...int) Place { return Place{Ship: ship, Node: node, Ports: ports} }

func placeCmd(places ...Place) *ShipPlace { return &ShipPlace{Places: places, Now: 20} }

func report(node, ship, state string) *ShipReport {
	return &ShipReport{Node: node, Reports: []Report{{Ship: ship, State: state}}, Now: 25}
}

func stop(why string, ids ...string) *ShipStop { return &ShipStop{Ships: ids, Why: why, Now: 30} }

func workerNode(name string, capacity Resources) *NodeUpsert {
	c := upsert(name, NodeAlive, 1)
	c.Node.Capacity = capacity
	return c
}

func (h *harness) ship(id string) *Ship {
	h.t.Helper()
	var s *Ship
	var ok bool
	h.view(func(v *View) { s, ok = v.Ship(id) })
	if !ok {
		h.t.Fatalf("ship %s missing", id)
	}
	return s
}

func (h *harness) hasShip(id string) bool {
	var ok bool
	h.view(func(v *View) { _, ok = v.Ship(id) })
	return ok
}

func (h *harness) shipIDs(f ShipFilter) []string {
	var ids []string
	h.view(func(v *View) {
		for _, s := range v.Ships(f) {
			ids = append(ids, s.ID)
		}
	})
	return ids
}

func (h *harness) mustNode(name string) *Node {
	h.t.Helper()
	n, ok := h.node(name)
	if !ok {
		h.t.Fatalf("node %s missing", name)
	}
	return n
}

// queueShips lists the ship ids of a queue's items, oldest first.
func (h *harness) queueShips(name string) []string {
	var ids []string
	for _, it := range h.queue(name) {
		ids = append(ids, string(it.Data))
	}
	return ids
}

func shipIDsOf(r *Result) []string {
	var ids []string
	for _, s := range r.Ships {
		ids = append(ids, s.ID)
	}
	return ids
}

// requireHolds requires a node's allocation.
func requireHolds(t *testing.T, h *harness, node string, ships int, res Resources, ports ...int) {
	t.Helper()
	n := h.mustNode(node)
	if n.Ships != ships || n.Allocated != res || !slices.Equal(n.UsedPorts, ports) {
		t.Fatalf("node %s holds %d ships, %+v, ports %v; want %d, %+v, %v", node, n.Ships, n.Allocated, n.UsedPorts, ships, res, ports)
	}
}

var web1 = Resources{CPUMHz: 100, MemoryMB: 64}

func times(n int, r Resources) Resources {
	return Resources{CPUMHz: int64(n) * r.CPUMHz, MemoryMB: int64(n) * r.MemoryMB}
}

func shipCreateCases() []cmdCase {
	fleet := slices.Clip(append(shipWorld(), webFleet(3))) // the create applies at 7
	create := func(count int) *ShipCreate {
		return &ShipCreate{Fleet: "game", Blueprint: "web", Version: 1, Count: count, Now: 50}
	}
	return []cmdCase{
		{
			name:  "fleet ships are queued",
			setup: fleet,
			cmd:   create(3),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 3 {
					t.Fatalf("count %d", r.Count)
				}
				requireEqual(t, "ids", shipIDsOf(r), []string{g7, g9, gb})
				for i, id := range []string{g7, g9, gb} {
					want := &Ship{
						ID: id, Fleet: "game", Blueprint: "web", Version: 1, State: ShipQueued, Desired: DesireRun,
						Labels: map[string]string{"app": "web"}, Resources: web1, Created: 50, Updated: 50,
						Item: uint64(8 + 2*i),
					}
					requireEqual(t, "ship "+id, h.ship(id), want)
					requireEqual(t, "result ship "+id, r.Ships[i], want)
				}
				requireEqual(t, "scheduler queue", h.queueShips(SchedulerQueue), []string{g7, g9, gb})
				for i, it := range h.queue(SchedulerQueue) {
					if it.ID != uint64(8+2*i) || it.Enqueued != 50 {
						t.Fatalf("item %d: %s", i, jsonString(it))
					}
				}
				h.view(func(v *View) {
					var queued []string
					for _, s := range v.Queued() {
						queued = append(queued, s.ID)
					}
					requireEqual(t, "Queued", queued, []string{g7, g9, gb})
				})
				requireEqual(t, "fleet ships", h.shipIDs(ShipFilter{Fleet: "game"}), []string{g7, g9, gb})
				h.requireChanges(7,
					ch("queue", SchedulerQueue, "put"), ch("ship", g7, "put"),
					ch("queue", SchedulerQueue, "put"), ch("ship", g9, "put"),
					ch("queue", SchedulerQueue, "put"), ch("ship", gb, "put"))
				// Nothing is allocated until a ship is placed.
				requireHolds(t, h, "n1", 0, Resources{})
			},
		},
		{
			name:  "capped at the version's deficit",
			setup: append(fleet, create(2)), // 7: two ships
			cmd:   create(5),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 1 || len(h.shipIDs(ShipFilter{Fleet: "game"})) != 3 {
					t.Fatalf("created %d, fleet has %v", r.Count, h.shipIDs(ShipFilter{Fleet: "game"}))
				}
			},
		},
		{
			name:  "ships on draining nodes and stopping ships do not count",
			setup: gameWorld(placeCmd(place(g7, "n1", 20000), place(g9, "n2", 20000)), stop(StopUser, g9), &NodeDrain{Name: "n1", Enable: true}),
			cmd:   create(5),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 2 {
					t.Fatalf("created %d, want replacements for the draining and the stopping ship", r.Count)
				}
			},
		},
		{
			name:  "ended ships do not count",
			setup: gameWorld(stop(StopUser, g7, g9)),
			cmd:   create(5),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 2 {
					t.Fatalf("created %d", r.Count)
				}
			},
		},
		{
			name:  "standalone ship",
			setup: append(shipWorld(), webV2()), // 6
			cmd:   &ShipCreate{Blueprint: "web", Count: 1, Now: 50},
			check: func(t *testing.T, h *harness, r *Result) {
				id := sid("web", 7)
				requireEqual(t, "ids", shipIDsOf(r), []string{id})
				s := h.ship(id)
				if s.Fleet != "" || s.Version != 2 || s.Resources.MemoryMB != 128 || s.State != ShipQueued || s.Item != 8 {
					t.Fatalf("ship %s", jsonString(s))
				}
				requireEqual(t, "queue", h.queueShips(SchedulerQueue), []string{id})
				// An explicit older version.
				r2 := h.ok(&ShipCreate{Blueprint: "web", Version: 1, Count: 1, Now: 51})
				if len(r2.Ships) != 1 || r2.Ships[0].Version != 1 || r2.Ships[0].ID != sid("web", 9) {
					t.Fatalf("second ship %s", jsonString(r2))
				}
			},
		},
		{name: "full fleet", setup: gameWorld(), cmd: create(1), code: ErrConflict, field: "count"},
		{name: "version the fleet does not run", setup: append(fleet, webV2()), cmd: &ShipCreate{Fleet: "game", Blueprint: "web", Version: 2, Count: 1}, code: ErrConflict, field: "count"},
		{name: "version 0 is not a fleet version", setup: fleet, cmd: &ShipCreate{Fleet: "game", Blueprint: "web", Count: 1}, code: ErrConflict, field: "count"},
		{name: "fleet scaled to zero", setup: append(fleet, &FleetScale{Name: "game"}), cmd: create(1), code: ErrConflict, field: "count"},
		{name: "unknown fleet", setup: fleet, cmd: &ShipCreate{Fleet: "nope", Blueprint: "web", Version: 1, Count: 1}, code: ErrNotFound, field: "fleet"},
		{name: "zero count", setup: fleet, cmd: create(0), code: ErrInvalid, field: "count"},
		{name: "negative count", setup: fleet, cmd: create(-1), code: ErrInvalid, field: "count"},
		{name: "count too large", setup: fleet, cmd: create(MaxReplicas + 1), code: ErrInvalid, field: "count"},
		{name: "standalone needs count 1", setup: shipWorld(), cmd: &ShipCreate{Blueprint: "web", Count: 2}, code: ErrInvalid, field: "count"},
		{name: "standalone unknown blueprint", setup: shipWorld(), cmd: &ShipCreate{Blueprint: "api", Count: 1}, code: ErrNotFound, field: "blueprint"},
		{name: "standalone unknown version", setup: shipWorld(), cmd: &ShipCreate{Blueprint: "web", Version: 2, Count: 1}, code: ErrNotFound, field: "blueprint"},
	}
}

// refusedPlace is a placement of g7 that ShipPlace must refuse: the ship
// stays queued, with a reason containing why, and nothing is allocated.
func refusedPlace(name string, extra []Command, p Place, why string) cmdCase {
	return cmdCase{
		name:  name,
		setup: gameWorld(extra...),
		cmd:   placeCmd(p),
		check: func(t *testing.T, h *harness, r *Result) {
			if r.Count != 0 || len(r.Ships) != 0 {
				t.Fatalf("result %s", jsonString(r))
			}
			s := h.ship(p.Ship)
			if s.State != ShipQueued || s.Node != "" || s.Ports != nil || s.Item == 0 || !strings.Contains(s.Reason, why) || !strings.Contains(s.Reason, "refused") {
				t.Fatalf("ship %s, want queued with a reason containing %q", jsonString(s), why)
			}
			if !slices.Contains(h.queueShips(SchedulerQueue), p.Ship) {
				t.Fatalf("ship left the scheduler queue: %v", h.queueShips(SchedulerQueue))
			}
			if q := h.queueShips(WorkerQueue(p.Node)); slices.Contains(q, p.Ship) {
				t.Fatalf("worker queue %v", q)
			}
			h.requireChanges(h.idx, ch("ship", p.Ship, "put"))
			// The same refusal again changes nothing.
			h.ok(placeCmd(p))
			h.requireChanges(h.idx)
		},
	}
}

func shipPlaceCases() []cmdCase {
	duo := validBlueprint()
	duo.Name = "duo"
	duo.Ports = []Port{{Name: "a"}, {Name: "b", Protocol: "udp"}}
	duo.Health = nil
	duoWorld := slices.Clip(append(shipWorld(), &BlueprintPut{Spec: *duo, Now: 1}, &ShipCreate{Blueprint: "duo", Count: 1, Now: 7})) // duo-7 at index 7
	cases := []cmdCase{
		{
			name:  "place",
			setup: gameWorld(),
			cmd:   placeCmd(place(g7, "n1", 20003)),
			check: func(t *testing.T, h *harness, r *Result) {
				want := &Ship{
					ID: g7, Fleet: "game", Blueprint: "web", Version: 1, Node: "n1", State: ShipScheduled, Desired: DesireRun,
					Ports: map[string]int{"http": 20003}, Address: "10.0.0.1", Labels: map[string]string{"app": "web"},
					Resources: web1, Created: 7, Updated: 20, Item: 13,
				}
				requireEqual(t, "ship", h.ship(g7), want)
				requireEqual(t, "result", r.Ships, []*Ship{want})
				if r.Count != 1 {
					t.Fatalf("count %d", r.Count)
				}
				requireEqual(t, "scheduler queue", h.queueShips(SchedulerQueue), []string{g9, gb})
				requireEqual(t, "worker queue", h.queueShips(WorkerQueue("n1")), []string{g7})
				if it := h.queue(WorkerQueue("n1"))[0]; it.ID != 13 || it.Enqueued != 20 {
					t.Fatalf("worker item %s", jsonString(it))
				}
				if WorkerQueue("n1") != "/armada/worker/n1/queue" || SchedulerQueue != "/armada/scheduler/queue" {
					t.Fatal("queue names changed")
				}
				requireHolds(t, h, "n1", 1, web1, 20003)
				requireHolds(t, h, "n2", 0, Resources{})
				requireEqual(t, "node ships", h.shipIDs(ShipFilter{Node: "n1"}), []string{g7})
				h.requireChanges(8,
					ch("queue", SchedulerQueue, "delete"), ch("queue", WorkerQueue("n1"), "put"),
					ch("ship", g7, "put"), ch("node", "n1", "put"))
			},
		},
		{
			name:  "several ships, nodes and ports in one command",
			setup: gameWorld(),
			cmd:   placeCmd(place(g7, "n1", 20000), place(g9, "n1", 20009), place(gb, "n2", 20000)),
			check: func(t *testing.T, h *harness, r *Result) {
				requireEqual(t, "placed", shipIDsOf(r), []string{g7, g9, gb})
				requireHolds(t, h, "n1", 2, times(2, web1), 20000, 20009)
				requireHolds(t, h, "n2", 1, web1, 20000)
				requireEqual(t, "n1 queue", h.queueShips(WorkerQueue("n1")), []string{g7, g9})
				requireEqual(t, "scheduler queue", h.queueShips(SchedulerQueue), []string(nil))
				h.view(func(v *View) {
					if len(v.Queued()) != 0 {
						t.Fatal("Queued lists placed ships")
					}
				})
			},
		},
		{
			name:  "a port taken earlier in the same command is refused",
			setup: gameWorld(),
			cmd:   placeCmd(place(g7, "n1", 20000), place(g9, "n1", 20000), place(gb, "n1", 20001)),
			check: func(t *testing.T, h *harness, r *Result) {
				requireEqual(t, "placed", shipIDsOf(r), []string{g7, gb})
				if s := h.ship(g9); s.State != ShipQueued || !strings.Contains(s.Reason, "port 20000 is taken by another ship") {
					t.Fatalf("ship %s", jsonString(s))
				}
				requireHolds(t, h, "n1", 2, times(2, web1), 20000, 20001)
			},
		},
		{
			name:  "capacity used earlier in the same command counts",
			setup: append(gameWorld(workerNode("n3", Resources{CPUMHz: 250, MemoryMB: 8192})), &NodeReport{Name: "n3", PortsRange: "1-9"}),
			cmd:   placeCmd(place(g7, "n3", 1), place(g9, "n3", 2), place(gb, "n3", 3)),
			check: func(t *testing.T, h *harness, r *Result) {
				requireEqual(t, "placed", shipIDsOf(r), []string{g7, g9})
				if s := h.ship(gb); !strings.Contains(s.Reason, "not enough CPU (50 MHz free, 100 wanted)") {
					t.Fatalf("ship %s", jsonString(s))
				}
			},
		},
		{
			name:  "capacity exactly used up is fine",
			setup: append(gameWorld(workerNode("n3", Resources{CPUMHz: 200, MemoryMB: 128})), &NodeReport{Name: "n3", PortsRange: "1-9"}),
			cmd:   placeCmd(place(g7, "n3", 1), place(g9, "n3", 2)),
			check: func(t *testing.T, h *harness, r *Result) {
				requireHolds(t, h, "n3", 2, Resources{CPUMHz: 200, MemoryMB: 128}, 1, 2)
			},
		},
		{
			name:  "ports follow the blueprint's order",
			setup: duoWorld,
			cmd:   placeCmd(place(sid("duo", 7), "n2", 20005, 20001)),
			check: func(t *testing.T, h *harness, r *Result) {
				requireEqual(t, "ports", h.ship(sid("duo", 7)).Ports, map[string]int{"a": 20005, "b": 20001})
				requireHolds(t, h, "n2", 1, web1, 20001, 20005)
			},
		},
		{
			name:  "placed, unknown and stopped ships are skipped",
			setup: gameWorld(placeCmd(place(g7, "n1", 20000)), stop(StopUser, g9)),
			cmd:   placeCmd(place(g7, "n2", 20001), place("nope", "n1", 20002), place(g9, "n1", 20003)),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 0 {
					t.Fatalf("count %d", r.Count)
				}
				if s := h.ship(g7); s.Node != "n1" || s.Reason != "" {
					t.Fatalf("ship %s", jsonString(s))
				}
				if s := h.ship(g9); s.State != ShipStopped || s.Node != "" {
					t.Fatalf("ship %s", jsonString(s))
				}
				requireHolds(t, h, "n2", 0, Resources{})
				h.requireChanges(10)
			},
		},
		{
			name:  "pending sets the reason",
			setup: gameWorld(placeCmd(place(g9, "n1", 20000))),
			cmd:   &ShipPlace{Pending: []Pending{{Ship: g7, Reason: "no node fits"}, {Ship: g9, Reason: "not queued"}, {Ship: "nope", Reason: "x"}}, Now: 40},
			check: func(t *testing.T, h *harness, r *Result) {
				if s := h.ship(g7); s.Reason != "no node fits" || s.State != ShipQueued || s.Updated != 40 || s.Item != 8 {
					t.Fatalf("ship %s", jsonString(s))
				}
				if s := h.ship(g9); s.Reason != "" {
					t.Fatalf("placed ship got a pending reason: %s", jsonString(s))
				}
				h.requireChanges(9, ch("ship", g7, "put"))
				h.ok(&ShipPlace{Pending: []Pending{{Ship: g7, Reason: "no node fits"}}, Now: 41})
				h.requireChanges(10)
				// A later placement clears the reason.
				h.ok(placeCmd(place(g7, "n2", 20000)))
				if s := h.ship(g7); s.Reason != "" || s.State != ShipScheduled {
					t.Fatalf("ship %s", jsonString(s))
				}
			},
		},
		refusedPlace("node not found", nil, place(g7, "n9", 20000), "node not found"),
		refusedPlace("node suspect", []Command{upsert("n1", NodeSuspect, 2)}, place(g7, "n1", 20000), "node is suspect"),
		refusedPlace("node dead", []Command{upsert("n1", NodeDead, 2)}, place(g7, "n1", 20000), "node is dead"),
		refusedPlace("node draining", []Command{&NodeDrain{Name: "n1", Enable: true}}, place(g7, "n1", 20000), "node is draining"),
		refusedPlace("not a worker", []Command{func() Command {
			c := upsert("n3", NodeAlive, 1)
			c.Node.Worker = false
			return c
		}(), &NodeReport{Name: "n3", PortsRange: "20000-20009"}}, place(g7, "n3", 20000), "node does not run ships"),
		refusedPlace("not enough CPU", []Command{workerNode("n3", Resources{CPUMHz: 99, MemoryMB: 8192}), &NodeReport{Name: "n3", PortsRange: "20000-20009"}},
			place(g7, "n3", 20000), "not enough CPU"),
		refusedPlace("not enough memory", []Command{workerNode("n3", Resources{CPUMHz: 4000, MemoryMB: 63}), &NodeReport{Name: "n3", PortsRange: "20000-20009"}},
			place(g7, "n3", 20000), "not enough memory"),
		refusedPlace("port above the range", nil, place(g7, "n1", 20010), "port 20010 is outside the node's range 20000-20009"),
		refusedPlace("port below the range", nil, place(g7, "n1", 19999), "outside the node's range"),
		refusedPlace("negative port", nil, place(g7, "n1", -1), "outside the node's range"),
		refusedPlace("node without a ports range", []Command{upsert("n3", NodeAlive, 1)}, place(g7, "n3", 20000), "outside the node's range"),
		refusedPlace("port used by another ship", []Command{placeCmd(place(g9, "n1", 20004))}, place(g7, "n1", 20004), "port 20004 is taken by another ship"),
		refusedPlace("port in use on the host", []Command{&NodeReport{Name: "n1", PortsRange: "20000-20009", HostPorts: []int{20006, 20004}}},
			place(g7, "n1", 20004), "port 20004 is in use on the host"),
		refusedPlace("no ports", nil, place(g7, "n1"), "0 ports given for 1 wanted"),
		refusedPlace("too many ports", nil, place(g7, "n1", 20000, 20001), "2 ports given for 1 wanted"),
	}
	dup := refusedPlace("duplicate port", nil, place(sid("duo", 7), "n1", 20001, 20001), "port 20001 given twice")
	dup.setup = duoWorld
	return append(cases, dup)
}

func shipReportCases() []cmdCase {
	placed := gameWorld(placeCmd(place(g7, "n1", 20000))) // 8; the report applies at 9
	return []cmdCase{
		{
			name:  "starting takes the ship off its node's queue",
			setup: placed,
			cmd:   &ShipReport{Node: "n1", Reports: []Report{{Ship: g7, State: ShipStarting, Reason: "pulling"}}, Now: 60},
			check: func(t *testing.T, h *harness, r *Result) {
				s := h.ship(g7)
				if s.State != ShipStarting || s.Item != 0 || s.Reason != "pulling" || s.Updated != 60 || r.Count != 1 {
					t.Fatalf("ship %s result %s", jsonString(s), jsonString(r))
				}
				if q := h.queue(WorkerQueue("n1")); len(q) != 0 {
					t.Fatalf("worker queue %s", jsonString(q))
				}
				requireHolds(t, h, "n1", 1, web1, 20000)
				h.requireChanges(9, ch("queue", WorkerQueue("n1"), "delete"), ch("ship", g7, "put"))
				h.ok(report("n1", g7, ShipReady))
				if s := h.ship(g7); s.State != ShipReady || s.Reason != "" {
					t.Fatalf("ship %s", jsonString(s))
				}
				h.requireChanges(10, ch("ship", g7, "put"))
				// The same state again changes nothing.
				r = h.ok(report("n1", g7, ShipReady))
				if r.Count != 0 {
					t.Fatalf("repeated report counted: %s", jsonString(r))
				}
				h.requireChanges(11)
				requireHolds(t, h, "n1", 1, web1, 20000)
			},
		},
		{
			name:  "ready straight away",
			setup: placed,
			cmd:   report("n1", g7, ShipReady),
			check: func(t *testing.T, h *harness, r *Result) {
				if s := h.ship(g7); s.State != ShipReady || s.Item != 0 {
					t.Fatalf("ship %s", jsonString(s))
				}
				if q := h.queue(WorkerQueue("n1")); len(q) != 0 {
					t.Fatalf("worker queue %s", jsonString(q))
				}
			},
		},
		{
			name:  "stopped releases the node",
			setup: gameWorld(placeCmd(place(g7, "n1", 20000), place(g9, "n1", 20001)), report("n1", g7, ShipReady)),
			cmd:   &ShipReport{Node: "n1", Reports: []Report{{Ship: g7, State: ShipStopped, Reason: "exit 0"}}, Now: 60},
			check: func(t *testing.T, h *harness, r *Result) {
				if s := h.ship(g7); s.State != ShipStopped || s.Reason != "exit 0" || s.Desired != DesireRun || s.Node != "n1" || r.Count != 1 {
					t.Fatalf("ship %s", jsonString(s))
				}
				requireHolds(t, h, "n1", 1, web1, 20001)
				h.requireChanges(10, ch("ship", g7, "put"), ch("node", "n1", "put"))
				// An ended ship takes no more reports.
				r = h.ok(report("n1", g7, ShipReady))
				if r.Count != 0 || h.ship(g7).State != ShipStopped {
					t.Fatalf("ended ship revived: %s", jsonString(h.ship(g7)))
				}
			},
		},
		{
			name:  "failed before starting releases the node and its queue item",
			setup: placed,
			cmd:   &ShipReport{Node: "n1", Reports: []Report{{Ship: g7, State: ShipFailed, Reason: "no image"}}, Now: 60},
			check: func(t *testing.T, h *harness, r *Result) {
				if s := h.ship(g7); s.State != ShipFailed || s.Reason != "no image" || s.Item != 0 {
					t.Fatalf("ship %s", jsonString(s))
				}
				requireHolds(t, h, "n1", 0, Resources{})
				if q := h.queue(WorkerQueue("n1")); len(q) != 0 {
					t.Fatalf("worker queue %s", jsonString(q))
				}
			},
		},
		{
			name:  "a stopping ship only accepts stopped or failed, and ends stopped",
			setup: gameWorld(placeCmd(place(g7, "n1", 20000)), report("n1", g7, ShipReady), &ShipStop{Ships: []string{g7}, Why: StopUser, Reason: "operator", Now: 30}),
			cmd:   &ShipReport{Node: "n1", Reports: []Report{{Ship: g7, State: ShipReady}, {Ship: g7, State: ShipStarting}}, Now: 60},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 0 || h.ship(g7).State != ShipStopping {
					t.Fatalf("stopping ship took a running report: %s", jsonString(h.ship(g7)))
				}
				h.requireChanges(11)
				requireHolds(t, h, "n1", 1, web1, 20000)
				h.ok(&ShipReport{Node: "n1", Reports: []Report{{Ship: g7, State: ShipFailed, Reason: "killed"}}, Now: 70})
				if s := h.ship(g7); s.State != ShipStopped || s.Reason != "operator" || s.Updated != 70 {
					t.Fatalf("ship %s", jsonString(s))
				}
				requireHolds(t, h, "n1", 0, Resources{})
			},
		},
		{
			name:  "only the ship's node reports it",
			setup: placed,
			cmd:   &ShipReport{Node: "n2", Reports: []Report{{Ship: g7, State: ShipStopped}, {Ship: g9, State: ShipReady}, {Ship: "nope", State: ShipReady}}, Now: 60},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 0 || h.ship(g7).State != ShipScheduled || h.ship(g9).State != ShipQueued {
					t.Fatalf("report from the wrong node applied: %s", jsonString(r))
				}
				requireHolds(t, h, "n1", 1, web1, 20000)
				h.requireChanges(9)
			},
		},
		{
			name:  "queued ships take no reports",
			setup: gameWorld(),
			cmd:   &ShipReport{Node: "", Reports: []Report{{Ship: g7, State: ShipReady}, {Ship: g9, State: ShipStopped}}, Now: 60},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 0 || h.ship(g7).State != ShipQueued || h.ship(g9).State != ShipQueued {
					t.Fatalf("queued ship took a report: %s", jsonString(r))
				}
				h.requireChanges(8)
			},
		},
		{
			name:  "unknown states are ignored",
			setup: placed,
			cmd:   &ShipReport{Node: "n1", Reports: []Report{{Ship: g7, State: ShipAllocated}, {Ship: g7, State: "exploded"}, {Ship: g7, State: ShipLostState}, {Ship: g7, State: ShipStopping}}, Now: 60},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 0 || h.ship(g7).State != ShipScheduled {
					t.Fatalf("ship %s", jsonString(h.ship(g7)))
				}
				h.requireChanges(9)
			},
		},
	}
}

func shipStopCases() []cmdCase {
	placed := gameWorld(placeCmd(place(g7, "n1", 20000)), report("n1", g7, ShipReady)) // 8, 9; the stop applies at 10
	return []cmdCase{
		{
			name:  "user stop of a queued ship stops it at once",
			setup: placed,
			cmd:   stop(StopUser, g9),
			check: func(t *testing.T, h *harness, r *Result) {
				s := h.ship(g9)
				if s.State != ShipStopped || s.Desired != DesireStop || s.Reason != "stopped by user" || s.Item != 0 || s.Updated != 30 {
					t.Fatalf("ship %s", jsonString(s))
				}
				requireEqual(t, "result", shipIDsOf(r), []string{g9})
				requireEqual(t, "scheduler queue", h.queueShips(SchedulerQueue), []string{gb})
				h.requireChanges(10, ch("queue", SchedulerQueue, "delete"), ch("ship", g9, "put"))
			},
		},
		{
			name:  "user stop of a placed ship goes through its worker",
			setup: gameWorld(placeCmd(place(g7, "n1", 20000))),
			cmd:   &ShipStop{Ships: []string{g7}, Why: StopUser, Reason: "maintenance", Now: 30},
			check: func(t *testing.T, h *harness, r *Result) {
				s := h.ship(g7)
				if s.State != ShipStopping || s.Desired != DesireStop || s.Reason != "maintenance" || s.Item != 0 || s.Node != "n1" || r.Count != 1 {
					t.Fatalf("ship %s", jsonString(s))
				}
				if q := h.queue(WorkerQueue("n1")); len(q) != 0 {
					t.Fatalf("worker queue %s", jsonString(q))
				}
				requireHolds(t, h, "n1", 1, web1, 20000)
				// Stopping twice changes nothing.
				r = h.ok(stop(StopUser, g7))
				if r.Count != 0 || h.ship(g7).Reason != "maintenance" {
					t.Fatalf("second stop: %s", jsonString(r))
				}
				h.requireChanges(h.idx)
			},
		},
		{
			name:  "user stop of ended ships changes nothing",
			setup: gameWorld(stop(StopUser, g7)),
			cmd:   stop(StopUser, g7, g7),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 0 {
					t.Fatalf("count %d", r.Count)
				}
				h.requireChanges(9)
			},
		},
		{
			name:  "surplus stops only down to the desired count",
			setup: gameWorld(&FleetScale{Name: "game", Replicas: 1}),
			cmd:   stop(StopSurplus, g7, g9, gb),
			check: func(t *testing.T, h *harness, r *Result) {
				requireEqual(t, "stopped", shipIDsOf(r), []string{g7, g9})
				if s := h.ship(gb); s.State != ShipQueued || s.Desired != DesireRun {
					t.Fatalf("last ship stopped: %s", jsonString(s))
				}
				if s := h.ship(g7); s.Reason != "stopped by surplus" {
					t.Fatalf("reason %q", s.Reason)
				}
			},
		},
		{
			name:  "surplus without a surplus changes nothing",
			setup: placed,
			cmd:   stop(StopSurplus, g7, g9, gb, "nope"),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 0 {
					t.Fatalf("count %d", r.Count)
				}
				h.requireChanges(10)
			},
		},
		{
			// g9 and gb count, one too many; g7 on the draining node does
			// not count, so it is not the surplus (drain stops it).
			name:  "a ship on a draining node is not surplus",
			setup: append(placed, &NodeDrain{Name: "n1", Enable: true}, &FleetScale{Name: "game", Replicas: 1}),
			cmd:   stop(StopSurplus, g7, g9, gb),
			check: func(t *testing.T, h *harness, r *Result) {
				requireEqual(t, "stopped", shipIDsOf(r), []string{g9})
				if h.ship(g7).State != ShipReady {
					t.Fatalf("draining ship stopped as surplus: %s", jsonString(h.ship(g7)))
				}
			},
		},
		{
			name:  "drain waits for the replacement",
			setup: append(placed, &NodeDrain{Name: "n1", Enable: true}),
			cmd:   stop(StopDrain, g7),
			check: func(t *testing.T, h *harness, r *Result) {
				// g9 and gb are queued: the version has no ready ship elsewhere.
				if r.Count != 0 || h.ship(g7).State != ShipReady {
					t.Fatalf("drained before the replacement was ready: %s", jsonString(h.ship(g7)))
				}
			},
		},
		{name: "unknown why", setup: placed, cmd: stop("boredom", g7), code: ErrInvalid, field: "why"},
		{name: "empty why", setup: placed, cmd: stop("", g7), code: ErrInvalid, field: "why"},
		{name: "user stop of an unknown ship", setup: placed, cmd: stop(StopUser, "nope"), code: ErrNotFound, field: "id"},
	}
}

func shipLostCases() []cmdCase {
	placed := gameWorld(
		placeCmd(place(g7, "n1", 20000), place(g9, "n1", 20001), place(gb, "n2", 20000)), // 8
		report("n1", g7, ShipReady), // 9
		stop(StopUser, g9),          // 10: stopping
	)
	return []cmdCase{
		{
			name:  "dead node's ships are lost",
			setup: append(placed, upsert("n1", NodeDead, 40)), // 11
			cmd:   &ShipLost{Node: "n1", Reason: "node n1 dead", Now: 50},
			check: func(t *testing.T, h *harness, r *Result) {
				requireEqual(t, "lost", shipIDsOf(r), []string{g7, g9})
				for _, id := range []string{g7, g9} {
					if s := h.ship(id); s.State != ShipLostState || s.Reason != "node n1 dead" || s.Updated != 50 || s.Node != "n1" {
						t.Fatalf("ship %s", jsonString(s))
					}
				}
				// Still held: a node cut off may still run them.
				requireHolds(t, h, "n1", 2, times(2, web1), 20000, 20001)
				if s := h.ship(gb); s.State != ShipScheduled {
					t.Fatalf("ship of another node: %s", jsonString(s))
				}
				requireHolds(t, h, "n2", 1, web1, 20000)
				// Lost again: nothing left to lose.
				r = h.ok(&ShipLost{Node: "n1", Reason: "again", Now: 60})
				if r.Count != 0 || h.ship(g7).Reason != "node n1 dead" {
					t.Fatalf("second lost: %s", jsonString(r))
				}
				h.requireChanges(h.idx)
				// The fleet can replace them now.
				if r := h.ok(&ShipCreate{Fleet: "game", Blueprint: "web", Version: 1, Count: 3, Now: 70}); r.Count != 2 {
					t.Fatalf("replacements: %d", r.Count)
				}
			},
		},
		{
			name:  "a scheduled ship's worker queue item goes too",
			setup: gameWorld(placeCmd(place(g7, "n1", 20000)), upsert("n1", NodeSuspect, 40)),
			cmd:   &ShipLost{Node: "n1", Reason: "gone", Now: 50},
			check: func(t *testing.T, h *harness, r *Result) {
				if s := h.ship(g7); s.State != ShipLostState || s.Item != 0 {
					t.Fatalf("ship %s", jsonString(s))
				}
				if q := h.queue(WorkerQueue("n1")); len(q) != 0 {
					t.Fatalf("worker queue %s", jsonString(q))
				}
			},
		},
		{
			name:  "removed node",
			setup: append(placed, upsert("n1", NodeLeft, 40), &ShipLost{Node: "n1", Now: 41}, &NodeRemove{Name: "n1"}),
			cmd:   &ShipLost{Node: "n1", Reason: "again", Now: 50},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 0 {
					t.Fatalf("count %d", r.Count)
				}
			},
		},
		{
			name:  "node without ships",
			setup: append(shipWorld(), upsert("n2", NodeDead, 2)),
			cmd:   &ShipLost{Node: "n2", Now: 50},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 0 {
					t.Fatalf("count %d", r.Count)
				}
				h.requireChanges(7)
			},
		},
		{name: "alive node", setup: placed, cmd: &ShipLost{Node: "n1", Reason: "x", Now: 50}, code: ErrConflict, field: "node"},
	}
}

func shipPurgeCases() []cmdCase {
	return []cmdCase{
		{
			name: "purges ended ships and their index entries only",
			setup: gameWorld(
				placeCmd(place(g7, "n1", 20000), place(g9, "n1", 20001)), // 8
				report("n1", g7, ShipStopped),                            // 9
				stop(StopUser, g9, gb),                                   // 10: g9 stopping, gb stopped
			),
			cmd: &ShipPurge{Ships: []string{g7, g9, gb, "nope", g7}},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 2 {
					t.Fatalf("count %d", r.Count)
				}
				if h.hasShip(g7) || h.hasShip(gb) || !h.hasShip(g9) {
					t.Fatal("wrong ships purged")
				}
				requireEqual(t, "fleet ships", h.shipIDs(ShipFilter{Fleet: "game"}), []string{g9})
				requireEqual(t, "node ships", h.shipIDs(ShipFilter{Node: "n1"}), []string{g9})
				for _, rec := range dumpDB(t, h.s) {
					if rec.Key != nil && (rec.Path[0] == string(bFleetShips) || rec.Path[0] == string(bNodeShips)) &&
						(strings.HasSuffix(string(rec.Key), g7) || strings.HasSuffix(string(rec.Key), gb)) {
						t.Fatalf("index entry left: %s", rec)
					}
				}
				h.requireChanges(11, ch("ship", g7, "delete"), ch("ship", gb, "delete"))
				requireHolds(t, h, "n1", 1, web1, 20001)
			},
		},
		{
			name:  "nothing ended",
			setup: gameWorld(),
			cmd:   &ShipPurge{Ships: []string{g7, "nope"}},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 0 || !h.hasShip(g7) {
					t.Fatalf("count %d", r.Count)
				}
				h.requireChanges(8)
			},
		},
	}
}

func nodeDrainCases() []cmdCase {
	return []cmdCase{
		{
			name:  "drain",
			setup: shipWorld(),
			cmd:   &NodeDrain{Name: "n1", Enable: true, Now: 70},
			check: func(t *testing.T, h *harness, r *Result) {
				n := h.mustNode("n1")
				if !n.Drain || n.Updated != 70 || !r.Node.Drain || n.PortsRange != "20000-20009" {
					t.Fatalf("node %s", jsonString(n))
				}
				h.requireChanges(6, ch("node", "n1", "put"))
				if h.mustNode("n2").Drain {
					t.Fatal("other node drains")
				}
				h.ok(&NodeDrain{Name: "n1", Enable: true, Now: 80})
				h.requireChanges(7)
				if n := h.mustNode("n1"); n.Updated != 70 {
					t.Fatalf("drain again touched the node: %s", jsonString(n))
				}
				h.ok(&NodeDrain{Name: "n1", Now: 90})
				if n := h.mustNode("n1"); n.Drain || n.Updated != 90 {
					t.Fatalf("undrain: %s", jsonString(n))
				}
			},
		},
		{
			name:  "undrain a node that does not drain",
			setup: shipWorld(),
			cmd:   &NodeDrain{Name: "n1", Now: 70},
			check: func(t *testing.T, h *harness, r *Result) { h.requireChanges(6) },
		},
		{name: "missing", setup: shipWorld(), cmd: &NodeDrain{Name: "n9", Enable: true}, code: ErrNotFound, field: "name"},
	}
}

func nodeReportCases() []cmdCase {
	bad := func(rng string) cmdCase {
		return cmdCase{name: "bad range " + strconv.Quote(rng), setup: shipWorld(), cmd: &NodeReport{Name: "n1", PortsRange: rng}, code: ErrInvalid, field: "ports_range"}
	}
	return []cmdCase{
		{
			name:  "report",
			setup: []Command{upsert("n1", NodeAlive, 1)},
			cmd:   &NodeReport{Name: "n1", PortsRange: "30000-30099", HostPorts: []int{30050, 30001, 30050, 30099}, Now: 9},
			check: func(t *testing.T, h *harness, r *Result) {
				n := h.mustNode("n1")
				if n.PortsRange != "30000-30099" || !slices.Equal(n.HostPorts, []int{30001, 30050, 30099}) || n.Updated != 9 {
					t.Fatalf("node %s", jsonString(n))
				}
				requireEqual(t, "result", r.Node, n)
				h.requireChanges(2, ch("node", "n1", "put"))
				// The same report, in another order, changes nothing.
				h.ok(&NodeReport{Name: "n1", PortsRange: "30000-30099", HostPorts: []int{30099, 30001, 30050}, Now: 10})
				h.requireChanges(3)
				// No host ports any more.
				h.ok(&NodeReport{Name: "n1", PortsRange: "30000-30099", Now: 11})
				if n := h.mustNode("n1"); n.HostPorts != nil || n.Updated != 11 {
					t.Fatalf("node %s", jsonString(n))
				}
			},
		},
		{
			name:  "one-port range",
			setup: []Command{upsert("n1", NodeAlive, 1)},
			cmd:   &NodeReport{Name: "n1", PortsRange: "1-1", HostPorts: []int{1}},
		},
		{
			name:  "full range",
			setup: []Command{upsert("n1", NodeAlive, 1)},
			cmd:   &NodeReport{Name: "n1", PortsRange: "1-65535"},
		},
		{name: "missing", cmd: &NodeReport{Name: "n1", PortsRange: "1-2"}, code: ErrNotFound, field: "name"},
		bad(""), bad("20000"), bad("a-b"), bad("0-10"), bad("10-5"), bad("1-65536"), bad("-5-10"), bad("10-"), bad(" 1-2"),
		{name: "more host ports than the range", setup: shipWorld(), cmd: &NodeReport{Name: "n1", PortsRange: "1-2", HostPorts: []int{1, 2, 3}}, code: ErrInvalid, field: "host_ports"},
	}
}

func TestApplyShipCreate(t *testing.T) { runCmdCases(t, shipCreateCases()) }
func TestApplyShipPlace(t *testing.T)  { runCmdCases(t, shipPlaceCases()) }
func TestApplyShipReport(t *testing.T) { runCmdCases(t, shipReportCases()) }
func TestApplyShipStop(t *testing.T)   { runCmdCases(t, shipStopCases()) }
func TestApplyShipLost(t *testing.T)   { runCmdCases(t, shipLostCases()) }
func TestApplyShipPurge(t *testing.T)  { runCmdCases(t, shipPurgeCases()) }
func TestApplyNodeDrain(t *testing.T)  { runCmdCases(t, nodeDrainCases()) }
func TestApplyNodeReport(t *testing.T) { runCmdCases(t, nodeReportCases()) }

// Scenarios over several commands.

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

func newShipHarness(t *testing.T) *harness {
	h := newHarness(t)
	for _, c := range shipWorld() {
		h.ok(c)
	}
	return h
}

// create applies a ShipCreate of web ships and returns their ids.
func (h *harness) create(fleet string, version, count int) []string {
	h.t.Helper()
	return shipIDsOf(h.ok(&ShipCreate{Fleet: fleet, Blueprint: "web", Version: version, Count: count, Now: 100}))
}

// placeReady places a ship and reports it ready.
func (h *harness) placeReady(id, node string, port int) {
	h.t.Helper()
	if r := h.ok(placeCmd(place(id, node, port))); r.Count != 1 {
		h.t.Fatalf("placing %s on %s:%d refused: %s", id, node, port, h.ship(id).Reason)
	}
	h.ok(report(node, id, ShipReady))
}

// liveCounts counts a fleet's live ships that are not stopping, by
// blueprint version.
func (h *harness) liveCounts(fleet string) map[int]int {
	out := map[int]int{}
	h.view(func(v *View) {
		for _, s := range v.Ships(ShipFilter{Fleet: fleet}) {
			if s.Live() && s.State != ShipStopping {
				out[s.Version]++
			}
		}
	})
	return out
}

// TestShipCreateNeverDoublesAFleet: an old and a new leader can both plan
// the same shortfall from the same view. The second plan must not create
// ships on top of the first, whether it applies in a later entry, in the
// same batch, or after part of the shortfall was already filled.
func TestShipCreateNeverDoublesAFleet(t *testing.T) {
	h := newShipHarness(t)
	h.ok(webV2())
	h.ok(fleetPut("game", 5, FleetVersion{Blueprint: "web", Version: 1, Weight: 3}, FleetVersion{Blueprint: "web", Version: 2, Weight: 2}))
	planV1 := &ShipCreate{Fleet: "game", Blueprint: "web", Version: 1, Count: 3, Now: 100}
	planV2 := &ShipCreate{Fleet: "game", Blueprint: "web", Version: 2, Count: 2, Now: 100}

	if r := h.ok(planV1); r.Count != 3 {
		t.Fatalf("first plan created %d", r.Count)
	}
	h.reject(planV1, ErrConflict, "count") // the other leader's copy
	// Part of the v2 shortfall is filled by one leader, then the other
	// leader's full plan arrives: it fills only the rest.
	h.ok(&ShipCreate{Fleet: "game", Blueprint: "web", Version: 2, Count: 1, Now: 100})
	if r := h.ok(planV2); r.Count != 1 {
		t.Fatalf("stale plan created %d, want the 1 still missing", r.Count)
	}
	requireEqual(t, "live", h.liveCounts("game"), map[int]int{1: 3, 2: 2})

	// Both plans in one entry.
	h.ok(&FleetScale{Name: "game", Replicas: 10, Now: 200}) // wants 6 and 4
	r := h.ok(&Batch{Cmds: []Command{planV1, planV1, planV2, planV2}})
	if r.Batch[0].Count != 3 || r.Batch[2].Count != 2 {
		t.Fatalf("batch: %s", jsonString(r))
	}
	requireErr(t, r.Batch[1], ErrConflict, "count")
	requireErr(t, r.Batch[3], ErrConflict, "count")
	requireEqual(t, "live", h.liveCounts("game"), map[int]int{1: 6, 2: 4})
	checkInvariants(t, h.s)
}

// TestShipCreateNeverExceedsDesired runs random plans against a fleet that
// is scaled and whose ships stop and end: a create never takes a version
// above its desired count, and creates exactly what is missing when asked
// for more.
func TestShipCreateNeverExceedsDesired(t *testing.T) {
	h := newShipHarness(t)
	h.ok(webV2())
	h.ok(fleetPut("game", 4, FleetVersion{Blueprint: "web", Version: 1, Weight: 1}, FleetVersion{Blueprint: "web", Version: 2, Weight: 1}))
	rng := newRand(3)
	port := 20000
	for range 300 {
		f, _ := h.fleet("game")
		desired := map[int]int{1: f.DesiredOf("web", 1, 0), 2: f.DesiredOf("web", 2, 0)}
		switch rng.IntN(6) {
		case 0:
			h.ok(&FleetScale{Name: "game", Replicas: rng.IntN(9), Now: 100})
		case 1:
			var live []string
			h.view(func(v *View) {
				for _, s := range v.Ships(ShipFilter{Fleet: "game"}) {
					if s.Live() {
						live = append(live, s.ID)
					}
				}
			})
			if len(live) > 0 {
				h.ok(stop(StopUser, live[rng.IntN(len(live))]))
			}
		case 2:
			// Place a queued ship and run it, or end a placed one.
			var queued []*Ship
			h.view(func(v *View) { queued = v.Queued() })
			if len(queued) > 0 && port < 20010 {
				h.placeReady(queued[0].ID, "n1", port)
				port++
			}
		default:
			v := 1 + rng.IntN(2)
			before := h.liveCounts("game")[v]
			count := 1 + rng.IntN(4)
			r := h.apply(&ShipCreate{Fleet: "game", Blueprint: "web", Version: v, Count: count, Now: 100})
			want := min(count, desired[v]-before)
			if want <= 0 {
				requireErr(t, r, ErrConflict, "count")
			} else if r.Err != nil || r.Count != want {
				t.Fatalf("create %d of v%d with %d of %d live: %s", count, v, before, desired[v], jsonString(r))
			}
			if after := h.liveCounts("game")[v]; after > max(before, desired[v]) {
				t.Fatalf("v%d has %d live ships, wants %d", v, after, desired[v])
			}
		}
	}
	checkInvariants(t, h.s)
}

// TestShipStopSurplusTwoLeaders: a fleet has one ship too many, and two
// leaders each pick a different ship to stop. Exactly one is stopped.
func TestShipStopSurplusTwoLeaders(t *testing.T) {
	for _, mode := range []string{"entries", "batch", "one command"} {
		t.Run(mode, func(t *testing.T) {
			h := newShipHarness(t)
			h.ok(webFleet(3))
			ids := h.create("game", 1, 3)
			for i, id := range ids {
				h.placeReady(id, "n1", 20000+i)
			}
			h.ok(&FleetScale{Name: "game", Replicas: 2, Now: 200})
			a, b := stop(StopSurplus, ids[0]), stop(StopSurplus, ids[1])
			stopped := 0
			switch mode {
			case "entries":
				stopped = h.ok(a).Count + h.ok(b).Count
			case "batch":
				r := h.ok(&Batch{Cmds: []Command{a, b}})
				stopped = r.Batch[0].Count + r.Batch[1].Count
			default:
				stopped = h.ok(stop(StopSurplus, ids[0], ids[1])).Count
			}
			if stopped != 1 || h.liveCounts("game")[1] != 2 {
				t.Fatalf("stopped %d, %d live", stopped, h.liveCounts("game")[1])
			}
			if s := h.ship(ids[0]); s.State != ShipStopping || s.Desired != DesireStop {
				t.Fatalf("first pick not stopped: %s", jsonString(s))
			}
			// Stopping ships do not count: still no surplus.
			if r := h.ok(stop(StopSurplus, ids[2])); r.Count != 0 {
				t.Fatal("a third ship stopped as surplus")
			}
			checkInvariants(t, h.s)
		})
	}
}

// TestShipDrain walks a node drain through: the ship on the draining node
// is replaced first, and stopped only once its replacement is ready.
func TestShipDrain(t *testing.T) {
	h := newShipHarness(t)
	h.ok(webFleet(2))
	ids := h.create("game", 1, 2)
	old, other := ids[0], ids[1]
	h.placeReady(old, "n1", 20000)
	h.placeReady(other, "n2", 20000)
	h.ok(&NodeDrain{Name: "n1", Enable: true, Now: 200})

	// Only one ready ship on nodes that stay: the drain must wait.
	if r := h.ok(stop(StopDrain, old)); r.Count != 0 {
		t.Fatal("drained before a replacement existed")
	}
	// The draining ship no longer counts: the fleet gets a replacement.
	repl := h.create("game", 1, 2)
	if len(repl) != 1 {
		t.Fatalf("replacements %v", repl)
	}
	if r := h.ok(placeCmd(place(repl[0], "n1", 20001))); r.Count != 0 {
		t.Fatal("placed on a draining node")
	}
	h.ok(placeCmd(place(repl[0], "n2", 20001)))
	h.ok(report("n2", repl[0], ShipStarting))
	if r := h.ok(stop(StopDrain, old)); r.Count != 0 {
		t.Fatal("drained before the replacement was ready")
	}
	// A ship on a node that does not drain is never drained.
	if r := h.ok(stop(StopDrain, other)); r.Count != 0 {
		t.Fatal("drained a ship of a node that does not drain")
	}
	h.ok(report("n2", repl[0], ShipReady))
	r := h.ok(&ShipStop{Ships: []string{other, old}, Why: StopDrain, Now: 300})
	requireEqual(t, "drained", shipIDsOf(r), []string{old})
	if s := h.ship(old); s.State != ShipStopping || s.Reason != "stopped by drain" {
		t.Fatalf("drained ship %s", jsonString(s))
	}
	requireHolds(t, h, "n1", 1, web1, 20000)
	h.ok(report("n1", old, ShipStopped))
	requireHolds(t, h, "n1", 0, Resources{})
	// Nothing more to create: two up ships on n2.
	h.reject(&ShipCreate{Fleet: "game", Blueprint: "web", Version: 1, Count: 1, Now: 400}, ErrConflict, "count")
	checkInvariants(t, h.s)
}

// TestShipLifecycleAccounting follows ships through every state and checks
// the node's allocation after each step.
func TestShipLifecycleAccounting(t *testing.T) {
	h := newShipHarness(t)
	h.ok(webFleet(3))
	ids := h.create("game", 1, 3)
	h.ok(placeCmd(place(ids[0], "n1", 20000), place(ids[1], "n1", 20001), place(ids[2], "n1", 20002)))
	requireHolds(t, h, "n1", 3, times(3, web1), 20000, 20001, 20002)
	h.ok(&ShipReport{Node: "n1", Reports: []Report{{Ship: ids[0], State: ShipStarting}, {Ship: ids[1], State: ShipReady}, {Ship: ids[2], State: ShipFailed}}, Now: 30})
	requireHolds(t, h, "n1", 2, times(2, web1), 20000, 20001)
	checkInvariants(t, h.s)
	// The failed ship's port is free again.
	repl := h.create("game", 1, 1)
	h.ok(placeCmd(place(repl[0], "n1", 20002)))
	requireHolds(t, h, "n1", 3, times(3, web1), 20000, 20001, 20002)
	h.ok(stop(StopUser, ids[1]))
	requireHolds(t, h, "n1", 3, times(3, web1), 20000, 20001, 20002) // stopping still holds
	h.ok(report("n1", ids[1], ShipStopped))
	requireHolds(t, h, "n1", 2, times(2, web1), 20000, 20002)
	h.ok(upsert("n1", NodeDead, 40))
	r := h.ok(&ShipLost{Node: "n1", Reason: "dead", Now: 50})
	requireEqual(t, "lost", shipIDsOf(r), []string{ids[0], repl[0]})
	// Lost ships keep their resources and ports until their worker says
	// they are gone: the node may only be cut off.
	requireHolds(t, h, "n1", 2, times(2, web1), 20000, 20002)
	h.ok(upsert("n1", NodeAlive, 55))
	if r := h.ok(report("n1", ids[0], ShipStopped)); r.Count != 1 || !h.ship(ids[0]).Released || h.ship(ids[0]).State != ShipLostState {
		t.Fatalf("release of a lost ship: %s", jsonString(h.ship(ids[0])))
	}
	requireHolds(t, h, "n1", 1, web1, 20002)
	// A report of a live state does not revive or release a lost ship.
	if r := h.ok(report("n1", repl[0], ShipReady)); r.Count != 0 || h.ship(repl[0]).Released {
		t.Fatalf("lost ship after a ready report: %s", jsonString(h.ship(repl[0])))
	}
	h.ok(report("n1", repl[0], ShipFailed))
	requireHolds(t, h, "n1", 0, Resources{})
	// Everything has ended: purge it all.
	all := h.shipIDs(ShipFilter{Fleet: "game"})
	if r := h.ok(&ShipPurge{Ships: all}); r.Count != 4 {
		t.Fatalf("purged %d of %v", r.Count, all)
	}
	if ids := h.shipIDs(ShipFilter{}); ids != nil {
		t.Fatalf("ships left: %v", ids)
	}
	checkInvariants(t, h.s)
	// A node that comes back starts empty.
	h.ok(upsert("n1", NodeAlive, 60))
	requireHolds(t, h, "n1", 0, Resources{})
}

func TestViewShips(t *testing.T) {
	h := newShipHarness(t)
	h.view(func(v *View) {
		if _, ok := v.Ship("x"); ok {
			t.Fatal("Ship on empty state")
		}
		if _, ok := v.Fleet("x"); ok {
			t.Fatal("Fleet on empty state")
		}
		if v.Fleets() != nil || v.Ships(ShipFilter{}) != nil || v.Queued() != nil || v.Ships(ShipFilter{Node: "n1"}) != nil {
			t.Fatal("lists on empty state")
		}
	})
	h.ok(webFleet(2))
	h.ok(fleetPut("game2", 2, FleetVersion{Blueprint: "web"}))
	a := h.create("game", 1, 2)
	b := h.create("game2", 1, 2)
	solo := h.create("", 0, 1)
	h.placeReady(a[0], "n1", 20000)
	h.ok(placeCmd(place(b[0], "n1", 20001), place(a[1], "n2", 20000)))
	for _, tc := range []struct {
		f    ShipFilter
		want []string
	}{
		{ShipFilter{}, append(append(slices.Clone(a), b...), solo...)},
		{ShipFilter{Fleet: "game"}, a},
		{ShipFilter{Fleet: "game2"}, b},
		{ShipFilter{Fleet: "gam"}, nil}, // a prefix is not a fleet
		{ShipFilter{Node: "n1"}, []string{a[0], b[0]}},
		{ShipFilter{Node: "n"}, nil},
		{ShipFilter{Node: "n1", Fleet: "game2"}, []string{b[0]}},
		{ShipFilter{Node: "n1", State: ShipReady}, []string{a[0]}},
		{ShipFilter{State: ShipQueued}, []string{b[1], solo[0]}},
		{ShipFilter{Fleet: "game", State: ShipScheduled}, []string{a[1]}},
		{ShipFilter{State: ShipLostState}, nil},
	} {
		requireEqual(t, jsonString(tc.f), h.shipIDs(tc.f), tc.want)
	}
	// Queued is in queue order (oldest first), not id order.
	var queued []string
	h.view(func(v *View) {
		for _, s := range v.Queued() {
			queued = append(queued, s.ID)
		}
	})
	requireEqual(t, "queued", queued, []string{b[1], solo[0]})
	requireEqual(t, "fleet of solo ship", h.ship(solo[0]).Fleet, "")
	if !strings.HasPrefix(solo[0], "web-") || !strings.HasPrefix(a[0], "game-") || !strings.HasPrefix(b[0], "game2-") {
		t.Fatalf("ids %v %v %v", a, b, solo)
	}
}

// Behaviour that the code gets wrong at the time of writing. Each test
// states the contract it checks.

// TestShipStopRejectionChangesNothing: a rejected command must change
// nothing (Result.Err "is a deterministic rejection: the command changed
// nothing"). A user stop naming a ship that does not exist is rejected
// with not_found, but ships named before it in the same command have
// already been stopped when the rejection is returned, and their changes
// are published.
func TestShipStopRejectionChangesNothing(t *testing.T) {
	h := newHarness(t)
	for _, c := range gameWorld(placeCmd(place(g7, "n1", 20000))) {
		h.ok(c)
	}
	h.reject(&ShipStop{Ships: []string{g7, g9, "nope"}, Why: StopUser, Now: 30}, ErrNotFound, "id")
}

// TestShipStopDrainAndSurplusNeedTheirReason: a surplus stop is for a ship
// its fleet has too many of, and a drain stop for a ship on a draining
// node; the checks run when the stop applies so that a stale plan (made
// before the node stopped draining, or by an old leader) is refused. For
// a ship without a fleet neither check runs: it is stopped as surplus
// although no fleet has too many, and drained although its node no longer
// drains.
func TestShipStopDrainAndSurplusNeedTheirReason(t *testing.T) {
	t.Run("surplus of a ship without a fleet", func(t *testing.T) {
		h := newShipHarness(t)
		solo := h.create("", 0, 1)[0]
		h.placeReady(solo, "n1", 20000)
		if r := h.ok(stop(StopSurplus, solo)); r.Count != 0 {
			t.Fatalf("a ship without a fleet was stopped as surplus: %s", jsonString(h.ship(solo)))
		}
	})
	t.Run("stale drain of a ship without a fleet", func(t *testing.T) {
		h := newShipHarness(t)
		solo := h.create("", 0, 1)[0]
		h.placeReady(solo, "n1", 20000)
		h.ok(&NodeDrain{Name: "n1", Enable: true, Now: 200})
		plan := stop(StopDrain, solo) // made while n1 drained
		h.ok(&NodeDrain{Name: "n1", Enable: false, Now: 210})
		if r := h.ok(plan); r.Count != 0 {
			t.Fatalf("a ship on a node that no longer drains was drained: %s", jsonString(h.ship(solo)))
		}
	})
	// The same stale plan for a fleet ship is refused.
	t.Run("stale drain of a fleet ship", func(t *testing.T) {
		h := newShipHarness(t)
		h.ok(webFleet(1))
		id := h.create("game", 1, 1)[0]
		h.placeReady(id, "n1", 20000)
		h.ok(&NodeDrain{Name: "n1", Enable: true, Now: 200})
		h.placeReady(h.create("game", 1, 1)[0], "n2", 20000)
		plan := stop(StopDrain, id)
		h.ok(&NodeDrain{Name: "n1", Enable: false, Now: 210})
		if r := h.ok(plan); r.Count != 0 {
			t.Fatalf("a fleet ship on a node that no longer drains was drained: %s", jsonString(h.ship(id)))
		}
	})
}

// TestNodeRemoveKeepsShipAccounting: removing a node while its ships still
// hold resources on it forgets their allocation; when the node comes back
// (same name), it starts with nothing allocated and no used ports while
// the ship is still scheduled there, so a second ship gets the same host
// port and later releases drive the allocation negative. NodeRemove must
// either refuse while ships hold the node or end them (as ShipLost does).
func TestNodeRemoveKeepsShipAccounting(t *testing.T) {
	h := newHarness(t)
	for _, c := range gameWorld(placeCmd(place(g7, "n1", 20000))) {
		h.ok(c)
	}
	h.ok(upsert("n1", NodeDead, 40))
	h.apply(&NodeRemove{Name: "n1"}) // refusing is a valid answer too
	h.ok(upsert("n1", NodeAlive, 50))
	h.ok(&NodeReport{Name: "n1", PortsRange: "20000-20009", Now: 50})
	h.ok(placeCmd(place(g9, "n1", 20000)))
	checkInvariants(t, h.s)
}
