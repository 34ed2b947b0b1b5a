package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

func featureOn(n *testNode, f string) (on bool) {
	n.state.View(func(v *fsm.View) error {
		on = v.Feature(f)
		return nil
	})
	return on
}

// TestFeatureWaitsForEveryServer: the leader switches an fsm feature on
// only once every server of the configuration gossips that it knows it. A
// server that plays an older version holds it off; once it runs this
// version, the feature comes on, on every node.
func TestFeatureWaitsForEveryServer(t *testing.T) {
	c := newTestCluster(t)
	old := c.start("n1", func(cfg *Config) { cfg.features = []string{} })
	c.leader(20 * time.Second)
	n2 := c.start("n2", nil, old)
	waitFor(t, 20*time.Second, func() error {
		if v, _ := countVoters(suffrage(t, old)); v != 2 {
			return errors.New("n2 not a voter yet")
		}
		return nil
	})
	// An absence can only be watched for a while: two of the leader's
	// one-second looks at the servers.
	for deadline := time.Now().Add(2500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if featureOn(old, fsm.FeatureOwnRevisions) || featureOn(n2, fsm.FeatureOwnRevisions) {
			t.Fatal("switched on while a server does not know it")
		}
	}
	old.stop()
	old.cfg.features = nil
	n1 := c.restart(old)
	waitFor(t, 30*time.Second, func() error {
		for _, n := range []*testNode{n1, n2} {
			if !featureOn(n, fsm.FeatureOwnRevisions) {
				return errors.New(n.cfg.Name + ": not on yet")
			}
		}
		return nil
	})
}
