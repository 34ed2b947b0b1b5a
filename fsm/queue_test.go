package fsm

import (
	"math"
	"strings"
	"testing"
)

func push(q, data string) *QueuePush { return &QueuePush{Queue: q, Data: []byte(data), Now: 1000} }

func claim(q, consumer string, now int64) *QueueClaim {
	return &QueueClaim{Queue: q, Consumer: consumer, VisibilityMs: 500, Now: now}
}

func queuePushCases() []cmdCase {
	return []cmdCase{
		{
			name:  "push",
			setup: []Command{put("x", "y")},
			cmd:   push("jobs", "payload"),
			check: func(t *testing.T, h *harness, r *Result) {
				want := &QueueItem{ID: 2, Data: []byte("payload"), Enqueued: 1000}
				requireEqual(t, "item", r.Item, want)
				requireEqual(t, "queue", h.queue("jobs"), []*QueueItem{want})
				h.view(func(v *View) { requireEqual(t, "queues", v.Queues(), []string{"jobs"}) })
				h.requireChanges(2, ch("queue", "jobs", "put"))
			},
		},
		{
			name:  "appends in order",
			setup: []Command{push("q", "a"), push("other", "z"), push("q", "b")},
			cmd:   push("q", "c"),
			check: func(t *testing.T, h *harness, r *Result) {
				var data []string
				var ids []uint64
				for _, it := range h.queue("q") {
					data = append(data, string(it.Data))
					ids = append(ids, it.ID)
				}
				requireEqual(t, "data", data, []string{"a", "b", "c"})
				requireEqual(t, "ids", ids, []uint64{1, 3, 4})
				h.view(func(v *View) { requireEqual(t, "queues", v.Queues(), []string{"other", "q"}) })
			},
		},
		{name: "empty queue name", cmd: push("", "x"), code: ErrInvalid, field: "queue"},
		{name: "queue name too long", cmd: push(strings.Repeat("q", 257), "x"), code: ErrInvalid, field: "queue"},
		{name: "longest queue name", cmd: push(strings.Repeat("q", 256), "x")},
		{
			name:  "item too large",
			setup: []Command{push("q", "a")},
			cmd:   &QueuePush{Queue: "q", Data: make([]byte, MaxValueLen+1)},
			code:  ErrInvalid, field: "data",
		},
	}
}

