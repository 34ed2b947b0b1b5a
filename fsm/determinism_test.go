package fsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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
	genFleets    = []string{"f1", "f2"}
	genShipState = []string{ShipStarting, ShipReady, ShipReady, ShipReady, ShipStopped, ShipFailed}
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
	if g.rng.IntN(1000) == 0 {
		// Mid-log, so that entries on both sides of the switch are compared.
		return &FeatureOn{Name: []string{FeatureOwnRevisions, "nope"}[g.rng.IntN(2)]}
	}
	if g.rng.IntN(30) == 0 {
		return g.zkCommand()
	}
	if g.rng.IntN(12) == 0 {
		if g.rng.IntN(2) == 0 {
			return g.etcdCommand()
		}
		return g.redisCommand()
	}
	if n := g.rng.IntN(45); n >= 22 {
		return g.shipCommand(n - 22)
	}
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
		c := &LeaseKeepAlive{ID: g.pickID(g.leases), Now: g.now}
		g.h.view(func(v *View) {
			if live := v.Leases(); len(live) > 0 && g.rng.IntN(2) == 0 {
				c.ID = live[g.rng.IntN(len(live))].ID // one that still exists
			}
		})
		return c
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
		status := NodeAlive
		if g.rng.IntN(2) == 0 {
			status = g.pick(genStatuses)
		}
		n := testNode(g.pick(genNodes), status)
		n.Drain = g.rng.IntN(2) == 0 // ignored once the node exists
		n.Worker = g.rng.IntN(8) != 0
		return &NodeUpsert{Node: n, Now: g.now}
	case 18:
		name := g.pick(genNodes)
		// A node whose ships still hold resources is not removed: see
		// TestNodeRemoveKeepsShipAccounting.
		for _, s := range g.ships() {
			if s.Node == name && s.holds() {
				name = "n9"
			}
		}
		return &NodeRemove{Name: name}
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

