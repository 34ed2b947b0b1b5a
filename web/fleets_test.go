package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// arenaEUYAML is the fleet of the contract, over versions 1 and 2 of arena.
const arenaEUYAML = `name: arena-eu
replicas: 10
versions:
  - {blueprint: arena, version: 1, weight: 90}
  - {blueprint: arena, version: 2, weight: 10}
placement: {strategy: spread, constraints: [{label: region, op: "=", value: eu}]}
buffer: {ready: 5, min: 0, max: 100}
update: {max_parallel: 1, drain_lb: true, auto_rollback: true}
`

// fleetOut is a fleet as GET /v1/fleets answers it.
type fleetOut struct {
	fsm.Fleet
	Status fleetStatus `json:"status"`
}

type fleetStatus struct {
	Desired, Total, Queued, Scheduled, Starting, Ready, Allocated, Stopping, Stopped, Failed, Lost int
	Versions                                                                                       []versionStatus
}

type versionStatus struct {
	Blueprint                              string
	Version, Weight, Desired, Ships, Ready int
}

// apply sends a command straight to the node (the leader), as the
// scheduler and the workers would.
func (tc *testCluster) apply(cmd fsm.Command) *fsm.Result {
	tc.t.Helper()
	res, err := tc.node.Apply(context.Background(), cmd)
	if err != nil {
		tc.t.Fatalf("apply %T: %v", cmd, err)
	}
	return res
}

// putArenas stores arena version 1 and version 2.
func (tc *testCluster) putArenas() {
	tc.t.Helper()
	tc.doJSON(http.MethodPut, "/v1/blueprints/arena", []byte(arenaYAML), http.StatusOK, nil)
	var bp fsm.Blueprint
	tc.doJSON(http.MethodPut, "/v1/blueprints/arena", []byte(strings.Replace(arenaYAML, "MODE: ranked", "MODE: casual", 1)), http.StatusOK, &bp)
	if bp.Version != 2 {
		tc.t.Fatalf("arena changed: version %d, want 2", bp.Version)
	}
}

// placeShips puts queued ships on this node with host ports from 20000 on,
// as the scheduler would.
func (tc *testCluster) placeShips(ids ...string) {
	tc.t.Helper()
	tc.apply(&fsm.NodeReport{Name: tc.name, PortsRange: "20000-20999"})
	var places []fsm.Place
	for i, id := range ids {
		places = append(places, fsm.Place{Ship: id, Node: tc.name, Ports: []int{20000 + i}})
	}
	if res := tc.apply(&fsm.ShipPlace{Places: places}); res.Count != len(ids) {
		tc.t.Fatalf("placed %d ships of %d", res.Count, len(ids))
	}
}

