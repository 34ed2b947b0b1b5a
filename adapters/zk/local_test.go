package zk

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/armada-orchestrator/armada/fsm"
)

// TestQueueView reads the scheduler queue through ZooKeeper: items are
// children with their data, a child watch fires when the queue changes,
// and writes are refused with NOAUTH.
func TestQueueView(t *testing.T) {
	nodes := startCluster(t)
	c, _ := connect(t, addrs(nodes), 10*time.Second)
	kids, _, watch, err := c.ChildrenW(fsm.SchedulerQueue)
	if err != nil {
		t.Fatal(err)
	}
	workers, _, err := c.Children("/armada/worker")
	if err != nil || strings.Join(workers, ",") != "n1,n2,n3" {
		t.Fatalf("/armada/worker: %v %v", workers, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := nodes[0].node.Apply(ctx, &fsm.QueuePush{Queue: fsm.SchedulerQueue, Data: []byte("ship-x")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-watch:
		if e.Type != gozk.EventNodeChildrenChanged || e.Path != fsm.SchedulerQueue {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no child event for the queue")
	}
	item := fmt.Sprintf("%010d", r.Item.ID)
	after, _, err := c.Children(fsm.SchedulerQueue)
	if err != nil || len(after) != len(kids)+1 || !contains(after, item) {
		t.Fatalf("queue children %v -> %v (%v), want %s added", kids, after, err, item)
	}
	data, st, err := c.Get(fsm.SchedulerQueue + "/" + item)
	if err != nil || string(data) != "ship-x" || st.Czxid != int64(r.Item.ID) {
		t.Fatalf("item: %q %+v %v", data, st, err)
	}
	if _, err := c.Set(fsm.SchedulerQueue+"/"+item, []byte("no"), -1); err != gozk.ErrNoAuth {
		t.Fatalf("set on the queue view: %v", err)
	}
	if _, err := c.Create(fsm.SchedulerQueue+"/new", nil, 0, gozk.WorldACL(gozk.PermAll)); err != gozk.ErrNoAuth {
		t.Fatalf("create in the queue view: %v", err)
	}
}
