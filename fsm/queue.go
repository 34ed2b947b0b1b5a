package fsm

import (
	"go.etcd.io/bbolt"
)

// Queues are FIFO lists of items in the replicated state, shaped after the
// seed Armada's ZooKeeper head/commit queues: a consumer claims the head,
// does its work, and acks. A consumer that crashes never acks, its claim
// lapses, and the item is handed out again, so nothing is lost.

func checkQueue(name string) *Error {
	if name == "" || len(name) > 256 {
		return errf(ErrInvalid, "queue", "queue name must be 1..256 bytes")
	}
	return nil
}

func (t *txn) queue(name string, create bool) *bbolt.Bucket {
	qs := t.b(bQueues)
	if b := qs.Bucket([]byte(name)); b != nil || !create {
		return b
	}
	b, err := qs.CreateBucket([]byte(name))
	if err != nil {
		panic(err)
	}
	return b
}

func (c *QueuePush) apply(t *txn) *Result {
	if e := checkQueue(c.Queue); e != nil {
		return fail(e)
	}
	if len(c.Data) > MaxValueLen {
		return fail(errf(ErrInvalid, "data", "item is %d bytes; the limit is %d", len(c.Data), MaxValueLen))
	}
	it := &QueueItem{ID: t.newID(), Data: c.Data, Enqueued: c.Now}
	t.putItem(t.queue(c.Queue, true), it)
	t.changed("queue", c.Queue, "put")
	return &Result{Item: it}
}

func (t *txn) putItem(q *bbolt.Bucket, it *QueueItem) {
	e := encoder{}
	e.bytes(it.Data)
	e.varint(it.Enqueued)
	e.str(it.Claimer)
	e.varint(it.ClaimExpiry)
	e.uvarint(uint64(it.Attempts))
	if err := q.Put(u64(it.ID), e.b); err != nil {
		panic(err)
	}
}

func decodeItem(k, v []byte) *QueueItem {
	d := decoder{b: v}
	it := &QueueItem{ID: getU64(k), Data: d.bytes(), Enqueued: d.varint(), Claimer: d.str(), ClaimExpiry: d.varint(), Attempts: int(d.uvarint())}
	if d.err != nil {
		return nil
	}
	return it
}

func (c *QueueClaim) apply(t *txn) *Result {
	if e := checkQueue(c.Queue); e != nil {
		return fail(e)
	}
	if c.Consumer == "" {
		return fail(errf(ErrInvalid, "consumer", "consumer is empty"))
	}
	if c.VisibilityMs <= 0 {
		return fail(errf(ErrInvalid, "visibility", "visibility must be positive"))
	}
	q := t.queue(c.Queue, false)
	if q == nil {
		return fail(errf(ErrNotFound, "queue", "queue %q is empty", c.Queue))
	}
	cur := q.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		it := decodeItem(k, v)
		if it == nil || (it.Claimer != "" && it.ClaimExpiry > c.Now) {
			continue
		}
		it.Claimer, it.ClaimExpiry = c.Consumer, expiryAt(c.Now, c.VisibilityMs)
		it.Attempts++
		t.putItem(q, it)
		t.changed("queue", c.Queue, "put")
		return &Result{Item: it}
	}
	return fail(errf(ErrNotFound, "queue", "queue %q has no unclaimed item", c.Queue))
}

// claimed finds an item claimed by consumer.
func (t *txn) claimed(queue string, id uint64, consumer string) (*bbolt.Bucket, *QueueItem, *Error) {
	q := t.queue(queue, false)
	if q == nil {
		return nil, nil, errf(ErrNotFound, "queue", "queue %q not found", queue)
	}
	v := q.Get(u64(id))
	if v == nil {
		return nil, nil, errf(ErrNotFound, "id", "item %d not in queue %q", id, queue)
	}
	it := decodeItem(u64(id), v)
	// An unclaimed item has no claimer to match: an ack or release with an
	// empty consumer must not delete or touch it.
	if it == nil || it.Claimer == "" || it.Claimer != consumer {
		return nil, nil, errf(ErrConflict, "consumer", "item %d is not claimed by %q", id, consumer)
	}
	return q, it, nil
}

func (c *QueueAck) apply(t *txn) *Result {
	q, it, e := t.claimed(c.Queue, c.ID, c.Consumer)
	if e != nil {
		return fail(e)
	}
	if err := q.Delete(u64(c.ID)); err != nil {
		panic(err)
	}
	t.changed("queue", c.Queue, "delete")
	return &Result{Item: it, Deleted: 1}
}

func (c *QueueRelease) apply(t *txn) *Result {
	q, it, e := t.claimed(c.Queue, c.ID, c.Consumer)
	if e != nil {
		return fail(e)
	}
	it.Claimer, it.ClaimExpiry = "", 0
	t.putItem(q, it)
	t.changed("queue", c.Queue, "put")
	return &Result{Item: it}
}