// shipCommand makes one of the fleet, ship and node commands (20 kinds of
// n), aimed at what the state holds so that most succeed: ships are created
// for a fleet's deficit, placed on nodes that can take them with free
// ports, reported by their node, stopped, lost with their dead node and
// purged once ended.
func (g *logGen) shipCommand(n int) Command {
	ships := g.ships()
	switch n {
	case 0, 1:
		f := Fleet{Name: g.pick(genFleets), Replicas: g.rng.IntN(6)}
		for range 1 + g.rng.IntN(2) {
			v := FleetVersion{Blueprint: g.pick(genBPNames), Weight: g.rng.IntN(4)}
			if g.rng.IntN(3) == 0 {
				v.Version = 1 + g.rng.IntN(3)
			}
			f.Versions = append(f.Versions, v)
		}
		if g.rng.IntN(4) == 0 {
			f.Placement = &Placement{Strategy: StrategyPack}
		}
		if g.rng.IntN(30) == 0 {
			f.Name = "Bad"
		}
		return &FleetPut{Spec: f, Now: g.now}
	case 2:
		if g.rng.IntN(3) == 0 {
			return &FleetDelete{Name: g.pick(genFleets), Now: g.now}
		}
		return &FleetScale{Name: g.pick(genFleets), Replicas: g.rng.IntN(7) - g.rng.IntN(2), Now: g.now}
	case 3, 4, 5:
		var fleets []*Fleet
		g.h.view(func(v *View) { fleets = v.Fleets() })
		if len(fleets) == 0 || g.rng.IntN(8) == 0 {
			return &ShipCreate{Blueprint: g.pick(genBPNames), Count: 1 + g.rng.IntN(8)/7, Now: g.now}
		}
		f := fleets[g.rng.IntN(len(fleets))]
		// Aim at a version with a deficit, as the leader would.
		best, bestGap := f.Versions[g.rng.IntN(len(f.Versions))], 0
		for i, want := range f.Desired() {
			v := f.Versions[i]
			live := 0
			for _, s := range ships {
				if s.Fleet == f.Name && s.Blueprint == v.Blueprint && s.Version == v.Version && s.Live() && s.State != ShipStopping {
					live++
				}
			}
			if want-live > bestGap {
				best, bestGap = v, want-live
			}
		}
		return &ShipCreate{Fleet: f.Name, Blueprint: best.Blueprint, Version: best.Version, Count: 1 + g.rng.IntN(3), Now: g.now}
	case 6, 7, 8, 9:
		return g.placeCommand()
	case 10, 11, 12:
		var placed []*Ship
		for _, s := range ships {
			if s.Node != "" && !s.Ended() {
				placed = append(placed, s)
			}
		}
		c := &ShipReport{Node: g.pick(genNodes), Now: g.now}
		for range 1 + g.rng.IntN(2) {
			if len(placed) == 0 {
				break
			}
			s := placed[g.rng.IntN(len(placed))]
			if g.rng.IntN(8) != 0 {
				c.Node = s.Node
			}
			state := g.pick(genShipState)
			if s.Desired == DesireStop && g.rng.IntN(3) != 0 {
				state = ShipStopped
			}
			c.Reports = append(c.Reports, Report{Ship: s.ID, State: state, Reason: fmt.Sprint("r", g.rng.IntN(2))})
		}
		return c
	case 13, 18, 19:
		var live []string
		for _, s := range ships {
			if s.Live() {
				live = append(live, s.ID)
			}
		}
		c := &ShipStop{Why: []string{StopUser, StopUser, StopSurplus, StopSurplus, StopDrain, StopDrain}[g.rng.IntN(6)], Now: g.now}
		if c.Why == StopDrain {
			// Mostly ships of draining nodes, as the leader would pick.
			var draining []string
			for _, s := range ships {
				if n, ok := g.h.node(s.Node); ok && n.Drain && s.Live() && g.rng.IntN(4) != 0 {
					draining = append(draining, s.ID)
				}
			}
			if len(draining) > 0 {
				live = draining
			}
		}
		for range 1 + g.rng.IntN(2) {
			if len(live) > 0 {
				c.Ships = append(c.Ships, live[g.rng.IntN(len(live))])
			}
		}
		switch g.rng.IntN(20) {
		case 0:
			c.Ships = append(c.Ships, "nope")
		case 1:
			c.Why = "whim"
		}
		return c
	case 14:
		// A node with ships dies, or the leader gives up on a node that
		// is not alive (mostly one with ships left).
		name := g.pick(genNodes)
		for _, try := range g.rng.Perm(len(genNodes)) {
			n, ok := g.h.node(genNodes[try])
			if !ok || !slices.ContainsFunc(ships, func(s *Ship) bool { return s.Node == n.Name && !s.Ended() }) {
				continue
			}
			if n.Status == NodeAlive && g.rng.IntN(2) == 0 {
				return &NodeUpsert{Node: testNode(n.Name, g.pick(genStatuses[1:])), Now: g.now}
			}
			name = n.Name
			break
		}
		return &ShipLost{Node: name, Reason: "lost", Now: g.now}
	case 15:
		c := &ShipPurge{}
		for _, s := range ships {
			if s.Ended() && g.rng.IntN(2) == 0 || g.rng.IntN(10) == 0 {
				c.Ships = append(c.Ships, s.ID)
			}
		}
		return c
	case 22:
		c := &DeployUpdate{Fleet: g.pick(genFleets), ID: uint64(g.rng.IntN(50)), State: DeployRunning, Now: g.now}
		g.h.view(func(v *View) {
			if d, ok := v.RunningDeployment(c.Fleet); ok && g.rng.IntN(6) != 0 {
				c.ID = d.ID
			}
		})
		c.State = []string{DeployRunning, DeployRunning, DeploySucceeded, DeployFailed, "bad"}[g.rng.IntN(5)]
		c.Updated, c.Total, c.Progress, c.Rollback = g.rng.IntN(4), 3, g.rng.IntN(2) == 0, g.rng.IntN(2) == 0
		return c
	case 20:
		c := &ShipAllocate{Now: g.now}
		for range 1 + g.rng.IntN(3) {
			r := AllocRequest{Fleet: g.pick(genFleets), Strategy: []string{"", AllocPacked, AllocDistributed}[g.rng.IntN(3)]}
			if g.rng.IntN(4) == 0 {
				r.Selector = map[string]string{"k": fmt.Sprint(g.rng.IntN(2))}
			}
			if g.rng.IntN(3) == 0 {
				r.Labels = map[string]string{"match": fmt.Sprint(g.rng.IntN(9))}
			}
			if g.rng.IntN(2) == 0 {
				r.RequestID = fmt.Sprint("req-", g.rng.IntN(6)) // repeats are answered from the state
			}
			c.Requests = append(c.Requests, r)
		}
		if g.rng.IntN(3) == 0 { // the older form, without request IDs
			for i := range c.Requests {
				c.Requests[i].RequestID = ""
			}
			return &shipAllocate1{*c}
		}
		return c
	case 21:
		c := &ShipSDK{Ship: "nope", Node: g.pick(genNodes), Op: []string{SDKAllocate, SDKReserve, SDKShutdown, SDKLabel, SDKUnreserve}[g.rng.IntN(5)], Now: g.now}
		if len(ships) > 0 {
			s := ships[g.rng.IntN(len(ships))]
			c.Ship = s.ID
			if g.rng.IntN(8) != 0 {
				c.Node = s.Node
			}
		}
		c.Seconds = int64(g.rng.IntN(3))
		c.Key, c.Value = "k", fmt.Sprint(g.rng.IntN(2))
		return c
	case 16:
		name := g.pick(genNodes)
		if g.rng.IntN(10) == 0 {
			name = "n9"
		}
		return &NodeDrain{Name: name, Enable: g.rng.IntN(3) == 0, Now: g.now}
	default:
		if g.rng.IntN(4) == 0 {
			u := &UsageReport{Node: g.pick(genNodes), CPUMHz: int64(g.rng.IntN(100)), MemoryMB: int64(g.rng.IntN(100)) - 1, Now: g.now}
			for _, s := range ships {
				if g.rng.IntN(2) == 0 {
					u.Ships = append(u.Ships, ShipUsage{Ship: s.ID, CPUMHz: int64(g.rng.IntN(50)), MemoryMB: int64(g.rng.IntN(50))})
				}
			}
			return u
		}
		c := &NodeReport{Name: g.pick(genNodes), PortsRange: "20000-20011", Now: g.now}
		if _, ok := g.h.node(c.Name); !ok && g.rng.IntN(4) != 0 {
			return &NodeUpsert{Node: testNode(c.Name, NodeAlive), Now: g.now} // a node joins
		}
		if g.rng.IntN(4) == 0 {
			c.PortsRange = "20004-20019"
		}
		for range g.rng.IntN(3) {
			c.HostPorts = append(c.HostPorts, 20000+g.rng.IntN(12))
		}
		if g.rng.IntN(12) == 0 {
			c.PortsRange = "20010-20000"
		}
		return c
	}
}

