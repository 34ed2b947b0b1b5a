package web_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/web"
)

func TestShipCreateListGet(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)

	resp, body := tc.do(http.MethodGet, "/v1/ships", nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("GET /v1/ships on an empty cluster = %d %s, want []", resp.StatusCode, body)
	}
	index(t, resp)
	tc.putArenas()

	// One ship of the latest version, queued.
	var s fsm.Ship
	resp = tc.doJSON(http.MethodPost, "/v1/ships", []byte(`{"blueprint": "arena"}`), http.StatusCreated, &s)
	index(t, resp)
	if !strings.HasPrefix(s.ID, "arena-") || s.Fleet != "" || s.Blueprint != "arena" || s.Version != 2 || s.State != fsm.ShipQueued ||
		s.Desired != fsm.DesireRun || s.Node != "" || s.Created == 0 || s.Resources.CPUMHz != 500 {
		t.Errorf("POST /v1/ships = %+v", s)
	}
	// Every field SPEC lists is there, empty or not.
	var raw map[string]any
	tc.doJSON(http.MethodGet, "/v1/ships/"+s.ID, nil, http.StatusOK, &raw)
	for _, f := range []string{"id", "fleet", "blueprint", "version", "node", "state", "ports", "address", "labels", "created", "updated", "reason"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("GET /v1/ships/%s has no %q: %v", s.ID, f, raw)
		}
	}
	var v1 fsm.Ship
	tc.doJSON(http.MethodPost, "/v1/ships", []byte(`{"blueprint": "arena", "version": 1}`), http.StatusCreated, &v1)
	if v1.Version != 1 || v1.ID == s.ID {
		t.Errorf("POST version 1 = %+v", v1)
	}

	var got fsm.Ship
	resp = tc.doJSON(http.MethodGet, "/v1/ships/"+s.ID, nil, http.StatusOK, &got)
	index(t, resp)
	if got.ID != s.ID || got.State != fsm.ShipQueued {
		t.Errorf("GET ship = %+v", got)
	}
	resp, body = tc.do(http.MethodGet, "/v1/ships/ghost", nil)
	checkError(t, "GET /v1/ships/ghost", resp, body, http.StatusNotFound, "not_found", "id")

	// Fleet ships, one of them placed.
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte(arenaEUYAML), http.StatusOK, nil)
	res := tc.apply(&fsm.ShipCreate{Fleet: "arena-eu", Blueprint: "arena", Version: 1, Count: 2})
	placed := res.Ships[0].ID
	tc.placeShips(placed)

	ids := func(q string) []string {
		t.Helper()
		var list []fsm.Ship
		resp := tc.doJSON(http.MethodGet, "/v1/ships"+q, nil, http.StatusOK, &list)
		index(t, resp)
		out := []string{}
		for _, s := range list {
			out = append(out, s.ID)
		}
		return out
	}
	check := func(q string, want ...string) {
		t.Helper()
		got := ids(q)
		if want == nil {
			want = []string{}
		}
		if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
			t.Errorf("GET /v1/ships%s = %v, want %v", q, got, want)
		}
	}
	check("", s.ID, v1.ID, res.Ships[0].ID, res.Ships[1].ID)
	check("?fleet=arena-eu", res.Ships[0].ID, res.Ships[1].ID)
	check("?node="+tc.name, placed)
	check("?state=queued", s.ID, v1.ID, res.Ships[1].ID)
	check("?state=scheduled", placed)
	check("?fleet=arena-eu&state=queued", res.Ships[1].ID)
	check("?node=" + tc.name + "&state=queued")
	check("?fleet=ghost")
	check("?node=ghost")
	check("?consistent=true&state=scheduled", placed)

	var p fsm.Ship
	tc.doJSON(http.MethodGet, "/v1/ships/"+placed, nil, http.StatusOK, &p)
	if p.Node != tc.name || p.State != fsm.ShipScheduled || p.Ports["game"] != 20000 || p.Address == "" {
		t.Errorf("placed ship = %+v", p)
	}

	for _, bad := range []string{"running", "QUEUED", "x"} {
		resp, body := tc.do(http.MethodGet, "/v1/ships?state="+bad, nil)
		checkError(t, "state="+bad, resp, body, http.StatusBadRequest, "bad_request", "state")
	}

	// The node counts what its ships hold.
	var n fsm.Node
	tc.doJSON(http.MethodGet, "/v1/nodes/"+tc.name, nil, http.StatusOK, &n)
	if n.Ships != 1 || n.Allocated != (fsm.Resources{CPUMHz: 500, MemoryMB: 256}) || n.Capacity != testCapacity ||
		n.PortsRange != "20000-20999" || fmt.Sprint(n.UsedPorts) != "[20000]" {
		t.Errorf("node after a placement: ships %d allocated %+v capacity %+v ports %s used %v", n.Ships, n.Allocated, n.Capacity, n.PortsRange, n.UsedPorts)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestShipCreateRejects(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	tc.putArenas()
	for _, c := range []struct {
		name, body  string
		status      int
		code, field string
	}{
		{"no blueprint", `{}`, 400, "bad_request", "blueprint"},
		{"empty blueprint", `{"blueprint": ""}`, 400, "bad_request", "blueprint"},
		{"blueprint not a string", `{"blueprint": 7}`, 400, "bad_request", "blueprint"},
		{"unknown field", `{"blueprint": "arena", "count": 3}`, 400, "bad_request", "count"},
		{"empty body", ``, 400, "bad_request", fsm.FieldBody},
		{"not JSON", `blueprint: arena`, 400, "bad_request", fsm.FieldBody},
		{"unknown blueprint", `{"blueprint": "nope"}`, 422, "invalid", "blueprint"},
		{"bad blueprint name", `{"blueprint": "No Pe"}`, 422, "invalid", "blueprint"},
		{"unknown version", `{"blueprint": "arena", "version": 9}`, 422, "invalid", "version"},
		{"negative version", `{"blueprint": "arena", "version": -1}`, 422, "invalid", "version"},
	} {
		before := tc.stateIndex()
		resp, body := tc.do(http.MethodPost, "/v1/ships", []byte(c.body))
		checkError(t, c.name, resp, body, c.status, c.code, c.field)
		if after := tc.stateIndex(); after != before {
			t.Errorf("%s: a rejected POST wrote to the log: index %d -> %d", c.name, before, after)
		}
	}
	var list []fsm.Ship
	tc.doJSON(http.MethodGet, "/v1/ships", nil, http.StatusOK, &list)
	if len(list) != 0 {
		t.Errorf("ships after the rejections: %+v", list)
	}
}

func TestShipStop(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	tc.putArenas()
	var queued, placed fsm.Ship
	tc.doJSON(http.MethodPost, "/v1/ships", []byte(`{"blueprint": "arena"}`), http.StatusCreated, &queued)
	tc.doJSON(http.MethodPost, "/v1/ships", []byte(`{"blueprint": "arena"}`), http.StatusCreated, &placed)
	tc.placeShips(placed.ID)

	// A queued ship stops at once.
	var s fsm.Ship
	resp := tc.doJSON(http.MethodDelete, "/v1/ships/"+queued.ID, nil, http.StatusOK, &s)
	index(t, resp)
	if s.ID != queued.ID || s.State != fsm.ShipStopped || s.Desired != fsm.DesireStop || s.Reason != "stopped by an operator" {
		t.Errorf("DELETE queued ship = %+v", s)
	}
	// Again: the same ship, nothing written.
	before := tc.stateIndex()
	tc.doJSON(http.MethodDelete, "/v1/ships/"+queued.ID, nil, http.StatusOK, &s)
	if s.ID != queued.ID || s.State != fsm.ShipStopped {
		t.Errorf("DELETE stopped ship = %+v", s)
	}
	if after := tc.stateIndex(); after != before {
		t.Errorf("DELETE of a stopped ship wrote to the log: index %d -> %d", before, after)
	}

	// A placed ship stops through its worker.
	tc.doJSON(http.MethodDelete, "/v1/ships/"+placed.ID, nil, http.StatusOK, &s)
	if s.State != fsm.ShipStopping || s.Desired != fsm.DesireStop || s.Node != tc.name {
		t.Errorf("DELETE placed ship = %+v", s)
	}
	tc.doJSON(http.MethodDelete, "/v1/ships/"+placed.ID, nil, http.StatusOK, &s)
	if s.State != fsm.ShipStopping {
		t.Errorf("DELETE stopping ship = %+v", s)
	}
	tc.apply(&fsm.ShipReport{Node: tc.name, Reports: []fsm.Report{{Ship: placed.ID, State: fsm.ShipStopped}}})
	tc.doJSON(http.MethodDelete, "/v1/ships/"+placed.ID, nil, http.StatusOK, &s)
	if s.State != fsm.ShipStopped {
		t.Errorf("DELETE after the worker stopped it = %+v", s)
	}
	var n fsm.Node
	tc.doJSON(http.MethodGet, "/v1/nodes/"+tc.name, nil, http.StatusOK, &n)
	if n.Ships != 0 || n.Allocated != (fsm.Resources{}) || len(n.UsedPorts) != 0 {
		t.Errorf("node after its ship stopped: ships %d allocated %+v used ports %v", n.Ships, n.Allocated, n.UsedPorts)
	}

	resp, body := tc.do(http.MethodDelete, "/v1/ships/ghost", nil)
	checkError(t, "DELETE /v1/ships/ghost", resp, body, http.StatusNotFound, "not_found", "id")
}

func TestNodeDrain(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	var n fsm.Node
	resp := tc.doJSON(http.MethodPost, "/v1/nodes/"+tc.name+"/drain", []byte(`{"enable": true}`), http.StatusOK, &n)
	index(t, resp)
	if n.Name != tc.name || !n.Drain {
		t.Errorf("drain = %+v", n)
	}
	tc.doJSON(http.MethodGet, "/v1/nodes/"+tc.name, nil, http.StatusOK, &n)
	if !n.Drain {
		t.Errorf("GET after drain: drain false")
	}
	// Gossip does not undo the operator's drain.
	time.Sleep(500 * time.Millisecond)
	tc.doJSON(http.MethodGet, "/v1/nodes/"+tc.name, nil, http.StatusOK, &n)
	if !n.Drain {
		t.Errorf("drain lost after a reconcile")
	}
	tc.doJSON(http.MethodPost, "/v1/nodes/"+tc.name+"/drain", []byte(`{"enable": false}`), http.StatusOK, &n)
	if n.Drain {
		t.Errorf("undrain = %+v", n)
	}
	for _, c := range []struct {
		name, node, body string
		status           int
		code, field      string
	}{
		{"missing enable", tc.name, `{}`, 400, "bad_request", "enable"},
		{"enable a string", tc.name, `{"enable": "yes"}`, 400, "bad_request", "enable"},
		{"unknown field", tc.name, `{"enable": true, "force": true}`, 400, "bad_request", "force"},
		{"empty body", tc.name, ``, 400, "bad_request", fsm.FieldBody},
		{"unknown node", "ghost", `{"enable": true}`, 404, "not_found", "name"},
	} {
		resp, body := tc.do(http.MethodPost, "/v1/nodes/"+c.node+"/drain", []byte(c.body))
		checkError(t, c.name, resp, body, c.status, c.code, c.field)
	}
	tc.doJSON(http.MethodGet, "/v1/nodes/"+tc.name, nil, http.StatusOK, &n)
	if n.Drain {
		t.Errorf("a rejected drain changed the node")
	}
}

// dirLogs keeps each ship's log in dir/ID.log.
type dirLogs struct{ dir string }

func (d dirLogs) LogPath(id string) string { return filepath.Join(d.dir, id+".log") }

// renamed is a node's cluster under another name, for an API that
// believes it is another node.
type renamed struct {
	*cluster.Node
	name string
}

func (r renamed) Name() string { return r.name }

// newClusterWithLogs is newCluster with ship logs kept in a directory.
func newClusterWithLogs(t *testing.T) (*testCluster, dirLogs) {
	t.Helper()
	logs := dirLogs{t.TempDir()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen http: %v", err)
	}
	node, err := cluster.New(cluster.Config{
		Name: "n1", DataDir: t.TempDir(), GossipAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: ln.Addr().String(),
		Version: "test", Logger: testLogger(),
		HeartbeatTimeout: 200 * time.Millisecond, ProbeInterval: 200 * time.Millisecond, ReconcileInterval: 200 * time.Millisecond,
	})
	if err != nil {
		ln.Close()
		t.Fatalf("cluster.New: %v", err)
	}
	if err := node.Start(context.Background(), testCapacity); err != nil {
		ln.Close()
		t.Fatalf("node.Start: %v", err)
	}
	api := web.New(node, web.Options{Internal: node.InternalHandler(), Logger: testLogger(), Logs: logs})
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	tc := &testCluster{t: t, name: "n1", node: node, addr: ln.Addr().String(), url: "http://" + ln.Addr().String(),
		client: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		srv.Close()
		<-served
		tc.client.CloseIdleConnections()
		if err := node.Shutdown(); err != nil {
			t.Errorf("node.Shutdown: %v", err)
		}
	})
	tc.waitReady()
	return tc, logs
}

