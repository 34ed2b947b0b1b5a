package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// suspectAfter is how long the leader's heartbeats to a node must have
// been failing before the node is recorded suspect.
const suspectAfter = 250 * time.Millisecond

// heartbeats follows the leader's Raft heartbeats to each node. A node
// whose process died stops answering Raft at once, seconds before gossip's
// failure detector declares it dead, so the leader records it suspect as
// soon as its heartbeats have failed for suspectAfter: the lost-ship grace
// starts then. Gossip stays the judge of dead.
type heartbeats struct {
	mu      sync.Mutex
	failing map[string]time.Time // node -> first failed heartbeat of the current run
}

// watchHeartbeats feeds heartbeat failures and recoveries into n.hb and
// wakes the membership reconciler on each, and once more when a failure
// has lasted suspectAfter.
func (n *Node) watchHeartbeats() {
	ch := make(chan raft.Observation, 256)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	for {
		select {
		case <-n.stop:
			return
		case o := <-ch:
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				if n.hb.fail(string(d.PeerID), n.now()) {
					time.AfterFunc(suspectAfter, n.gsp.poke)
				}
			case raft.ResumedHeartbeatObservation:
				n.hb.clear(string(d.PeerID))
				n.gsp.poke()
			}
		}
	}
}

// fail records a failed heartbeat and reports whether it starts a run.
func (h *heartbeats) fail(node string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.failing[node]; ok {
		return false
	}
	if h.failing == nil {
		h.failing = map[string]time.Time{}
	}
	h.failing[node] = now
	return true
}

func (h *heartbeats) clear(node string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.failing, node)
}

// suspect reports whether heartbeats to node have failed for suspectAfter.
func (h *heartbeats) suspect(node string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	since, ok := h.failing[node]
	return ok && now.Sub(since) >= suspectAfter
}
