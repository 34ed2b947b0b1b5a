package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// leaderLoop follows Raft's leadership notifications and runs lead for as
// long as this node is the leader.
func (n *Node) leaderLoop() {
	var cancel context.CancelFunc
	var done chan struct{}
	stopLeading := func() {
		if cancel == nil {
			return
		}
		cancel()
		<-done
		cancel = nil
		n.setLeading(false)
		n.log.Info("leadership lost")
	}
	for {
		select {
		case <-n.stop:
			stopLeading()
			return
		case isLeader := <-n.notify:
			if !isLeader {
				stopLeading()
				continue
			}
			if cancel != nil {
				continue
			}
			ctx, c := context.WithCancel(context.Background())
			cancel = c
			done = make(chan struct{})
			go n.lead(ctx, done)
		}
	}
}

func (n *Node) setLeading(v bool) {
	n.leaderMu.Lock()
	n.leading = v
	n.leaderMu.Unlock()
}

// lead establishes leadership and runs the leader's duties until ctx ends.
func (n *Node) lead(ctx context.Context, done chan struct{}) {
	defer close(done)
	// A barrier makes sure every entry of earlier terms is applied before
	// the leader acts on the state.
	for {
		err := n.raft.Barrier(5 * time.Second).Error()
		if err == nil {
			break
		}
		n.log.Warn("leader barrier failed", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	n.leaderMu.Lock()
	n.leadStart = n.now()
	n.leaderMu.Unlock()
	n.setLeading(true)
	// The barrier committed what earlier terms left uncommitted, writes
	// that followers forwarded and still wait to apply among them: tell
	// the followers now rather than with the next entries.
	n.push.kick()
	n.log.Info("leadership established", "term", n.raft.CurrentTerm(), "index", n.state.Index())
	n.initCluster(ctx)

	var wg sync.WaitGroup
	run := func(fn func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(ctx)
		}()
	}
	run(n.reconcileLoop)
	run(n.expiryLoop)
	run(n.featureLoop)
	for _, h := range n.hooks {
		run(h)
	}
	wg.Wait()
}

// initCluster gives a new cluster its identity and secret-sealing key.
func (n *Node) initCluster(ctx context.Context) {
	var have bool
	n.state.View(func(v *fsm.View) error {
		have = v.SecretKey() != nil
		return nil
	})
	if have {
		return
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		n.log.Error("cluster key", "err", err)
		return
	}
	if _, err := n.Apply(ctx, &fsm.ClusterInit{ClusterID: randomHex(8), Key: key}); err != nil {
		n.log.Error("initialise cluster", "err", err)
	}
}

// expiryLoop ends leases and locks whose time has come. Expiry is decided
// here, by the leader's clock, and replicated as a command.
func (n *Node) expiryLoop(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var next int64
		var ok bool
		n.state.View(func(v *fsm.View) error {
			next, ok = v.NextExpiry()
			return nil
		})
		if ok && next <= n.now().UnixMilli() {
			if _, err := n.Apply(ctx, &fsm.Expire{}); err != nil && ctx.Err() == nil {
				n.log.Warn("expire leases and locks", "err", err)
			}
		}
	}
}

func randomHex(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// featureLoop switches on, through the log, each fsm feature this version
// knows once every server of the configuration gossips that it knows it
// too: an older server would apply the entries after it differently. It
// looks once a second until all are on.
func (n *Node) featureLoop(ctx context.Context) {
	for {
		off := 0
		for _, f := range fsm.Features() {
			var on bool
			n.state.View(func(v *fsm.View) error {
				on = v.Feature(f)
				return nil
			})
			if on {
				continue
			}
			off++
			if !n.allServersKnow(f) {
				continue
			}
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := n.applyLocal(actx, &fsm.FeatureOn{Name: f})
			cancel()
			if err != nil {
				n.log.Warn("switch feature on", "feature", f, "err", err)
				continue
			}
			n.log.Info("feature on", "feature", f, "reason", "every server knows it")
			off--
		}
		if off == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// allServersKnow reports whether every server of the configuration
// gossips that it knows fsm feature f.
func (n *Node) allServersKnow(f string) bool {
	servers, err := n.servers()
	if err != nil {
		return false
	}
	for name := range servers {
		m, ok := n.gsp.member(name)
		if !ok || !slices.Contains(m.Meta.Features, f) {
			return false
		}
	}
	return true
}
