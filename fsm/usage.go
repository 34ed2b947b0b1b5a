package fsm

// Usage is what a ship or a node uses, as its worker measured it: CPU in
// MHz (cores busy × one core's clock, averaged over the last period) and
// memory in MB, comparable with Resources.
type Usage struct {
	CPUMHz   int64 `json:"cpu_mhz"`
	MemoryMB int64 `json:"memory_mb"`
	// At is when the leader logged the report, in Unix milliseconds.
	At int64 `json:"at"`
}

// ShipUsage is one ship's figures in a UsageReport.
type ShipUsage struct {
	Ship     string
	CPUMHz   int64
	MemoryMB int64
}

// UsageReport is a worker's periodic report of what its node and its
// running ships use. Ships that are not on the node, or have ended, are
// skipped.
type UsageReport struct {
	Node     string
	CPUMHz   int64
	MemoryMB int64
	Ships    []ShipUsage
	Now      int64
}

func (*UsageReport) Type() CmdType     { return CmdUsageReport }
func (c *UsageReport) stamp(now int64) { c.Now = now }
func (c *UsageReport) encode(e *encoder) {
	e.str(c.Node)
	e.varint(c.CPUMHz)
	e.varint(c.MemoryMB)
	e.uvarint(uint64(len(c.Ships)))
	for _, s := range c.Ships {
		e.str(s.Ship)
		e.varint(s.CPUMHz)
		e.varint(s.MemoryMB)
	}
	e.varint(c.Now)
}
func (c *UsageReport) decode(d *decoder) {
	c.Node, c.CPUMHz, c.MemoryMB = d.str(), d.varint(), d.varint()
	if n := d.length(); n > 0 {
		c.Ships = make([]ShipUsage, n)
		for i := range c.Ships {
			c.Ships[i] = ShipUsage{Ship: d.str(), CPUMHz: d.varint(), MemoryMB: d.varint()}
		}
	}
	c.Now = d.varint()
}

func (c *UsageReport) apply(t *txn) *Result {
	n, ok := t.node(c.Node)
	if !ok {
		return fail(errf(ErrNotFound, "node", "node %q not found", c.Node))
	}
	if c.CPUMHz < 0 || c.MemoryMB < 0 {
		return fail(errf(ErrInvalid, "usage", "usage cannot be negative"))
	}
	for i, s := range c.Ships {
		if s.CPUMHz < 0 || s.MemoryMB < 0 {
			return fail(errf(ErrInvalid, "ships", "ships[%d]: usage cannot be negative", i))
		}
	}
	n.Usage = &Usage{CPUMHz: c.CPUMHz, MemoryMB: c.MemoryMB, At: c.Now}
	t.putJSON(bNodes, []byte(n.Name), n)
	t.changed("node", n.Name, "put")
	res := &Result{Node: n}
	for _, su := range c.Ships {
		s, ok := t.ship(su.Ship)
		if !ok || s.Node != c.Node || s.Ended() {
			continue
		}
		// Not putShip: a measurement is not a change of the ship's state,
		// so Updated stays.
		s.Usage = &Usage{CPUMHz: su.CPUMHz, MemoryMB: su.MemoryMB, At: c.Now}
		t.putShipRecord(s)
		t.changed("ship", s.ID, "put")
		res.Count++
	}
	return res
}