func TestFleetPutAndGet(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	tc.putArenas()

	// YAML.
	var f fsm.Fleet
	resp := tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte(arenaEUYAML), http.StatusOK, &f)
	if idx := index(t, resp); idx == 0 {
		t.Errorf("PUT: X-Armada-Index 0")
	}
	want := fsm.Fleet{
		Name: "arena-eu", Replicas: 10,
		Versions:  []fsm.FleetVersion{{Blueprint: "arena", Version: 1, Weight: 90}, {Blueprint: "arena", Version: 2, Weight: 10}},
		Placement: &fsm.Placement{Strategy: "spread", Constraints: []fsm.Constraint{{Label: "region", Op: "=", Value: "eu"}}},
		Buffer:    &fsm.Buffer{Ready: 5, Min: 0, Max: 100},
		Update:    &fsm.Update{MaxParallel: 1, DrainLB: true, AutoRollback: true},
	}
	if f.Generation != 1 || f.Created == 0 || f.Updated == 0 {
		t.Errorf("PUT: generation %d created %d updated %d, want 1 and times set", f.Generation, f.Created, f.Updated)
	}
	got := f
	got.Generation, got.Created, got.Updated = 0, 0, 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PUT YAML = %+v, want %+v", got, want)
	}

	// Re-applying the same fleet changes nothing.
	var again fsm.Fleet
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte(arenaEUYAML), http.StatusOK, &again)
	if again.Generation != 1 || again.Created != f.Created {
		t.Errorf("re-PUT identical: generation %d created %d, want 1 and %d", again.Generation, again.Created, f.Created)
	}

	// JSON, without a name (the path names it) and without a version (the
	// latest, pinned), with the defaults filled in.
	js := `{"replicas": 2, "versions": [{"blueprint": "arena"}], "placement": {"strategy": "pack"}}`
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-json", []byte(js), http.StatusOK, &f)
	if f.Name != "arena-json" || f.Replicas != 2 || len(f.Versions) != 1 || f.Versions[0] != (fsm.FleetVersion{Blueprint: "arena", Version: 2, Weight: 1}) ||
		f.Placement.Strategy != "pack" || f.Generation != 1 {
		t.Errorf("PUT JSON = %+v", f)
	}
	// A change makes a new generation.
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-json", []byte(strings.Replace(js, `"replicas": 2`, `"replicas": 3`, 1)), http.StatusOK, &f)
	if f.Replicas != 3 || f.Generation != 2 {
		t.Errorf("changed fleet: replicas %d generation %d, want 3 and 2", f.Replicas, f.Generation)
	}

	// One fleet, with its status.
	var one fleetOut
	resp = tc.doJSON(http.MethodGet, "/v1/fleets/arena-eu", nil, http.StatusOK, &one)
	index(t, resp)
	if one.Name != "arena-eu" || one.Replicas != 10 || len(one.Versions) != 2 || one.Buffer == nil || one.Buffer.Ready != 5 {
		t.Errorf("GET fleet = %+v", one.Fleet)
	}
	wantStatus := fleetStatus{Desired: 10, Versions: []versionStatus{
		{Blueprint: "arena", Version: 1, Weight: 90, Desired: 9},
		{Blueprint: "arena", Version: 2, Weight: 10, Desired: 1},
	}}
	if !reflect.DeepEqual(one.Status, wantStatus) {
		t.Errorf("GET fleet status = %+v, want %+v", one.Status, wantStatus)
	}
	resp, body := tc.do(http.MethodGet, "/v1/fleets/arena-eu?consistent=true", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":{"desired":10,"total":0,`) {
		t.Errorf("consistent GET = %d %s", resp.StatusCode, body)
	}

	// The list, by name.
	var list []fleetOut
	resp = tc.doJSON(http.MethodGet, "/v1/fleets", nil, http.StatusOK, &list)
	index(t, resp)
	if len(list) != 2 || list[0].Name != "arena-eu" || list[1].Name != "arena-json" || list[1].Status.Desired != 3 {
		t.Errorf("GET /v1/fleets = %+v", list)
	}

	resp, body = tc.do(http.MethodGet, "/v1/fleets/ghost", nil)
	checkError(t, "GET /v1/fleets/ghost", resp, body, http.StatusNotFound, "not_found", "name")
	index(t, resp)
}

func TestFleetEmptyList(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	resp, body := tc.do(http.MethodGet, "/v1/fleets", nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("GET /v1/fleets on an empty cluster = %d %s, want []", resp.StatusCode, body)
	}
}