// redisCommand makes a RedisExec of a few commands on the generator's keys
// (so they meet /v1/kv keys, leases and each other's types), mostly valid:
// a Redis error is a reply, not a rejection; an unknown command rejects
// the entry.
func (g *logGen) redisCommand() Command {
	templates := []string{
		"SET %k %v", "SET %k %v EX %n", "SET %k %v PX %n NX", "SET %k %v XX KEEPTTL", "SET %k %v GET", "GET %k",
		"INCR %k", "INCRBY %k %n", "DECR %k", "APPEND %k %v", "GETSET %k %v", "SETNX %k %v", "MSET %k %v %k %v",
		"DEL %k %k", "EXPIRE %k %n", "PEXPIRE %k %n", "PERSIST %k", "TTL %k", "HSET %k f%n %v", "HDEL %k f%n",
		"HINCRBY %k f%n %n", "HGETALL %k", "LPUSH %k %v %v", "RPUSH %k %v", "LPOP %k", "RPOP %k 2", "BLPOP %k %k 0",
		"LRANGE %k 0 -1", "KEYS *", "SCAN 0 COUNT 3", "TYPE %k", "EXISTS %k %k",
	}
	c := &RedisExec{Now: g.now}
	for range 1 + g.rng.IntN(4) {
		var argv [][]byte
		for _, f := range strings.Fields(templates[g.rng.IntN(len(templates))]) {
			for strings.Contains(f, "%") {
				switch {
				case strings.Contains(f, "%k"):
					f = strings.Replace(f, "%k", g.pick(genKeys), 1)
				case strings.Contains(f, "%v"):
					f = strings.Replace(f, "%v", fmt.Sprint(g.rng.IntN(20)), 1)
				default:
					f = strings.Replace(f, "%n", fmt.Sprint(g.rng.IntN(3000)-100), 1)
				}
			}
			argv = append(argv, []byte(f))
		}
		c.Cmds = append(c.Cmds, argv)
	}
	switch g.rng.IntN(15) {
	case 0:
		c.Cmds = append(c.Cmds, [][]byte{[]byte("FLUSHALL")})
	case 1:
		c.Cmds = nil
	}
	return c
}

