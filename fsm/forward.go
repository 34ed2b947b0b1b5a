package fsm

// Forwarded is a command that a follower forwarded to the leader, tagged
// with its sender: Origin is a random number the sending node picked when
// it started, and Seq numbers that node's forwarded commands. It applies
// exactly as Cmd does, and its result carries the tag. Every node applies
// every entry, so the sender learns the result from its own apply and the
// leader sends no answer back (etcd matches its proposals to their results
// the same way, by request id).
type Forwarded struct {
	Origin, Seq uint64
	Cmd         Command
}

func (*Forwarded) Type() CmdType { return CmdForwarded }

func (c *Forwarded) stamp(now int64) {
	if s, ok := c.Cmd.(stamper); ok {
		s.stamp(now)
	}
}

func (c *Forwarded) encode(e *encoder) {
	e.uvarint(c.Origin)
	e.uvarint(c.Seq)
	if c.Cmd == nil {
		e.bytes(nil) // decodes as an error: a Forwarded must hold a command
		return
	}
	e.bytes(Encode(c.Cmd))
}

// EncodeForwarded tags a command already encoded with Encode, without
// decoding it again.
func EncodeForwarded(origin, seq uint64, entry []byte) []byte {
	e := encoder{b: make([]byte, 1, 1+binaryLen(origin)+binaryLen(seq)+binaryLen(uint64(len(entry)))+len(entry))}
	e.b[0] = byte(CmdForwarded)
	e.uvarint(origin)
	e.uvarint(seq)
	e.bytes(entry)
	return e.b
}

func (c *Forwarded) decode(d *decoder) {
	c.Origin = d.uvarint()
	c.Seq = d.uvarint()
	c.Cmd = d.command(CmdBatch, CmdForwarded)
}

func (c *Forwarded) apply(t *txn) *Result {
	r := c.Cmd.apply(t)
	r.Origin, r.Seq = c.Origin, c.Seq
	return r
}
