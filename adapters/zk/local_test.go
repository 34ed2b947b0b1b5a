package zk

import (
	"context"
	"fmt"
	"net"
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

// TestFourLetterWords answers ruok and srvr like ZooKeeper.
func TestFourLetterWords(t *testing.T) {
	nodes := startCluster(t)
	ask := func(addr, w string) string {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(w))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var b strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				return b.String()
			}
		}
	}
	if got := ask(nodes[0].zk.Addr(), "ruok"); got != "imok" {
		t.Fatalf("ruok: %q", got)
	}
	modes := ""
	for _, n := range nodes {
		out := ask(n.zk.Addr(), "srvr")
		_, mode, _ := strings.Cut(out, "Mode: ")
		modes += strings.TrimSpace(strings.Split(mode, "\n")[0]) + " "
	}
	if strings.Count(modes, "leader") != 1 || strings.Count(modes, "follower") != 2 {
		t.Fatalf("modes: %s", modes)
	}
}
