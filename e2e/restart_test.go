package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRestartSingleNodeKeepsData(t *testing.T) {
	c := NewCluster(t)
	n := c.StartNode("n1")
	first := waitSingleLeader(t, n, 30*time.Second)

	want := map[string]string{}
	for i := range 30 {
		key, val := fmt.Sprintf("e2e/k%d", i), fmt.Sprintf("value %d", i)
		if _, err := putKV(n, key, val, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		want[key] = val
	}
	// Overwrite some, delete one: the restart must replay the history,
	// not only the first writes.
	for i := range 5 {
		key := fmt.Sprintf("e2e/k%d", i)
		want[key] = "rewritten " + want[key]
		if _, err := putKV(n, key, want[key], 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := n.Do(http.MethodDelete, "/v1/kv/e2e/k29", nil, ""); err != nil || r.Status != http.StatusOK {
		t.Fatalf("DELETE e2e/k29: %v %v", r, err)
	}
	delete(want, "e2e/k29")

	n.Kill()
	n.Restart()
	st := waitSingleLeader(t, n, 30*time.Second)
	log := n.Log()
	if strings.Contains(log, "bootstrapping a new cluster") || !strings.Contains(log, "bootstrapped=false") {
		t.Errorf("restart bootstrapped a new cluster:\n%s", tail(n.logs[len(n.logs)-1], 30))
	}
	if strings.Contains(log, "bootstrap:") || strings.Contains(log, "level=ERROR") {
		t.Errorf("restart logged an error:\n%s", tail(n.logs[len(n.logs)-1], 30))
	}
	if st.ClusterID != first.ClusterID {
		t.Errorf("cluster id changed across the restart: %q → %q", first.ClusterID, st.ClusterID)
	}
	if st.Term <= first.Term {
		t.Errorf("term %d after the restart, %d before: want a new term", st.Term, first.Term)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].Name != "n1" {
		t.Errorf("after the restart the node list is %+v, want n1 only", st.Nodes)
	}
	got, err := listKV(n, "e2e/", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameKVs(got, want); err != nil {
		t.Errorf("after the restart: %v", err)
	}
	r, _, err := getKV(n, "e2e/k29", true)
	if err != nil || r.Status != http.StatusNotFound {
		t.Errorf("deleted key after the restart: %v %v, want 404", r, err)
	}
	for key, val := range want {
		_, kv, err := getKV(n, key, false)
		if err != nil || kv == nil || kv.Value != val {
			t.Errorf("GET %s after the restart: %+v %v, want %q", key, kv, err, val)
		}
	}
	// Writes still work.
	if _, err := putKV(n, "e2e/after", "restart", 20*time.Second); err != nil {
		t.Fatal(err)
	}

	// The data directory belongs to n1: another name is refused, clearly.
	n.Kill()
	res := runCLIWithin(t, 20*time.Second, nil, "join", "--name", "intruder", "--data-dir", n.DataDir,
		"--http-addr", freeAddr(t), "--gossip-addr", freeAddr(t), "--raft-addr", freeAddr(t))
	if res.Code == 0 {
		t.Fatalf("join --name intruder on n1's data dir: want a non-zero exit\n%s", res)
	}
	if !strings.Contains(res.Stderr, `belongs to node "n1"`) || !strings.Contains(res.Stderr, "intruder") {
		t.Errorf("join --name intruder on n1's data dir: the error does not say whose data dir it is\n%s", res)
	}
	// ... and the refusal left the data directory intact.
	n.Restart()
	waitSingleLeader(t, n, 30*time.Second)
	want["e2e/after"] = "restart"
	got, err = listKV(n, "e2e/", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameKVs(got, want); err != nil {
		t.Errorf("after the refused join and a restart: %v", err)
	}
}
