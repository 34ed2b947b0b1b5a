package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/web"
)

// readyFleet makes fleet "tiny" of n ships, all placed on this node and
// ready, as the scheduler and the worker would, and returns their ids.
func (tc *testCluster) readyFleet(n int) []string {
	tc.t.Helper()
	tc.doJSON(http.MethodPut, "/v1/blueprints/tiny", []byte("unit: \"[Service]\\nExecStart=/bin/true\"\nresources: {cpu_mhz: 10, memory_mb: 16}\nlabels: {game: tiny}\n"), http.StatusOK, nil)
	tc.doJSON(http.MethodPut, "/v1/fleets/tiny", []byte(fmt.Sprintf("replicas: %d\nversions: [{blueprint: tiny}]\n", n)), http.StatusOK, nil)
	res := tc.apply(&fsm.ShipCreate{Fleet: "tiny", Blueprint: "tiny", Version: 1, Count: n})
	var ids []string
	var places []fsm.Place
	var reports []fsm.Report
	for _, s := range res.Ships {
		ids = append(ids, s.ID)
		places = append(places, fsm.Place{Ship: s.ID, Node: tc.name})
		reports = append(reports, fsm.Report{Ship: s.ID, State: fsm.ShipReady})
	}
	if r := tc.apply(&fsm.ShipPlace{Places: places}); r.Count != n {
		tc.t.Fatalf("placed %d of %d", r.Count, n)
	}
	if r := tc.apply(&fsm.ShipReport{Node: tc.name, Reports: reports}); r.Count != n {
		tc.t.Fatalf("ready %d of %d", r.Count, n)
	}
	return ids
}

