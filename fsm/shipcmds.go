package fsm

import (
	"encoding/json"
	"fmt"
)

// FleetPut creates or changes a fleet. Versions without a version number
// are pinned to their blueprint's latest version when applied.
type FleetPut struct {
	Spec Fleet
	Now  int64
}

func (*FleetPut) Type() CmdType     { return CmdFleetPut }
func (c *FleetPut) stamp(now int64) { c.Now = now }
func (c *FleetPut) encode(e *encoder) {
	spec, _ := json.Marshal(c.Spec) // a Fleet always marshals
	e.bytes(spec)
	e.varint(c.Now)
}
func (c *FleetPut) decode(d *decoder) {
	spec := d.bytes()
	c.Now = d.varint()
	if d.err == nil {
		if err := json.Unmarshal(spec, &c.Spec); err != nil {
			d.fail(fmt.Errorf("fleet spec: %w", err))
		}
	}
}

// FleetDelete removes a fleet and stops its ships.
type FleetDelete struct {
	Name string
	Now  int64
}

func (*FleetDelete) Type() CmdType       { return CmdFleetDelete }
func (c *FleetDelete) stamp(now int64)   { c.Now = now }
func (c *FleetDelete) encode(e *encoder) { e.str(c.Name); e.varint(c.Now) }
func (c *FleetDelete) decode(d *decoder) { c.Name, c.Now = d.str(), d.varint() }

// FleetScale sets a fleet's replicas.
type FleetScale struct {
	Name     string
	Replicas int
	Now      int64
}

func (*FleetScale) Type() CmdType     { return CmdFleetScale }
func (c *FleetScale) stamp(now int64) { c.Now = now }
func (c *FleetScale) encode(e *encoder) {
	e.str(c.Name)
	e.varint(int64(c.Replicas))
	e.varint(c.Now)
}
func (c *FleetScale) decode(d *decoder) {
	c.Name, c.Replicas, c.Now = d.str(), int(d.varint()), d.varint()
}

// ShipCreate creates queued ships. For a fleet it creates at most as many
// as the fleet is missing of that version, so two plans for the same
// shortfall (an old and a new leader) never double the fleet. Without a
// fleet it creates one ship of a blueprint (version 0: the latest).
type ShipCreate struct {
	Fleet     string
	Blueprint string
	Version   int
	Count     int
	Now       int64
}

func (*ShipCreate) Type() CmdType     { return CmdShipCreate }
func (c *ShipCreate) stamp(now int64) { c.Now = now }
func (c *ShipCreate) encode(e *encoder) {
	e.str(c.Fleet)
	e.str(c.Blueprint)
	e.varint(int64(c.Version))
	e.varint(int64(c.Count))
	e.varint(c.Now)
}
func (c *ShipCreate) decode(d *decoder) {
	c.Fleet, c.Blueprint, c.Version, c.Count, c.Now = d.str(), d.str(), int(d.varint()), int(d.varint()), d.varint()
}

// Place puts one queued ship on a node, with one host port per
// blueprint port, in the blueprint's order.
type Place struct {
	Ship  string
	Node  string
	Ports []int
}

// Pending gives a queued ship the reason it is still waiting.
type Pending struct {
	Ship   string
	Reason string
}

// ShipPlace commits the scheduler's placements: each is checked again
// (ship still queued, node alive and not draining, resources and ports
// free) and moves the ship from the scheduler queue to its node's queue.
type ShipPlace struct {
	Places  []Place
	Pending []Pending
	Now     int64
}

func (*ShipPlace) Type() CmdType     { return CmdShipPlace }
func (c *ShipPlace) stamp(now int64) { c.Now = now }
func (c *ShipPlace) encode(e *encoder) {
	e.uvarint(uint64(len(c.Places)))
	for _, p := range c.Places {
		e.str(p.Ship)
		e.str(p.Node)
		e.uvarint(uint64(len(p.Ports)))
		for _, port := range p.Ports {
			e.uvarint(uint64(port))
		}
	}
	e.uvarint(uint64(len(c.Pending)))
	for _, p := range c.Pending {
		e.str(p.Ship)
		e.str(p.Reason)
	}
	e.varint(c.Now)
}
func (c *ShipPlace) decode(d *decoder) {
	if n := d.length(); n > 0 {
		c.Places = make([]Place, n)
		for i := range c.Places {
			p := &c.Places[i]
			p.Ship, p.Node = d.str(), d.str()
			if k := d.length(); k > 0 {
				p.Ports = make([]int, k)
				for j := range p.Ports {
					p.Ports[j] = int(d.uvarint())
				}
			}
		}
	}
	if n := d.length(); n > 0 {
		c.Pending = make([]Pending, n)
		for i := range c.Pending {
			c.Pending[i] = Pending{Ship: d.str(), Reason: d.str()}
		}
	}
	c.Now = d.varint()
}

