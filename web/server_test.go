package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/web"
)

func TestErrorShapeForRoutes(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/v1/nope", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/nope/at/all", http.StatusNotFound, "not_found"},
		{http.MethodPost, "/v1/ships-that-do-not-exist", http.StatusNotFound, "not_found"},
		{http.MethodDelete, "/v1/status", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodPost, "/v1/blueprints", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodPost, "/v1/blueprints/x", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodPut, "/healthz", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodPost, "/v1/kv/a", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodPut, "/v1/nodes/n1", http.StatusMethodNotAllowed, "method_not_allowed"},
	} {
		resp, body := tc.do(c.method, c.path, nil)
		checkError(t, c.method+" "+c.path, resp, body, c.status, c.code, "")
	}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	var h map[string]any
	tc.doJSON(http.MethodGet, "/healthz", nil, http.StatusOK, &h)
	if h["status"] != "ok" || h["leader"] != tc.name || h["node"] != tc.name {
		t.Errorf("healthz = %v, want status ok, leader and node %s", h, tc.name)
	}
	if idx, _ := h["index"].(float64); idx < 1 {
		t.Errorf("healthz index = %v, want > 0", h["index"])
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	for _, q := range []string{"", "?consistent=true"} {
		var st statusOut
		resp := tc.doJSON(http.MethodGet, "/v1/status"+q, nil, http.StatusOK, &st)
		if st.Leader != tc.name || st.Node != tc.name {
			t.Errorf("status%s: leader %q node %q, want %q", q, st.Leader, st.Node, tc.name)
		}
		if st.Term < 1 {
			t.Errorf("status%s: term %d, want >= 1", q, st.Term)
		}
		if st.Index < 1 || st.Index != index(t, resp) {
			t.Errorf("status%s: index %d, X-Armada-Index %d; want equal and > 0", q, st.Index, index(t, resp))
		}
		if st.ClusterID == "" {
			t.Errorf("status%s: no cluster_id", q)
		}
		if len(st.Nodes) != 1 || st.Nodes[0].Name != tc.name {
			t.Errorf("status%s: nodes %+v, want just %s", q, st.Nodes, tc.name)
		}
	}
}

// checkSelf checks the record of the test node against what it was started
// with.
func checkSelf(t *testing.T, tc *testCluster, n *fsm.Node) {
	t.Helper()
	if n.Name != tc.name || n.Status != fsm.NodeAlive || n.Role != fsm.RoleVoter {
		t.Errorf("node %s: status %q role %q, want %s alive voter", n.Name, n.Status, n.Role, tc.name)
	}
	if n.Capacity != testCapacity {
		t.Errorf("node capacity %+v, want %+v (what Start was given)", n.Capacity, testCapacity)
	}
	if n.Allocated != (fsm.Resources{}) || n.Ships != 0 || n.Drain {
		t.Errorf("idle node has allocated %+v, ships %d, drain %v", n.Allocated, n.Ships, n.Drain)
	}
	if !n.Server || !n.Worker {
		t.Errorf("role both should be server and worker: server %v worker %v", n.Server, n.Worker)
	}
	if n.HTTPAddr != tc.addr {
		t.Errorf("http_addr %q, want %q", n.HTTPAddr, tc.addr)
	}
	if n.Address != "127.0.0.1" {
		t.Errorf("address %q, want 127.0.0.1", n.Address)
	}
	// Bound to port 0: the advertised addresses must carry the real ports.
	for what, addr := range map[string]string{"gossip_addr": n.GossipAddr, "raft_addr": n.RaftAddr} {
		host, port, err := net.SplitHostPort(addr)
		if p, _ := strconv.Atoi(port); err != nil || host != "127.0.0.1" || p == 0 {
			t.Errorf("%s %q: want 127.0.0.1 and the port actually bound", what, addr)
		}
	}
	if n.Version != "test" {
		t.Errorf("version %q, want test", n.Version)
	}
}

