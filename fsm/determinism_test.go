package fsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// logGen produces a random but seeded log of mixed commands. It applies
// each entry to its own state as it goes so that it can aim at things that
// exist (current CAS indexes, live leases, claimed items) about as often as
// at things that do not, giving a mix of successes and rejections.
type logGen struct {
	t       *testing.T
	rng     *rand.Rand
	h       *harness
	now     int64
	entries []Entry
	results []*Result
	leases  []uint64
	items   map[string][]uint64
}

var (
	genKeys      = []string{"a", "b", "c", "dir/a", "dir/b", "dir/sub/c", "e"}
	genQueues    = []string{"q1", "q2", "q3"}
	genConsumers = []string{"w1", "w2", "w3"}
	genLocks     = []string{"l1", "l2"}
	genNodes     = []string{"n1", "n2", "n3"}
	genStatuses  = []string{NodeAlive, NodeSuspect, NodeDead, NodeLeft}
	genBPNames   = []string{"api", "web", "db"}
)

func newLogGen(t *testing.T, seed uint64) *logGen {
	return &logGen{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), h: newHarness(t), now: 1_000_000, items: map[string][]uint64{}}
}

func (g *logGen) pick(ss []string) string { return ss[g.rng.IntN(len(ss))] }

func (g *logGen) pickID(ids []uint64) uint64 {
	if len(ids) == 0 || g.rng.IntN(5) == 0 {
		return uint64(g.rng.IntN(int(g.h.idx) + 2))
	}
	return ids[g.rng.IntN(len(ids))]
}

func (g *logGen) curModRev(key string) uint64 {
	if kv, ok := g.h.kv(key); ok {
		return kv.ModRev
	}
	return 0
}

func (g *logGen) blueprint() *Blueprint {
	bp := validBlueprint()
	bp.Name = g.pick(genBPNames)
	bp.Resources.MemoryMB = int64(64 * (1 + g.rng.IntN(3)))
	if g.rng.IntN(2) == 0 {
		bp.Secrets = map[string]string{"TOKEN": fmt.Sprint("t", g.rng.IntN(2))}
	}
	return bp
}

func (g *logGen) command() Command {
	switch g.rng.IntN(22) {
	case 0, 1, 2:
		c := &KVPut{Key: g.pick(genKeys), Value: []byte(fmt.Sprint(g.rng.IntN(1000))), Now: g.now}
		switch g.rng.IntN(6) {
		case 0:
			c.HasCAS, c.CAS = true, g.curModRev(c.Key)
		case 1:
			c.HasCAS, c.CAS = true, uint64(g.rng.IntN(int(g.h.idx)+1))
		case 2:
			c.TTLms = int64(g.rng.IntN(3000))
		case 3:
			c.Lease = g.pickID(g.leases)
		}
		if g.rng.IntN(40) == 0 {
			c.Key = ""
		}
		return c
	case 3:
		c := &KVDelete{Key: g.pick(genKeys)}
		switch g.rng.IntN(4) {
		case 0:
			c.Prefix, c.Key = true, "dir/"
		case 1:
			c.HasCAS, c.CAS = true, g.curModRev(c.Key)
		case 2:
			c.HasCAS, c.CAS = true, uint64(g.rng.IntN(int(g.h.idx)+1))
		}
		return c
	case 4:
		return &LeaseGrant{TTLms: int64(g.rng.IntN(20000)) - 100, Now: g.now}
	case 5:
		return &LeaseKeepAlive{ID: g.pickID(g.leases), Now: g.now}
	case 6:
		return &LeaseRevoke{ID: g.pickID(g.leases)}
	case 7, 8:
		return &Expire{Now: g.now}
	case 9, 10:
		return &QueuePush{Queue: g.pick(genQueues), Data: []byte(fmt.Sprint(g.rng.Uint32())), Now: g.now}
	case 11, 12:
		return &QueueClaim{Queue: g.pick(genQueues), Consumer: g.pick(genConsumers), VisibilityMs: int64(g.rng.IntN(2000)), Now: g.now}
	case 13, 14:
		q := g.pick(genQueues)
		id, consumer := g.claimedItem(q)
		if g.rng.IntN(2) == 0 {
			return &QueueAck{Queue: q, ID: id, Consumer: consumer}
		}
		return &QueueRelease{Queue: q, ID: id, Consumer: consumer}
	case 15:
		return &LockAcquire{Name: g.pick(genLocks), Owner: g.pick(genConsumers), TTLms: int64(g.rng.IntN(3000)), Now: g.now}
	case 16:
		return &LockRelease{Name: g.pick(genLocks), Owner: g.pick(genConsumers)}
	case 17:
		n := testNode(g.pick(genNodes), g.pick(genStatuses))
		n.Drain = g.rng.IntN(2) == 0
		return &NodeUpsert{Node: n, Now: g.now}
	case 18:
		return &NodeRemove{Name: g.pick(genNodes)}
	case 19:
		bp := g.blueprint()
		if g.rng.IntN(6) == 0 {
			// Not prepared: plaintext secrets or an invalid port.
			if bp.Secrets == nil {
				bp.Ports[0].Name = "Bad"
			}
			return &BlueprintPut{Spec: *bp, Now: g.now}
		}
		c, err := PrepareBlueprint(testKey, bp)
		if err != nil {
			g.t.Fatal(err)
		}
		c.Now = g.now
		return c
	case 20:
		return &BlueprintDelete{Name: g.pick(genBPNames)}
	default:
		return &ClusterInit{ClusterID: fmt.Sprint("c", g.rng.IntN(3)), Key: testKey}
	}
}