// Why a ship is stopped; each is checked differently when applied.
const (
	StopUser    = "user"    // an operator asked
	StopSurplus = "surplus" // the fleet has more ships of its version than it wants
	StopDrain   = "drain"   // its node drains and enough ready ships run elsewhere
)

// ShipStop asks ships to stop: queued ones stop at once, placed ones go to
// stopping and their worker reports them stopped.
type ShipStop struct {
	Ships  []string
	Why    string
	Reason string
	Now    int64
}

func (*ShipStop) Type() CmdType     { return CmdShipStop }
func (c *ShipStop) stamp(now int64) { c.Now = now }
func (c *ShipStop) encode(e *encoder) {
	e.strs(c.Ships)
	e.str(c.Why)
	e.str(c.Reason)
	e.varint(c.Now)
}
func (c *ShipStop) decode(d *decoder) {
	c.Ships, c.Why, c.Reason, c.Now = d.strs(), d.str(), d.str(), d.varint()
}

// Report is one ship's state as its worker sees it.
type Report struct {
	Ship   string
	State  string
	Reason string
}

// ShipReport carries a worker's view of the ships on its node. Reports
// for ships that are not on Node are ignored.
type ShipReport struct {
	Node    string
	Reports []Report
	Now     int64
}

func (*ShipReport) Type() CmdType     { return CmdShipReport }
func (c *ShipReport) stamp(now int64) { c.Now = now }
func (c *ShipReport) encode(e *encoder) {
	e.str(c.Node)
	e.uvarint(uint64(len(c.Reports)))
	for _, r := range c.Reports {
		e.str(r.Ship)
		e.str(r.State)
		e.str(r.Reason)
	}
	e.varint(c.Now)
}
func (c *ShipReport) decode(d *decoder) {
	c.Node = d.str()
	if n := d.length(); n > 0 {
		c.Reports = make([]Report, n)
		for i := range c.Reports {
			c.Reports[i] = Report{Ship: d.str(), State: d.str(), Reason: d.str()}
		}
	}
	c.Now = d.varint()
}

// ShipLost marks every live ship of a node that is not alive as lost.
// Only the leader issues it, after the node's grace period.
type ShipLost struct {
	Node   string
	Reason string
	Now    int64
}

func (*ShipLost) Type() CmdType       { return CmdShipLost }
func (c *ShipLost) stamp(now int64)   { c.Now = now }
func (c *ShipLost) encode(e *encoder) { e.str(c.Node); e.str(c.Reason); e.varint(c.Now) }
func (c *ShipLost) decode(d *decoder) { c.Node, c.Reason, c.Now = d.str(), d.str(), d.varint() }

// ShipPurge forgets ships that have ended (stopped, failed or lost).
type ShipPurge struct{ Ships []string }

func (*ShipPurge) Type() CmdType       { return CmdShipPurge }
func (c *ShipPurge) encode(e *encoder) { e.strs(c.Ships) }
func (c *ShipPurge) decode(d *decoder) { c.Ships = d.strs() }

// NodeDrain turns a node's drain on or off. A draining node gets no new
// ships and its ships move elsewhere.
type NodeDrain struct {
	Name   string
	Enable bool
	Now    int64
}

func (*NodeDrain) Type() CmdType       { return CmdNodeDrain }
func (c *NodeDrain) stamp(now int64)   { c.Now = now }
func (c *NodeDrain) encode(e *encoder) { e.str(c.Name); e.bool(c.Enable); e.varint(c.Now) }
func (c *NodeDrain) decode(d *decoder) { c.Name, c.Enable, c.Now = d.str(), d.bool(), d.varint() }

// NodeReport is a worker's report of its host: the range it gives ship
// ports from, and the ports in that range that something else listens on.
type NodeReport struct {
	Name       string
	PortsRange string
	HostPorts  []int
	Now        int64
}

func (*NodeReport) Type() CmdType     { return CmdNodeReport }
func (c *NodeReport) stamp(now int64) { c.Now = now }
func (c *NodeReport) encode(e *encoder) {
	e.str(c.Name)
	e.str(c.PortsRange)
	e.uvarint(uint64(len(c.HostPorts)))
	for _, p := range c.HostPorts {
		e.uvarint(uint64(p))
	}
	e.varint(c.Now)
}
func (c *NodeReport) decode(d *decoder) {
	c.Name, c.PortsRange = d.str(), d.str()
	if n := d.length(); n > 0 {
		c.HostPorts = make([]int, n)
		for i := range c.HostPorts {
			c.HostPorts[i] = int(d.uvarint())
		}
	}
	c.Now = d.varint()
}
