package fsm

import (
	"encoding/json"
	"maps"
	"slices"
)

// Ships are the records read most: every allocation, placement and report
// reads and writes one on every node, and the scheduler and each worker
// read the ones that changed. They are stored in the log's compact binary
// encoding rather than JSON, behind a version byte; a record that starts
// with '{' is JSON from before, and is still read.
const shipRecordV1 = 1

func encodeShip(s *Ship) []byte {
	e := encoder{b: make([]byte, 0, 128)}
	e.b = append(e.b, shipRecordV1)
	e.str(s.ID)
	e.str(s.Fleet)
	e.str(s.Blueprint)
	e.varint(int64(s.Version))
	e.str(s.Node)
	e.str(s.State)
	e.str(s.Desired)
	e.uvarint(uint64(len(s.Ports)))
	for _, name := range slices.Sorted(maps.Keys(s.Ports)) {
		e.str(name)
		e.varint(int64(s.Ports[name]))
	}
	e.str(s.Address)
	e.strmap(s.Labels)
	e.varint(s.Resources.CPUMHz)
	e.varint(s.Resources.MemoryMB)
	e.str(s.Reason)
	e.varint(s.Created)
	e.varint(s.Updated)
	e.uvarint(s.Item)
	e.varint(s.ReservedUntil)
	e.bool(s.Released)
	e.bool(s.Usage != nil)
	if s.Usage != nil {
		e.varint(s.Usage.CPUMHz)
		e.varint(s.Usage.MemoryMB)
		e.varint(s.Usage.At)
	}
	return e.b
}

func decodeShip(data []byte) (*Ship, bool) {
	if len(data) == 0 {
		return nil, false
	}
	if data[0] == '{' {
		var s Ship
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, false
		}
		return &s, true
	}
	if data[0] != shipRecordV1 {
		return nil, false
	}
	d := decoder{b: data[1:]}
	s := &Ship{ID: d.str(), Fleet: d.str(), Blueprint: d.str(), Version: int(d.varint()), Node: d.str(), State: d.str(), Desired: d.str()}
	if n := d.length(); n > 0 {
		s.Ports = make(map[string]int, n)
		for range n {
			name := d.str()
			s.Ports[name] = int(d.varint())
		}
	}
	s.Address = d.str()
	s.Labels = d.strmap()
	s.Resources = Resources{CPUMHz: d.varint(), MemoryMB: d.varint()}
	s.Reason = d.str()
	s.Created, s.Updated = d.varint(), d.varint()
	s.Item = d.uvarint()
	s.ReservedUntil = d.varint()
	s.Released = d.bool()
	if d.bool() {
		s.Usage = &Usage{CPUMHz: d.varint(), MemoryMB: d.varint(), At: d.varint()}
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, false
	}
	return s, true
}

func (t *txn) putShipRecord(s *Ship) { t.put(bShips, []byte(s.ID), encodeShip(s)) }

func getShip(b interface{ Get([]byte) []byte }, id []byte) (*Ship, bool) {
	return decodeShip(b.Get(id))
}
