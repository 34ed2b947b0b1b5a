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
