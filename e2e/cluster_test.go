package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestThreeBinariesFormCluster(t *testing.T) {
	c := NewCluster(t)
	nodes, leader := formCluster(t, c, 3)
	if byName(nodes, leader) == nil {
		t.Fatalf("leader %q is none of the nodes", leader)
	}
	st, err := nodes[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Term == 0 || st.Index == 0 || st.ClusterID == "" {
		t.Errorf("status: term %d, index %d, cluster id %q: want all set", st.Term, st.Index, st.ClusterID)
	}
	// Every node is listed with the addresses it was started with.
	for _, n := range nodes {
		r, ok := st.NodeByName(n.Name)
		if !ok {
			t.Fatalf("%s not in status", n.Name)
		}
		if r.HTTPAddr != n.HTTPAddr || r.GossipAddr != n.GossipAddr || r.RaftAddr != n.RaftAddr {
			t.Errorf("%s recorded as http %s gossip %s raft %s; started with %s %s %s",
				n.Name, r.HTTPAddr, r.GossipAddr, r.RaftAddr, n.HTTPAddr, n.GossipAddr, n.RaftAddr)
		}
	}

	// `armada status` (table) through a follower, with --addr.
	res := mustCLI(t, nil, "status", "--addr", nodes[1].BaseURL())
	if !strings.HasPrefix(res.Stdout, "Leader: "+leader+" ") || !strings.Contains(res.Stdout, "Nodes: 3") {
		t.Errorf("status header does not name leader %s and 3 nodes:\n%s", leader, res.Stdout)
	}
	rows := tableRows(t, res.Stdout, "NAME")
	if len(rows) != 3 {
		t.Fatalf("status table has %d rows, want 3:\n%s", len(rows), res.Stdout)
	}
	for _, n := range nodes {
		row, ok := rows[n.Name]
		if !ok {
			t.Errorf("status table has no row for %s:\n%s", n.Name, res.Stdout)
			continue
		}
		if row["STATUS"] != "alive" || row["ROLE"] != "voter" || row["ADDRESS"] != "127.0.0.1" || row["HTTP"] != n.HTTPAddr {
			t.Errorf("status row for %s = %v, want alive voter at 127.0.0.1, HTTP %s", n.Name, row, n.HTTPAddr)
		}
	}

	// `armada node list -o json`, with --addr given without a scheme.
	res = mustCLI(t, nil, "node", "list", "-o", "json", "--addr", nodes[2].HTTPAddr)
	checkNodeListJSON(t, res, nodes)

	// The same through ARMADA_ADDR; `status -o json` names the node that
	// answered, which shows the variable was honoured.
	env := []string{"ARMADA_ADDR=" + nodes[2].BaseURL()}
	res = mustCLI(t, env, "node", "list", "-o", "json")
	checkNodeListJSON(t, res, nodes)
	res = mustCLI(t, env, "status", "-o", "json")
	var js Status
	if err := json.Unmarshal([]byte(res.Stdout), &js); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, res)
	}
	if js.Node != nodes[2].Name || js.Leader != leader || len(js.Nodes) != 3 {
		t.Errorf("status -o json via ARMADA_ADDR: node %q leader %q, %d nodes; want %s, %s, 3", js.Node, js.Leader, len(js.Nodes), nodes[2].Name, leader)
	}
	// And --addr beats ARMADA_ADDR.
	res = mustCLI(t, env, "status", "-o", "json", "--addr", nodes[0].BaseURL())
	if err := json.Unmarshal([]byte(res.Stdout), &js); err != nil || js.Node != nodes[0].Name {
		t.Errorf("--addr %s with ARMADA_ADDR set: answered by %q (%v), want %s", nodes[0].BaseURL(), js.Node, err, nodes[0].Name)
	}
	// A client pointed at nothing fails cleanly.
	res = runCLI(t, nil, "status", "--addr", "http://"+freeAddr(t))
	if res.Code == 0 || !strings.Contains(res.Stderr, "armada:") {
		t.Errorf("status against a closed port: want a non-zero exit with an error\n%s", res)
	}
}

func checkNodeListJSON(t *testing.T, res CLIResult, nodes []*Node) {
	t.Helper()
	var list []NodeInfo
	if err := json.Unmarshal([]byte(res.Stdout), &list); err != nil {
		t.Fatalf("node list -o json is not a JSON list of nodes: %v\n%s", err, res)
	}
	if len(list) != len(nodes) {
		t.Fatalf("node list -o json: %d nodes, want %d\n%s", len(list), len(nodes), res.Stdout)
	}
	for _, n := range nodes {
		i := slices.IndexFunc(list, func(r NodeInfo) bool { return r.Name == n.Name })
		if i < 0 {
			t.Errorf("node list -o json: no %s\n%s", n.Name, res.Stdout)
			continue
		}
		if r := list[i]; r.Status != "alive" || r.Role != "voter" || r.HTTPAddr != n.HTTPAddr || r.Address != "127.0.0.1" {
			t.Errorf("node list -o json: %s = %+v, want alive voter at %s", n.Name, r, n.HTTPAddr)
		}
	}
}

// tableRows parses CLI table output: the line starting with the first
// header column, then one row per line keyed by its first column.
func tableRows(t *testing.T, out, firstCol string) map[string]map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	h := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, firstCol+" ") })
	if h < 0 {
		t.Fatalf("no table header starting with %s in:\n%s", firstCol, out)
	}
	header := strings.Fields(lines[h])
	rows := map[string]map[string]string{}
	for _, l := range lines[h+1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		row := map[string]string{}
		for i, col := range header {
			if i < len(f) {
				row[col] = f[i]
			}
		}
		if _, dup := rows[f[0]]; dup {
			t.Fatalf("%s listed twice in:\n%s", f[0], out)
		}
		rows[f[0]] = row
	}
	return rows
}
