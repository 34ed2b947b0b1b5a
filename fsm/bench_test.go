package fsm

import (
	"strconv"
	"testing"
)

func benchPut(i int) []byte {
	return Encode(&KVPut{Key: "bench/" + strconv.Itoa(i%4096), Value: []byte("value-0123456789abcdef"), Now: int64(i)})
}

// BenchmarkApplyKVPut applies one put per ApplyBatch (one BoltDB
// transaction each).
func BenchmarkApplyKVPut(b *testing.B) {
	s := openState(b)
	entries := make([][]byte, 8192)
	for i := range entries {
		entries[i] = benchPut(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := s.Apply(uint64(i+1), entries[i%len(entries)]); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

// BenchmarkApplyBatch64 applies 64 puts per ApplyBatch; one op is one
// batch.
func BenchmarkApplyBatch64(b *testing.B) {
	s := openState(b)
	entries := make([][]byte, 8192)
	for i := range entries {
		entries[i] = benchPut(i)
	}
	batch := make([]Entry, 64)
	idx := uint64(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range batch {
			idx++
			batch[j] = Entry{Index: idx, Data: entries[idx%uint64(len(entries))]}
		}
		for _, r := range s.ApplyBatch(batch) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/entry")
}

// BenchmarkShipAllocate applies ShipAllocate entries of 16 requests
// against a fleet of 4,000 ships, 2,000 of them ready, on 3 nodes: the
// cost of one batched allocation entry on every node. A fresh state every
// 100 entries keeps ready ships to allocate (not timed).
func BenchmarkShipAllocate(b *testing.B) {
	reqs := make([]AllocRequest, 16)
	for i := range reqs {
		reqs[i] = AllocRequest{Fleet: "game"}
	}
	var h *harness
	for i := 0; i < b.N; i++ {
		if i%100 == 0 {
			b.StopTimer()
			h = allocBenchState(b)
			b.StartTimer()
		}
		if r := h.apply(allocCmd(reqs...)); r.Count != len(reqs) {
			b.Fatalf("allocated %d of %d", r.Count, len(reqs))
		}
	}
}

func allocBenchState(b *testing.B) *harness {
	h := newHarness(b)
	readyGameFleet(h, 4000)
	half := make([]AllocRequest, 1000)
	for i := range half {
		half[i] = AllocRequest{Fleet: "game"}
	}
	h.ok(allocCmd(half...))
	h.ok(allocCmd(half...))
	return h
}