func TestNodes(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)

	var nodes []*fsm.Node
	resp := tc.doJSON(http.MethodGet, "/v1/nodes", nil, http.StatusOK, &nodes)
	index(t, resp)
	if len(nodes) != 1 {
		t.Fatalf("nodes = %d, want 1", len(nodes))
	}
	checkSelf(t, tc, nodes[0])

	var n fsm.Node
	resp = tc.doJSON(http.MethodGet, "/v1/nodes/"+tc.name+"?consistent=true", nil, http.StatusOK, &n)
	index(t, resp)
	checkSelf(t, tc, &n)

	// The gossip and Raft addresses advertised really are this node's.
	if conf := tc.node.RaftStats()["latest_configuration"]; !strings.Contains(conf, "Address:"+n.RaftAddr+"}") {
		t.Errorf("raft_addr %s is not in the Raft configuration %s", n.RaftAddr, conf)
	}
	if conn, err := net.Dial("tcp", n.GossipAddr); err != nil {
		t.Errorf("gossip_addr %s does not answer: %v", n.GossipAddr, err)
	} else {
		conn.Close()
	}

	// Every field SPEC lists is there, empty or not (this node has no labels).
	var raw map[string]any
	tc.doJSON(http.MethodGet, "/v1/nodes/"+tc.name, nil, http.StatusOK, &raw)
	for _, f := range []string{"name", "address", "role", "status", "drain", "labels", "capacity", "allocated", "ships"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("GET /v1/nodes/%s has no %q: %v", tc.name, f, raw)
		}
	}

	resp, body := tc.do(http.MethodGet, "/v1/nodes/ghost", nil)
	checkError(t, "GET /v1/nodes/ghost", resp, body, http.StatusNotFound, "not_found", "name")
	index(t, resp)
}

// metricValue finds "name{labels} value" (labels as Prometheus writes
// them, sorted) in a text exposition.
func metricValue(text, series string) (float64, bool) {
	for line := range strings.SplitSeq(text, "\n") {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	var kv map[string]any
	tc.doJSON(http.MethodPut, "/v1/kv/metrics/probe", []byte("x"), http.StatusOK, &kv)
	putIndex := kv["modify_index"].(float64)

	resp, body := tc.do(http.MethodGet, "/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("metrics content type %q", ct)
	}
	text := string(body)
	atLeast := map[string]float64{
		"armada_raft_term":                      1,
		"armada_raft_commit_index":              putIndex,
		"armada_fsm_index":                      putIndex,
		"armada_raft_state":                     2, // leader
		"armada_raft_voters":                    1,
		`armada_gossip_members{status="alive"}`: 1,
		// KVPut is command type 1.
		`armada_apply_duration_seconds_count{type="1"}`:                                        1,
		`armada_http_request_duration_seconds_count{code="200",method="PUT",route="/v1/kv/*"}`: 1,
		`armada_http_request_duration_seconds_count{code="200",method="GET",route="/healthz"}`: 1,
	}
	for series, min := range atLeast {
		v, ok := metricValue(text, series)
		if !ok {
			t.Errorf("metrics: no %s", series)
			continue
		}
		if v < min {
			t.Errorf("metrics: %s = %v, want >= %v", series, v, min)
		}
	}
	exact := map[string]float64{
		`armada_gossip_members{status="alive"}`:   1,
		`armada_gossip_members{status="dead"}`:    0,
		`armada_gossip_members{status="suspect"}`: 0,
		`armada_gossip_members{status="left"}`:    0,
		"armada_raft_state":                       2,
		"armada_raft_nonvoters":                   0,
	}
	for series, want := range exact {
		if v, ok := metricValue(text, series); !ok || v != want {
			t.Errorf("metrics: %s = %v (found %v), want %v", series, v, ok, want)
		}
	}
	if !regexp.MustCompile(`(?m)^armada_apply_duration_seconds_bucket\{type="1",le="[^"]+"\} `).MatchString(text) {
		t.Error("metrics: no armada_apply_duration_seconds buckets for KVPut")
	}
	if !strings.Contains(text, "# TYPE armada_http_request_duration_seconds histogram") {
		t.Error("metrics: armada_http_request_duration_seconds is not a histogram")
	}
}

func TestUI(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)

	resp, _ := tc.do(http.MethodGet, "/", nil)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /: %d Location %q, want 302 to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = tc.do(http.MethodGet, "/ui", nil)
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d Location %q, want a redirect to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := tc.do(http.MethodGet, "/ui/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/: %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET /ui/: content type %q, want text/html", ct)
	}
	if !strings.Contains(strings.ToLower(string(body)), "<html") || !strings.Contains(string(body), "<title>Armada</title>") {
		t.Errorf("GET /ui/ is not the Armada page: %.200s", body)
	}
	resp, _ = tc.do(http.MethodGet, "/ui/index.html", nil)
	if resp.StatusCode/100 == 5 {
		t.Errorf("GET /ui/index.html: %d", resp.StatusCode)
	}
}

// fakeCluster serves the API from a local state with no Raft behind it,
// to drive the error paths a healthy single node never takes.
type fakeCluster struct {
	st *fsm.State

	mu       sync.Mutex
	applyErr error
	readErr  error
}

func (f *fakeCluster) Name() string                { return "fake" }
func (f *fakeCluster) Leader() string              { return "" }
func (f *fakeCluster) Term() uint64                { return 7 }
func (f *fakeCluster) State() *fsm.State           { return f.st }
func (f *fakeCluster) Leave(context.Context) error { return nil }

