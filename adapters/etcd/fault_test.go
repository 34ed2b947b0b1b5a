package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestLeaseSurvivesTheLossOfItsNodeAndExpiresWhenKeepAlivesStop: an etcd
// client holds a lease with a key and keeps it alive through the leader's
// adapter; the leader dies. The client's keep-alives go on through another
// endpoint, and the lease and key live on for several TTLs; once the
// keep-alives stop, they are gone after about the TTL.
func TestLeaseSurvivesTheLossOfItsNodeAndExpiresWhenKeepAlivesStop(t *testing.T) {
	nodes := startCluster(t)
	var leader *testNode
	var others []*testNode
	for _, n := range nodes {
		if n.node.IsLeader() && leader == nil {
			leader = n
		} else {
			others = append(others, n)
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	// The client starts on the leader only, so its keep-alive stream is
	// on the node that dies; the other endpoints are added afterwards.
	cli := newClient(t, leader.etcd.Addr())
	ctx := context.Background()
	const ttl = 4
	grant, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "held", "v", clientv3.WithLease(grant.ID)); err != nil {
		t.Fatal(err)
	}
	kaCtx, stopKA := context.WithCancel(ctx)
	defer stopKA()
	ka, err := cli.KeepAlive(kaCtx, grant.ID)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var last time.Time
	answers := 0
	kaDone := make(chan struct{})
	go func() {
		defer close(kaDone)
		for r := range ka {
			if r != nil && r.TTL > 0 {
				mu.Lock()
				last = time.Now()
				answers++
				mu.Unlock()
			}
		}
	}()
	waitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if answers == 0 {
			return errors.New("no keep-alive answered yet")
		}
		return nil
	})
	cli.SetEndpoints(leader.etcd.Addr(), others[0].etcd.Addr(), others[1].etcd.Addr())

	leader.stop()
	killed := time.Now()
	mu.Lock()
	before := answers
	mu.Unlock()

	// For three TTLs the key is there on every survivor, every time it is
	// looked at.
	watchers := []*clientv3.Client{newClient(t, others[0].etcd.Addr()), newClient(t, others[1].etcd.Addr())}
	for time.Since(killed) < 3*ttl*time.Second {
		for i, w := range watchers {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			r, err := w.Get(rctx, "held", clientv3.WithSerializable())
			cancel()
			if err != nil {
				continue // a survivor may be busy electing: look again
			}
			if len(r.Kvs) != 1 || r.Kvs[0].Lease != int64(grant.ID) {
				t.Fatalf("%.1fs after the leader died, %s has %v: the lease ended while kept alive",
					time.Since(killed).Seconds(), others[i].name, r.Kvs)
			}
		}
		time.Sleep(100 * time.Millisecond) // the sampling period of the check, not a wait for a result
	}
	mu.Lock()
	after := answers - before
	mu.Unlock()
	if after < 3 {
		t.Fatalf("%d keep-alives answered in the %ds after the leader died", after, 3*ttl)
	}
	ttlResp, err := watchers[0].TimeToLive(ctx, grant.ID)
	if err != nil || ttlResp.TTL <= 0 {
		t.Fatalf("TimeToLive on a survivor: %+v, %v", ttlResp, err)
	}

	// The keep-alives stop: the lease and its key go within about a TTL of
	// the last one.
	stopKA()
	<-kaDone
	mu.Lock()
	lastKA := last
	mu.Unlock()
	waitFor(t, (ttl+10)*time.Second, func() error {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		r, err := watchers[0].Get(rctx, "held")
		if err != nil {
			return err
		}
		if len(r.Kvs) != 0 {
			return fmt.Errorf("key still there %.1fs after the last keep-alive", time.Since(lastKA).Seconds())
		}
		return nil
	})
	gone := time.Since(lastKA)
	if gone < (ttl-1)*time.Second {
		t.Fatalf("the key went %v after the last keep-alive, before the %ds TTL", gone, ttl)
	}
	if r, err := watchers[1].TimeToLive(ctx, grant.ID); err != nil || r.TTL != -1 {
		t.Fatalf("TimeToLive after expiry: %+v, %v", r, err)
	}
	t.Logf("key gone %.1fs after the last keep-alive (TTL %ds); %d keep-alives after the leader died", gone.Seconds(), ttl, after)
}