// 200 parallel allocations against 150 ready ships: exactly 150 succeed,
// 50 get 409, and the final state has each of the 150 allocated once.
func TestAllocateConcurrent(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	ready := map[string]bool{}
	for _, id := range tc.readyFleet(150) {
		ready[id] = true
	}
	var mu sync.Mutex
	got := map[string]int{}
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			strategy := []string{"packed", "distributed"}[i%2]
			resp, body := tc.do(http.MethodPost, "/v1/allocate", []byte(`{"fleet": "tiny", "strategy": "`+strategy+`", "metadata": {"labels": {"match": "m`+fmt.Sprint(i)+`"}}}`))
			mu.Lock()
			defer mu.Unlock()
			codes[resp.StatusCode]++
			switch resp.StatusCode {
			case http.StatusOK:
				var out struct {
					Ship    fsm.Ship       `json:"ship"`
					Address string         `json:"address"`
					Ports   map[string]int `json:"ports"`
				}
				if err := json.Unmarshal(body, &out); err != nil {
					t.Errorf("answer %s: %v", body, err)
					return
				}
				if out.Ship.State != fsm.ShipAllocated || out.Address == "" || out.Ship.Labels["match"] != fmt.Sprint("m", i) {
					t.Errorf("answer %s", body)
				}
				got[out.Ship.ID]++
			case http.StatusConflict:
				checkError(t, "no ready ship", resp, body, http.StatusConflict, "conflict", "fleet")
			default:
				t.Errorf("status %d: %s", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if codes[http.StatusOK] != 150 || codes[http.StatusConflict] != 50 || len(got) != 150 {
		t.Fatalf("codes %v, %d distinct ships", codes, len(got))
	}
	for id, n := range got {
		if n != 1 || !ready[id] {
			t.Fatalf("ship %s allocated %d times (ready before: %v)", id, n, ready[id])
		}
	}
	var ships []fsm.Ship
	tc.doJSON(http.MethodGet, "/v1/ships?fleet=tiny&state=allocated&consistent=true", nil, http.StatusOK, &ships)
	if len(ships) != 150 {
		t.Fatalf("%d ships allocated in the state", len(ships))
	}
	for _, s := range ships {
		if got[s.ID] != 1 {
			t.Fatalf("state has %s allocated, answered %d times", s.ID, got[s.ID])
		}
	}
}

func TestAllocateRejects(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	tc.readyFleet(2)
	for _, tc2 := range []struct {
		body        string
		status      int
		code, field string
	}{
		{`{}`, http.StatusUnprocessableEntity, "invalid", "fleet"},
		{`{"fleet": "tiny", "strategy": "random"}`, http.StatusUnprocessableEntity, "invalid", "strategy"},
		{`{"fleet": "tiny", "selector": {"bad key": "x"}}`, http.StatusUnprocessableEntity, "invalid", "selector.bad key"},
		{`{"fleet": "tiny", "metadata": {"labels": {"k": "bad value!"}}}`, http.StatusUnprocessableEntity, "invalid", "metadata.labels.k"},
		{`{"fleet": "tiny", "colour": "red"}`, http.StatusBadRequest, "bad_request", "colour"},
		{`{"fleet": 3}`, http.StatusBadRequest, "bad_request", "fleet"},
		{`{"fleet": "nope"}`, http.StatusNotFound, "not_found", "fleet"},
		{`{"fleet": "tiny", "request_id": "` + strings.Repeat("x", fsm.MaxRequestID+1) + `"}`, http.StatusUnprocessableEntity, "invalid", "request_id"},
		{`{"fleet": "tiny", "selector": {"game": "other"}}`, http.StatusConflict, "conflict", "fleet"},
	} {
		resp, body := tc.do(http.MethodPost, "/v1/allocate", []byte(tc2.body))
		checkError(t, tc2.body, resp, body, tc2.status, tc2.code, tc2.field)
	}
	var ships []fsm.Ship
	tc.doJSON(http.MethodGet, "/v1/ships?fleet=tiny&state=ready", nil, http.StatusOK, &ships)
	if len(ships) != 2 {
		t.Fatalf("%d ships ready after rejected allocations", len(ships))
	}
	// The selector matches the blueprint's labels.
	var out struct{ Ship fsm.Ship }
	tc.doJSON(http.MethodPost, "/v1/allocate", []byte(`{"fleet": "tiny", "selector": {"game": "tiny"}}`), http.StatusOK, &out)
	if out.Ship.State != fsm.ShipAllocated {
		t.Fatalf("allocated %+v", out.Ship)
	}
}

// lostAnswers applies commands through the real node but, for the first
// allocations, answers as if the leader had changed while they were in
// flight: committed, with the answer lost.
type lostAnswers struct {
	*cluster.Node
	mu   sync.Mutex
	lose int
}

func (l *lostAnswers) Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error) {
	r, err := l.Node.Apply(ctx, c)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := c.(*fsm.ShipAllocate); ok && err == nil && l.lose > 0 {
		l.lose--
		return nil, cluster.ErrUnknownOutcome
	}
	return r, err
}

// An allocation sent again with its request_id gets the ship it got; one
// whose answer was lost inside the cluster is asked again with it, so the
// client gets its ship and no other ship is taken.
func TestAllocateRequestID(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	tc.readyFleet(4)
	alloc := func(url, body string) fsm.Ship {
		t.Helper()
		resp, err := tc.client.Post(url+"/v1/allocate", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Ship fsm.Ship }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, %v", body, resp.StatusCode, err)
		}
		return out.Ship
	}
	first := alloc(tc.url, `{"fleet": "tiny", "request_id": "match-1"}`)
	if again := alloc(tc.url, `{"fleet": "tiny", "request_id": "match-1"}`); again.ID != first.ID {
		t.Fatalf("match-1 got %s, then %s", first.ID, again.ID)
	}
	if other := alloc(tc.url, `{"fleet": "tiny", "request_id": "match-2"}`); other.ID == first.ID {
		t.Fatalf("match-2 got match-1's ship %s", other.ID)
	}

	lossy := &lostAnswers{Node: tc.node, lose: 1}
	srv := httptest.NewServer(web.New(lossy, web.Options{Logger: testLogger()}).Handler())
	defer srv.Close()
	got := alloc(srv.URL, `{"fleet": "tiny", "request_id": "match-3"}`)
	lossy.mu.Lock()
	left := lossy.lose
	lossy.mu.Unlock()
	if left != 0 || got.State != fsm.ShipAllocated {
		t.Fatalf("the answer was not lost (%d left) or the ship is %s", left, got.State)
	}
	var ships []fsm.Ship
	tc.doJSON(http.MethodGet, "/v1/ships?fleet=tiny&state=allocated&consistent=true", nil, http.StatusOK, &ships)
	if len(ships) != 3 {
		t.Fatalf("%d ships allocated, want 3 (match-1, match-2, match-3 once)", len(ships))
	}
	// Without a request_id a lost answer is the client's to handle.
	lossy.mu.Lock()
	lossy.lose = 1
	lossy.mu.Unlock()
	resp2, err := http.Post(srv.URL+"/v1/allocate", "application/json", strings.NewReader(`{"fleet": "tiny"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a lost answer without request_id: status %d, want 503", resp2.StatusCode)
	}
}
