package fsm

import "errors"

// MaxBatch is the most commands one Batch may carry.
const MaxBatch = 1024

// Batch carries commands that concurrent clients submitted together, so
// that they cost one log entry, one replication message and one decode
// instead of one each. They apply in order within the entry; each succeeds
// or fails on its own, exactly as it would alone, and all share the entry's
// index. Each takes IDs and a key-space revision of its own (txn.revision).
type Batch struct{ Cmds []Command }

func (*Batch) Type() CmdType { return CmdBatch }

func (c *Batch) stamp(now int64) {
	for _, sub := range c.Cmds {
		if s, ok := sub.(stamper); ok {
			s.stamp(now)
		}
	}
}

func (c *Batch) encode(e *encoder) {
	e.uvarint(uint64(len(c.Cmds)))
	for _, sub := range c.Cmds {
		e.bytes(Encode(sub))
	}
}

// EncodeBatch builds a Batch entry from commands already encoded with
// Encode, without decoding them again.
func EncodeBatch(entries [][]byte) []byte {
	n := 1 + binaryLen(uint64(len(entries)))
	for _, en := range entries {
		n += binaryLen(uint64(len(en))) + len(en)
	}
	e := encoder{b: make([]byte, 1, n)}
	e.b[0] = byte(CmdBatch)
	e.uvarint(uint64(len(entries)))
	for _, en := range entries {
		e.bytes(en)
	}
	return e.b
}

// binaryLen is the length of v as a uvarint.
func binaryLen(v uint64) int {
	l := 1
	for ; v >= 0x80; v >>= 7 {
		l++
	}
	return l
}

func (c *Batch) decode(d *decoder) {
	n := d.length()
	if d.err != nil {
		return
	}
	if n > MaxBatch {
		d.fail(errors.New("batch too large"))
		return
	}
	c.Cmds = make([]Command, 0, n)
	for range n {
		sub := d.command(CmdBatch)
		if d.err != nil {
			return
		}
		c.Cmds = append(c.Cmds, sub)
	}
}

func (c *Batch) apply(t *txn) *Result {
	out := make([]*Result, len(c.Cmds))
	for i, sub := range c.Cmds {
		t.startCommand()
		r := sub.apply(t)
		t.flushNodes()
		r.Index, r.Rev = t.index, t.current()
		out[i] = r
		if i < len(c.Cmds)-1 {
			t.checkpoint()
		}
	}
	return &Result{Batch: out}
}
