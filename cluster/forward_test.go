package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/armada-orchestrator/armada/fsm"
)

// A forwarded batch can be split over several of the leader's groups. When
// one group commits and another fails before it is logged, every command
// must be answered on its own: the committed ones with their results, the
// others as safe to resend. Answering the whole batch "retryable" would make
// the follower apply the committed commands twice.
func TestForwardedBatchAnswersEachCommand(t *testing.T) {
	var mu sync.Mutex
	committed := map[string]bool{}
	groups := 0
	n := &Node{now: time.Now}
	// A leader whose first group commits and whose later groups fail as a
	// leadership transfer would make them fail.
	n.batch = newGrouper(1, func(entry []byte, group []*pendingApply) {
		mu.Lock()
		groups++
		first := groups == 1
		mu.Unlock()
		if !first {
			answerGroup(group, nil, applyError(raft.ErrLeadershipTransferInProgress))
			return
		}
		res := &fsm.Result{Index: 7, Batch: make([]*fsm.Result, len(group))}
		for i, p := range group {
			c, _ := fsm.Decode(p.entry)
			key := c.(*fsm.KVPut).Key
			mu.Lock()
			committed[key] = true
			mu.Unlock()
			res.Batch[i] = &fsm.Result{Index: 7, KV: &fsm.KV{Key: key}}
		}
		if len(group) == 1 {
			res = res.Batch[0]
		}
		answerGroup(group, res, nil)
	})
	stop := make(chan struct{})
	defer close(stop)
	go n.batch.run(stop)

	// Values this large close a group after three commands (maxGroupBytes),
	// so eight commands always span several groups.
	b := &fsm.Batch{}
	value := make([]byte, 400<<10)
	for i := range 8 {
		b.Cmds = append(b.Cmds, &fsm.KVPut{Key: fmt.Sprintf("k%d", i), Value: value})
	}
	answers := n.applyForwardedBatch(context.Background(), b)

	if len(answers) != len(b.Cmds) {
		t.Fatalf("%d answers for %d commands", len(answers), len(b.Cmds))
	}
	resend := 0
	for i, a := range answers {
		key := b.Cmds[i].(*fsm.KVPut).Key
		switch {
		case committed[key]:
			if a.Code != "" || a.Result == nil || a.Result.KV == nil || a.Result.KV.Key != key {
				t.Fatalf("committed %s answered %+v", key, a)
			}
		case a.Code == codeNotLeader:
			resend++
		default:
			t.Fatalf("%s was not committed but answered %+v", key, a)
		}
	}
	if len(committed) == 0 || resend == 0 {
		t.Fatalf("%d committed, %d to resend: the batch did not span two groups", len(committed), resend)
	}
	t.Logf("%d groups: %d commands committed, %d answered safe to resend", groups, len(committed), resend)
}

// Followers may forward what clients submit, never what only the leader
// issues: a forged node record or expiry over HTTP is refused.
func TestInternalApplyRefusesLeaderOnlyCommands(t *testing.T) {
	c := newTestCluster(t)
	l := c.startGroup(1, nil)
	api := l.InternalHandler()
	post := func(c fsm.Command) int {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/internal/apply", bytes.NewReader(fsm.Encode(c))))
		return rec.Code
	}
	forged := []fsm.Command{
		&fsm.NodeUpsert{Node: fsm.Node{Name: "ghost", Status: fsm.NodeAlive}},
		&fsm.NodeRemove{Name: "n1"},
		&fsm.Expire{Now: 1 << 62},
		&fsm.Batch{Cmds: []fsm.Command{&fsm.KVPut{Key: "k", Value: []byte("v")}, &fsm.NodeRemove{Name: "n1"}}},
	}
	for _, cmd := range forged {
		if code := post(cmd); code != http.StatusBadRequest {
			t.Fatalf("%T forwarded: HTTP %d, want 400", cmd, code)
		}
	}
	if _, ok := kvGet(l, "k"); ok {
		t.Fatal("a refused batch wrote its client command")
	}
	if code := post(&fsm.KVPut{Key: "k", Value: []byte("v")}); code != http.StatusOK {
		t.Fatalf("a client command forwarded: HTTP %d", code)
	}
}
