package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// startAdapterCluster starts three real nodes, each serving a protocol
// adapter with flag (e.g. --redis-addr) on a free address, and waits until
// they agree on a leader with three voters. It returns the nodes, each
// node's adapter address by name, and the leader's name.
func startAdapterCluster(t *testing.T, flag string) ([]*Node, map[string]string, string) {
	t.Helper()
	c := NewCluster(t)
	addr := map[string]string{}
	start := func(name string, seeds ...string) *Node {
		n := c.NewNode(name, seeds...)
		addr[name] = freeAddr(t)
		n.Extra = append(n.Extra, flag, addr[name])
		n.Start()
		return n
	}
	n1 := start("n1")
	waitSingleLeader(t, n1, 30*time.Second)
	nodes := []*Node{n1, start("n2", n1.GossipAddr), start("n3", n1.GossipAddr)}
	want := map[string]string{"n1": "alive/voter", "n2": "alive/voter", "n3": "alive/voter"}
	var leader string
	waitFor(t, 60*time.Second, func() error {
		var err error
		if leader, err = agreedLeader(nodes...); err != nil {
			return err
		}
		return checkMembers(nodes, leader, want)
	})
	return nodes, addr, leader
}

// startAdapterClusterSplit is startAdapterCluster that returns the leader,
// the other nodes' adapter addresses, and every node's by name.
func startAdapterClusterSplit(t *testing.T, flag string) (*Node, []string, map[string]string) {
	t.Helper()
	nodes, addr, leaderName := startAdapterCluster(t, flag)
	var leader *Node
	var others []string
	for _, n := range nodes {
		if n.Name == leaderName {
			leader = n
		} else {
			others = append(others, addr[n.Name])
		}
	}
	return leader, others, addr
}

func etcdClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestEtcdLeaseSurvivesKilledLeader runs three real nodes with
// --etcd-addr. An etcd client holds a lease with a key and keeps it alive
// through the leader's adapter; the leader is SIGKILLed. The keep-alives go
// on through another endpoint, and the lease and key live on for three
// TTLs; once the keep-alives stop, both are gone about a TTL after the last.
func TestEtcdLeaseSurvivesKilledLeader(t *testing.T) {
	leader, others, addr := startAdapterClusterSplit(t, "--etcd-addr")
	leaderName := leader.Name
	// The client starts on the leader only, so that its keep-alive stream
	// is on the node that dies; the other endpoints come afterwards.
	cli := etcdClient(t, addr[leaderName])
	ctx := context.Background()
	const ttl = 4
	waitFor(t, 20*time.Second, func() error {
		_, err := cli.Put(ctx, "probe", "1")
		return err
	})
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
				last, answers = time.Now(), answers+1
				mu.Unlock()
			}
		}
	}()
	answered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return answers
	}
	waitFor(t, 10*time.Second, func() error {
		if answered() == 0 {
			return errors.New("no keep-alive answered yet")
		}
		return nil
	})
	cli.SetEndpoints(append([]string{addr[leaderName]}, others...)...)

	leader.Kill()
	killed := time.Now()
	before := answered()

	// For three TTLs the key is there on both survivors, every time it is
	// looked at.
	watchers := []*clientv3.Client{etcdClient(t, others[0]), etcdClient(t, others[1])}
	for time.Since(killed) < 3*ttl*time.Second {
		for i, w := range watchers {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			r, err := w.Get(rctx, "held", clientv3.WithSerializable())
			cancel()
			if err != nil {
				continue // a survivor may be electing: look again
			}
			if len(r.Kvs) != 1 || r.Kvs[0].Lease != int64(grant.ID) {
				t.Fatalf("%.1fs after the leader was killed, %s has %v: the lease ended while kept alive",
					time.Since(killed).Seconds(), others[i], r.Kvs)
			}
		}
		time.Sleep(100 * time.Millisecond) // the check's sampling period, not a wait for a result
	}
	if after := answered() - before; after < 3 {
		t.Fatalf("%d keep-alives answered in the %ds after the leader was killed", after, 3*ttl)
	}
	if r, err := watchers[0].TimeToLive(ctx, grant.ID); err != nil || r.TTL <= 0 {
		t.Fatalf("TimeToLive on a survivor: %+v, %v", r, err)
	}

	// The keep-alives stop: the lease and its key go about a TTL after the
	// last one.
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
	if gone := time.Since(lastKA); gone < (ttl-1)*time.Second {
		t.Fatalf("the key went %v after the last keep-alive, before the %ds TTL", gone, ttl)
	}
	if r, err := watchers[1].TimeToLive(ctx, grant.ID); err != nil || r.TTL != -1 {
		t.Fatalf("TimeToLive after expiry: %+v, %v", r, err)
	}
}
