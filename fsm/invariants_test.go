package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
)

// checkInvariants verifies the cross-references between buckets that no
// view exposes directly: a dangling index entry is invisible to reads but
// is garbage at best and a wrong deletion later at worst.
func checkInvariants(tb testing.TB, s *State) {
	tb.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.flush()
	err := s.db.View(func(tx *bbolt.Tx) error {
		if got := getU64(tx.Bucket(bMeta).Get(kIndex)); got != s.Index() {
			return fmt.Errorf("meta index %d, State.Index %d", got, s.Index())
		}
		leases := map[uint64]*Lease{}
		if err := tx.Bucket(bLeases).ForEach(func(k, v []byte) error {
			var l Lease
			if err := json.Unmarshal(v, &l); err != nil || l.ID != getU64(k) || l.TTLms <= 0 {
				return fmt.Errorf("bad lease %x: %s", k, v)
			}
			leases[l.ID] = &l
			if tx.Bucket(bLeaseExp).Get(expiryKey(l.Expiry, l.ID)) == nil {
				return fmt.Errorf("lease %d has no expiry entry for %d", l.ID, l.Expiry)
			}
			return nil
		}); err != nil {
			return err
		}
		exps := 0
		if err := tx.Bucket(bLeaseExp).ForEach(func(k, _ []byte) error {
			exps++
			if len(k) != 16 {
				return fmt.Errorf("bad expiry key %x", k)
			}
			id, exp := binary.BigEndian.Uint64(k[8:]), int64(binary.BigEndian.Uint64(k))
			if l := leases[id]; l == nil || l.Expiry != exp {
				return fmt.Errorf("expiry entry %d for lease %d, which is %v", exp, id, l)
			}
			return nil
		}); err != nil {
			return err
		}
		if exps != len(leases) {
			return fmt.Errorf("%d expiry entries for %d leases", exps, len(leases))
		}
		kvs := tx.Bucket(bKV)
		rev := storedRevision(tx, s.Index())
		if err := kvs.ForEach(func(k, v []byte) error {
			kv := decodeKV(string(k), v)
			if kv == nil || kv.Version == 0 || kv.CreateRev > kv.ModRev || kv.ModRev > rev {
				return fmt.Errorf("bad kv %q: %+v", k, kv)
			}
			if kv.Lease != 0 {
				if leases[kv.Lease] == nil {
					return fmt.Errorf("key %q on missing lease %d", k, kv.Lease)
				}
				if tx.Bucket(bLeaseKeys).Get(leaseKey(kv.Lease, kv.Key)) == nil {
					return fmt.Errorf("key %q not linked to its lease %d", k, kv.Lease)
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bLeaseKeys).ForEach(func(k, _ []byte) error {
			id, key := getU64(k[:8]), string(k[8:])
			kv := decodeKV(key, kvs.Get([]byte(key)))
			if kv == nil || kv.Lease != id {
				return fmt.Errorf("dangling lease link %d -> %q (key %+v)", id, key, kv)
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bQueues).ForEach(func(name, v []byte) error {
			q := tx.Bucket(bQueues).Bucket(name)
			if v != nil || q == nil {
				return fmt.Errorf("queues holds a value at %q", name)
			}
			return q.ForEach(func(k, v []byte) error {
				it := decodeItem(k, v)
				if it == nil || it.ID > getU64(tx.Bucket(bMeta).Get(kLastID)) || (it.Claimer == "") != (it.ClaimExpiry == 0) {
					return fmt.Errorf("bad item %x in %q: %+v", k, name, it)
				}
				return nil
			})
		}); err != nil {
			return err
		}
		versions := map[string]bool{}
		if err := tx.Bucket(bBlueprints).ForEach(func(k, v []byte) error {
			var info BlueprintInfo
			if err := json.Unmarshal(v, &info); err != nil || info.Name != string(k) || len(info.Versions) == 0 || info.Versions[len(info.Versions)-1] != info.Latest {
				return fmt.Errorf("bad blueprint info %q: %s", k, v)
			}
			for _, ver := range info.Versions {
				key := bpVersionKey(info.Name, ver)
				versions[string(key)] = true
				var sb storedBlueprint
				if err := json.Unmarshal(tx.Bucket(bBPVersions).Get(key), &sb); err != nil || sb.Spec.Version != ver || sb.Spec.Name != info.Name || len(sb.Spec.Secrets) != 0 {
					return fmt.Errorf("blueprint %q version %d missing or bad", info.Name, ver)
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bBPVersions).ForEach(func(k, _ []byte) error {
			if !versions[string(k)] {
				return fmt.Errorf("orphan blueprint version %q", k)
			}
			return nil
		}); err != nil {
			return err
		}
		if err := checkShipInvariants(tx); err != nil {
			return err
		}
		for _, b := range [][]byte{bLocks, bNodes} {
			if err := tx.Bucket(b).ForEach(func(k, v []byte) error {
				if !json.Valid(v) || !bytes.Contains(v, []byte(`"name":`)) {
					return fmt.Errorf("bad record %q in %s", k, b)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("state invariant broken: %v", err)
	}
}

// checkShipInvariants verifies fleets, ships, their indexes, their queue
// items and the allocation they hold on their nodes:
//
//   - every ship is stored under its id, in a known state, with exactly one
//     fleet_ships entry and (when it has a node) exactly one node_ships
//     entry, and the indexes hold nothing else;
//   - a queued ship has no node and exactly one scheduler-queue item, its
//     Item; a placed ship's Item is in its node's queue; every item of the
//     scheduler queue and of a worker queue is the Item of a ship in the
//     matching state;
//   - for every node, Allocated and Ships are the sums over the ships that
//     hold resources on it (placed, not ended), and UsedPorts is the union
//     of their ports, sorted, with no port held twice;
//   - every fleet is stored under its name, valid, with resolved versions.
func checkShipInvariants(tx *bbolt.Tx) error {
	states := map[string]bool{ShipQueued: true, ShipScheduled: true, ShipStarting: true, ShipReady: true,
		ShipAllocated: true, ShipReserved: true, ShipStopping: true, ShipStopped: true, ShipFailed: true, ShipLostState: true}
	ships := map[string]*Ship{}
	type held struct {
		res   Resources
		ships int
		ports []int
	}
	holds := map[string]*held{}
	if err := tx.Bucket(bShips).ForEach(func(k, v []byte) error {
		sp, ok := decodeShip(v)
		if !ok || sp.ID != string(k) {
			return fmt.Errorf("bad ship %q: %x", k, v)
		}
		s := *sp
		ships[s.ID] = &s
		switch {
		case !states[s.State]:
			return fmt.Errorf("ship %s in unknown state %q", s.ID, s.State)
		case s.Desired != DesireRun && s.Desired != DesireStop:
			return fmt.Errorf("ship %s has desired state %q", s.ID, s.Desired)
		case s.State == ShipQueued && (s.Node != "" || s.Desired != DesireRun || s.Item == 0):
			return fmt.Errorf("queued ship %s: node %q desired %q item %d", s.ID, s.Node, s.Desired, s.Item)
		case s.Node == "" && s.State != ShipQueued && s.State != ShipStopped:
			return fmt.Errorf("ship %s is %s without a node", s.ID, s.State)
		case s.State == ShipStopping && s.Desired != DesireStop:
			return fmt.Errorf("ship %s is stopping but wants to %s", s.ID, s.Desired)
		case s.Desired == DesireStop && s.State != ShipStopping && !s.Ended():
			return fmt.Errorf("ship %s wants to stop but is %s", s.ID, s.State)
		case s.Ended() && s.Item != 0:
			return fmt.Errorf("ended ship %s still has queue item %d", s.ID, s.Item)
		case s.Fleet != "" && !ValidName(s.Fleet):
			return fmt.Errorf("ship %s of fleet %q", s.ID, s.Fleet)
		}
		if tx.Bucket(bFleetShips).Get(pairKey(s.Fleet, s.ID)) == nil {
			return fmt.Errorf("ship %s not in the fleet index of %q", s.ID, s.Fleet)
		}
		if s.Node != "" && tx.Bucket(bNodeShips).Get(pairKey(s.Node, s.ID)) == nil {
			return fmt.Errorf("ship %s not in the node index of %q", s.ID, s.Node)
		}
		if s.Item != 0 {
			name := SchedulerQueue
			if s.Node != "" {
				name = WorkerQueue(s.Node)
			}
			q := tx.Bucket(bQueues).Bucket([]byte(name))
			if q == nil {
				return fmt.Errorf("ship %s: queue %q missing for item %d", s.ID, name, s.Item)
			}
			if it := decodeItem(u64(s.Item), q.Get(u64(s.Item))); it == nil || string(it.Data) != s.ID {
				return fmt.Errorf("ship %s: item %d of %q is %+v", s.ID, s.Item, name, it)
			}
		}
		// A ship holds its node's resources and ports from its placement
		// until it ends; a lost one until it is released (its node may
		// still run it).
		if s.State != ShipQueued && s.Node != "" && (!s.Ended() || (s.State == ShipLostState && !s.Released)) {
			h := holds[s.Node]
			if h == nil {
				h = &held{}
				holds[s.Node] = h
			}
			h.res.CPUMHz += s.Resources.CPUMHz
			h.res.MemoryMB += s.Resources.MemoryMB
			h.ships++
			for _, p := range s.Ports {
				if slices.Contains(h.ports, p) {
					return fmt.Errorf("port %d of node %s held by two ships (one is %s)", p, s.Node, s.ID)
				}
				h.ports = append(h.ports, p)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	fleetIdx, nodeIdx := 0, 0
	if err := tx.Bucket(bFleetShips).ForEach(func(k, _ []byte) error {
		fleetIdx++
		owner, id, ok := bytes.Cut(k, []byte{0})
		if s := ships[string(id)]; !ok || s == nil || s.Fleet != string(owner) {
			return fmt.Errorf("dangling fleet index entry %q", k)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := tx.Bucket(bNodeShips).ForEach(func(k, _ []byte) error {
		nodeIdx++
		owner, id, ok := bytes.Cut(k, []byte{0})
		if s := ships[string(id)]; !ok || s == nil || s.Node != string(owner) {
			return fmt.Errorf("dangling node index entry %q", k)
		}
		return nil
	}); err != nil {
		return err
	}
	withNode := 0
	for _, s := range ships {
		if s.Node != "" {
			withNode++
		}
	}
	if fleetIdx != len(ships) || nodeIdx != withNode {
		return fmt.Errorf("%d fleet index and %d node index entries for %d ships (%d with a node)", fleetIdx, nodeIdx, len(ships), withNode)
	}

	// Queue items of the ships' queues.
	qs := tx.Bucket(bQueues)
	perShip := map[string]int{}
	if q := qs.Bucket([]byte(SchedulerQueue)); q != nil {
		if err := q.ForEach(func(k, v []byte) error {
			it := decodeItem(k, v)
			s := ships[string(it.Data)]
			if s == nil || s.State != ShipQueued || s.Item != it.ID {
				return fmt.Errorf("scheduler queue item %d points to %q, which is %+v", it.ID, it.Data, s)
			}
			perShip[s.ID]++
			return nil
		}); err != nil {
			return err
		}
	}
	for _, s := range ships {
		if s.State == ShipQueued && perShip[s.ID] != 1 {
			return fmt.Errorf("queued ship %s has %d scheduler queue items", s.ID, perShip[s.ID])
		}
	}
	if err := qs.ForEachBucket(func(name []byte) error {
		node, ok := strings.CutPrefix(string(name), "/armada/worker/")
		if !ok {
			return nil
		}
		node, ok = strings.CutSuffix(node, "/queue")
		if !ok {
			return nil
		}
		return qs.Bucket(name).ForEach(func(k, v []byte) error {
			it := decodeItem(k, v)
			s := ships[string(it.Data)]
			if s == nil || s.Node != node || s.Item != it.ID || s.State == ShipQueued || s.Ended() {
				return fmt.Errorf("worker queue %q item %d points to %q, which is %+v", name, it.ID, it.Data, s)
			}
			return nil
		})
	}); err != nil {
		return err
	}

	// Node allocation.
	if err := tx.Bucket(bNodes).ForEach(func(k, v []byte) error {
		var n Node
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("bad node %q: %v", k, err)
		}
		h := holds[n.Name]
		if h == nil {
			h = &held{}
		}
		delete(holds, n.Name)
		slices.Sort(h.ports)
		if n.Allocated != h.res || n.Ships != h.ships || !slices.Equal(n.UsedPorts, h.ports) {
			return fmt.Errorf("node %s: allocated %+v, %d ships, used ports %v; its ships hold %+v, %d ships, ports %v",
				n.Name, n.Allocated, n.Ships, n.UsedPorts, h.res, h.ships, h.ports)
		}
		if !slices.IsSorted(n.HostPorts) || len(slices.Compact(slices.Clone(n.HostPorts))) != len(n.HostPorts) {
			return fmt.Errorf("node %s: host ports %v not sorted and unique", n.Name, n.HostPorts)
		}
		if n.PortsRange != "" {
			if _, _, err := ParsePortsRange(n.PortsRange); err != nil {
				return fmt.Errorf("node %s: %v", n.Name, err)
			}
		}
		return nil
	}); err != nil {
		return err
	}

	return tx.Bucket(bFleets).ForEach(func(k, v []byte) error {
		var f Fleet
		if err := json.Unmarshal(v, &f); err != nil || f.Name != string(k) || f.Generation == 0 {
			return fmt.Errorf("bad fleet %q: %s", k, v)
		}
		check := f
		check.Versions = slices.Clone(f.Versions)
		if e := ValidateFleet(&check); e != nil {
			return fmt.Errorf("stored fleet %s is invalid: %v", f.Name, e)
		}
		for _, ver := range f.Versions {
			if ver.Version <= 0 || ver.Weight <= 0 && len(f.Versions) == 1 {
				return fmt.Errorf("fleet %s has unresolved version %+v", f.Name, ver)
			}
		}
		return nil
	})
}
