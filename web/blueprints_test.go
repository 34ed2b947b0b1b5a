package web_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// arenaYAML is the blueprint of the contract, secrets included.
const arenaYAML = `name: arena
unit: |
  [Service]
  ExecStart=/usr/local/bin/arena --port ${ARMADA_PORT_GAME}
resources: {cpu_mhz: 500, memory_mb: 256}
ports: [{name: game, protocol: udp}]
env: {MODE: ranked}
secrets: {API_KEY: s3cr3t-value-42}
health: {type: http, port: game, path: /healthz, interval: 5s, timeout: 2s, failures: 3}
labels: {game: arena}
node_selector: {region: eu}
`

const arenaSecret = "s3cr3t-value-42"

// arenaJSON is the same blueprint as JSON, under another name.
const arenaJSON = `{
  "name": "arena-json",
  "unit": "[Service]\nExecStart=/usr/local/bin/arena --port ${ARMADA_PORT_GAME}\n",
  "resources": {"cpu_mhz": 500, "memory_mb": 256},
  "ports": [{"name": "game", "protocol": "udp"}],
  "env": {"MODE": "ranked"},
  "secrets": {"API_KEY": "s3cr3t-value-42"},
  "health": {"type": "http", "port": "game", "path": "/healthz", "interval": "5s", "timeout": "2s", "failures": 3},
  "labels": {"game": "arena"},
  "node_selector": {"region": "eu"}
}`

// noSecrets asserts that a read never returns secret values, only names.
func noSecrets(t *testing.T, what string, body []byte) {
	t.Helper()
	if strings.Contains(string(body), arenaSecret) {
		t.Errorf("%s leaks the secret value: %s", what, body)
	}
	if strings.Contains(string(body), `"secrets"`) {
		t.Errorf("%s returns a secrets field: %s", what, body)
	}
}

// checkArena checks a returned blueprint against arenaYAML.
func checkArena(t *testing.T, what string, body []byte, name string, version int) *fsm.Blueprint {
	t.Helper()
	noSecrets(t, what, body)
	var bp fsm.Blueprint
	if err := json.Unmarshal(body, &bp); err != nil {
		t.Fatalf("%s: %v: %s", what, err, body)
	}
	if bp.Name != name || bp.Version != version {
		t.Errorf("%s: %s version %d, want %s version %d", what, bp.Name, bp.Version, name, version)
	}
	if !reflect.DeepEqual(bp.SecretNames, []string{"API_KEY"}) {
		t.Errorf("%s: secret_names %v, want [API_KEY]", what, bp.SecretNames)
	}
	if !strings.Contains(bp.Unit, "ExecStart=/usr/local/bin/arena --port ${ARMADA_PORT_GAME}") {
		t.Errorf("%s: unit %q", what, bp.Unit)
	}
	if bp.Resources != (fsm.Resources{CPUMHz: 500, MemoryMB: 256}) {
		t.Errorf("%s: resources %+v", what, bp.Resources)
	}
	if !reflect.DeepEqual(bp.Ports, []fsm.Port{{Name: "game", Protocol: "udp"}}) {
		t.Errorf("%s: ports %+v", what, bp.Ports)
	}
	if bp.Env["MODE"] != "ranked" || len(bp.Env) != 1 {
		t.Errorf("%s: env %v", what, bp.Env)
	}
	want := fsm.Health{Type: "http", Port: "game", Path: "/healthz", Interval: fsm.Duration(5 * time.Second), Timeout: fsm.Duration(2 * time.Second), Failures: 3}
	if bp.Health == nil || *bp.Health != want {
		t.Errorf("%s: health %+v, want %+v", what, bp.Health, want)
	}
	if bp.Labels["game"] != "arena" || bp.NodeSelector["region"] != "eu" {
		t.Errorf("%s: labels %v node_selector %v", what, bp.Labels, bp.NodeSelector)
	}
	if bp.Created == 0 {
		t.Errorf("%s: no created time", what)
	}
	return &bp
}