func TestShipLogs(t *testing.T) {
	t.Parallel()
	tc, logs := newClusterWithLogs(t)
	tc.putArenas()
	var s fsm.Ship
	tc.doJSON(http.MethodPost, "/v1/ships", []byte(`{"blueprint": "arena"}`), http.StatusCreated, &s)
	path := "/v1/ships/" + s.ID + "/logs"

	resp, body := tc.do(http.MethodGet, "/v1/ships/ghost/logs", nil)
	checkError(t, "logs of an unknown ship", resp, body, http.StatusNotFound, "not_found", "id")
	resp, body = tc.do(http.MethodGet, path, nil)
	checkError(t, "logs of a queued ship", resp, body, http.StatusConflict, "not_placed", "id")

	tc.placeShips(s.ID)
	resp, body = tc.do(http.MethodGet, path, nil)
	if e := checkError(t, "logs before the file exists", resp, body, http.StatusNotFound, "not_found", "id"); !strings.Contains(e.Message, "no logs yet") {
		t.Errorf("message %q, want no logs yet", e.Message)
	}

	file := logs.LogPath(s.ID)
	if err := os.WriteFile(file, []byte("one\ntwo\nthree\nfour\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	get := func(q string) string {
		t.Helper()
		resp, body := tc.do(http.MethodGet, path+q, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET logs%s: %d %s", q, resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("GET logs%s: content type %q", q, ct)
		}
		return string(body)
	}
	for q, want := range map[string]string{
		"":                     "one\ntwo\nthree\nfour\n",
		"?tail=2":              "three\nfour\n",
		"?tail=1":              "four\n",
		"?tail=4":              "one\ntwo\nthree\nfour\n",
		"?tail=10":             "one\ntwo\nthree\nfour\n",
		"?tail=0":              "",
		"?follow=false":        "one\ntwo\nthree\nfour\n",
		"?tail=2&follow=0":     "three\nfour\n",
		"?consistent=true":     "one\ntwo\nthree\nfour\n",
		"?tail=3&follow=FALSE": "two\nthree\nfour\n",
	} {
		if got := get(q); got != want {
			t.Errorf("GET logs%s = %q, want %q", q, got, want)
		}
	}
	// A last line without a newline is a line.
	if err := os.WriteFile(file, []byte("a\nb\nc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := get("?tail=2"); got != "b\nc" {
		t.Errorf("tail=2 of an unterminated file = %q", got)
	}
	for _, q := range []string{"?tail=-1", "?tail=x", "?tail=1.5"} {
		resp, body := tc.do(http.MethodGet, path+q, nil)
		checkError(t, q, resp, body, http.StatusBadRequest, "bad_request", "tail")
	}
	resp, body = tc.do(http.MethodGet, path+"?follow=maybe", nil)
	checkError(t, "follow=maybe", resp, body, http.StatusBadRequest, "bad_request", "follow")

	// Over a MiB: the last MiB at most, from a line's start.
	line := strings.Repeat("x", 99) + "\n"
	big := "first\n" + strings.Repeat(line, 11000) // 1.1 MB
	if err := os.WriteFile(file, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	got := get("")
	if len(got) > 1<<20 || len(got) < 1<<20-len(line) || !strings.HasPrefix(got, line) || !strings.HasSuffix(big, got) {
		t.Errorf("GET logs of a %d-byte file: %d bytes, starting %q", len(big), len(got), got[:min(len(got), 20)])
	}
	if got := get("?tail=3"); got != strings.Repeat(line, 3) {
		t.Errorf("tail=3 of a big file: %q", got)
	}

	// Through another node: the request is passed to the ship's node.
	other := httptest.NewServer(web.New(renamed{tc.node, "elsewhere"}, web.Options{Logger: testLogger()}).Handler())
	defer other.Close()
	if err := os.WriteFile(file, []byte("one\ntwo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(other.URL + path + "?tail=1")
	if err != nil {
		t.Fatal(err)
	}
	proxied, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(proxied) != "two\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
		resp.Header.Get("X-Armada-Node") != tc.name {
		t.Errorf("logs through another node: %d %q %v", resp.StatusCode, proxied, resp.Header)
	}
	// An error passes through too.
	resp, err = http.Get(other.URL + "/v1/ships/" + s.ID + "/logs?tail=x")
	if err != nil {
		t.Fatal(err)
	}
	proxied, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	checkError(t, "bad tail through another node", resp, proxied, http.StatusBadRequest, "bad_request", "tail")
	// A forwarded request never goes further.
	req, _ := http.NewRequest(http.MethodGet, other.URL+path, nil)
	req.Header.Set("X-Armada-Forwarded", "1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	proxied, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	checkError(t, "forwarded request on the wrong node", resp, proxied, http.StatusNotFound, "not_found", "id")
}

// TestShipLogsFollow: a followed log streams what is appended, directly
// and through another node, and ends when the ship has ended.
func TestShipLogsFollow(t *testing.T) {
	t.Parallel()
	tc, logs := newClusterWithLogs(t)
	tc.putArenas()
	var s fsm.Ship
	tc.doJSON(http.MethodPost, "/v1/ships", []byte(`{"blueprint": "arena"}`), http.StatusCreated, &s)
	tc.placeShips(s.ID)
	file := logs.LogPath(s.ID)
	if err := os.WriteFile(file, []byte("old-1\nold-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := httptest.NewServer(web.New(renamed{tc.node, "elsewhere"}, web.Options{Logger: testLogger()}).Handler())
	defer other.Close()

	type stream struct {
		lines chan string
		done  chan error
	}
	open := func(base string) stream {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/ships/"+s.ID+"/logs?follow=true&tail=1", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("follow: %d", resp.StatusCode)
		}
		st := stream{make(chan string, 100), make(chan error, 1)}
		go func() {
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				st.lines <- sc.Text()
			}
			st.done <- sc.Err()
		}()
		return st
	}
	next := func(what string, st stream) string {
		t.Helper()
		select {
		case l := <-st.lines:
			return l
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no line within 10s", what)
		}
		return ""
	}
	direct, proxied := open(tc.url), open(other.URL)
	for _, c := range []struct {
		name string
		st   stream
	}{{"direct", direct}, {"proxied", proxied}} {
		if l := next(c.name, c.st); l != "old-2" {
			t.Errorf("%s: first line %q, want old-2 (tail=1)", c.name, l)
		}
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 3 {
		fmt.Fprintf(f, "new-%d\n", i)
		for _, c := range []struct {
			name string
			st   stream
		}{{"direct", direct}, {"proxied", proxied}} {
			if l, want := next(c.name, c.st), fmt.Sprintf("new-%d", i); l != want {
				t.Errorf("%s: line %q, want %q", c.name, l, want)
			}
		}
	}
	// The ship stops: what it wrote last still arrives, then the stream ends.
	tc.doJSON(http.MethodDelete, "/v1/ships/"+s.ID, nil, http.StatusOK, nil)
	fmt.Fprintln(f, "bye")
	tc.apply(&fsm.ShipReport{Node: tc.name, Reports: []fsm.Report{{Ship: s.ID, State: fsm.ShipStopped}}})
	for _, c := range []struct {
		name string
		st   stream
	}{{"direct", direct}, {"proxied", proxied}} {
		if l := next(c.name, c.st); l != "bye" {
			t.Errorf("%s: last line %q, want bye", c.name, l)
		}
		select {
		case err := <-c.st.done:
			if err != nil {
				t.Errorf("%s: stream ended with %v", c.name, err)
			}
		case l := <-c.st.lines:
			t.Errorf("%s: unexpected line %q", c.name, l)
		case <-time.After(10 * time.Second):
			t.Errorf("%s: the stream did not end after the ship stopped", c.name)
		}
	}
}
