package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
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
		if err := kvs.ForEach(func(k, v []byte) error {
			kv := decodeKV(string(k), v)
			if kv == nil || kv.Version == 0 || kv.CreateRev > kv.ModRev || kv.ModRev > s.Index() {
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