func TestBlueprintLifecycle(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)

	// YAML and JSON bodies both create version 1.
	resp, body := tc.do(http.MethodPut, "/v1/blueprints/arena", []byte(arenaYAML), "Content-Type", "application/yaml")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT YAML: %d %s", resp.StatusCode, body)
	}
	v1 := checkArena(t, "PUT YAML", body, "arena", 1)
	index(t, resp)
	resp, body = tc.do(http.MethodPut, "/v1/blueprints/arena-json", []byte(arenaJSON), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT JSON: %d %s", resp.StatusCode, body)
	}
	checkArena(t, "PUT JSON", body, "arena-json", 1)

	// The body's name may be left out: the path names the blueprint.
	noName := strings.Replace(arenaYAML, "name: arena\n", "", 1)
	resp, body = tc.do(http.MethodPut, "/v1/blueprints/arena-noname", []byte(noName))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT without a name: %d %s", resp.StatusCode, body)
	}
	checkArena(t, "PUT without a name", body, "arena-noname", 1)

	// Re-applying the same blueprint (secrets included) keeps its version.
	resp, body = tc.do(http.MethodPut, "/v1/blueprints/arena", []byte(arenaYAML))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("re-PUT: %d %s", resp.StatusCode, body)
	}
	again := checkArena(t, "re-PUT identical", body, "arena", 1)
	if again.Created != v1.Created {
		t.Errorf("re-PUT identical changed created from %d to %d", v1.Created, again.Created)
	}
	// The same content as JSON is the same blueprint too.
	sameJSON := strings.Replace(arenaJSON, `"arena-json"`, `"arena"`, 1)
	resp, body = tc.do(http.MethodPut, "/v1/blueprints/arena", []byte(sameJSON))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("re-PUT as JSON: %d %s", resp.StatusCode, body)
	}
	checkArena(t, "re-PUT identical as JSON", body, "arena", 1)

	// A change makes version 2, a changed secret value version 3.
	changed := strings.Replace(arenaYAML, "MODE: ranked", "MODE: casual", 1)
	var bp fsm.Blueprint
	resp = tc.doJSON(http.MethodPut, "/v1/blueprints/arena", []byte(changed), http.StatusOK, &bp)
	index(t, resp)
	if bp.Version != 2 || bp.Env["MODE"] != "casual" {
		t.Errorf("changed env: version %d env %v, want version 2 casual", bp.Version, bp.Env)
	}
	newSecret := strings.Replace(changed, arenaSecret, "another-s3cr3t", 1)
	resp, body = tc.do(http.MethodPut, "/v1/blueprints/arena", []byte(newSecret))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &bp) != nil || bp.Version != 3 {
		t.Errorf("changed secret value: %d %s, want version 3", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "another-s3cr3t") {
		t.Errorf("PUT answer leaks the secret: %s", body)
	}

	// GET latest.
	resp, body = tc.do(http.MethodGet, "/v1/blueprints/arena", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d %s", resp.StatusCode, body)
	}
	index(t, resp)
	noSecrets(t, "GET latest", body)
	if strings.Contains(string(body), "another-s3cr3t") {
		t.Errorf("GET leaks the secret: %s", body)
	}
	if json.Unmarshal(body, &bp) != nil || bp.Version != 3 || bp.Env["MODE"] != "casual" || !reflect.DeepEqual(bp.SecretNames, []string{"API_KEY"}) {
		t.Errorf("GET latest = %s, want version 3", body)
	}
	resp, body = tc.do(http.MethodGet, "/v1/blueprints/arena?consistent=true", nil)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &bp) != nil || bp.Version != 3 {
		t.Errorf("consistent GET = %d %s", resp.StatusCode, body)
	}

	// GET one version.
	resp, body = tc.do(http.MethodGet, "/v1/blueprints/arena/versions/1", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET version 1: %d %s", resp.StatusCode, body)
	}
	index(t, resp)
	if got := checkArena(t, "GET version 1", body, "arena", 1); got.Created != v1.Created {
		t.Errorf("version 1 created %d, want %d", got.Created, v1.Created)
	}
	resp, body = tc.do(http.MethodGet, "/v1/blueprints/arena/versions/9", nil)
	checkError(t, "GET version 9", resp, body, http.StatusNotFound, "not_found", "version")
	for _, v := range []string{"0", "-1", "two", "1.5"} {
		resp, body = tc.do(http.MethodGet, "/v1/blueprints/arena/versions/"+v, nil)
		checkError(t, "GET version "+v, resp, body, http.StatusBadRequest, "bad_request", "version")
	}

	// Every version.
	resp, body = tc.do(http.MethodGet, "/v1/blueprints/arena/versions", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET versions: %d %s", resp.StatusCode, body)
	}
	index(t, resp)
	noSecrets(t, "GET versions", body)
	var versions []fsm.Blueprint
	if err := json.Unmarshal(body, &versions); err != nil {
		t.Fatal(err)
	}
	if len(versions) != 3 {
		t.Fatalf("versions = %d, want 3: %s", len(versions), body)
	}
	for i, v := range versions {
		if v.Version != i+1 || v.Name != "arena" || !reflect.DeepEqual(v.SecretNames, []string{"API_KEY"}) {
			t.Errorf("versions[%d] = %s v%d secret_names %v", i, v.Name, v.Version, v.SecretNames)
		}
	}
	if versions[0].Env["MODE"] != "ranked" || versions[1].Env["MODE"] != "casual" {
		t.Errorf("versions do not keep their own content: %s", body)
	}

	// The list.
	resp, body = tc.do(http.MethodGet, "/v1/blueprints", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	index(t, resp)
	noSecrets(t, "list", body)
	var list []fsm.BlueprintInfo
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]fsm.BlueprintInfo{}
	for _, info := range list {
		got[info.Name] = info
	}
	if len(list) != 3 || got["arena"].Latest != 3 || !reflect.DeepEqual(got["arena"].Versions, []int{1, 2, 3}) ||
		got["arena-json"].Latest != 1 || got["arena-noname"].Latest != 1 {
		t.Errorf("list = %s", body)
	}
	if a := got["arena"]; a.Created == 0 || a.Updated < a.Created {
		t.Errorf("arena created %d updated %d", a.Created, a.Updated)
	}

	// Delete removes every version.
	var del map[string]any
	tc.doJSON(http.MethodDelete, "/v1/blueprints/arena", nil, http.StatusOK, &del)
	if del["deleted"] != "arena" || del["versions"] != float64(3) {
		t.Errorf("DELETE = %v, want arena, 3 versions", del)
	}
	for _, p := range []string{"/v1/blueprints/arena", "/v1/blueprints/arena/versions"} {
		resp, body = tc.do(http.MethodGet, p, nil)
		checkError(t, "GET "+p+" after delete", resp, body, http.StatusNotFound, "not_found", "name")
	}
	resp, body = tc.do(http.MethodGet, "/v1/blueprints/arena/versions/1", nil)
	checkError(t, "GET a version after delete", resp, body, http.StatusNotFound, "not_found", "version")
	resp, body = tc.do(http.MethodDelete, "/v1/blueprints/arena", nil)
	checkError(t, "DELETE again", resp, body, http.StatusNotFound, "not_found", "name")
	resp, body = tc.do(http.MethodDelete, "/v1/blueprints/never-was", nil)
	checkError(t, "DELETE missing", resp, body, http.StatusNotFound, "not_found", "name")
	tc.doJSON(http.MethodGet, "/v1/blueprints", nil, http.StatusOK, &list)
	if len(list) != 2 {
		t.Errorf("list after delete has %d blueprints, want 2", len(list))
	}

	// A deleted name starts again at version 1.
	tc.doJSON(http.MethodPut, "/v1/blueprints/arena", []byte(arenaYAML), http.StatusOK, &bp)
	if bp.Version != 1 {
		t.Errorf("re-created blueprint has version %d, want 1", bp.Version)
	}
}