func TestFleetRejectsInvalidAndWritesNothing(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	tc.putArenas()
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte(arenaEUYAML), http.StatusOK, nil)
	_, goodBody := tc.do(http.MethodGet, "/v1/fleets/arena-eu", nil)

	cases := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"name mismatch", strings.Replace(arenaEUYAML, "name: arena-eu", "name: other", 1), 422, "name"},
		{"unknown field", arenaEUYAML + "colour: red\n", 422, "colour"},
		{"unknown nested field", strings.Replace(arenaEUYAML, "max: 100}", "max: 100, extra: 1}", 1), 422, "extra"},
		{"unknown blueprint", strings.Replace(arenaEUYAML, "{blueprint: arena, version: 1", "{blueprint: nope, version: 1", 1), 422, "versions[0].blueprint"},
		{"unknown version", strings.Replace(arenaEUYAML, "version: 2", "version: 7", 1), 422, "versions[1].version"},
		{"version listed twice", strings.Replace(arenaEUYAML, "version: 2", "version: 1", 1), 422, "versions[1]"},
		{"invalid strategy", strings.Replace(arenaEUYAML, "strategy: spread", "strategy: random", 1), 422, "placement.strategy"},
		{"bad constraint op", strings.Replace(arenaEUYAML, `op: "="`, `op: "~"`, 1), 422, "placement.constraints[0].op"},
		{"negative replicas", strings.Replace(arenaEUYAML, "replicas: 10", "replicas: -1", 1), 422, "replicas"},
		{"replicas not a number", strings.Replace(arenaEUYAML, "replicas: 10", "replicas: ten", 1), 422, "replicas"},
		{"no versions", "replicas: 1\n", 422, "versions"},
		{"zero weights", "versions: [{blueprint: arena, weight: 0}, {blueprint: arena, version: 1, weight: 0}]\n", 422, "versions"},
		{"buffer ready over max", strings.Replace(arenaEUYAML, "ready: 5", "ready: 500", 1), 422, "buffer.ready"},
		{"not YAML", "{{{", 422, fsm.FieldBody},
		{"two documents", arenaEUYAML + "---\n" + arenaEUYAML, 422, fsm.FieldBody},
	}
	for _, c := range cases {
		for _, target := range []string{"arena-eu", "absent"} {
			body := c.body
			if target == "absent" {
				body = strings.Replace(body, "name: arena-eu", "name: absent", 1)
			}
			what := c.name + " on " + target
			before := tc.stateIndex()
			resp, out := tc.do(http.MethodPut, "/v1/fleets/"+target, []byte(body))
			e := checkError(t, what, resp, out, c.status, "", c.field)
			if resp.StatusCode == 422 && e.Code != "invalid" {
				t.Errorf("%s: code %q, want invalid", what, e.Code)
			}
			if after := tc.stateIndex(); after != before {
				t.Errorf("%s: a rejected PUT wrote to the log: index %d -> %d", what, before, after)
			}
			resp, out = tc.do(http.MethodGet, "/v1/fleets/"+target, nil)
			if target == "absent" {
				checkError(t, what+": GET afterwards", resp, out, http.StatusNotFound, "not_found", "name")
			} else if resp.StatusCode != http.StatusOK || string(out) != string(goodBody) {
				t.Errorf("%s: fleet changed: %d %s", what, resp.StatusCode, out)
			}
		}
	}

	// Invalid names in the path.
	for _, name := range []string{"Arena", "arena_1", "-arena", strings.Repeat("a", 64)} {
		resp, body := tc.do(http.MethodPut, "/v1/fleets/"+name, []byte("versions: [{blueprint: arena}]\n"))
		checkError(t, "PUT "+name, resp, body, 422, "invalid", "name")
	}

	// A body over the limit.
	big := arenaEUYAML + "# " + strings.Repeat("a", 2<<20) + "\n"
	resp, body := tc.do(http.MethodPut, "/v1/fleets/big", []byte(big))
	checkError(t, "PUT 2 MiB fleet", resp, body, http.StatusRequestEntityTooLarge, "too_large", fsm.FieldBody)
}