// claimedItem picks an item of q and, usually, its actual claimer.
func (g *logGen) claimedItem(q string) (uint64, string) {
	items := g.h.queue(q)
	if len(items) == 0 || g.rng.IntN(6) == 0 {
		return g.pickID(g.items[q]), g.pick(genConsumers)
	}
	var claimed []*QueueItem
	for _, it := range items {
		if it.Claimer != "" {
			claimed = append(claimed, it)
		}
	}
	it := items[g.rng.IntN(len(items))]
	if len(claimed) > 0 && g.rng.IntN(5) != 0 {
		it = claimed[g.rng.IntN(len(claimed))]
	}
	if it.Claimer == "" || g.rng.IntN(4) == 0 {
		return it.ID, g.pick(genConsumers)
	}
	return it.ID, it.Claimer
}

// allocatesID reports whether c takes an ID (lease, item, lock token)
// from its entry's index.
func allocatesID(c Command) bool {
	switch c := c.(type) {
	case *LeaseGrant, *QueuePush, *LockAcquire:
		return true
	case *KVPut:
		return c.TTLms > 0
	}
	return false
}

// noteIDs remembers the IDs c creates at idx, to aim later commands at.
func (g *logGen) noteIDs(c Command, idx uint64) {
	switch c := c.(type) {
	case *LeaseGrant:
		g.leases = append(g.leases, idx)
	case *KVPut:
		if c.TTLms > 0 {
			g.leases = append(g.leases, idx)
		}
	case *QueuePush:
		g.items[c.Queue] = append(g.items[c.Queue], idx)
	}
}