func TestBlueprintEmptyList(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	resp, body := tc.do(http.MethodGet, "/v1/blueprints", nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("empty list: %d %s, want 200 []", resp.StatusCode, body)
	}
	resp, body = tc.do(http.MethodGet, "/v1/blueprints/nothing", nil)
	checkError(t, "GET missing", resp, body, http.StatusNotFound, "not_found", "name")
	index(t, resp)
	resp, body = tc.do(http.MethodGet, "/v1/blueprints/nothing/versions", nil)
	checkError(t, "GET versions of missing", resp, body, http.StatusNotFound, "not_found", "name")
}

// minimal is a valid blueprint the invalid cases are variations of.
const minimal = `unit: |
  [Service]
  ExecStart=/bin/true
resources: {cpu_mhz: 100, memory_mb: 64}
ports: [{name: game}]
env: {MODE: ranked}
`

func TestBlueprintRejectsInvalidAndWritesNothing(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)

	var good fsm.Blueprint
	tc.doJSON(http.MethodPut, "/v1/blueprints/good", []byte(minimal), http.StatusOK, &good)
	if good.Version != 1 || good.Ports[0].Protocol != "tcp" {
		t.Fatalf("minimal blueprint: version %d ports %+v, want 1 and protocol defaulting to tcp", good.Version, good.Ports)
	}
	_, goodBody := tc.do(http.MethodGet, "/v1/blueprints/good", nil)

	cases := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"missing unit", "resources: {cpu_mhz: 100}\n", 422, "unit"},
		{"empty body", "", 422, "unit"},
		{"unit without ExecStart", "unit: |\n  [Service]\n  Type=simple\n", 422, "unit"},
		{"ExecStart outside [Service]", "unit: |\n  [Unit]\n  ExecStart=/bin/true\n", 422, "unit"},
		{"empty ExecStart", "unit: |\n  [Service]\n  ExecStart=\n", 422, "unit"},
		{"unparseable unit", "unit: |\n  [Service\n  ExecStart=/bin/true\n", 422, "unit"},
		{"bad port protocol", strings.Replace(minimal, "{name: game}", "{name: game, protocol: sctp}", 1), 422, "ports[0].protocol"},
		{"duplicate port", strings.Replace(minimal, "{name: game}", "{name: game}, {name: game, protocol: udp}", 1), 422, "ports[1].name"},
		{"bad port name", strings.Replace(minimal, "{name: game}", "{name: Game-1}", 1), 422, "ports[0].name"},
		{"health port not defined", minimal + "health: {type: http, port: admin}\n", 422, "health.port"},
		{"health tcp without port", minimal + "health: {type: tcp}\n", 422, "health.port"},
		{"bad health type", minimal + "health: {type: icmp}\n", 422, "health.type"},
		{"health timeout over interval", minimal + "health: {type: tcp, port: game, interval: 1s, timeout: 2s}\n", 422, "health.timeout"},
		{"env key ARMADA_X", strings.Replace(minimal, "MODE: ranked", "ARMADA_X: v", 1), 422, "env.ARMADA_X"},
		{"bad env key", strings.Replace(minimal, "MODE: ranked", "1MODE: v", 1), 422, "env.1MODE"},
		{"env value with newline", strings.Replace(minimal, "MODE: ranked", `MODE: "a\nb"`, 1), 422, "env.MODE"},
		{"secret also in env", minimal + "secrets: {MODE: x}\n", 422, "secrets.MODE"},
		{"secret key ARMADA_", minimal + "secrets: {ARMADA_TOKEN: x}\n", 422, "secrets.ARMADA_TOKEN"},
		{"negative memory", strings.Replace(minimal, "memory_mb: 64", "memory_mb: -1", 1), 422, "resources.memory_mb"},
		{"negative cpu", strings.Replace(minimal, "cpu_mhz: 100", "cpu_mhz: -5", 1), 422, "resources.cpu_mhz"},
		{"bad label value", minimal + "labels: {game: \"a b\"}\n", 422, "labels.game"},
		{"bad node selector key", minimal + "node_selector: {\"-x\": eu}\n", 422, "node_selector.-x"},
		{"unknown field", minimal + "colour: red\n", 422, "colour"},
		// encoding/json names only the last element of an unknown nested
		// field (see the report); the full path would be resources.gpus.
		{"unknown nested field", strings.Replace(minimal, "memory_mb: 64", "memory_mb: 64, gpus: 1", 1), 422, "gpus"},
		{"wrong type", strings.Replace(minimal, "cpu_mhz: 100", "cpu_mhz: lots", 1), 422, "resources.cpu_mhz"},
		{"ports not a list", strings.Replace(minimal, "ports: [{name: game}]", "ports: game", 1), 422, "ports"},
		{"not YAML", "{{{", 422, fsm.FieldBody},
		{"name mismatch", "name: other\n" + minimal, 422, "name"},
	}
	for _, c := range cases {
		for _, target := range []string{"good", "absent"} {
			what := c.name + " on " + target
			before := tc.stateIndex()
			resp, body := tc.do(http.MethodPut, "/v1/blueprints/"+target, []byte(c.body))
			e := checkError(t, what, resp, body, c.status, "", c.field)
			if resp.StatusCode == 422 && e.Code != "invalid" {
				t.Errorf("%s: code %q, want invalid", what, e.Code)
			}
			if after := tc.stateIndex(); after != before {
				t.Errorf("%s: a rejected PUT wrote to the log: index %d -> %d", what, before, after)
			}
			resp, body = tc.do(http.MethodGet, "/v1/blueprints/"+target, nil)
			if target == "absent" {
				checkError(t, what+": GET afterwards", resp, body, http.StatusNotFound, "not_found", "name")
			} else if resp.StatusCode != http.StatusOK || string(body) != string(goodBody) {
				t.Errorf("%s: blueprint changed: %d %s", what, resp.StatusCode, body)
			}
		}
	}

	// Invalid names in the path.
	for _, name := range []string{"Arena", "arena_1", "-arena", "arena-", strings.Repeat("a", 64), "a.b"} {
		before := tc.stateIndex()
		resp, body := tc.do(http.MethodPut, "/v1/blueprints/"+name, []byte(minimal))
		checkError(t, "PUT "+name, resp, body, 422, "invalid", "name")
		if after := tc.stateIndex(); after != before {
			t.Errorf("PUT %s wrote to the log: index %d -> %d", name, before, after)
		}
	}
	// 63 characters is fine.
	name63 := strings.Repeat("a", 63)
	tc.doJSON(http.MethodPut, "/v1/blueprints/"+name63, []byte(minimal), http.StatusOK, nil)

	// A body over the limit.
	before := tc.stateIndex()
	big := minimal + "labels: {x: " + strings.Repeat("a", 2<<20) + "}\n"
	resp, body := tc.do(http.MethodPut, "/v1/blueprints/big", []byte(big))
	checkError(t, "PUT 2 MiB blueprint", resp, body, http.StatusRequestEntityTooLarge, "too_large", fsm.FieldBody)
	if after := tc.stateIndex(); after != before {
		t.Errorf("oversize PUT wrote to the log: index %d -> %d", before, after)
	}

	var list []fsm.BlueprintInfo
	tc.doJSON(http.MethodGet, "/v1/blueprints", nil, http.StatusOK, &list)
	if len(list) != 2 {
		t.Errorf("after the rejections the list is %+v, want good and the 63-character name", list)
	}

	// Version and created come from the cluster, never from the body.
	var bp fsm.Blueprint
	tc.doJSON(http.MethodPut, "/v1/blueprints/good", []byte(minimal+"version: 7\ncreated: 5\n"), http.StatusOK, &bp)
	if bp.Version != 1 || bp.Created != good.Created {
		t.Errorf("PUT with version 7 created 5: version %d created %d, want the unchanged version 1", bp.Version, bp.Created)
	}
}

