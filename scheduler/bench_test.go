package scheduler

import (
	"fmt"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// benchInput is a cluster of nodes and a queue of ships for one fleet.
func benchInput(nodes, ships int) *Input {
	in := &Input{Now: time.Now(), LostGrace: 2 * time.Second}
	for i := range nodes {
		in.Nodes = append(in.Nodes, &fsm.Node{
			Name: fmt.Sprintf("node-%05d", i), Status: fsm.NodeAlive, Worker: true,
			Capacity:   fsm.Resources{CPUMHz: 64000, MemoryMB: 256 << 10},
			PortsRange: "20000-29999",
		})
	}
	bp := &fsm.Blueprint{Name: "arena", Version: 1, Resources: fsm.Resources{CPUMHz: 100, MemoryMB: 128}, Ports: []fsm.Port{{Name: "game", Protocol: "udp"}}}
	in.Blueprint = func(string, int) (*fsm.Blueprint, bool) { return bp, true }
	in.Fleets = []*fsm.Fleet{{Name: "arena", Replicas: ships, Versions: []fsm.FleetVersion{{Blueprint: "arena", Version: 1, Weight: 1}}}}
	for i := range ships {
		s := &fsm.Ship{ID: fmt.Sprintf("arena-%06d", i), Fleet: "arena", Blueprint: "arena", Version: 1,
			State: fsm.ShipQueued, Desired: fsm.DesireRun, Resources: bp.Resources}
		in.Ships = append(in.Ships, s)
		in.Queued = append(in.Queued, s)
	}
	return in
}

// BenchmarkPlan100kOn5000 plans 100,000 queued ships on 5,000 nodes; the
// figure that matters is placements/s.
func BenchmarkPlan100kOn5000(b *testing.B) {
	in := benchInput(5000, 100_000)
	b.ResetTimer()
	placed := 0
	for b.Loop() {
		p := Make(in)
		placed = 0
		for _, c := range p.Place {
			placed += len(c.Places)
		}
	}
	if placed != 100_000 {
		b.Fatalf("placed %d of 100000", placed)
	}
	b.ReportMetric(float64(placed)*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
}

// BenchmarkPlanUnderAllocations is the leader's plan while a fleet of
// 2,000 ready ships on 3 nodes is being allocated: each iteration
// allocates a ship (not timed) and then plans, which finds nothing to do.
// Run it with -benchtime 1000x (the fleet has 2,000 ships).
func BenchmarkPlanUnderAllocations(b *testing.B) {
	c := newE2E(b)
	c.cfg.MaxPerPlan = 0
	c.cfg.defaults()
	c.ok(&fsm.ClusterInit{ClusterID: "bench", Key: make([]byte, 32)})
	for _, n := range []string{"n1", "n2", "n3"} {
		node := e2eNode(n, "a", "web")
		node.Capacity = fsm.Resources{CPUMHz: 1 << 20, MemoryMB: 1 << 20}
		c.ok(&fsm.NodeUpsert{Node: node})
		c.ok(&fsm.NodeReport{Name: n, PortsRange: "20000-29999"})
	}
	c.ok(&fsm.BlueprintPut{Spec: fsm.Blueprint{Name: "game", Unit: "[Service]\nExecStart=/bin/true\n", Resources: fsm.Resources{CPUMHz: 1, MemoryMB: 1}}})
	c.ok(&fsm.FleetPut{Spec: fsm.Fleet{Name: "game", Replicas: 2000, Versions: []fsm.FleetVersion{{Blueprint: "game"}}}})
	c.converge()
	for _, n := range []string{"n1", "n2", "n3"} {
		c.report(n, fsm.ShipReady)
	}
	c.converge()
	if b.N > 2000 {
		b.Fatalf("%d iterations: the fleet has 2,000 ships", b.N)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if r := c.apply(&fsm.ShipAllocate{Requests: []fsm.AllocRequest{{Fleet: "game"}}}); r.Count != 1 {
			b.Fatalf("round %d: nothing allocated", i)
		}
		b.StartTimer()
		if _, _, err := makePlan(c.s, &c.cfg, c.cache); err != nil {
			b.Fatal(err)
		}
	}
}
