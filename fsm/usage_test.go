package fsm

import (
	"testing"
)

func TestApplyUsageReport(t *testing.T) { runCmdCases(t, usageReportCases()) }

func usageReportCases() []cmdCase {
	world := gameWorld(placeCmd(place(g7, "n1", 20000), place(g9, "n2", 20000)), report("n1", g7, ShipReady))
	return []cmdCase{
		{
			name:  "report",
			setup: world,
			cmd: &UsageReport{Node: "n1", CPUMHz: 900, MemoryMB: 2048, Now: 40, Ships: []ShipUsage{
				{Ship: g7, CPUMHz: 5, MemoryMB: 10},
				{Ship: g9, CPUMHz: 1, MemoryMB: 1},     // on n2: skipped
				{Ship: "nope", CPUMHz: 1, MemoryMB: 1}, // unknown: skipped
			}},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Count != 1 {
					t.Fatalf("count %d, want 1", r.Count)
				}
				s := h.ship(g7)
				if s.Usage == nil || *s.Usage != (Usage{CPUMHz: 5, MemoryMB: 10, At: 40}) || s.Updated != 25 {
					t.Fatalf("ship %s", jsonString(s))
				}
				if s := h.ship(g9); s.Usage != nil {
					t.Fatalf("ship of another node got usage: %s", jsonString(s))
				}
				if n := h.mustNode("n1"); n.Usage == nil || *n.Usage != (Usage{CPUMHz: 900, MemoryMB: 2048, At: 40}) {
					t.Fatalf("node %s", jsonString(n))
				}
			},
		},
		{name: "ended ship skipped", setup: append(world, report("n1", g7, ShipFailed)),
			cmd: &UsageReport{Node: "n1", Ships: []ShipUsage{{Ship: g7, CPUMHz: 5}}},
			check: func(t *testing.T, h *harness, r *Result) {
				if s := h.ship(g7); s.Usage != nil || r.Count != 0 {
					t.Fatalf("ended ship got usage: %s", jsonString(s))
				}
			}},
		{name: "unknown node", cmd: &UsageReport{Node: "n9"}, code: ErrNotFound, field: "node"},
		{name: "negative node usage", setup: shipWorld(), cmd: &UsageReport{Node: "n1", CPUMHz: -1}, code: ErrInvalid, field: "usage"},
		{name: "negative ship usage", setup: world, cmd: &UsageReport{Node: "n1", Ships: []ShipUsage{{Ship: g7, MemoryMB: -1}}}, code: ErrInvalid, field: "ships"},
	}
}