// next appends one entry: mostly commands, sometimes an entry without
// data or an undecodable one.
func (g *logGen) next() {
	g.now += int64(g.rng.IntN(300))
	idx := g.h.idx + 1
	var data []byte
	switch g.rng.IntN(40) {
	case 0:
		data = nil
	case 1:
		data = append(Encode(g.command()), 0) // trailing garbage
	case 2, 3, 4:
		// A batch of a few commands. At most one of them takes an ID from
		// the index: see TestBatchSubCommandsGetDistinctIDs.
		var cmds []Command
		allocated := false
		for len(cmds) < 1+g.rng.IntN(6) {
			c := g.command()
			if allocatesID(c) {
				if allocated {
					continue
				}
				allocated = true
				g.noteIDs(c, idx)
			}
			cmds = append(cmds, c)
		}
		data = Encode(&Batch{Cmds: cmds})
	default:
		c := g.command()
		data = Encode(c)
		g.noteIDs(c, idx)
	}
	g.h.idx = idx
	r := g.h.s.Apply(idx, data)
	g.entries = append(g.entries, Entry{Index: idx, Data: data})
	g.results = append(g.results, r)
}

func TestDeterminism(t *testing.T) {
	const n = 800
	g := newLogGen(t, 20240611)
	// ClusterInit early so that sealed secrets can be read back.
	initCmd := &ClusterInit{ClusterID: "c", Key: testKey}
	g.results = append(g.results, g.h.ok(initCmd))
	g.entries = append(g.entries, Entry{Index: 1, Data: Encode(initCmd)})
	for i := range n {
		g.next()
		if i%50 == 0 {
			checkInvariants(t, g.h.s)
		}
	}
	checkInvariants(t, g.h.s)

	// The log must exercise both outcomes of most command types.
	okByType, failByType := map[CmdType]int{}, map[CmdType]int{}
	fails := 0
	for i, e := range g.entries {
		if e.Data == nil {
			continue
		}
		if g.results[i].Err != nil {
			fails++
			failByType[CmdType(e.Data[0])]++
		} else {
			okByType[CmdType(e.Data[0])]++
		}
	}
	if fails < n/10 || fails > n/2 {
		t.Fatalf("%d of %d entries failed; the generator needs retuning", fails, n)
	}
	for typ, mk := range commandTable {
		if mk != nil && okByType[CmdType(typ)] == 0 {
			t.Errorf("log has no successful %T", mk())
		}
	}
	t.Logf("%d entries, %d rejected; ok by type %v, rejected by type %v", len(g.entries), fails, okByType, failByType)

	// A: one entry per ApplyBatch.
	a := openState(t)
	var resA []*Result
	for _, e := range g.entries {
		resA = append(resA, a.ApplyBatch([]Entry{e})...)
	}
	// B: random-sized batches.
	b := openState(t)
	var resB []*Result
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < len(g.entries); {
		j := min(len(g.entries), i+1+rng.IntN(64))
		resB = append(resB, b.ApplyBatch(g.entries[i:j])...)
		i = j
	}
	// C: restored from a snapshot of A taken half-way, then the rest.
	half := len(g.entries) / 2
	mid := openState(t)
	mid.ApplyBatch(g.entries[:half])
	c := openState(t)
	if err := c.Restore(bytes.NewReader(snapshotBytes(t, mid))); err != nil {
		t.Fatal(err)
	}
	resC := append([]*Result(nil), g.results[:half]...)
	for _, e := range g.entries[half:] {
		resC = append(resC, c.Apply(e.Index, e.Data))
	}

	want := snapshotBytes(t, g.h.s)
	for name, s := range map[string]*State{"one by one": a, "batched": b, "restored": c} {
		if got := snapshotBytes(t, s); !bytes.Equal(got, want) {
			t.Errorf("%s: snapshot differs:\n%s", name, diffLines(dumpState(t, g.h.s), dumpState(t, s)))
		}
		if s.Index() != g.h.idx {
			t.Errorf("%s: index %d, want %d", name, s.Index(), g.h.idx)
		}
	}
	requireEqual(t, "results one by one", resA, g.results)
	requireEqual(t, "results batched", resB, g.results)
	requireEqual(t, "results restored", resC, g.results)
	ca, _, errA := a.Changes(0)
	cb, _, errB := b.Changes(0)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	requireEqual(t, "changes", cb, ca)
	requireEqual(t, "views", readFullView(t, b), readFullView(t, g.h.s))
}
