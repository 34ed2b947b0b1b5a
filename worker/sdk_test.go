package worker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/sdk"
)

// checkedBlueprint stores blueprint name (a sleeper with one port "web")
// with health check h.
func (h *harness) checkedBlueprint(name string, hc *fsm.Health) {
	h.t.Helper()
	put, err := fsm.PrepareBlueprint(h.key, &fsm.Blueprint{
		Name: name, Unit: sleeper(), Resources: fsm.Resources{CPUMHz: 100, MemoryMB: 64},
		Ports: []fsm.Port{{Name: "web"}}, Health: hc,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.ok(put)
}

// waitReason waits until ship id is in state with a reason containing want.
func (h *harness) waitReason(id, state, want string) *fsm.Ship {
	h.t.Helper()
	var s *fsm.Ship
	eventually(h.t, 10*time.Second, func() bool {
		h.view(func(v *fsm.View) { s, _ = v.Ship(id) })
		return s != nil && s.State == state && strings.Contains(s.Reason, want)
	})
	return s
}

// An http check: the ship is ready only once its port answers 2xx, and
// failed (and stopped) after `failures` bad answers in a row.
func TestHealthHTTP(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	port := freeTestPort(t)
	h.checkedBlueprint("web", &fsm.Health{Type: "http", Port: "web", Path: "/healthz",
		Interval: fsm.Duration(100 * time.Millisecond), Timeout: fsm.Duration(100 * time.Millisecond), Failures: 3})
	d := h.driver("")
	h.run(h.worker(nil, d, nil))
	id := h.place("", "web", "n1", port)

	h.waitReason(id, fsm.ShipStarting, "connection refused")
	var status atomic.Int32
	status.Store(http.StatusOK)
	var hits atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			t.Errorf("probe asked for %s", r.URL.Path)
		}
		hits.Add(1)
		w.WriteHeader(int(status.Load()))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	h.waitShip(id, fsm.ShipReady)

	// Two failures are not enough to fail the ship.
	status.Store(http.StatusInternalServerError)
	at := hits.Load()
	eventually(t, 5*time.Second, func() bool { return hits.Load() >= at+2 })
	status.Store(http.StatusOK)
	eventually(t, 5*time.Second, func() bool { return hits.Load() >= at+4 })
	if s := h.ship(id); s.State != fsm.ShipReady {
		t.Fatalf("ship after 2 failures: %+v", s)
	}
	status.Store(http.StatusServiceUnavailable)
	s := h.waitReason(id, fsm.ShipFailed, "health check failed 3 times in a row: GET /healthz: status 503")
	h.waitGone(d, id)
	t.Logf("failed: %s", s.Reason)
}

// A tcp check passes when the port accepts connections.
func TestHealthTCP(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	port := freeTestPort(t)
	h.checkedBlueprint("tcp", &fsm.Health{Type: "tcp", Port: "web",
		Interval: fsm.Duration(100 * time.Millisecond), Timeout: fsm.Duration(100 * time.Millisecond), Failures: 2})
	d := h.driver("")
	h.run(h.worker(nil, d, nil))
	id := h.place("", "tcp", "n1", port)
	h.waitReason(id, fsm.ShipStarting, "connect 127.0.0.1:"+strconv.Itoa(port))
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	h.waitShip(id, fsm.ShipReady)
	ln.Close()
	h.waitReason(id, fsm.ShipFailed, "health check failed 2 times in a row")
	h.waitGone(d, id)
}

// A ship that never passes its check fails after the start grace.
func TestHealthStartGrace(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	port := freeTestPort(t)
	h.checkedBlueprint("tcp", &fsm.Health{Type: "tcp", Port: "web",
		Interval: fsm.Duration(100 * time.Millisecond), Timeout: fsm.Duration(100 * time.Millisecond), Failures: 2})
	d := h.driver("")
	h.run(h.worker(nil, d, func(c *Config) { c.HealthGrace = time.Second }))
	id := h.place("", "tcp", "n1", port)
	h.waitReason(id, fsm.ShipStarting, "connection refused")
	s := h.waitReason(id, fsm.ShipFailed, "not healthy within 1s of starting: connect 127.0.0.1:")
	h.waitGone(d, id)
	if !strings.Contains(s.Reason, "connection refused") {
		t.Fatalf("reason %q", s.Reason)
	}
}

// sdkWorld runs a worker with its SDK endpoint and a ship whose health
// type is sdk; it returns the ship's SDK client.
func sdkWorld(t *testing.T, failures int) (*harness, Driver, *Worker, *sdk.Client, string) {
	h := newHarness(t)
	h.checkedBlueprint("game", &fsm.Health{Type: "sdk", Interval: fsm.Duration(100 * time.Millisecond),
		Timeout: fsm.Duration(100 * time.Millisecond), Failures: failures})
	h.fleet("arena", "game", 1)
	d := h.driver("")
	var w *Worker
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { w.SDK().ServeHTTP(rw, r) }))
	t.Cleanup(srv.Close)
	w = h.worker(nil, d, func(c *Config) { c.SDKAddr = srv.URL })
	h.run(w)
	id := h.place("arena", "game", "n1", 20000)
	var key []byte
	h.view(func(v *fsm.View) { key = v.SecretKey() })
	c, err := sdk.New(srv.URL, id, SDKToken(key, id))
	if err != nil {
		t.Fatal(err)
	}
	return h, d, w, c, id
}