func queueClaimCases() []cmdCase {
	return []cmdCase{
		{
			name:  "claims the oldest item",
			setup: []Command{push("q", "a"), push("q", "b")},
			cmd:   claim("q", "c1", 1000),
			check: func(t *testing.T, h *harness, r *Result) {
				want := &QueueItem{ID: 1, Data: []byte("a"), Enqueued: 1000, Claimer: "c1", ClaimExpiry: 1500, Attempts: 1}
				requireEqual(t, "item", r.Item, want)
				requireEqual(t, "queue head", h.queue("q")[0], want)
				h.requireChanges(3, ch("queue", "q", "put"))
			},
		},
		{
			name:  "FIFO across claims",
			setup: []Command{push("q", "a"), push("q", "b"), push("q", "c"), claim("q", "c1", 1000), claim("q", "c2", 1000)},
			cmd:   claim("q", "c1", 1000),
			check: func(t *testing.T, h *harness, r *Result) {
				if string(r.Item.Data) != "c" {
					t.Fatalf("third claim got %q", r.Item.Data)
				}
				h.reject(claim("q", "c3", 1000), ErrNotFound, "queue")
			},
		},
		{
			name:  "claimed item is hidden until its claim expires",
			setup: []Command{push("q", "a"), claim("q", "c1", 1000)},
			cmd:   claim("q", "c2", 1499),
			code:  ErrNotFound, field: "queue",
		},
		{
			name:  "the claimer itself cannot claim its item again",
			setup: []Command{push("q", "a"), claim("q", "c1", 1000)},
			cmd:   claim("q", "c1", 1200),
			code:  ErrNotFound, field: "queue",
		},
		{
			name:  "lapsed claim is handed out again",
			setup: []Command{push("q", "a"), push("q", "b"), claim("q", "c1", 1000)},
			cmd:   claim("q", "c2", 1500),
			check: func(t *testing.T, h *harness, r *Result) {
				want := &QueueItem{ID: 1, Data: []byte("a"), Enqueued: 1000, Claimer: "c2", ClaimExpiry: 2000, Attempts: 2}
				requireEqual(t, "item", r.Item, want)
			},
		},
		{name: "missing queue", cmd: claim("q", "c1", 1000), code: ErrNotFound, field: "queue"},
		{
			name:  "drained queue",
			setup: []Command{push("q", "a"), claim("q", "c1", 1000), &QueueAck{Queue: "q", ID: 1, Consumer: "c1"}},
			cmd:   claim("q", "c1", 1000),
			code:  ErrNotFound, field: "queue",
		},
		{name: "empty queue name", setup: []Command{push("q", "a")}, cmd: claim("", "c1", 1000), code: ErrInvalid, field: "queue"},
		{name: "empty consumer", setup: []Command{push("q", "a")}, cmd: claim("q", "", 1000), code: ErrInvalid, field: "consumer"},
		{
			name:  "zero visibility",
			setup: []Command{push("q", "a")},
			cmd:   &QueueClaim{Queue: "q", Consumer: "c", VisibilityMs: 0, Now: 1000},
			code:  ErrInvalid, field: "visibility",
		},
		{
			name:  "negative visibility",
			setup: []Command{push("q", "a")},
			cmd:   &QueueClaim{Queue: "q", Consumer: "c", VisibilityMs: -1, Now: 1000},
			code:  ErrInvalid, field: "visibility",
		},
		{
			name:  "huge visibility does not overflow the claim expiry",
			setup: []Command{push("q", "a")},
			cmd:   &QueueClaim{Queue: "q", Consumer: "c1", VisibilityMs: math.MaxInt64, Now: 1000},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Item.ClaimExpiry <= 1000 {
					t.Fatalf("claim expiry %d", r.Item.ClaimExpiry)
				}
				h.reject(claim("q", "c2", 1<<50), ErrNotFound, "queue")
			},
		},
	}
}

func queueAckCases() []cmdCase {
	claimed := []Command{push("q", "a"), push("q", "b"), claim("q", "c1", 1000)}
	return []cmdCase{
		{
			name:  "ack by the claimer",
			setup: claimed,
			cmd:   &QueueAck{Queue: "q", ID: 1, Consumer: "c1"},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Deleted != 1 || r.Item == nil || r.Item.ID != 1 {
					t.Fatalf("result %s", jsonString(r))
				}
				q := h.queue("q")
				if len(q) != 1 || q[0].ID != 2 {
					t.Fatalf("queue %s", jsonString(q))
				}
				h.requireChanges(4, ch("queue", "q", "delete"))
			},
		},
		{
			name:  "last ack empties the queue listing",
			setup: []Command{push("q", "a"), claim("q", "c1", 1000)},
			cmd:   &QueueAck{Queue: "q", ID: 1, Consumer: "c1"},
			check: func(t *testing.T, h *harness, r *Result) {
				h.view(func(v *View) {
					if qs := v.Queues(); len(qs) != 0 {
						t.Fatalf("Queues() = %v", qs)
					}
					if q := v.Queue("q"); len(q) != 0 {
						t.Fatalf("Queue() = %v", q)
					}
				})
			},
		},
		{name: "ack by another consumer", setup: claimed, cmd: &QueueAck{Queue: "q", ID: 1, Consumer: "c2"}, code: ErrConflict, field: "consumer"},
		{name: "ack of an unclaimed item", setup: claimed, cmd: &QueueAck{Queue: "q", ID: 2, Consumer: "c1"}, code: ErrConflict, field: "consumer"},
		{
			// Nobody claimed item 2: an ack with no consumer must not be a
			// back door that deletes it.
			name:  "ack of an unclaimed item without a consumer",
			setup: claimed,
			cmd:   &QueueAck{Queue: "q", ID: 2},
			code:  ErrConflict, field: "consumer",
		},
		{name: "missing item", setup: claimed, cmd: &QueueAck{Queue: "q", ID: 99, Consumer: "c1"}, code: ErrNotFound, field: "id"},
		{name: "missing queue", setup: claimed, cmd: &QueueAck{Queue: "nope", ID: 1, Consumer: "c1"}, code: ErrNotFound, field: "queue"},
		{
			name:  "ack after the claim passed to another consumer",
			setup: append(append([]Command{}, claimed...), claim("q", "c2", 1500)),
			cmd:   &QueueAck{Queue: "q", ID: 1, Consumer: "c1"},
			code:  ErrConflict, field: "consumer",
		},
		{
			name:  "acked twice",
			setup: append(append([]Command{}, claimed...), &QueueAck{Queue: "q", ID: 1, Consumer: "c1"}),
			cmd:   &QueueAck{Queue: "q", ID: 1, Consumer: "c1"},
			code:  ErrNotFound, field: "id",
		},
	}
}

