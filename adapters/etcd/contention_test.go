package etcd

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// holding counts who holds something at once and the most that ever did.
type holding struct{ now, most, total atomic.Int64 }

func (h *holding) enter() {
	n := h.now.Add(1)
	h.total.Add(1)
	for m := h.most.Load(); n > m && !h.most.CompareAndSwap(m, n); m = h.most.Load() {
	}
}

func (h *holding) leave() { h.now.Add(-1) }

// contend starts 12 sessions spread over the nodes, lets them all go at
// once, and has each take what take gives it, hold it for 10 ms and give
// it back, rounds times over. The leader groups their concurrent writes
// into shared log entries: each still gets a revision of its own, or two
// sessions see the same revision as the owner's and both go ahead.
func contend(t *testing.T, nodes []*testNode, rounds int, take func(ctx context.Context, s *concurrency.Session, i int) (release func(), err error)) *holding {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const sessions = 12
	var sess []*concurrency.Session
	for i := range sessions {
		cli := newClient(t, nodes[i%len(nodes)].etcd.Addr())
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		sess = append(sess, s)
	}
	h := &holding{}
	for range rounds {
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, sessions)
		for i, s := range sess {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				release, err := take(ctx, s, i)
				if err != nil {
					errs <- err
					return
				}
				h.enter()
				time.Sleep(10 * time.Millisecond) // holding it for a while is the point
				h.leave()
				release()
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	return h
}

// TestMutexUnderContention: clientv3's concurrency.Mutex, taken at once by
// sessions on every node, is held by one at a time.
func TestMutexUnderContention(t *testing.T) {
	nodes := startCluster(t)
	round := 0
	var mu sync.Mutex
	h := contend(t, nodes, 3, func(ctx context.Context, s *concurrency.Session, i int) (func(), error) {
		mu.Lock()
		name := fmt.Sprintf("/contend/mutex/%d/", round/12)
		round++
		mu.Unlock()
		m := concurrency.NewMutex(s, name)
		if err := m.Lock(ctx); err != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
		return func() { m.Unlock(context.Background()) }, nil
	})
	if h.most.Load() != 1 || h.total.Load() != 36 {
		t.Fatalf("mutex: %d acquisitions, at most %d holders at once", h.total.Load(), h.most.Load())
	}
}

// TestElectionUnderContention: clientv3's concurrency.Election, campaigned
// for at once by sessions on every node, has one leader at a time.
func TestElectionUnderContention(t *testing.T) {
	nodes := startCluster(t)
	h := contend(t, nodes, 2, func(ctx context.Context, s *concurrency.Session, i int) (func(), error) {
		e := concurrency.NewElection(s, "/contend/election/")
		if err := e.Campaign(ctx, fmt.Sprint(i)); err != nil {
			return nil, fmt.Errorf("campaign: %w", err)
		}
		return func() { e.Resign(context.Background()) }, nil
	})
	if h.most.Load() != 1 || h.total.Load() != 24 {
		t.Fatalf("election: %d terms, at most %d leaders at once", h.total.Load(), h.most.Load())
	}
}
