package fsm

import (
	"bytes"
	"testing"
)

// cmdCase is one table-driven test of a command: setup commands are applied
// first (at indexes 1..len(setup), each must succeed), then cmd at the next
// index. A case with code != "" must be rejected with that code and field
// and change nothing; otherwise it must succeed. check then inspects the
// result and the state; h.idx is the index cmd was applied at.
type cmdCase struct {
	name  string
	setup []Command
	cmd   Command
	code  string
	field string
	check func(t *testing.T, h *harness, r *Result)
}

func runCmdCases(t *testing.T, cases []cmdCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for _, c := range tc.setup {
				h.ok(c)
			}
			var r *Result
			if tc.code != "" {
				r = h.reject(tc.cmd, tc.code, tc.field)
			} else {
				r = h.ok(tc.cmd)
			}
			checkInvariants(t, h.s)
			if tc.check != nil {
				tc.check(t, h, r)
				checkInvariants(t, h.s)
			}
		})
	}
}

// allCmdTables lists every command table, so that TestEveryCommandTypeHasCases
// can check that none is missing.
func allCmdTables() map[string][]cmdCase {
	return map[string][]cmdCase{
		"KVPut":          kvPutCases(),
		"KVDelete":       kvDeleteCases(),
		"LeaseGrant":     leaseGrantCases(),
		"LeaseKeepAlive": leaseKeepAliveCases(),
		"LeaseRevoke":    leaseRevokeCases(),
		"Expire":         expireCases(),
		"QueuePush":      queuePushCases(),
		"QueueClaim":     queueClaimCases(),
		"QueueAck":       queueAckCases(),
		"QueueRelease":   queueReleaseCases(),
		"LockAcquire":    lockAcquireCases(),
		"LockRelease":    lockReleaseCases(),
		"NodeUpsert":     nodeUpsertCases(),
		"NodeRemove":     nodeRemoveCases(),
		"BlueprintPut":   blueprintPutCases(),
		"BlueprintDel":   blueprintDeleteCases(),
		"ClusterInit":    clusterInitCases(),
		"Batch":          batchCases(),
		"Forwarded":      forwardedCases(),
		"FleetPut":       fleetPutCases(),
		"FleetDelete":    fleetDeleteCases(),
		"FleetScale":     fleetScaleCases(),
		"ShipCreate":     shipCreateCases(),
		"ShipPlace":      shipPlaceCases(),
		"ShipStop":       shipStopCases(),
		"ShipReport":     shipReportCases(),
		"ShipLost":       shipLostCases(),
		"ShipPurge":      shipPurgeCases(),
		"NodeDrain":      nodeDrainCases(),
		"NodeReport":     nodeReportCases(),
		"RedisExec":      redisExecCases(),
		"EtcdTxn":        etcdTxnCases(),
		"ShipAllocate":   shipAllocateCases(),
		"ShipSDK":        shipSDKCases(),
		"DeployUpdate":   deployUpdateCases(),
		"UsageReport":    usageReportCases(),
		"FeatureOn":      featureOnCases(),

		"ZKCreateSession": zkCreateSessionCases(),
		"ZKTouch":         zkTouchCases(),
		"ZKClose":         zkCloseCases(),
		"ZKMulti":         zkMultiCases(),
	}
}

// neverRejected lists the commands that have no rejection: Expire's only
// outcomes are expiring something or nothing. ShipPlace, ShipReport and
// ShipPurge carry a plan or a report about many ships, made from a view
// that may be stale by the time it applies; each part that no longer fits
// is refused on its own (a queued ship keeps a reason) or skipped, and the
// rest still applies. Their tables cover those outcomes instead.
var neverRejected = map[CmdType]bool{CmdExpire: true, CmdShipPlace: true, CmdShipReport: true, CmdShipPurge: true}

func TestEveryCommandTypeHasCases(t *testing.T) {
	ok, fail := map[CmdType]int{}, map[CmdType]int{}
	for _, cases := range allCmdTables() {
		for _, tc := range cases {
			if tc.code == "" {
				ok[tc.cmd.Type()]++
			} else {
				fail[tc.cmd.Type()]++
			}
		}
	}
	for typ, mk := range commandTable {
		if mk == nil {
			continue
		}
		ct := CmdType(typ)
		if mk().Type() != ct {
			t.Errorf("commandTable[%d] makes a command of type %d", typ, mk().Type())
		}
		if ok[ct] == 0 {
			t.Errorf("command type %d (%T) has no success case", typ, mk())
		}
		if fail[ct] == 0 && !neverRejected[ct] {
			t.Errorf("command type %d (%T) has no rejection case", typ, mk())
		}
	}
}

// Each command table runs as its own test so failures name the command.