func (f *fakeCluster) Restore(context.Context, io.Reader) (uint64, error) {
	return 0, errors.New("fake cluster: no restore")
}

func (f *fakeCluster) Apply(context.Context, fsm.Command) (*fsm.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return nil, f.applyErr
}

func (f *fakeCluster) ReadIndex(context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return 0, f.readErr
}

func (f *fakeCluster) fail(apply, read error) {
	f.mu.Lock()
	f.applyErr, f.readErr = apply, read
	f.mu.Unlock()
}

func newFake(t *testing.T, f *fakeCluster) *testCluster {
	t.Helper()
	st, err := fsm.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	f.st = st
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: web.New(f, web.Options{Logger: testLogger()}).Handler()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		st.Close()
	})
	return &testCluster{t: t, name: "fake", addr: ln.Addr().String(), url: "http://" + ln.Addr().String(), client: &http.Client{}}
}

// TestHealthzWithoutLeader: 503 while no leader is known, and like every
// non-2xx answer it carries the error object (the extra fields are fine:
// load balancers only look at the status).
func TestHealthzWithoutLeader(t *testing.T) {
	t.Parallel()
	tc := newFake(t, &fakeCluster{})
	resp, body := tc.do(http.MethodGet, "/healthz", nil)
	var h struct {
		Status string  `json:"status"`
		Error  *apiErr `json:"error"`
	}
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(body, &h) != nil || h.Status != "no leader" {
		t.Errorf("healthz without a leader: %d %s, want 503 no leader", resp.StatusCode, body)
	}
	if h.Error == nil || h.Error.Code != "no_leader" || h.Error.Message == "" {
		t.Errorf("healthz 503 has no {\"error\":{\"code\":\"no_leader\",...}}: %s", body)
	}
}

// TestClusterErrorsMapToStatus drives the failures of a write or a
// consistent read that a healthy single node never produces.
func TestClusterErrorsMapToStatus(t *testing.T) {
	t.Parallel()
	f := &fakeCluster{}
	tc := newFake(t, f)

	// No cluster key yet: a blueprint with secrets cannot be sealed.
	resp, body := tc.do(http.MethodPut, "/v1/blueprints/arena", []byte(arenaYAML))
	checkError(t, "PUT blueprint before the cluster key", resp, body, http.StatusServiceUnavailable, "not_ready", "secrets")

	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{cluster.ErrNoLeader, http.StatusServiceUnavailable, "no_leader"},
		{fmt.Errorf("%w: leader n2 not known to gossip yet", cluster.ErrNoLeader), http.StatusServiceUnavailable, "no_leader"},
		{cluster.ErrUnknownOutcome, http.StatusServiceUnavailable, "unknown_outcome"},
		{context.DeadlineExceeded, http.StatusGatewayTimeout, "timeout"},
		{&fsm.Error{Code: fsm.ErrConflict, Field: "cas", Message: "stale"}, http.StatusConflict, "conflict"},
		{errors.New("disk on fire"), http.StatusInternalServerError, "internal"},
	} {
		f.fail(c.err, nil)
		field := ""
		if c.status == http.StatusConflict {
			field = "cas"
		}
		resp, body = tc.do(http.MethodPut, "/v1/kv/k", []byte("v"))
		checkError(t, "PUT kv with apply error "+c.err.Error(), resp, body, c.status, c.code, field)
		resp, body = tc.do(http.MethodDelete, "/v1/kv/k", nil)
		checkError(t, "DELETE kv with apply error "+c.err.Error(), resp, body, c.status, c.code, field)
		resp, body = tc.do(http.MethodDelete, "/v1/blueprints/arena", nil)
		checkError(t, "DELETE blueprint with apply error "+c.err.Error(), resp, body, c.status, c.code, field)
		resp, body = tc.do(http.MethodPut, "/v1/blueprints/arena", []byte(minimal))
		checkError(t, "PUT blueprint with apply error "+c.err.Error(), resp, body, c.status, c.code, field)
	}

	f.fail(nil, cluster.ErrNoLeader)
	for _, p := range []string{"/v1/status", "/v1/nodes", "/v1/kv/k", "/v1/blueprints"} {
		resp, body = tc.do(http.MethodGet, p+"?consistent=true", nil)
		checkError(t, "consistent GET "+p+" without a leader", resp, body, http.StatusServiceUnavailable, "no_leader", "")
	}
	// A stale read is still served locally.
	resp, body = tc.do(http.MethodGet, "/v1/status", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("local read without a leader: %d %s", resp.StatusCode, body)
	}
}
