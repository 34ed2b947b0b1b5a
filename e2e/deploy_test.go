package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// readyMin polls a fleet's ships and keeps the fewest ready ones seen.
type readyMin struct {
	mu     sync.Mutex
	fewest int
	polls  int
	stop   chan struct{}
	done   chan struct{}
}

func watchFewestReady(api *Node, fleet string) *readyMin {
	w := &readyMin{fewest: 1 << 30, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			if ships, err := fleetShips(api, fleet); err == nil {
				ready := 0
				for _, s := range ships {
					if s.State == "ready" {
						ready++
					}
				}
				w.mu.Lock()
				w.fewest, w.polls = min(w.fewest, ready), w.polls+1
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *readyMin) end() (fewest, polls int) {
	close(w.stop)
	<-w.done
	return w.fewest, w.polls
}

func putFleetJSON(t *testing.T, api *Node, name, body string) {
	t.Helper()
	if r, err := writeAPI(api, http.MethodPut, "/v1/fleets/"+name, []byte(body), 20*time.Second); err != nil {
		t.Fatalf("put fleet %s: %v %v", name, r, err)
	}
}

// TestRollingDeploymentAndRollback: with real binaries, a deployment from
// version 1 to 2 with max_parallel 1 never has fewer than replicas - 1
// ready ships and ends succeeded (armada fleet rollout follows it to the
// end); a version whose ExecStart exits at once is rolled back after its
// deadline, `rollout` fails, and version 2 keeps serving throughout.
func TestRollingDeploymentAndRollback(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	waitSchedulable(t, api, nodes)
	env := []string{"ARMADA_ADDR=" + api.BaseURL()}
	applyBlueprint(t, api, "svc", token, sleeperUnit, 8)                                        // version 1
	applyBlueprint(t, api, "svc", token, strings.Replace(sleeperUnit, "100000", "99999", 1), 8) // version 2
	applyBlueprint(t, api, "svc", token, "[Service]\nExecStart=/bin/false\n", 8)                // version 3: exits at once
	putFleetJSON(t, api, "web", `{"replicas": 4, "versions": [{"blueprint": "svc", "version": 1}]}`)
	waitFor(t, 30*time.Second, func() error { _, err := checkFleet(api, "web", token, 4, nil); return err })

	w := watchFewestReady(api, "web")
	putFleetJSON(t, api, "web", `{"replicas": 4, "versions": [{"blueprint": "svc", "version": 2}], "update": {"max_parallel": 1}}`)
	res := runCLIWithin(t, 60*time.Second, env, "fleet", "rollout", "web")
	fewest, polls := w.end()
	if res.Code != 0 || !strings.Contains(res.Stdout, "succeeded") || !strings.Contains(res.Stdout, "4/4 updated") {
		t.Fatalf("rollout to version 2:\n%s", res)
	}
	if fewest < 3 {
		t.Fatalf("during the deployment only %d ships were ready (replicas 4, max_parallel 1; %d polls)", fewest, polls)
	}
	t.Logf("deployment 1 → 2: at least %d of 4 ships ready in %d polls; rollout printed:\n%s", fewest, polls, res.Stdout)
	ships, err := checkFleet(api, "web", token, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ships {
		if s.Version != 2 {
			t.Fatalf("after the deployment ship %s runs version %d", s.ID, s.Version)
		}
	}

	w = watchFewestReady(api, "web")
	putFleetJSON(t, api, "web", `{"replicas": 4, "versions": [{"blueprint": "svc", "version": 3}], "update": {"max_parallel": 1, "auto_rollback": true, "deadline": "3s"}}`)
	res = runCLIWithin(t, 60*time.Second, env, "fleet", "rollout", "web")
	fewest, _ = w.end()
	if res.Code == 0 || !strings.Contains(res.Stdout, "failed") || !strings.Contains(res.Stdout, "rolled back") {
		t.Fatalf("rollout to the failing version 3 should fail and roll back:\n%s", res)
	}
	if fewest < 4 {
		t.Fatalf("while version 3 failed only %d version-2 ships were ready, want all 4", fewest)
	}
	r, err := api.Get("/v1/fleets/web/deployments")
	if err != nil {
		t.Fatal(err)
	}
	var deps []struct {
		State      string `json:"state"`
		RolledBack bool   `json:"rolled_back"`
		Reason     string `json:"reason"`
	}
	if err := json.Unmarshal(r.Body, &deps); err != nil || len(deps) != 2 || deps[0].State != "failed" || !deps[0].RolledBack || deps[1].State != "succeeded" {
		t.Fatalf("deployments: %s (%v)", r.Body, err)
	}
	waitFor(t, 30*time.Second, func() error {
		ships, err := checkFleet(api, "web", token, 4, nil)
		if err != nil {
			return err
		}
		for _, s := range ships {
			if s.Version != 2 {
				return fmt.Errorf("ship %s runs version %d after the rollback", s.ID, s.Version)
			}
		}
		return nil
	})
}
