package fsm

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func testNode(name, status string) Node {
	return Node{
		Name: name, Address: "10.0.0.1", GossipAddr: "10.0.0.1:7946", RaftAddr: "10.0.0.1:7947",
		HTTPAddr: "10.0.0.1:8080", Role: RoleVoter, Server: true, Worker: true, Status: status,
		Labels: map[string]string{"region": "eu"}, Capacity: Resources{CPUMHz: 4000, MemoryMB: 8192}, Version: "1.0.0",
	}
}

func upsert(name, status string, now int64) *NodeUpsert {
	return &NodeUpsert{Node: testNode(name, status), Now: now}
}

func nodeUpsertCases() []cmdCase {
	return []cmdCase{
		{
			name: "new node",
			cmd:  upsert("n1", NodeAlive, 1000),
			check: func(t *testing.T, h *harness, r *Result) {
				want := testNode("n1", NodeAlive)
				want.StatusSince, want.Updated = 1000, 1000
				requireEqual(t, "result", r.Node, &want)
				n, ok := h.node("n1")
				if !ok {
					t.Fatal("node missing")
				}
				requireEqual(t, "node", n, &want)
				h.requireChanges(1, ch("node", "n1", "put"))
			},
		},
		{
			// Drain belongs to NodeDrain: gossip's idea of it is ignored
			// once the node exists.
			name:  "same status keeps StatusSince, and Drain is not gossip's",
			setup: []Command{upsert("n1", NodeAlive, 1000)},
			cmd: func() Command {
				c := upsert("n1", NodeAlive, 5000)
				c.Node.Address, c.Node.Drain = "10.0.0.2", true
				return c
			}(),
			check: func(t *testing.T, h *harness, r *Result) {
				n, _ := h.node("n1")
				if n.StatusSince != 1000 || n.Updated != 5000 || n.Address != "10.0.0.2" || n.Drain || r.Node.Drain {
					t.Fatalf("node %s", jsonString(n))
				}
			},
		},
		{
			name:  "upsert does not clear a drain set by NodeDrain",
			setup: []Command{upsert("n1", NodeAlive, 1000), &NodeDrain{Name: "n1", Enable: true, Now: 2000}},
			cmd:   upsert("n1", NodeSuspect, 3000), // Drain false in the command
			check: func(t *testing.T, h *harness, r *Result) {
				n, _ := h.node("n1")
				if !n.Drain || !r.Node.Drain || n.Status != NodeSuspect || n.Updated != 3000 {
					t.Fatalf("node %s", jsonString(n))
				}
				h.ok(&NodeDrain{Name: "n1", Now: 4000})
				h.ok(func() *NodeUpsert { c := upsert("n1", NodeAlive, 5000); c.Node.Drain = true; return c }())
				if n, _ := h.node("n1"); n.Drain {
					t.Fatalf("upsert set a drain NodeDrain cleared: %s", jsonString(n))
				}
			},
		},
		{
			name: "worker- and scheduler-owned fields survive an upsert",
			setup: gameWorld(
				placeCmd(place(g7, "n1", 20002)), // 8
				&NodeReport{Name: "n1", PortsRange: "20000-20009", HostPorts: []int{20005}, Now: 9},
			),
			cmd: upsert("n1", NodeAlive, 3000),
			check: func(t *testing.T, h *harness, r *Result) {
				n, _ := h.node("n1")
				if n.PortsRange != "20000-20009" || !slices.Equal(n.HostPorts, []int{20005}) || !slices.Equal(n.UsedPorts, []int{20002}) ||
					n.Ships != 1 || n.Allocated != web1 || n.Updated != 3000 {
					t.Fatalf("node %s", jsonString(n))
				}
				requireEqual(t, "result", r.Node, n)
			},
		},
		{
			name:  "status change moves StatusSince",
			setup: []Command{upsert("n1", NodeAlive, 1000), upsert("n1", NodeAlive, 2000)},
			cmd:   upsert("n1", NodeSuspect, 3000),
			check: func(t *testing.T, h *harness, r *Result) {
				n, _ := h.node("n1")
				if n.StatusSince != 3000 || n.Updated != 3000 || n.Status != NodeSuspect {
					t.Fatalf("node %s", jsonString(n))
				}
				h.ok(upsert("n1", NodeSuspect, 4000))
				if n, _ := h.node("n1"); n.StatusSince != 3000 {
					t.Fatalf("StatusSince moved without a status change: %d", n.StatusSince)
				}
			},
		},
		{
			name:  "state-owned fields are not taken from the command",
			setup: []Command{upsert("n1", NodeAlive, 1000)},
			cmd: func() Command {
				c := upsert("n1", NodeAlive, 2000)
				c.Node.Ships, c.Node.Allocated, c.Node.StatusSince, c.Node.Updated = 7, Resources{CPUMHz: 1, MemoryMB: 1}, 99, 99
				return c
			}(),
			check: func(t *testing.T, h *harness, r *Result) {
				n, _ := h.node("n1")
				if n.Ships != 0 || n.Allocated != (Resources{}) || n.StatusSince != 1000 || n.Updated != 2000 {
					t.Fatalf("node %s", jsonString(n))
				}
			},
		},
		{
			name:  "nodes listed by name",
			setup: []Command{upsert("b", NodeAlive, 1), upsert("c", NodeDead, 1)},
			cmd:   upsert("a", NodeLeft, 1),
			check: func(t *testing.T, h *harness, r *Result) {
				var names []string
				h.view(func(v *View) {
					for _, n := range v.Nodes() {
						names = append(names, n.Name)
					}
				})
				requireEqual(t, "names", names, []string{"a", "b", "c"})
			},
		},
		{name: "empty name", cmd: upsert("", NodeAlive, 1), code: ErrInvalid, field: "name"},
		{
			// Longer than BoltDB's key limit: without a check, the put would
			// fail inside Apply and crash every replica on this entry.
			name: "name too long",
			cmd:  upsert(strings.Repeat("n", 40000), NodeAlive, 1),
			code: ErrInvalid, field: "name",
		},
	}
}

