package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/web"
)

// testCapacity is the capacity every test node reports.
var testCapacity = fsm.Resources{CPUMHz: 4000, MemoryMB: 8192}

// testCluster is a real single-node Armada cluster (Raft, gossip, BoltDB
// state) with the HTTP API served on a loopback port.
type testCluster struct {
	t      testing.TB
	name   string
	node   *cluster.Node
	url    string // http://127.0.0.1:port
	addr   string // 127.0.0.1:port
	client *http.Client
}

func testLogger() *slog.Logger {
	if os.Getenv("ARMADA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newCluster starts a single-node cluster and its API and waits until the
// node leads, the cluster key is replicated and the node's own record is in
// the state. Everything is torn down when the test ends.
func newCluster(t testing.TB) *testCluster {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen http: %v", err)
	}
	name := "n1"
	node, err := cluster.New(cluster.Config{
		Name:    name,
		DataDir: t.TempDir(),
		// Port 0 works for both: memberlist and Raft's TCP transport bind a
		// free port and advertise the one they bound (checked in
		// TestNodesAndStatus through the node record).
		GossipAddr: "127.0.0.1:0",
		RaftAddr:   "127.0.0.1:0",
		HTTPAddr:   ln.Addr().String(),
		Version:    "test",
		Logger:     testLogger(),
		// A single voter elects itself after one heartbeat timeout.
		HeartbeatTimeout:  200 * time.Millisecond,
		ProbeInterval:     200 * time.Millisecond,
		ReconcileInterval: 200 * time.Millisecond,
	})
	if err != nil {
		ln.Close()
		t.Fatalf("cluster.New: %v", err)
	}
	if err := node.Start(context.Background(), testCapacity); err != nil {
		ln.Close()
		t.Fatalf("node.Start: %v", err)
	}
	api := web.New(node, web.Options{Internal: node.InternalHandler(), Collector: node.Collector(), Logger: testLogger()})
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	tc := &testCluster{
		t: t, name: name, node: node, addr: ln.Addr().String(), url: "http://" + ln.Addr().String(),
		client: &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{MaxIdleConnsPerHost: 16},
		},
	}
	t.Cleanup(func() {
		srv.Close()
		<-served
		tc.client.CloseIdleConnections()
		if err := node.Shutdown(); err != nil {
			t.Errorf("node.Shutdown: %v", err)
		}
	})
	tc.waitReady()
	return tc
}

// waitReady polls until /healthz answers 200 (a leader is elected), the
// cluster is initialised (its id and secret key are written together by
// ClusterInit) and the leader has recorded this node as an alive voter.
func (tc *testCluster) waitReady() {
	tc.t.Helper()
	tc.eventually(15*time.Second, "cluster ready", func() error {
		resp, body := tc.tryDo(http.MethodGet, "/healthz", nil)
		if resp == nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %v %s", status(resp), body)
		}
		resp, body = tc.tryDo(http.MethodGet, "/v1/status", nil)
		if resp == nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status: %v %s", status(resp), body)
		}
		var st statusOut
		if err := json.Unmarshal(body, &st); err != nil {
			return err
		}
		if st.ClusterID == "" {
			return fmt.Errorf("cluster not initialised yet")
		}
		for _, n := range st.Nodes {
			if n.Name == tc.name && n.Status == fsm.NodeAlive && n.Role == fsm.RoleVoter {
				return nil
			}
		}
		return fmt.Errorf("own node record not written yet: %s", body)
	})
}

type statusOut struct {
	Leader    string      `json:"leader"`
	Term      uint64      `json:"term"`
	Index     uint64      `json:"index"`
	Node      string      `json:"node"`
	ClusterID string      `json:"cluster_id"`
	Nodes     []*fsm.Node `json:"nodes"`
}

func status(resp *http.Response) any {
	if resp == nil {
		return "no response"
	}
	return resp.StatusCode
}