// TestBlueprintRejectsTrailingData: a body is one document. Whatever follows
// it (a second YAML document, a second JSON object, stray characters) must be
// refused rather than silently dropped, and a key given twice must not
// silently take the last value.
func TestBlueprintRejectsTrailingData(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	unit := `{"unit":"[Service]\nExecStart=/bin/true"}`
	for _, c := range []struct{ name, body string }{
		{"two JSON objects", unit + ` {"unit":"x"}`},
		{"stray brace", unit + `}`},
		{"garbage line after JSON", unit + "\ngarbage"},
		{"second YAML document", minimal + "---\n" + minimal},
		{"duplicate key", minimal + "env: {OTHER: x}\n"},
	} {
		before := tc.stateIndex()
		resp, body := tc.do(http.MethodPut, "/v1/blueprints/trailing", []byte(c.body))
		if resp.StatusCode == http.StatusOK {
			t.Errorf("%s: accepted, the rest of the body silently dropped: %s", c.name, body)
			tc.do(http.MethodDelete, "/v1/blueprints/trailing", nil)
			continue
		}
		checkError(t, c.name, resp, body, 422, "invalid", fsm.FieldBody)
		if after := tc.stateIndex(); after != before {
			t.Errorf("%s: written to the log: index %d -> %d", c.name, before, after)
		}
	}
}
