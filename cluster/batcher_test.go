package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// A command that is itself a Batch (the leader records a node with its
// ports that way) goes into a log entry alone: a Batch may not hold a
// Batch, and such an entry would fail to decode on every node, failing
// the commands grouped with it.
func TestGrouperNeverNestsBatches(t *testing.T) {
	var mu sync.Mutex
	var entries [][]byte
	release := make(chan struct{})
	g := newGrouper(1, func(entry []byte, group []*pendingApply) {
		mu.Lock()
		first := len(entries) == 0
		entries = append(entries, entry)
		mu.Unlock()
		if first {
			<-release
		}
		c, err := fsm.Decode(entry)
		if err != nil {
			answerGroup(group, nil, err)
			return
		}
		res := &fsm.Result{Index: 1}
		if b, ok := c.(*fsm.Batch); ok && len(group) > 1 {
			for range b.Cmds {
				res.Batch = append(res.Batch, &fsm.Result{Index: 1})
			}
		}
		answerGroup(group, res, nil)
	})
	stop := make(chan struct{})
	defer close(stop)
	go g.run(stop)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put := func(k string) []byte { return fsm.Encode(&fsm.KVPut{Key: k, Value: []byte("v")}) }
	nodeBatch := fsm.Encode(&fsm.Batch{Cmds: []fsm.Command{
		&fsm.NodeUpsert{Node: fsm.Node{Name: "w1", Status: fsm.NodeAlive}},
		&fsm.NodeReport{Name: "w1", PortsRange: "20000-20010"},
	}})
	// The first command holds the only slot, so the rest queue up and
	// would all be grouped together.
	var pend []*pendingApply
	pend = append(pend, g.enqueue(ctx, put("a")))
	waitFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(entries) == 0 {
			return context.DeadlineExceeded
		}
		return nil
	})
	for _, e := range [][]byte{put("b"), nodeBatch, put("c"), put("d")} {
		pend = append(pend, g.enqueue(ctx, e))
	}
	close(release)
	for i, p := range pend {
		if _, err := p.wait(ctx); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range entries {
		if _, err := fsm.Decode(e); err != nil {
			t.Fatalf("an entry does not decode: %v", err)
		}
	}
	if len(entries) != 4 { // a; b; the node batch; c and d
		t.Fatalf("%d entries, want 4", len(entries))
	}
}