// eventually polls fn every 20ms until it returns nil or timeout passes.
func (tc *testCluster) eventually(timeout time.Duration, what string, fn func() error) {
	tc.t.Helper()
	eventually(tc.t, timeout, what, fn)
}

func eventually(t testing.TB, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tryDo sends a request and returns the response and its whole body, or a
// nil response on a transport error.
func (tc *testCluster) tryDo(method, path string, body []byte, hdr ...string) (*http.Response, []byte) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, tc.url+path, rd)
	if err != nil {
		tc.t.Fatalf("new request: %v", err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := tc.client.Do(req)
	if err != nil {
		return nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, []byte(err.Error())
	}
	return resp, data
}

// do sends a request; a transport error fails the test.
func (tc *testCluster) do(method, path string, body []byte, hdr ...string) (*http.Response, []byte) {
	tc.t.Helper()
	resp, data := tc.tryDo(method, path, body, hdr...)
	if resp == nil {
		tc.t.Fatalf("%s %s: %s", method, path, data)
	}
	return resp, data
}

// doJSON sends a request, expects want and decodes the body into out.
func (tc *testCluster) doJSON(method, path string, body []byte, want int, out any) *http.Response {
	tc.t.Helper()
	resp, data := tc.do(method, path, body)
	if resp.StatusCode != want {
		tc.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			tc.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	return resp
}

// apiErr is the body of every non-2xx answer.
type apiErr struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

// checkError asserts that a response is the API's error shape with the
// given status, code (if not empty) and field (exactly; "" means none).
func checkError(t testing.TB, what string, resp *http.Response, body []byte, wantStatus int, wantCode, wantField string) apiErr {
	t.Helper()
	if resp.StatusCode != wantStatus {
		t.Errorf("%s: status %d, want %d; body %s", what, resp.StatusCode, wantStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: content type %q, want application/json", what, ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Errorf("%s: error body is not a JSON object: %v: %s", what, err, body)
		return apiErr{}
	}
	if len(top) != 1 || top["error"] == nil {
		t.Errorf("%s: error body must be {\"error\":{...}} only, got %s", what, body)
		return apiErr{}
	}
	var fields map[string]any
	if err := json.Unmarshal(top["error"], &fields); err != nil {
		t.Errorf("%s: error is not an object: %s", what, body)
		return apiErr{}
	}
	for k := range fields {
		if k != "code" && k != "message" && k != "field" {
			t.Errorf("%s: unexpected key %q in error %s", what, k, body)
		}
	}
	var e apiErr
	if err := json.Unmarshal(top["error"], &e); err != nil {
		t.Errorf("%s: error has wrong types: %v: %s", what, err, body)
		return apiErr{}
	}
	if e.Code == "" || e.Message == "" {
		t.Errorf("%s: error code and message must be set: %s", what, body)
	}
	if wantCode != "" && e.Code != wantCode {
		t.Errorf("%s: code %q, want %q; body %s", what, e.Code, wantCode, body)
	}
	if e.Field != wantField {
		t.Errorf("%s: field %q, want %q; body %s", what, e.Field, wantField, body)
	}
	return e
}

// index returns the X-Armada-Index header of a read, failing if absent.
func index(t testing.TB, resp *http.Response) uint64 {
	t.Helper()
	h := resp.Header.Get("X-Armada-Index")
	if h == "" {
		t.Fatalf("%s %s: no X-Armada-Index header", resp.Request.Method, resp.Request.URL.Path)
	}
	n, err := strconv.ParseUint(h, 10, 64)
	if err != nil {
		t.Fatalf("X-Armada-Index %q: %v", h, err)
	}
	return n
}

// stateIndex is the index GET /v1/status reports in X-Armada-Index.
func (tc *testCluster) stateIndex() uint64 {
	tc.t.Helper()
	resp, body := tc.do(http.MethodGet, "/v1/status", nil)
	if resp.StatusCode != http.StatusOK {
		tc.t.Fatalf("GET /v1/status: %d %s", resp.StatusCode, body)
	}
	return index(tc.t, resp)
}