func TestApplyKVPut(t *testing.T)          { runCmdCases(t, kvPutCases()) }
func TestApplyKVDelete(t *testing.T)       { runCmdCases(t, kvDeleteCases()) }
func TestApplyLeaseGrant(t *testing.T)     { runCmdCases(t, leaseGrantCases()) }
func TestApplyLeaseKeepAlive(t *testing.T) { runCmdCases(t, leaseKeepAliveCases()) }
func TestApplyLeaseRevoke(t *testing.T)    { runCmdCases(t, leaseRevokeCases()) }
func TestApplyExpire(t *testing.T)         { runCmdCases(t, expireCases()) }
func TestApplyQueuePush(t *testing.T)      { runCmdCases(t, queuePushCases()) }
func TestApplyQueueClaim(t *testing.T)     { runCmdCases(t, queueClaimCases()) }
func TestApplyQueueAck(t *testing.T)       { runCmdCases(t, queueAckCases()) }
func TestApplyQueueRelease(t *testing.T)   { runCmdCases(t, queueReleaseCases()) }
func TestApplyLockAcquire(t *testing.T)    { runCmdCases(t, lockAcquireCases()) }
func TestApplyLockRelease(t *testing.T)    { runCmdCases(t, lockReleaseCases()) }
func TestApplyNodeUpsert(t *testing.T)     { runCmdCases(t, nodeUpsertCases()) }
func TestApplyNodeRemove(t *testing.T)     { runCmdCases(t, nodeRemoveCases()) }
func TestApplyBlueprintPut(t *testing.T)   { runCmdCases(t, blueprintPutCases()) }
func TestApplyBlueprintDel(t *testing.T)   { runCmdCases(t, blueprintDeleteCases()) }
func TestApplyClusterInit(t *testing.T)    { runCmdCases(t, clusterInitCases()) }

// Entry handling that is not specific to one command.

func TestApplyEntryWithoutDataAdvancesIndex(t *testing.T) {
	h := newHarness(t)
	h.ok(&KVPut{Key: "a", Value: []byte("1")})
	before := dumpState(t, h.s)
	r := h.s.Apply(2, nil)
	if r.Err != nil || r.Index != 2 || h.s.Index() != 2 {
		t.Fatalf("nil entry: result %+v, index %d", r, h.s.Index())
	}
	h.idx = 2
	h.requireUnchanged(before)
}

func TestApplyUndecodableEntryIsRejected(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":     {},
		"unknown":   {0xff, 1, 2},
		"type 0":    {0},
		"truncated": Encode(&KVPut{Key: "k", Value: []byte("v")})[:3],
		"trailing":  append(Encode(&KVDelete{Key: "k"}), 0),
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.ok(&KVPut{Key: "k", Value: []byte("v")})
			before := dumpState(t, h.s)
			h.idx++
			r := h.s.Apply(h.idx, data)
			requireErr(t, r, ErrInvalid, "")
			if r.Index != h.idx || h.s.Index() != h.idx {
				t.Fatalf("index: result %d, state %d, want %d", r.Index, h.s.Index(), h.idx)
			}
			h.requireUnchanged(before)
		})
	}
}

func TestApplyBatchSkipsAppliedEntries(t *testing.T) {
	h := newHarness(t)
	h.ok(&KVPut{Key: "a", Value: []byte("1")}) // 1
	h.ok(&KVPut{Key: "b", Value: []byte("1")}) // 2
	before := dumpState(t, h.s)
	rs := h.s.ApplyBatch([]Entry{
		{Index: 1, Data: Encode(&KVPut{Key: "a", Value: []byte("replayed")})},
		{Index: 2, Data: Encode(&KVDelete{Key: "b"})},
	})
	for i, r := range rs {
		requireErr(t, r, ErrConflict, "")
		if r.Index != uint64(i+1) {
			t.Fatalf("result %d has index %d", i, r.Index)
		}
	}
	if h.s.Index() != 2 {
		t.Fatalf("index moved to %d", h.s.Index())
	}
	if after := dumpState(t, h.s); after != before {
		t.Fatalf("replayed entries changed the state:\n%s", diffLines(before, after))
	}

	// A batch that overlaps the applied index applies only the new part.
	rs = h.s.ApplyBatch([]Entry{
		{Index: 2, Data: Encode(&KVPut{Key: "x", Value: []byte("old")})},
		{Index: 3, Data: Encode(&KVPut{Key: "x", Value: []byte("new")})},
	})
	requireErr(t, rs[0], ErrConflict, "")
	if rs[1].Err != nil || rs[1].KV == nil || string(rs[1].KV.Value) != "new" || rs[1].KV.Version != 1 {
		t.Fatalf("new entry in overlapping batch: %s", jsonString(rs[1]))
	}
	if h.s.Index() != 3 {
		t.Fatalf("index = %d, want 3", h.s.Index())
	}
}

func TestApplyBatchResultsMatchSingleApplies(t *testing.T) {
	cmds := []Command{
		&KVPut{Key: "a", Value: []byte("1")},
		&KVPut{Key: "a", Value: []byte("2"), HasCAS: true, CAS: 1},
		&KVPut{Key: "a", Value: []byte("3"), HasCAS: true, CAS: 1}, // conflict: a is at 2
		&LeaseGrant{TTLms: 100, Now: 5},
		&KVPut{Key: "b", Lease: 4},
		&LeaseRevoke{ID: 4},
		&QueuePush{Queue: "q", Data: []byte("x")},
		&QueueClaim{Queue: "q", Consumer: "c", VisibilityMs: 10},
	}
	one, batch := newHarness(t), openState(t)
	var entries []Entry
	var single []*Result
	for _, c := range cmds {
		single = append(single, one.apply(c))
		entries = append(entries, Entry{Index: one.idx, Data: Encode(c)})
	}
	requireEqual(t, "batch results", batch.ApplyBatch(entries), single)
	if a, b := snapshotBytes(t, one.s), snapshotBytes(t, batch); !bytes.Equal(a, b) {
		t.Fatal("batched and single applies gave different snapshots")
	}
	// Changes published by one batch are the same as by single applies.
	c1, _, err1 := one.s.Changes(0)
	c2, _, err2 := batch.Changes(0)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	requireEqual(t, "changes", c2, c1)
}