// etcdCommand makes an EtcdTxn on the generator's keys and leases: compares
// of every target, and puts, deletes and ranges in either branch; an
// unknown lease or an ignored value of a missing key rejects the entry.
func (g *logGen) etcdCommand() Command {
	c := &EtcdTxn{}
	for range g.rng.IntN(3) {
		c.Compares = append(c.Compares, EtcdCompare{Key: []byte(g.pick(genKeys)), Target: uint8(g.rng.IntN(5)),
			Result: uint8(g.rng.IntN(4)), Value: []byte(fmt.Sprint(g.rng.IntN(20))), Num: int64(g.rng.IntN(40))})
	}
	ops := func() []EtcdOp {
		var out []EtcdOp
		for range g.rng.IntN(4) {
			op := EtcdOp{Kind: uint8(1 + g.rng.IntN(3)), Key: []byte(g.pick(genKeys)), PrevKV: g.rng.IntN(2) == 0}
			switch g.rng.IntN(3) {
			case 0:
				op.RangeEnd = []byte{0}
			case 1:
				op.RangeEnd = []byte("dir0")
			}
			switch op.Kind {
			case EtcdOpPut:
				op.RangeEnd = nil
				op.Value = []byte(fmt.Sprint(g.rng.IntN(20)))
				if len(g.leases) > 0 && g.rng.IntN(3) == 0 {
					op.Lease = g.leases[g.rng.IntN(len(g.leases))]
				}
				op.IgnoreValue = g.rng.IntN(10) == 0
				if op.IgnoreValue {
					op.Value = nil
				}
			case EtcdOpRange:
				op.Limit = int64(g.rng.IntN(3))
				op.SortOrder, op.SortTarget = uint8(g.rng.IntN(3)), uint8(g.rng.IntN(5))
			}
			out = append(out, op)
		}
		return out
	}
	c.Success, c.Failure = ops(), ops()
	if g.rng.IntN(15) == 0 {
		c = &EtcdTxn{Node: g.pick(genNodes), Addr: fmt.Sprint("127.0.0.1:", 2379+g.rng.IntN(3))}
	}
	return c
}

// placeCommand places a few queued ships, mostly on nodes that can take
// them and on ports that are free, and gives another a pending reason.
func (g *logGen) placeCommand() Command {
	var queued []*Ship
	var nodes []*Node
	g.h.view(func(v *View) {
		queued = v.Queued()
		nodes = v.Nodes()
	})
	c := &ShipPlace{Now: g.now}
	taken := map[string][]int{}
	for range 1 + g.rng.IntN(3) {
		if len(queued) == 0 || len(nodes) == 0 {
			break
		}
		s := queued[g.rng.IntN(len(queued))]
		var fit []*Node
		for _, n := range nodes {
			if n.Status == NodeAlive && !n.Drain && n.Worker && n.PortsRange != "" {
				fit = append(fit, n)
			}
		}
		n := nodes[g.rng.IntN(len(nodes))]
		if len(fit) > 0 && g.rng.IntN(6) != 0 {
			n = fit[g.rng.IntN(len(fit))]
		}
		lo, hi, _ := ParsePortsRange(n.PortsRange)
		var free []int
		for p := lo; p <= hi && lo > 0; p++ {
			if !slices.Contains(n.UsedPorts, p) && !slices.Contains(n.HostPorts, p) && !slices.Contains(taken[n.Name], p) {
				free = append(free, p)
			}
		}
		p := Place{Ship: s.ID, Node: n.Name}
		switch {
		case len(free) > 0 && g.rng.IntN(8) != 0:
			p.Ports = []int{free[g.rng.IntN(len(free))]}
		case len(n.UsedPorts) > 0 && g.rng.IntN(2) == 0:
			p.Ports = []int{n.UsedPorts[0]}
		default:
			p.Ports = []int{20000 + g.rng.IntN(25)}
		}
		taken[n.Name] = append(taken[n.Name], p.Ports...)
		c.Places = append(c.Places, p)
	}
	if len(queued) > 0 && g.rng.IntN(3) == 0 {
		c.Pending = append(c.Pending, Pending{Ship: queued[g.rng.IntN(len(queued))].ID, Reason: fmt.Sprint("wait", g.rng.IntN(2))})
	}
	return c
}

