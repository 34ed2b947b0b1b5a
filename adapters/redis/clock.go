package redis

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// leaderClock bounds the time local reads decide TTLs by, using the time
// the leader stamped on the last Redis entry applied here
// (fsm.View.RedisClock). A stamp is never ahead of the leader's clock, so
// each read's offset = stamp - local clock is at most the leader's offset,
// and the largest offset seen recently gives a lower bound of the
// leader's time, "lower": it lags the leader by how stale the freshest
// stamp seen was, and depends on the node's clock only through its rate.
//
// Reads use the node's clock, clamped to [lower, lower+maxAhead]: with
// synchronised clocks that is the node's clock (so every node decides
// alike, to the millisecond, as one Redis would); a node whose clock runs
// ahead never treats a key as expired more than maxAhead before the
// leader's clock says so; one whose clock runs behind keeps a key at most
// until the leader's expiry entry deletes it everywhere (the leader checks
// every 100 ms). The window (two periods of clockWindow) lets the bound
// follow a new leader with another clock.
type leaderClock struct {
	mu        sync.Mutex
	cur, prev int64 // largest offsets (ms) of this window and the last
	have      bool
	rotated   time.Time
}

// maxAhead is how far before the leader a node may expire a key.
const maxAhead = 250

const clockWindow = 10 * time.Second

// now returns the estimate for the view v.
func (s *Server) now(v *fsm.View) int64 {
	stamp := v.RedisClock()
	t := s.cfg.Now()
	local := t.UnixMilli()
	if stamp == 0 {
		return local // no Redis entry yet: nothing to go by
	}
	off := stamp - local
	c := &s.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.have:
		c.cur, c.prev, c.have, c.rotated = off, off, true, t
	case t.Sub(c.rotated) >= clockWindow || t.Before(c.rotated):
		c.prev, c.cur, c.rotated = c.cur, off, t
	default:
		c.cur = max(c.cur, off)
	}
	lower := local + max(c.cur, c.prev)
	return max(lower, min(local, lower+maxAhead))
}

// nowEstimate is now on a fresh view.
func (s *Server) nowEstimate() int64 {
	var ms int64
	s.st.View(func(v *fsm.View) error {
		ms = s.now(v)
		return nil
	})
	return ms
}

// peerToken is the token ARMADA.PUBLISH must carry: derived from the
// cluster's secret key, so only the cluster's own nodes can fan messages
// out through another node. It is "" while the key is unknown (then no
// peer message is accepted or sent).
func (s *Server) peerToken() string {
	if t := s.token.Load(); t != nil {
		return *t
	}
	var key []byte
	s.st.View(func(v *fsm.View) error {
		key = v.SecretKey()
		return nil
	})
	if len(key) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("armada redis publish"))
	t := hex.EncodeToString(m.Sum(nil))
	s.token.Store(&t)
	return t
}

// peerAuthorised reports whether an ARMADA.PUBLISH token is this
// cluster's.
func (s *Server) peerAuthorised(token []byte) bool {
	want := s.peerToken()
	return want != "" && hmac.Equal(token, []byte(want))
}
