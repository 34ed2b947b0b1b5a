package zk

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/armada-orchestrator/armada/fsm"
)

// askWord sends a four-letter word and returns the whole answer.
func askWord(t *testing.T, addr, w string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(w))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// mntrOf parses mntr's "zk_key<TAB>value" lines, keeping their order.
func mntrOf(t *testing.T, out string) (map[string]string, []string) {
	t.Helper()
	m := map[string]string{}
	var keys []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, v, ok := strings.Cut(l, "\t")
		if !ok || !strings.HasPrefix(k, "zk_") {
			t.Fatalf("mntr line %q is not zk_key<TAB>value in:\n%s", l, out)
		}
		m[k] = v
		keys = append(keys, k)
	}
	return m, keys
}

func num(t *testing.T, m map[string]string, k string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(m[k], 10, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", k, m[k], err)
	}
	return n
}

// adminScript opens a session on addr, creates a node and an ephemeral
// child and sets a data and a child watch, and returns mntr before and
// after, and srvr and stat after.
func adminScript(t *testing.T, addr string) (before, after map[string]string, keys []string, srvr, stat string) {
	t.Helper()
	before, _ = mntrOf(t, askWord(t, addr, "mntr"))
	c, _ := connect(t, []string{addr}, 10*time.Second)
	acl := gozk.WorldACL(gozk.PermAll)
	if _, err := c.Create("/adm", []byte("hello"), 0, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create("/adm/e", []byte("xy"), gozk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.GetW("/adm"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.ChildrenW("/adm"); err != nil {
		t.Fatal(err)
	}
	after, keys = mntrOf(t, askWord(t, addr, "mntr"))
	return before, after, keys, askWord(t, addr, "srvr"), askWord(t, addr, "stat")
}

// ensembleKeys are the mntr keys a ZooKeeper in an ensemble adds (its
// quorum size, and on the leader its learners); a standalone one has none.
var ensembleKeys = []string{"zk_quorum_size", "zk_learners", "zk_synced_followers",
	"zk_synced_non_voting_followers", "zk_synced_observers", "zk_pending_syncs"}

// shape reduces srvr or stat to its line names and value kinds.
func shape(out string) string {
	out = regexp.MustCompile(`(?m)^Zookeeper version: .*$`).ReplaceAllString(out, "Zookeeper version: V")
	out = regexp.MustCompile(`(?m)^ /[0-9.]+:[0-9]+\[[01]\]\(queued=\d+,recved=\d+,sent=\d+\)$`).ReplaceAllString(out, " CLIENT")
	out = regexp.MustCompile(`(?m)^Mode: \w+$`).ReplaceAllString(out, "Mode: M")
	out = regexp.MustCompile(`0x[0-9a-f]+`).ReplaceAllString(out, "X")
	out = regexp.MustCompile(`\d+\.\d+`).ReplaceAllString(out, "F")
	out = regexp.MustCompile(`\d+`).ReplaceAllString(out, "N")
	return regexp.MustCompile(`( CLIENT\n)+`).ReplaceAllString(out, " CLIENT\n")
}

// TestAdminWordsDifferential runs one session and the admin words against
// a real ZooKeeper 3.8 and the adapter on a 3-node Armada: mntr's keys are
// ZooKeeper's, its counts move alike, and srvr and stat have ZooKeeper's
// lines. Then the ensemble's parts: one leader, two followers, and the
// leader's view of them.
func TestAdminWordsDifferential(t *testing.T) {
	real := startZooKeeper(t)
	zb, za, zkeys, zsrvr, zstat := adminScript(t, real)
	nodes := startCluster(t)
	leader := 0
	for i, n := range nodes {
		if n.node.IsLeader() {
			leader = i
		}
	}
	ab, aa, akeys, asrvr, astat := adminScript(t, nodes[leader].zk.Addr())

	for _, k := range akeys {
		if !slices.Contains(zkeys, k) && !slices.Contains(ensembleKeys, k) {
			t.Errorf("mntr key %s is not ZooKeeper's", k)
		}
	}
	for _, k := range []string{"zk_znode_count", "zk_ephemerals_count", "zk_approximate_data_size",
		"zk_watch_count", "zk_global_sessions", "zk_num_alive_connections"} {
		zd, ad := num(t, za, k)-num(t, zb, k), num(t, aa, k)-num(t, ab, k)
		if zd != ad {
			t.Errorf("%s moved by %d on ZooKeeper, by %d on Armada", k, zd, ad)
		}
	}
	if d := num(t, aa, "zk_approximate_data_size") - num(t, ab, "zk_approximate_data_size"); d != int64(len("/adm")+len("hello")+len("/adm/e")+len("xy")) {
		t.Errorf("zk_approximate_data_size moved by %d", d)
	}
	for _, m := range []map[string]string{za, aa} {
		if num(t, m, "zk_packets_received") < 6 || num(t, m, "zk_packets_sent") < 6 {
			t.Errorf("packets: %s received, %s sent", m["zk_packets_received"], m["zk_packets_sent"])
		}
	}
	if lo, hi := num(t, aa, "zk_min_latency"), num(t, aa, "zk_max_latency"); lo > hi {
		t.Errorf("latency min %d > max %d", lo, hi)
	}
	if shape(zsrvr) != shape(asrvr) {
		t.Errorf("srvr lines differ\n---- zookeeper ----\n%s---- armada ----\n%s", zsrvr, asrvr)
	}
	if shape(zstat) != shape(astat) {
		t.Errorf("stat lines differ\n---- zookeeper ----\n%s---- armada ----\n%s", zstat, astat)
	}

	if got := askWord(t, nodes[0].zk.Addr(), "ruok"); got != "imok" {
		t.Fatalf("ruok: %q", got)
	}
	var modes []string
	for i, n := range nodes {
		m, _ := mntrOf(t, askWord(t, n.zk.Addr(), "mntr"))
		modes = append(modes, m["zk_server_state"])
		if !strings.Contains(askWord(t, n.zk.Addr(), "srvr"), "\nMode: "+m["zk_server_state"]+"\n") {
			t.Errorf("srvr and mntr of %s disagree", n.name)
		}
		if num(t, m, "zk_quorum_size") != 3 {
			t.Errorf("%s: zk_quorum_size %s", n.name, m["zk_quorum_size"])
		}
		_, hasLearners := m["zk_learners"]
		if (i == leader) != hasLearners {
			t.Errorf("%s (%s) has zk_learners: %v", n.name, m["zk_server_state"], hasLearners)
		}
		if i == leader && (m["zk_learners"] != "2" || m["zk_synced_followers"] != "2") {
			t.Errorf("leader: learners %s, synced followers %s", m["zk_learners"], m["zk_synced_followers"])
		}
	}
	slices.Sort(modes)
	if strings.Join(modes, " ") != "follower follower leader" {
		t.Fatalf("modes: %v", modes)
	}
	if got := askWord(t, nodes[1].zk.Addr(), "dump"); got != "dump is not executed because it is not in the whitelist.\n" {
		t.Errorf("dump: %q", got)
	}

	// A server that left keeps its record (and the role it had) until it is
	// reaped, but it is out of Raft: it is not counted in the quorum.
	gone := &fsm.NodeUpsert{Node: fsm.Node{Name: "gone", Address: "127.0.0.9", Role: fsm.RoleVoter, Server: true,
		Status: fsm.NodeLeft, StatusSince: time.Now().UnixMilli()}}
	if _, err := nodes[leader].node.Apply(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitFor(t, 10*time.Second, func() error {
			m, _ := mntrOf(t, askWord(t, n.zk.Addr(), "mntr"))
			records := 0
			n.node.State().View(func(v *fsm.View) error { records = len(v.Nodes()); return nil })
			if records != 4 {
				return fmt.Errorf("%s does not have the left node's record yet", n.name)
			}
			if m["zk_quorum_size"] != "3" {
				return fmt.Errorf("%s: zk_quorum_size %s with a left server", n.name, m["zk_quorum_size"])
			}
			return nil
		})
	}
}