func nodeRemoveCases() []cmdCase {
	return []cmdCase{
		{
			name:  "remove",
			setup: []Command{upsert("n1", NodeAlive, 1), upsert("n2", NodeAlive, 1)},
			cmd:   &NodeRemove{Name: "n1"},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != 1 {
					t.Fatalf("deleted %d", r.Deleted)
				}
				if _, ok := h.node("n1"); ok {
					t.Fatal("node still present")
				}
				if _, ok := h.node("n2"); !ok {
					t.Fatal("other node removed")
				}
				h.requireChanges(3, ch("node", "n1", "delete"))
			},
		},
		{name: "missing", setup: []Command{upsert("n1", NodeAlive, 1)}, cmd: &NodeRemove{Name: "n2"}, code: ErrNotFound, field: "name"},
		{name: "removed twice", setup: []Command{upsert("n1", NodeAlive, 1), &NodeRemove{Name: "n1"}}, cmd: &NodeRemove{Name: "n1"}, code: ErrNotFound, field: "name"},
		{name: "empty name", cmd: &NodeRemove{}, code: ErrNotFound, field: "name"},
	}
}

func clusterInitCases() []cmdCase {
	other := bytes.Repeat([]byte{7}, 32)
	return []cmdCase{
		{
			name: "first init",
			cmd:  &ClusterInit{ClusterID: "c-1", Key: testKey},
			check: func(t *testing.T, h *harness, r *Result) {
				h.view(func(v *View) {
					if v.ClusterID() != "c-1" || !bytes.Equal(v.SecretKey(), testKey) {
						t.Fatalf("id %q key %x", v.ClusterID(), v.SecretKey())
					}
				})
				h.requireChanges(1, ch("cluster", "c-1", "put"))
			},
		},
		{
			name:  "later init changes nothing",
			setup: []Command{&ClusterInit{ClusterID: "c-1", Key: testKey}},
			cmd:   &ClusterInit{ClusterID: "c-2", Key: other},
			check: func(t *testing.T, h *harness, r *Result) {
				h2 := newHarness(t)
				h2.ok(&ClusterInit{ClusterID: "c-1", Key: testKey})
				if a, b := dumpState(t, h.s), dumpState(t, h2.s); a != b {
					t.Fatalf("second init changed the state:\n%s", diffLines(b, a))
				}
				h.requireChanges(2)
				h.view(func(v *View) {
					if v.ClusterID() != "c-1" || !bytes.Equal(v.SecretKey(), testKey) {
						t.Fatalf("id %q key %x", v.ClusterID(), v.SecretKey())
					}
				})
			},
		},
		{
			name:  "later invalid init is ignored too",
			setup: []Command{&ClusterInit{ClusterID: "c-1", Key: testKey}},
			cmd:   &ClusterInit{},
			check: func(t *testing.T, h *harness, r *Result) { h.requireChanges(2) },
		},
		{name: "short key", cmd: &ClusterInit{ClusterID: "c-1", Key: testKey[:31]}, code: ErrInvalid, field: "key"},
		{name: "long key", cmd: &ClusterInit{ClusterID: "c-1", Key: append(bytes.Clone(testKey), 0)}, code: ErrInvalid, field: "key"},
		{name: "empty id", cmd: &ClusterInit{Key: testKey}, code: ErrInvalid, field: "key"},
		{
			name:  "rejected init leaves init possible",
			setup: []Command{put("x", "y")},
			cmd:   &ClusterInit{ClusterID: "c-1"},
			code:  ErrInvalid, field: "key",
			check: func(t *testing.T, h *harness, r *Result) {
				h.ok(&ClusterInit{ClusterID: "c-9", Key: other})
				h.view(func(v *View) {
					if v.ClusterID() != "c-9" {
						t.Fatalf("id %q", v.ClusterID())
					}
				})
			},
		},
	}
}
