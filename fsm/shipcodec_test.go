package fsm

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestShipRecordRoundTrip: every field of a ship survives its record, and
// a record written as JSON by an earlier version reads the same. The test
// ship sets every field, so a field added to Ship without the codec fails.
func TestShipRecordRoundTrip(t *testing.T) {
	s := &Ship{
		ID: "arena-1", Fleet: "arena", Blueprint: "arena", Version: 3, Node: "n1", State: ShipAllocated, Desired: DesireRun,
		Ports: map[string]int{"game": 20001, "query": 20002}, Address: "10.0.0.1",
		Labels: map[string]string{"map": "dust", "mode": "ffa"}, Resources: Resources{CPUMHz: 500, MemoryMB: 256},
		Reason: "why not", Created: 1700000000000, Updated: 1700000000123, Item: 42, ReservedUntil: -5, Released: true,
		Usage: &Usage{CPUMHz: 12, MemoryMB: 34, At: 1700000000999},
	}
	v := reflect.ValueOf(*s)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("the test ship leaves %s unset", v.Type().Field(i).Name)
		}
	}
	rec := encodeShip(s)
	got, ok := decodeShip(rec)
	if !ok || !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	if again := encodeShip(got); string(again) != string(rec) {
		t.Fatal("a ship encodes to different bytes the second time")
	}
	old, _ := json.Marshal(s)
	if got, ok := decodeShip(old); !ok || !reflect.DeepEqual(got, s) {
		t.Fatalf("JSON record: %+v", got)
	}
	// A bare ship: nil maps and no usage stay so.
	bare := &Ship{ID: "x", State: ShipQueued, Desired: DesireRun}
	if got, ok := decodeShip(encodeShip(bare)); !ok || !reflect.DeepEqual(got, bare) {
		t.Fatalf("bare ship: %+v", got)
	}
	for _, bad := range [][]byte{nil, {}, {9}, rec[:len(rec)-1], append(append([]byte(nil), rec...), 0)} {
		if _, ok := decodeShip(bad); ok {
			t.Fatalf("record %x decoded", bad)
		}
	}
}