// TestFleetStatusCounts: the status counts a fleet's ships per state and
// per version.
func TestFleetStatusCounts(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	tc.putArenas()
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte(arenaEUYAML), http.StatusOK, nil)

	// Three ships of version 1 and one of version 2, as the fleet's
	// controller would create them; two placed, one of them ready, and one
	// queued one stopped by an operator.
	res := tc.apply(&fsm.ShipCreate{Fleet: "arena-eu", Blueprint: "arena", Version: 1, Count: 3})
	if res.Count != 3 {
		t.Fatalf("created %d ships, want 3", res.Count)
	}
	ids := []string{res.Ships[0].ID, res.Ships[1].ID, res.Ships[2].ID}
	tc.apply(&fsm.ShipCreate{Fleet: "arena-eu", Blueprint: "arena", Version: 2, Count: 1})
	tc.placeShips(ids[0], ids[1])
	tc.apply(&fsm.ShipReport{Node: tc.name, Reports: []fsm.Report{{Ship: ids[0], State: fsm.ShipReady}}})
	var stopped fsm.Ship
	tc.doJSON(http.MethodDelete, "/v1/ships/"+ids[2], nil, http.StatusOK, &stopped)
	if stopped.State != fsm.ShipStopped {
		t.Fatalf("stopped queued ship is %s", stopped.State)
	}

	var one fleetOut
	tc.doJSON(http.MethodGet, "/v1/fleets/arena-eu", nil, http.StatusOK, &one)
	want := fleetStatus{Desired: 10, Total: 3, Queued: 1, Scheduled: 1, Ready: 1, Stopped: 1, Versions: []versionStatus{
		{Blueprint: "arena", Version: 1, Weight: 90, Desired: 9, Ships: 2, Ready: 1},
		{Blueprint: "arena", Version: 2, Weight: 10, Desired: 1, Ships: 1},
	}}
	if !reflect.DeepEqual(one.Status, want) {
		t.Errorf("status = %+v\nwant %+v", one.Status, want)
	}

	// Moving the fleet to version 2 only: version 1's ships are still
	// listed, wanted by nobody.
	v2only := "replicas: 10\nversions: [{blueprint: arena, version: 2}]\n"
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte(v2only), http.StatusOK, nil)
	var list []fleetOut
	tc.doJSON(http.MethodGet, "/v1/fleets", nil, http.StatusOK, &list)
	if len(list) != 1 {
		t.Fatalf("list = %+v", list)
	}
	wantVersions := []versionStatus{
		{Blueprint: "arena", Version: 2, Weight: 1, Desired: 10, Ships: 1},
		{Blueprint: "arena", Version: 1, Ships: 2, Ready: 1},
	}
	if !reflect.DeepEqual(list[0].Status.Versions, wantVersions) {
		t.Errorf("versions after the change = %+v\nwant %+v", list[0].Status.Versions, wantVersions)
	}

	// A draining node's ships do not count towards their version.
	tc.doJSON(http.MethodPost, "/v1/nodes/"+tc.name+"/drain", []byte(`{"enable": true}`), http.StatusOK, nil)
	tc.doJSON(http.MethodGet, "/v1/fleets/arena-eu", nil, http.StatusOK, &one)
	if v := one.Status.Versions[1]; v.Ships != 0 || v.Ready != 0 || one.Status.Total != 3 {
		t.Errorf("with the node draining: %+v", one.Status)
	}
}

