package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestGracefulLeave(t *testing.T) {
	t.Run("follower", func(t *testing.T) {
		c := NewCluster(t)
		nodes, leader := formCluster(t, c, 3)
		leaving := nodes[2]
		if leaving.Name == leader {
			leaving = nodes[1]
		}
		testLeave(t, nodes, leader, leaving)
	})
	// The leader hands leadership over before it goes.
	t.Run("leader", func(t *testing.T) {
		c := NewCluster(t)
		nodes, leader := formCluster(t, c, 3)
		testLeave(t, nodes, leader, byName(nodes, leader))
	})
}

// testLeave makes one node leave through `armada leave` and checks that
// it stops by itself, that the others list it as left with two Raft
// servers remaining, and that writes still work.
func testLeave(t *testing.T, nodes []*Node, leader string, leaving *Node) {
	var survivors []*Node
	for _, n := range nodes {
		if n != leaving {
			survivors = append(survivors, n)
		}
	}

	res := mustCLI(t, nil, "leave", "--addr", leaving.BaseURL())
	if !strings.Contains(res.Stdout, "leaving") {
		t.Errorf("armada leave: %s", res)
	}
	asked := time.Now()
	exited, err := leaving.WaitExit(15 * time.Second)
	if !exited {
		var seen []string
		for _, s := range survivors {
			if st, err := s.Status(); err == nil {
				r, _ := st.NodeByName(leaving.Name)
				seen = append(seen, fmt.Sprintf("%s lists %s as %s/%s", s.Name, leaving.Name, r.Status, r.Role))
			}
		}
		t.Fatalf("%s still running 15s after `armada leave` (%s)", leaving.Name, strings.Join(seen, "; "))
	}
	if err != nil {
		t.Errorf("%s exited with %v after leaving, want status 0", leaving.Name, err)
	}
	t.Logf("%s (leader before: %s) exited %s after `armada leave`", leaving.Name, leader, time.Since(asked).Round(time.Millisecond))
	if log := leaving.Log(); !strings.Contains(log, "left the cluster") {
		t.Errorf("%s's log does not say it left the cluster:\n%s", leaving.Name, tail(leaving.logs[len(leaving.logs)-1], 30))
	}

	// The survivors agree on a leader among themselves, list it as left
	// (or not at all), and exactly two Raft servers remain.
	waitFor(t, 30*time.Second, func() error {
		l, err := agreedLeader(survivors...)
		if err != nil {
			return err
		}
		if byName(survivors, l) == nil {
			return fmt.Errorf("survivors follow %q", l)
		}
		for _, s := range survivors {
			st, err := s.Status()
			if err != nil {
				return err
			}
			servers, voters := 0, 0
			for _, r := range st.Nodes {
				switch {
				case r.Name == leaving.Name:
					if r.Status != "left" || r.Role != "voter" {
						return fmt.Errorf("%s lists %s as %s/%s, want left/voter (the role it had)", s.Name, leaving.Name, r.Status, r.Role)
					}
					continue
				case r.Status != "alive":
					return fmt.Errorf("%s lists %s as %s", s.Name, r.Name, r.Status)
				}
				if r.Role == "voter" || r.Role == "nonvoter" {
					servers++
				}
				if r.Role == "voter" {
					voters++
				}
			}
			if servers != 2 || voters != 2 {
				return fmt.Errorf("%s lists %d raft servers (%d voters), want 2 voters: %+v", s.Name, servers, voters, st.Nodes)
			}
		}
		return nil
	})

	// Writes still work through both survivors, and both read them.
	for i, s := range survivors {
		key := fmt.Sprintf("e2e/after-leave-%d", i)
		if _, err := putKV(s, key, s.Name, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		for _, o := range survivors {
			r, kv, err := getKV(o, key, true)
			if err != nil || r.Status != http.StatusOK || kv.Value != s.Name {
				t.Errorf("consistent GET %s on %s: %v %v", key, o.Name, r, err)
			}
		}
	}
	// The node that left answers nothing any more.
	if _, err := leaving.Get("/healthz"); err == nil {
		t.Errorf("%s's API still answers after it left", leaving.Name)
	}
}
