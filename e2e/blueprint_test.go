package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const secretValue = "s3cr3t"

const arenaYAML = `name: arena
unit: |
  [Service]
  ExecStart=/usr/local/bin/arena --port ${ARMADA_PORT_GAME}
resources: {cpu_mhz: 500, memory_mb: 256}
ports: [{name: game, protocol: tcp}]
env: {MODE: ranked}
secrets: {API_KEY: s3cr3t}
health: {type: tcp, port: game}
labels: {game: arena}
node_selector: {region: eu}
`

// blueprintJSON is the blueprint as the API and `show -o json` return it.
type blueprintJSON struct {
	Name         string            `json:"name"`
	Version      int               `json:"version"`
	Unit         string            `json:"unit"`
	Resources    map[string]int64  `json:"resources"`
	Ports        []map[string]any  `json:"ports"`
	Env          map[string]string `json:"env"`
	Secrets      map[string]string `json:"secrets"`
	SecretNames  []string          `json:"secret_names"`
	Health       map[string]any    `json:"health"`
	Labels       map[string]string `json:"labels"`
	NodeSelector map[string]string `json:"node_selector"`
}

func TestBlueprintCLI(t *testing.T) {
	c := NewCluster(t)
	n := c.StartNode("n1")
	waitSingleLeader(t, n, 30*time.Second)
	addr := []string{"--addr", n.BaseURL()}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// cli runs a command and checks that the secret value appears in
	// none of its output.
	cli := func(wantOK bool, args ...string) CLIResult {
		t.Helper()
		res := runCLI(t, nil, append(args, addr...)...)
		if wantOK && res.Code != 0 {
			t.Fatalf("want exit 0\n%s", res)
		}
		if !wantOK && res.Code == 0 {
			t.Fatalf("want a non-zero exit\n%s", res)
		}
		if strings.Contains(res.Stdout+res.Stderr, secretValue) {
			t.Errorf("the secret value is in the output of armada %s:\n%s", strings.Join(args, " "), res)
		}
		return res
	}

	file := write("arena.yaml", arenaYAML)
	res := cli(true, "blueprint", "apply", "-f", file)
	if !strings.Contains(res.Stdout, "blueprint arena: version 1") {
		t.Errorf("first apply: want version 1\n%s", res)
	}

	res = cli(true, "blueprint", "list")
	rows := tableRows(t, res.Stdout, "NAME")
	if r := rows["arena"]; len(rows) != 1 || r["LATEST"] != "1" || r["VERSIONS"] != "1" {
		t.Errorf("blueprint list: want arena at version 1 of 1\n%s", res.Stdout)
	}

	res = cli(true, "blueprint", "show", "arena")
	for _, want := range []string{"name: arena", "version: 1", "ExecStart=/usr/local/bin/arena --port ${ARMADA_PORT_GAME}",
		"MODE: ranked", "API_KEY", "protocol: tcp", "type: tcp", "region: eu"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("blueprint show arena: no %q in\n%s", want, res.Stdout)
		}
	}

	res = cli(true, "blueprint", "show", "arena", "-o", "json")
	bp := decodeBlueprint(t, []byte(res.Stdout))
	var raw map[string]any
	if err := json.Unmarshal([]byte(res.Stdout), &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["secrets"]; ok {
		t.Errorf("show -o json has a secrets field:\n%s", res.Stdout)
	}
	if bp.Name != "arena" || bp.Version != 1 || !slices.Equal(bp.SecretNames, []string{"API_KEY"}) ||
		bp.Env["MODE"] != "ranked" || bp.Resources["cpu_mhz"] != 500 || bp.Resources["memory_mb"] != 256 ||
		len(bp.Ports) != 1 || bp.Ports[0]["name"] != "game" || bp.Ports[0]["protocol"] != "tcp" ||
		bp.Health["type"] != "tcp" || bp.Health["port"] != "game" || bp.Labels["game"] != "arena" || bp.NodeSelector["region"] != "eu" {
		t.Errorf("show -o json does not match the applied blueprint:\n%s", res.Stdout)
	}

	// Unchanged (secrets included): the same version.
	res = cli(true, "blueprint", "apply", "-f", file)
	if !strings.Contains(res.Stdout, "blueprint arena: version 1") {
		t.Errorf("re-apply unchanged: want version 1 again\n%s", res)
	}
	// A changed env: version 2, and version 1 is still there as it was.
	file2 := write("arena2.yaml", strings.Replace(arenaYAML, "MODE: ranked", "MODE: casual", 1))
	res = cli(true, "blueprint", "apply", "-f", file2)
	if !strings.Contains(res.Stdout, "blueprint arena: version 2") {
		t.Errorf("apply with a new env: want version 2\n%s", res)
	}
	res = cli(true, "blueprint", "show", "arena", "-o", "json")
	if bp := decodeBlueprint(t, []byte(res.Stdout)); bp.Version != 2 || bp.Env["MODE"] != "casual" {
		t.Errorf("show arena after the change: want version 2 with MODE=casual\n%s", res.Stdout)
	}
	res = cli(true, "blueprint", "show", "arena", "--version", "1")
	if !strings.Contains(res.Stdout, "version: 1") || !strings.Contains(res.Stdout, "MODE: ranked") || strings.Contains(res.Stdout, "casual") {
		t.Errorf("show arena --version 1: want the original version\n%s", res.Stdout)
	}
	res = cli(true, "blueprint", "show", "arena", "--version", "1", "-o", "json")
	if bp := decodeBlueprint(t, []byte(res.Stdout)); bp.Version != 1 || bp.Env["MODE"] != "ranked" || !slices.Equal(bp.SecretNames, []string{"API_KEY"}) {
		t.Errorf("show arena --version 1 -o json: want version 1 with MODE=ranked and secret API_KEY\n%s", res.Stdout)
	}
	res = cli(true, "blueprint", "list", "-o", "json")
	var list []struct {
		Name     string `json:"name"`
		Latest   int    `json:"latest"`
		Versions []int  `json:"versions"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &list); err != nil || len(list) != 1 || list[0].Latest != 2 || !slices.Equal(list[0].Versions, []int{1, 2}) {
		t.Errorf("blueprint list -o json: want arena latest 2, versions [1 2] (%v)\n%s", err, res.Stdout)
	}

	// No ExecStart: refused, naming the unit field; nothing is written.
	bad := write("bad.yaml", "name: arena\nunit: |\n  [Service]\n  User=nobody\n")
	res = cli(false, "blueprint", "apply", "-f", bad)
	if !strings.Contains(res.Stderr, "unit") {
		t.Errorf("invalid blueprint: the error does not name the unit field\n%s", res)
	}
	res = cli(true, "blueprint", "list")
	if r := tableRows(t, res.Stdout, "NAME")["arena"]; r["LATEST"] != "2" || r["VERSIONS"] != "2" {
		t.Errorf("after a refused apply: want arena still at version 2 of 2\n%s", res.Stdout)
	}

	// The secret is not stored in plain text anywhere in the data dir.
	checkNoSecretOnDisk(t, n.DataDir)

	// The raw API never returns secrets either.
	for _, path := range []string{"/v1/blueprints/arena", "/v1/blueprints/arena/versions/1", "/v1/blueprints/arena/versions", "/v1/blueprints"} {
		r, err := n.Get(path)
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("GET %s: %v %v", path, r, err)
		}
		if bytes.Contains(r.Body, []byte(secretValue)) || bytes.Contains(r.Body, []byte(`"secrets"`)) {
			t.Errorf("GET %s returns the secret: %s", path, r.Body)
		}
	}

	res = cli(true, "blueprint", "delete", "arena")
	if !strings.Contains(res.Stdout, "arena") {
		t.Errorf("blueprint delete: %s", res)
	}
	res = cli(false, "blueprint", "show", "arena")
	if !strings.Contains(res.Stderr, "not found") {
		t.Errorf("show after delete: want a not-found error\n%s", res)
	}
	res = cli(false, "blueprint", "delete", "arena")
	if !strings.Contains(res.Stderr, "not found") {
		t.Errorf("second delete: want a not-found error\n%s", res)
	}

	// Raw HTTP: invalid blueprints are 422 with the offending field, and
	// nothing is written.
	for _, tc := range []struct {
		name, ctype, body, field string
	}{
		{"no ExecStart", "application/json", `{"name":"arena","unit":"[Service]\nUser=nobody\n"}`, "unit"},
		{"no unit", "application/yaml", "name: arena\nenv: {MODE: x}\n", "unit"},
		{"unknown field", "application/yaml", arenaYAML + "replicas: 3\n", "replicas"},
		{"bad health port", "application/yaml", strings.Replace(arenaYAML, "port: game}", "port: web}", 1), "health.port"},
		{"name mismatch", "application/yaml", strings.Replace(arenaYAML, "name: arena", "name: other", 1), "name"},
	} {
		before := stableIndex(t, n)
		r, err := n.Put("/v1/blueprints/arena", []byte(tc.body), tc.ctype)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: PUT answered %s, want 422", tc.name, r)
		}
		var e struct {
			Error *struct {
				Code    *string `json:"code"`
				Message *string `json:"message"`
				Field   *string `json:"field"`
			} `json:"error"`
		}
		if err := json.Unmarshal(r.Body, &e); err != nil || e.Error == nil || e.Error.Code == nil || e.Error.Message == nil || e.Error.Field == nil {
			t.Errorf("%s: error body is not {\"error\":{\"code\",\"message\",\"field\"}}: %s", tc.name, r.Body)
		} else if *e.Error.Field != tc.field || *e.Error.Code == "" || *e.Error.Message == "" {
			t.Errorf("%s: error %s, want field %q and a code and message", tc.name, r.Body, tc.field)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: error Content-Type %q", tc.name, ct)
		}
		g, err := n.Get("/v1/blueprints/arena")
		if err != nil {
			t.Fatal(err)
		}
		if g.Status != http.StatusNotFound {
			t.Errorf("%s: after a refused PUT, GET /v1/blueprints/arena = %s, want 404", tc.name, g)
		}
		if after := g.Index(); after != before {
			t.Errorf("%s: X-Armada-Index moved from %d to %d across a refused PUT", tc.name, before, after)
		}
	}
	// The same document, valid, is accepted through the raw API too.
	r, err := n.Put("/v1/blueprints/arena", []byte(arenaYAML), "application/yaml")
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("valid PUT: %v %v", r, err)
	}
	if bp := decodeBlueprint(t, r.Body); bp.Version != 1 || bytes.Contains(r.Body, []byte(secretValue)) {
		t.Errorf("valid PUT after delete: want version 1 without the secret: %s", r.Body)
	}
}

func decodeBlueprint(t *testing.T, data []byte) blueprintJSON {
	t.Helper()
	var bp blueprintJSON
	if err := json.Unmarshal(data, &bp); err != nil {
		t.Fatalf("not a blueprint: %v\n%s", err, data)
	}
	return bp
}

// stableIndex waits until the node's applied index holds still for a
// second (background membership writes have settled) and returns it.
func stableIndex(t *testing.T, n *Node) uint64 {
	t.Helper()
	var idx uint64
	var since time.Time
	waitFor(t, 30*time.Second, func() error {
		r, err := n.Get("/v1/status")
		if err != nil {
			return err
		}
		if r.Status != http.StatusOK || r.Index() == 0 {
			return fmt.Errorf("GET /v1/status: %s", r)
		}
		if r.Index() != idx {
			idx, since = r.Index(), time.Now()
			return fmt.Errorf("index moved to %d", idx)
		}
		if time.Since(since) < time.Second {
			return fmt.Errorf("index %d not stable for a second yet", idx)
		}
		return nil
	})
	return idx
}

// checkNoSecretOnDisk fails if any file under dir holds the secret value.
func checkNoSecretOnDisk(t *testing.T, dir string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, []byte(secretValue)) {
			t.Errorf("%s holds the secret value in plain text", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no files under %s", dir)
	}
}