func TestFleetScale(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	tc.putArenas()
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte(arenaEUYAML), http.StatusOK, nil)

	var f fsm.Fleet
	resp := tc.doJSON(http.MethodPost, "/v1/fleets/arena-eu/scale", []byte(`{"replicas": 4}`), http.StatusOK, &f)
	index(t, resp)
	if f.Replicas != 4 || f.Generation != 2 || len(f.Versions) != 2 {
		t.Errorf("scale to 4 = %+v", f)
	}
	var one fleetOut
	tc.doJSON(http.MethodGet, "/v1/fleets/arena-eu", nil, http.StatusOK, &one)
	if one.Replicas != 4 || one.Status.Desired != 4 || one.Status.Versions[0].Desired != 4 || one.Status.Versions[1].Desired != 0 {
		t.Errorf("after the scale: %+v %+v", one.Fleet, one.Status)
	}
	// Scaling to the same number changes nothing; to 0 is fine.
	tc.doJSON(http.MethodPost, "/v1/fleets/arena-eu/scale", []byte(`{"replicas": 4}`), http.StatusOK, &f)
	if f.Generation != 2 {
		t.Errorf("scale to the same replicas: generation %d, want 2", f.Generation)
	}
	tc.doJSON(http.MethodPost, "/v1/fleets/arena-eu/scale", []byte(`{"replicas": 0}`), http.StatusOK, &f)
	if f.Replicas != 0 {
		t.Errorf("scale to 0: replicas %d", f.Replicas)
	}

	for _, c := range []struct {
		name, path, body string
		status           int
		code, field      string
	}{
		{"missing replicas", "arena-eu", `{}`, 400, "bad_request", "replicas"},
		{"null replicas", "arena-eu", `{"replicas": null}`, 400, "bad_request", "replicas"},
		{"negative replicas", "arena-eu", `{"replicas": -1}`, 422, "invalid", "replicas"},
		{"too many replicas", "arena-eu", fmt.Sprintf(`{"replicas": %d}`, fsm.MaxReplicas+1), 422, "invalid", "replicas"},
		{"replicas a string", "arena-eu", `{"replicas": "4"}`, 400, "bad_request", "replicas"},
		{"replicas a fraction", "arena-eu", `{"replicas": 1.5}`, 400, "bad_request", "replicas"},
		{"unknown field", "arena-eu", `{"replicas": 4, "count": 4}`, 400, "bad_request", "count"},
		{"empty body", "arena-eu", ``, 400, "bad_request", fsm.FieldBody},
		{"not JSON", "arena-eu", `replicas: 4`, 400, "bad_request", fsm.FieldBody},
		{"trailing data", "arena-eu", `{"replicas": 4} {"replicas": 5}`, 400, "bad_request", fsm.FieldBody},
		{"stray bracket", "arena-eu", `{"replicas": 4}}`, 400, "bad_request", fsm.FieldBody},
		{"a list", "arena-eu", `[4]`, 400, "bad_request", fsm.FieldBody},
		{"unknown fleet", "ghost", `{"replicas": 4}`, 404, "not_found", "name"},
	} {
		before := tc.stateIndex()
		resp, body := tc.do(http.MethodPost, "/v1/fleets/"+c.path+"/scale", []byte(c.body))
		checkError(t, c.name, resp, body, c.status, c.code, c.field)
		if after := tc.stateIndex(); after != before {
			t.Errorf("%s: a rejected scale wrote to the log: index %d -> %d", c.name, before, after)
		}
	}
	tc.doJSON(http.MethodGet, "/v1/fleets/arena-eu", nil, http.StatusOK, &one)
	if one.Replicas != 0 {
		t.Errorf("after the rejected scales: replicas %d, want 0", one.Replicas)
	}
}