func (g *logGen) ships() []*Ship {
	var ships []*Ship
	g.h.view(func(v *View) { ships = v.Ships(ShipFilter{}) })
	return ships
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

// noteIDs remembers the IDs c created, to aim later commands at. They are
// read from its result: IDs equal the entry's index only while no earlier
// command of the entry took one (ShipCreate and ShipPlace take several).
func (g *logGen) noteIDs(c Command, r *Result) {
	if r == nil || r.Err != nil {
		return
	}
	switch c := c.(type) {
	case *LeaseGrant:
		g.leases = append(g.leases, r.Lease.ID)
	case *KVPut:
		if c.TTLms > 0 {
			g.leases = append(g.leases, r.KV.Lease)
		}
	case *QueuePush:
		g.items[c.Queue] = append(g.items[c.Queue], r.Item.ID)
	case *Batch:
		for i, sub := range c.Cmds {
			g.noteIDs(sub, r.Batch[i])
		}
	case *Forwarded:
		g.noteIDs(c.Cmd, r)
	}
}

// forwarded is c as a follower forwards it, tagged with its sender.
func (g *logGen) forwarded(c Command) Command {
	return &Forwarded{Origin: g.rng.Uint64(), Seq: g.rng.Uint64N(1 << 20), Cmd: c}
}

// next appends one entry: mostly commands, sometimes an entry without
// data or an undecodable one.
func (g *logGen) next() {
	g.now += int64(g.rng.IntN(300))
	idx := g.h.idx + 1
	var data []byte
	var c Command
	switch g.rng.IntN(40) {
	case 0:
		data = nil
	case 1:
		data = append(Encode(g.command()), 0) // trailing garbage
	case 2, 3, 4:
		// A batch of a few commands. Several may take IDs: see
		// TestBatchSubCommandsGetDistinctIDs.
		b := &Batch{}
		for range 1 + g.rng.IntN(6) {
			sub := g.command()
			if g.rng.IntN(3) == 0 {
				sub = g.forwarded(sub)
			}
			b.Cmds = append(b.Cmds, sub)
		}
		c = b
		data = Encode(c)
	case 5, 6:
		c = g.forwarded(g.command())
		data = Encode(c)
	default:
		c = g.command()
		data = Encode(c)
	}
	g.h.idx = idx
	r := g.h.s.Apply(idx, data)
	g.noteIDs(c, r)
	g.entries = append(g.entries, Entry{Index: idx, Data: data})
	g.results = append(g.results, r)
}

func TestDeterminism(t *testing.T) {
	const n = 4000
	g := newLogGen(t, 20240612)
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
	// The ship commands that can succeed without doing anything must also
	// have done something: created, placed, reported, stopped (for each
	// reason), lost and purged ships.
	effective := map[string]int{}
	var count func(c Command, r *Result)
	count = func(c Command, r *Result) {
		if r.Err != nil {
			return
		}
		switch c := c.(type) {
		case *Batch:
			for i, sub := range c.Cmds {
				count(sub, r.Batch[i])
			}
		case *ShipStop:
			if r.Count > 0 {
				effective[fmt.Sprintf("%T %s", c, c.Why)]++
			}
		case *ShipCreate, *ShipPlace, *ShipReport, *ShipLost, *ShipPurge, *FleetDelete:
			if r.Count > 0 {
				effective[fmt.Sprintf("%T", c)]++
			}
		}
	}
	for i, e := range g.entries {
		if c, err := Decode(e.Data); err == nil {
			count(c, g.results[i])
		}
	}
	for _, what := range []string{"*fsm.ShipCreate", "*fsm.ShipPlace", "*fsm.ShipReport", "*fsm.ShipLost", "*fsm.ShipPurge", "*fsm.FleetDelete",
		"*fsm.ShipStop user", "*fsm.ShipStop surplus", "*fsm.ShipStop drain"} {
		if effective[what] == 0 {
			t.Errorf("log has no %s that changed a ship", what)
		}
	}
	states := map[string]int{}
	for _, s := range g.ships() {
		states[s.State]++
	}
	t.Logf("effective ship commands %v; ships at the end by state %v", effective, states)

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
	// D: one entry at a time with the allocation pools dropped before
	// each, so every allocation scans the state afresh: pools that outlive
	// a write they should not survive would pick other ships than this.
	d := openState(t)
	var resD []*Result
	for _, e := range g.entries {
		clear(d.pools)
		resD = append(resD, d.ApplyBatch([]Entry{e})...)
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
	for name, s := range map[string]*State{"one by one": a, "batched": b, "restored": c, "without pools": d} {
		if got := snapshotBytes(t, s); !bytes.Equal(got, want) {
			t.Errorf("%s: snapshot differs:\n%s", name, diffLines(dumpState(t, g.h.s), dumpState(t, s)))
		}
		if s.Index() != g.h.idx {
			t.Errorf("%s: index %d, want %d", name, s.Index(), g.h.idx)
		}
	}
	requireEqual(t, "results one by one", resA, g.results)
	requireEqual(t, "results batched", resB, g.results)
	requireEqual(t, "results without pools", resD, g.results)
	requireEqual(t, "results restored", resC, g.results)
	ca, _, errA := a.Changes(0)
	cb, _, errB := b.Changes(0)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	requireEqual(t, "changes", cb, ca)
	requireEqual(t, "views", readFullView(t, b), readFullView(t, g.h.s))
}