func queueReleaseCases() []cmdCase {
	claimed := []Command{push("q", "a"), push("q", "b"), claim("q", "c1", 1000)}
	return []cmdCase{
		{
			name:  "release makes the item claimable at once",
			setup: claimed,
			cmd:   &QueueRelease{Queue: "q", ID: 1, Consumer: "c1"},
			check: func(t *testing.T, h *harness, r *Result) {
				want := &QueueItem{ID: 1, Data: []byte("a"), Enqueued: 1000, Attempts: 1}
				requireEqual(t, "item", r.Item, want)
				requireEqual(t, "queue head", h.queue("q")[0], want)
				h.requireChanges(4, ch("queue", "q", "put"))
				r2 := h.ok(claim("q", "c2", 1001))
				if r2.Item.ID != 1 || r2.Item.Attempts != 2 || r2.Item.Claimer != "c2" {
					t.Fatalf("claim after release: %s", jsonString(r2.Item))
				}
			},
		},
		{name: "release by another consumer", setup: claimed, cmd: &QueueRelease{Queue: "q", ID: 1, Consumer: "c2"}, code: ErrConflict, field: "consumer"},
		{name: "release of an unclaimed item", setup: claimed, cmd: &QueueRelease{Queue: "q", ID: 2}, code: ErrConflict, field: "consumer"},
		{name: "missing item", setup: claimed, cmd: &QueueRelease{Queue: "q", ID: 7, Consumer: "c1"}, code: ErrNotFound, field: "id"},
		{name: "missing queue", cmd: &QueueRelease{Queue: "q", ID: 1, Consumer: "c1"}, code: ErrNotFound, field: "queue"},
	}
}

// TestQueueCrashedConsumerLosesNothing walks the at-least-once story end to
// end: a consumer claims and dies, its claim lapses, and another consumer
// gets the same item with the attempt counted; the dead consumer's late
// ack is refused and the item is acked exactly once.
func TestQueueCrashedConsumerLosesNothing(t *testing.T) {
	h := newHarness(t)
	for _, d := range []string{"j1", "j2", "j3"} {
		h.ok(push("jobs", d))
	}
	got := map[string][]string{}
	r := h.ok(claim("jobs", "dead", 1000))
	got["dead"] = append(got["dead"], string(r.Item.Data))
	// "dead" crashes. "live" works through the queue.
	now := int64(1100)
	for range 3 {
		r := h.apply(claim("jobs", "live", now))
		if r.Err != nil {
			break
		}
		got["live"] = append(got["live"], string(r.Item.Data))
		h.ok(&QueueAck{Queue: "jobs", ID: r.Item.ID, Consumer: "live"})
	}
	requireEqual(t, "before the claim lapses", got["live"], []string{"j2", "j3"})
	h.reject(claim("jobs", "live", 1499), ErrNotFound, "queue")

	r = h.ok(claim("jobs", "live", 1500))
	if string(r.Item.Data) != "j1" || r.Item.Attempts != 2 {
		t.Fatalf("redelivery: %s", jsonString(r.Item))
	}
	h.reject(&QueueAck{Queue: "jobs", ID: r.Item.ID, Consumer: "dead"}, ErrConflict, "consumer")
	h.ok(&QueueAck{Queue: "jobs", ID: r.Item.ID, Consumer: "live"})
	if q := h.queue("jobs"); len(q) != 0 {
		t.Fatalf("left %s", jsonString(q))
	}
}