// A ship with an sdk check is ready once it calls /ready, stays ready on
// heartbeats, and fails when they stop.
func TestSDKReadyHeartbeatAndMissedHeartbeats(t *testing.T) {
	t.Parallel()
	h, d, _, c, id := sdkWorld(t, 5)
	ctx := context.Background()
	if env := h.procEnv(d, id); env["ARMADA_SDK_ADDR"] == "" || len(env["ARMADA_SDK_TOKEN"]) != 32 {
		t.Fatalf("ship env has no ARMADA_SDK_ADDR or ARMADA_SDK_TOKEN: %v", env)
	}
	h.waitReason(id, fsm.ShipStarting, "waiting for the ship to call /ready")
	beat, stopBeat := context.WithCancel(ctx)
	go c.Heartbeat(beat, 50*time.Millisecond)
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	h.waitShip(id, fsm.ShipReady)
	// Heartbeats keep it ready well past failures × interval (500 ms).
	time.Sleep(time.Second) // a span of time is the point here
	if s := h.ship(id); s.State != fsm.ShipReady {
		t.Fatalf("ship with heartbeats: %+v", s)
	}
	stopBeat()
	h.waitReason(id, fsm.ShipFailed, "no SDK heartbeat")
	h.waitGone(d, id)
}

// A ship that uses nothing but its ARMADA_SDK_ADDR reaches the SDK: the
// URL carries its id and token. A wrong token in it is refused, and so is
// a path that is not a ship's.
func TestSDKShipURL(t *testing.T) {
	t.Parallel()
	h, d, _, _, id := sdkWorld(t, 5)
	addr := h.procEnv(d, id)["ARMADA_SDK_ADDR"]
	call := func(method, u, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, u, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	root, _, ok := strings.Cut(addr, "/ships/"+id+"/")
	if !ok {
		t.Fatalf("ARMADA_SDK_ADDR %q is not the ship's own URL", addr)
	}
	if code := call("POST", root+"/ships/"+id+"/0123456789abcdef0123456789abcdef/ready", ""); code != http.StatusUnauthorized {
		t.Fatalf("wrong token in the URL: %d", code)
	}
	if code := call("POST", root+"/ships/"+id+"/ready", ""); code != http.StatusNotFound {
		t.Fatalf("URL without a token: %d", code)
	}
	if s := h.ship(id); s.State == fsm.ShipReady {
		t.Fatalf("refused calls made the ship ready: %+v", s)
	}
	if code := call("POST", addr+"/ready", ""); code != http.StatusOK {
		t.Fatalf("POST $ARMADA_SDK_ADDR/ready: %d", code)
	}
	h.waitShip(id, fsm.ShipReady)
	if code := call("PUT", addr+"/labels/map%2Fname", "dust"); code != http.StatusOK {
		t.Fatalf("PUT $ARMADA_SDK_ADDR/labels/map%%2Fname: %d", code)
	}
	if s := h.ship(id); s.Labels["map/name"] != "dust" {
		t.Fatalf("label through the ship's URL: %v", s.Labels)
	}
}

// procEnv reads a running ship's environment from /proc.
func (h *harness) procEnv(d Driver, id string) map[string]string {
	h.t.Helper()
	st := h.waitProc(d, id, ProcRunning)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/environ")
	if err != nil {
		h.t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// The SDK's calls on the ship's record: allocate, labels, watch, reserve,
// shutdown; and the errors a ship gets.
func TestSDKCalls(t *testing.T) {
	t.Parallel()
	h, d, w, c, id := sdkWorld(t, 100)
	ctx := context.Background()
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	go c.Heartbeat(t.Context(), 50*time.Millisecond)
	h.waitShip(id, fsm.ShipReady)

	seen := make(chan *sdk.Ship, 100)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go c.Watch(wctx, func(s *sdk.Ship) bool { seen <- s; return true })
	waitSeen := func(what string, ok func(*sdk.Ship) bool) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case s := <-seen:
				if ok(s) {
					return
				}
			case <-timeout:
				t.Fatalf("watch never saw %s", what)
			}
		}
	}
	waitSeen("ready", func(s *sdk.Ship) bool { return s.State == fsm.ShipReady })

	s, err := c.SetLabel(ctx, "players", "4")
	if err != nil || s.Labels["players"] != "4" {
		t.Fatalf("label: %+v %v", s, err)
	}
	waitSeen("the label", func(s *sdk.Ship) bool { return s.Labels["players"] == "4" })
	var e *sdk.Error
	if _, err := c.SetLabel(ctx, "bad key!", "x"); !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Field != "labels.bad key!" {
		t.Fatalf("bad label: %v", err)
	}
	if _, err := c.Reserve(ctx, 0); !errors.As(err, &e) || e.Field != "seconds" {
		t.Fatalf("reserve 0: %v", err)
	}
	s, err = c.Reserve(ctx, 30*time.Second)
	if err != nil || s.State != fsm.ShipReserved || s.ReservedUntil == 0 {
		t.Fatalf("reserve: %+v %v", s, err)
	}
	s, err = c.Allocate(ctx)
	if err != nil || s.State != fsm.ShipAllocated {
		t.Fatalf("allocate: %+v %v", s, err)
	}
	waitSeen("allocated", func(s *sdk.Ship) bool { return s.State == fsm.ShipAllocated })
	// Heartbeats and process runs do not undo the allocation.
	h.reconcile(w)
	if s := h.ship(id); s.State != fsm.ShipAllocated {
		t.Fatalf("after a pass: %+v", s)
	}

	// Another ship's id without its token, an unknown ship, or a ship of
	// another node, is refused.
	var key []byte
	h.view(func(v *fsm.View) { key = v.SecretKey() })
	h.ok(&fsm.NodeUpsert{Node: nodeSpec("n2", fsm.NodeAlive)})
	h.ok(&fsm.NodeReport{Name: "n2", PortsRange: testRange})
	elsewhere := h.place("", "game", "n2", 20001)
	impostor, _ := sdk.New(c.Addr(), elsewhere, SDKToken(key, id)) // the token of another ship
	if _, err := impostor.Ship(ctx); !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Field != "token" {
		t.Fatalf("a ship with another's token: %v", err)
	}
	other, _ := sdk.New(strings.TrimPrefix(c.Addr(), "http://"), "nope", SDKToken(key, "nope"))
	if _, err := other.Ship(ctx); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Fatalf("unknown ship: %v", err)
	}
	resp, err := http.Post(c.Addr()+"/shutdown?ship="+id, "", nil) // a web page's form post
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a call without headers answered %d", resp.StatusCode)
	}
	far, _ := sdk.New(c.Addr(), elsewhere, SDKToken(key, elsewhere))
	if _, err := far.Allocate(ctx); !errors.As(err, &e) || e.Status != http.StatusForbidden {
		t.Fatalf("ship of n2: %v", err)
	}

	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitSeen("stopping", func(s *sdk.Ship) bool { return s.Desired == fsm.DesireStop })
	h.waitShip(id, fsm.ShipStopped)
	h.waitGone(d, id)
	if s := h.ship(id); s.Reason != "shut down by the ship" {
		t.Fatalf("reason %q", s.Reason)
	}
}

// freeTestPort is a loopback port in testRange that nothing listens on
// and that no other test of this process got.
func freeTestPort(t *testing.T) int {
	t.Helper()
	testPorts.Lock()
	defer testPorts.Unlock()
	for p := 20050; p < 20100; p++ {
		if testPorts.used[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			ln.Close()
			testPorts.used[p] = true
			return p
		}
	}
	t.Fatal("no free port in 20050-20099")
	return 0
}

var testPorts = struct {
	sync.Mutex
	used map[int]bool
}{used: map[int]bool{}}