func TestFleetDelete(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	tc.putArenas()
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte(arenaEUYAML), http.StatusOK, nil)
	res := tc.apply(&fsm.ShipCreate{Fleet: "arena-eu", Blueprint: "arena", Version: 1, Count: 2})
	queued, placed := res.Ships[0].ID, res.Ships[1].ID
	tc.placeShips(placed)

	var del struct {
		Deleted      string `json:"deleted"`
		ShipsStopped int    `json:"ships_stopped"`
		Index        uint64 `json:"index"`
	}
	tc.doJSON(http.MethodDelete, "/v1/fleets/arena-eu", nil, http.StatusOK, &del)
	if del.Deleted != "arena-eu" || del.ShipsStopped != 2 || del.Index == 0 {
		t.Errorf("DELETE = %+v, want arena-eu with 2 ships stopped", del)
	}
	resp, body := tc.do(http.MethodGet, "/v1/fleets/arena-eu", nil)
	checkError(t, "GET after DELETE", resp, body, http.StatusNotFound, "not_found", "name")

	// The queued ship stopped at once; the placed one waits for its worker.
	var s fsm.Ship
	tc.doJSON(http.MethodGet, "/v1/ships/"+queued, nil, http.StatusOK, &s)
	if s.State != fsm.ShipStopped || s.Reason != "fleet deleted" {
		t.Errorf("queued ship after DELETE: %s %q", s.State, s.Reason)
	}
	tc.doJSON(http.MethodGet, "/v1/ships/"+placed, nil, http.StatusOK, &s)
	if s.State != fsm.ShipStopping || s.Desired != fsm.DesireStop {
		t.Errorf("placed ship after DELETE: %s desired %s", s.State, s.Desired)
	}

	before := tc.stateIndex()
	resp, body = tc.do(http.MethodDelete, "/v1/fleets/arena-eu", nil)
	checkError(t, "DELETE again", resp, body, http.StatusNotFound, "not_found", "name")
	if after := tc.stateIndex(); after != before {
		t.Errorf("DELETE of a missing fleet wrote to the log: index %d -> %d", before, after)
	}
}

// TestFleetJSONShape pins the field names of the fleet summary.
func TestFleetJSONShape(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	tc.putArenas()
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte(arenaEUYAML), http.StatusOK, nil)
	var raw map[string]json.RawMessage
	tc.doJSON(http.MethodGet, "/v1/fleets/arena-eu", nil, http.StatusOK, &raw)
	for _, k := range []string{"name", "replicas", "versions", "placement", "buffer", "update", "generation", "created", "updated", "status"} {
		if raw[k] == nil {
			t.Errorf("fleet summary has no %q: %v", k, raw)
		}
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(raw["status"], &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"desired", "total", "queued", "scheduled", "starting", "ready", "allocated", "stopping", "stopped", "failed", "lost", "versions"} {
		if st[k] == nil {
			t.Errorf("status has no %q: %s", k, raw["status"])
		}
	}
	if want := `[{"blueprint":"arena","version":1,"weight":90,"desired":9,"ships":0,"ready":0},{"blueprint":"arena","version":2,"weight":10,"desired":1,"ships":0,"ready":0}]`; string(st["versions"]) != want {
		t.Errorf("status.versions = %s, want %s", st["versions"], want)
	}
}

func TestFleetDeployments(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	tc.putArenas()
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte("replicas: 2\nversions: [{blueprint: arena, version: 1}]\n"), http.StatusOK, nil)
	var list []fsm.Deployment
	tc.doJSON(http.MethodGet, "/v1/fleets/arena-eu/deployments", nil, http.StatusOK, &list)
	if len(list) != 0 {
		t.Fatalf("a new fleet has deployments: %+v", list)
	}
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte("replicas: 2\nversions: [{blueprint: arena, version: 2}]\nupdate: {max_parallel: 1, auto_rollback: true, deadline: 30s}\n"), http.StatusOK, nil)
	tc.doJSON(http.MethodGet, "/v1/fleets/arena-eu/deployments", nil, http.StatusOK, &list)
	if len(list) != 1 || list[0].State != fsm.DeployRunning || list[0].To[0].Version != 2 || list[0].From[0].Version != 1 ||
		list[0].MaxParallel != 1 || !list[0].AutoRollback || list[0].Deadline != fsm.Duration(30*time.Second) {
		t.Fatalf("deployments %+v", list)
	}
	resp, body := tc.do(http.MethodGet, "/v1/fleets/nope/deployments", nil)
	checkError(t, "unknown fleet", resp, body, http.StatusNotFound, "not_found", "name")
	resp, body = tc.do(http.MethodPut, "/v1/fleets/arena-eu", []byte("replicas: 2\nversions: [{blueprint: arena, version: 1}]\nupdate: {deadline: 10ms}\n"))
	checkError(t, "bad deadline", resp, body, http.StatusUnprocessableEntity, "invalid", "update.deadline")
}
