package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const specYAML = `name: arena
unit: |
  [Service]
  ExecStart=/usr/local/bin/arena --port ${ARMADA_PORT_GAME}
resources: {cpu_mhz: 500, memory_mb: 256}
ports: [{name: game, protocol: udp}]
env: {MODE: ranked}
secrets: {API_KEY: s3cr3t}
health: {type: tcp, port: game, interval: 5s, timeout: 2s, failures: 3}
labels: {game: arena}
node_selector: {region: eu}
`

const specJSON = `{
  "name": "arena",
  "unit": "[Service]\nExecStart=/usr/local/bin/arena --port ${ARMADA_PORT_GAME}\n",
  "resources": {"cpu_mhz": 500, "memory_mb": 256},
  "ports": [{"name": "game", "protocol": "udp"}],
  "env": {"MODE": "ranked"},
  "secrets": {"API_KEY": "s3cr3t"},
  "health": {"type": "tcp", "port": "game", "interval": "5s", "timeout": "2s", "failures": 3},
  "labels": {"game": "arena"},
  "node_selector": {"region": "eu"}
}`

func specBlueprint() *Blueprint {
	return &Blueprint{
		Name:         "arena",
		Unit:         "[Service]\nExecStart=/usr/local/bin/arena --port ${ARMADA_PORT_GAME}\n",
		Resources:    Resources{CPUMHz: 500, MemoryMB: 256},
		Ports:        []Port{{Name: "game", Protocol: "udp"}},
		Env:          map[string]string{"MODE": "ranked"},
		Secrets:      map[string]string{"API_KEY": "s3cr3t"},
		Health:       &Health{Type: "tcp", Port: "game", Interval: Duration(5 * time.Second), Timeout: Duration(2 * time.Second), Failures: 3},
		Labels:       map[string]string{"game": "arena"},
		NodeSelector: map[string]string{"region": "eu"},
	}
}

func TestParseSpecExample(t *testing.T) {
	for name, doc := range map[string]string{"yaml": specYAML, "json": specJSON} {
		t.Run(name, func(t *testing.T) {
			bp, err := ParseBlueprint([]byte(doc))
			if err != nil {
				t.Fatalf("ParseBlueprint: %v", err)
			}
			requireEqual(t, "parsed", bp, specBlueprint())
			if e := ValidateBlueprint(bp); e != nil {
				t.Fatalf("ValidateBlueprint: %v", e)
			}
			// Nothing to default: it is already complete.
			requireEqual(t, "validated", bp, specBlueprint())
		})
	}
}

func TestParseBlueprintErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, field, msg string
	}{
		{"unknown top-level field", "name: x\nnmae: y\n", "nmae", "unknown field"},
		{"unknown field in json", `{"name":"x","resource":{}}`, "resource", "unknown field"},
		// encoding/json reports only the last path element of unknown fields.
		{"unknown nested field", "name: x\nhealth: {type: none, bogus: 1}\n", "bogus", "unknown field"},
		{"unknown field in a port", "name: x\nports: [{name: a, proto: udp}]\n", "proto", "unknown field"},
		{"name not a string", "name: [x]\n", "name", "string"},
		{"number for a string", "name: 5\n", "name", "string"},
		{"cpu not a number", "name: x\nresources: {cpu_mhz: lots}\n", "resources.cpu_mhz", "int64"},
		{"memory fractional", "name: x\nresources: {memory_mb: 1.5}\n", "resources.memory_mb", "int64"},
		{"ports not a list", "name: x\nports: game\n", "ports", "[]fsm.Port"},
		{"port name not a string", "name: x\nports: [{name: [a]}]\n", "ports.name", "string"},
		{"env not a map", "name: x\nenv: [A]\n", "env", "map"},
		{"env value not a string", "name: x\nenv: {A: [1]}\n", "env", "string"},
		{"health not a map", "name: x\nhealth: tcp\n", "health", "fsm.Health"},
		{"failures not a number", "name: x\nhealth: {failures: many}\n", "health.failures", "int"},
		{"interval not a duration", "name: x\nhealth: {interval: soon}\n", "health.interval", "duration"},
		{"timeout not a duration", "name: x\nhealth: {timeout: [1]}\n", "health.timeout", "duration"},
		{"interval out of range", "name: x\nhealth: {interval: 1e300}\n", "health.interval", "duration"},
		{"labels not a map", "name: x\nlabels: 3\n", "labels", "map"},
		{"not a document", "{", FieldBody, "YAML"},
		{"a list", "[1, 2]", FieldBody, "fsm.Blueprint"},
		{"tabs", "name: x\n\tunit: y\n", FieldBody, "YAML"},
		// One document only: nothing after it may be silently dropped.
		{"two JSON objects", `{"name":"x"} {"name":"y"}`, FieldBody, "trailing data"},
		{"stray brace", `{"name":"x"}}`, FieldBody, "trailing data"},
		{"garbage line after JSON", "{\"name\":\"x\"}\ngarbage", FieldBody, "trailing data"},
		{"second YAML document", "name: x\n---\nname: y\n", FieldBody, "trailing data"},
		{"third YAML document", "name: x\n---\n---\nenv: {A: b}\n", FieldBody, "trailing data"},
		{"two lists", "[1]\n[2]", FieldBody, "trailing data"},
		{"duplicate key", "name: x\nenv: {A: b}\nenv: {C: d}\n", FieldBody, "already set"},
		{"duplicate key in JSON", `{"name":"x","name":"y"}`, FieldBody, "already set"},
		{"duplicate nested key", "name: x\nenv: {A: b, A: c}\n", FieldBody, "already set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bp, err := ParseBlueprint([]byte(tc.doc))
			if err == nil {
				t.Fatalf("parsed %s", jsonString(bp))
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			if e.Code != ErrInvalid || e.Field != tc.field || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("error %s/%q %q, want field %q and message containing %q", e.Code, e.Field, e.Message, tc.field, tc.msg)
			}
		})
	}
}

func TestParseBlueprintAcceptsOneDocument(t *testing.T) {
	for _, doc := range []string{
		"name: x\n",
		"---\nname: x\n",
		"name: x\n...\n",
		"name: x\n---\n",         // an empty document drops nothing
		"name: x\n# comment\n\n", // trailing comment and blank lines
		"{\"name\": \"x\"}\n\n  ",
		"{\"name\": \"x\"} # comment",
	} {
		bp, err := ParseBlueprint([]byte(doc))
		if err != nil || bp.Name != "x" {
			t.Errorf("%q: %v %+v", doc, err, bp)
		}
	}
	// An empty body parses to an empty blueprint, which validation refuses.
	for _, doc := range []string{"", "  \n", "# nothing\n", "null"} {
		bp, err := ParseBlueprint([]byte(doc))
		if err != nil {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		if e := ValidateBlueprint(bp); e == nil || e.Field != "name" {
			t.Errorf("%q validated: %v", doc, e)
		}
	}
}

func TestParseBlueprintDurations(t *testing.T) {
	for doc, want := range map[string]Duration{
		"interval: 5s":     Duration(5 * time.Second),
		"interval: 1m30s":  Duration(90 * time.Second),
		"interval: 250ms":  Duration(250 * time.Millisecond),
		"interval: 5":      Duration(5 * time.Second),
		"interval: 0.5":    Duration(500 * time.Millisecond),
		"interval: 1.5e-6": Duration(1500 * time.Nanosecond),
		`interval: "2h"`:   Duration(2 * time.Hour),
		"interval: -1s":    Duration(-time.Second),
		"interval: 9.2e9":  Duration(9.2e18),
		"interval: -9.2e9": Duration(-9.2e18),
	} {
		bp, err := ParseBlueprint([]byte("health: {" + doc + "}"))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if bp.Health.Interval != want {
			t.Fatalf("%s: %v, want %v", doc, time.Duration(bp.Health.Interval), time.Duration(want))
		}
	}
}

// mutate returns a validated-spec blueprint changed by fn.
func mutate(fn func(bp *Blueprint)) *Blueprint {
	bp := specBlueprint()
	fn(bp)
	return bp
}

func TestValidateBlueprint(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	manyPorts := func(n int) []Port {
		var ps []Port
		for i := range n {
			ps = append(ps, Port{Name: fmt.Sprintf("p%d", i)})
		}
		return ps
	}
	manyMap := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("K%d", i)] = "v"
		}
		return m
	}
	cases := []struct {
		name  string
		bp    *Blueprint
		field string // "" = valid
	}{
		{"spec example", specBlueprint(), ""},
		{"minimal", &Blueprint{Name: "x", Unit: "[Service]\nExecStart=/bin/x"}, ""},

		// name
		{"name empty", mutate(func(b *Blueprint) { b.Name = "" }), "name"},
		{"name upper case", mutate(func(b *Blueprint) { b.Name = "Arena" }), "name"},
		{"name leading dash", mutate(func(b *Blueprint) { b.Name = "-arena" }), "name"},
		{"name trailing dash", mutate(func(b *Blueprint) { b.Name = "arena-" }), "name"},
		{"name underscore", mutate(func(b *Blueprint) { b.Name = "are_na" }), "name"},
		{"name dot", mutate(func(b *Blueprint) { b.Name = "are.na" }), "name"},
		{"name 63 chars", mutate(func(b *Blueprint) { b.Name = long(63) }), ""},
		{"name 64 chars", mutate(func(b *Blueprint) { b.Name = long(64) }), "name"},
		{"name one digit", mutate(func(b *Blueprint) { b.Name = "7" }), ""},
		{"name with dashes", mutate(func(b *Blueprint) { b.Name = "a-b--c" }), ""},

		// unit
		{"unit missing", mutate(func(b *Blueprint) { b.Unit = "" }), "unit"},
		{"unit blank", mutate(func(b *Blueprint) { b.Unit = " \n\t" }), "unit"},
		{"unit unparseable", mutate(func(b *Blueprint) { b.Unit = "[Service\nExecStart=/bin/x" }), "unit"},
		{"unit line too long", mutate(func(b *Blueprint) { b.Unit = "[Service]\nExecStart=/bin/" + long(3000) }), "unit"},
		{"unit too large", mutate(func(b *Blueprint) {
			b.Unit = "[Service]\nExecStart=/bin/x\n" + strings.Repeat("# comment\n", MaxUnitLen/10)
		}), "unit"},
		{"unit without ExecStart", mutate(func(b *Blueprint) { b.Unit = "[Service]\nType=simple\n" }), "unit"},
		{"unit with empty ExecStart", mutate(func(b *Blueprint) { b.Unit = "[Service]\nExecStart=\n" }), "unit"},
		{"unit ExecStart outside Service", mutate(func(b *Blueprint) { b.Unit = "[Unit]\nExecStart=/bin/x\n" }), "unit"},
		{"unit ExecStart without section", mutate(func(b *Blueprint) { b.Unit = "ExecStart=/bin/x\n" }), "unit"},
		{"unit with other sections", mutate(func(b *Blueprint) {
			b.Unit = "[Unit]\nDescription=x\n\n[Service]\nType=simple\nExecStart=/bin/x\n\n[Install]\nWantedBy=multi-user.target\n"
		}), ""},

		// resources
		{"cpu negative", mutate(func(b *Blueprint) { b.Resources.CPUMHz = -1 }), "resources.cpu_mhz"},
		{"cpu max", mutate(func(b *Blueprint) { b.Resources.CPUMHz = MaxCPUMHz }), ""},
		{"cpu over max", mutate(func(b *Blueprint) { b.Resources.CPUMHz = MaxCPUMHz + 1 }), "resources.cpu_mhz"},
		{"memory negative", mutate(func(b *Blueprint) { b.Resources.MemoryMB = -1 }), "resources.memory_mb"},
		{"memory max", mutate(func(b *Blueprint) { b.Resources.MemoryMB = MaxMemoryMB }), ""},
		{"memory over max", mutate(func(b *Blueprint) { b.Resources.MemoryMB = MaxMemoryMB + 1 }), "resources.memory_mb"},
		{"resources zero", mutate(func(b *Blueprint) { b.Resources = Resources{} }), ""},

		// ports
		{"no ports and no port health", mutate(func(b *Blueprint) { b.Ports, b.Health = nil, nil }), ""},
		{"max ports", mutate(func(b *Blueprint) { b.Ports, b.Health = manyPorts(MaxPorts), nil }), ""},
		{"too many ports", mutate(func(b *Blueprint) { b.Ports, b.Health = manyPorts(MaxPorts+1), nil }), "ports"},
		{"port name empty", mutate(func(b *Blueprint) { b.Ports = append(b.Ports, Port{}) }), "ports[1].name"},
		{"port name upper case", mutate(func(b *Blueprint) { b.Ports = append(b.Ports, Port{Name: "Admin"}) }), "ports[1].name"},
		{"port name leading digit", mutate(func(b *Blueprint) { b.Ports = append(b.Ports, Port{Name: "1a"}) }), "ports[1].name"},
		{"port name dash", mutate(func(b *Blueprint) { b.Ports = append(b.Ports, Port{Name: "a-b"}) }), "ports[1].name"},
		{"port name 31 chars", mutate(func(b *Blueprint) { b.Ports = append(b.Ports, Port{Name: long(31)}) }), ""},
		{"port name 32 chars", mutate(func(b *Blueprint) { b.Ports = append(b.Ports, Port{Name: long(32)}) }), "ports[1].name"},
		{"port name underscore", mutate(func(b *Blueprint) { b.Ports = append(b.Ports, Port{Name: "admin_2"}) }), ""},
		{"port named twice", mutate(func(b *Blueprint) { b.Ports = append(b.Ports, Port{Name: "x"}, Port{Name: "game", Protocol: "tcp"}) }), "ports[2].name"},
		{"port protocol unknown", mutate(func(b *Blueprint) { b.Ports[0].Protocol = "sctp" }), "ports[0].protocol"},
		{"port protocol upper case", mutate(func(b *Blueprint) { b.Ports[0].Protocol = "UDP" }), "ports[0].protocol"},

		// env and secrets
		{"env key leading digit", mutate(func(b *Blueprint) { b.Env["1X"] = "v" }), "env.1X"},
		{"env key dash", mutate(func(b *Blueprint) { b.Env["A-B"] = "v" }), "env.A-B"},
		{"env key empty", mutate(func(b *Blueprint) { b.Env[""] = "v" }), "env."},
		{"env key 128 chars", mutate(func(b *Blueprint) { b.Env[long(128)] = "v" }), ""},
		{"env key 129 chars", mutate(func(b *Blueprint) { b.Env[long(129)] = "v" }), "env." + long(129)},
		{"env key lower case", mutate(func(b *Blueprint) { b.Env["_lower"] = "v" }), ""},
		{"env key ARMADA_", mutate(func(b *Blueprint) { b.Env["ARMADA_PORT_GAME"] = "1" }), "env.ARMADA_PORT_GAME"},
		{"env key armada_ lower case", mutate(func(b *Blueprint) { b.Env["armada_x"] = "1" }), ""},
		{"env value newline", mutate(func(b *Blueprint) { b.Env["MODE"] = "a\nb" }), "env.MODE"},
		{"env value NUL", mutate(func(b *Blueprint) { b.Env["MODE"] = "a\x00b" }), "env.MODE"},
		{"env value max", mutate(func(b *Blueprint) { b.Env["MODE"] = long(MaxEnvValue) }), ""},
		{"env value too long", mutate(func(b *Blueprint) { b.Env["MODE"] = long(MaxEnvValue + 1) }), "env.MODE"},
		{"env value empty", mutate(func(b *Blueprint) { b.Env["MODE"] = "" }), ""},
		{"env max entries", mutate(func(b *Blueprint) { b.Env = manyMap(256) }), ""},
		{"env too many entries", mutate(func(b *Blueprint) { b.Env = manyMap(257) }), "env"},
		{"first bad env key in order", mutate(func(b *Blueprint) { b.Env["Z-"] = "v"; b.Env["B-"] = "v" }), "env.B-"},
		{"secret key bad", mutate(func(b *Blueprint) { b.Secrets["A.B"] = "v" }), "secrets.A.B"},
		{"secret key ARMADA_", mutate(func(b *Blueprint) { b.Secrets["ARMADA_TOKEN"] = "v" }), "secrets.ARMADA_TOKEN"},
		{"secret value newline", mutate(func(b *Blueprint) { b.Secrets["API_KEY"] = "a\n" }), "secrets.API_KEY"},
		{"secret value too long", mutate(func(b *Blueprint) { b.Secrets["API_KEY"] = long(MaxEnvValue + 1) }), "secrets.API_KEY"},
		{"secret too many entries", mutate(func(b *Blueprint) { b.Secrets = manyMap(257) }), "secrets"},
		{"secret also in env", mutate(func(b *Blueprint) { b.Env["API_KEY"] = "plain" }), "secrets.API_KEY"},

		// health
		{"no health", mutate(func(b *Blueprint) { b.Health = nil }), ""},
		{"health type empty", mutate(func(b *Blueprint) { b.Health.Type = "" }), "health.type"},
		{"health type unknown", mutate(func(b *Blueprint) { b.Health.Type = "exec" }), "health.type"},
		{"health none", mutate(func(b *Blueprint) { b.Health = &Health{Type: "none"} }), ""},
		{"health sdk", mutate(func(b *Blueprint) { b.Health = &Health{Type: "sdk"} }), ""},
		{"tcp without port", mutate(func(b *Blueprint) { b.Health.Port = "" }), "health.port"},
		{"http without port", mutate(func(b *Blueprint) { b.Health = &Health{Type: "http"} }), "health.port"},
		{"port not in blueprint", mutate(func(b *Blueprint) { b.Health.Port = "admin" }), "health.port"},
		{"port is matched by name, not prefix", mutate(func(b *Blueprint) { b.Health.Port = "gam" }), "health.port"},
		// A TCP or HTTP check against a port declared udp is allowed: the
		// port is a number the ship may serve on both protocols, and the
		// SPEC's own example does exactly this.
		{"tcp check on a udp port", specBlueprint(), ""},
		{"http check on a udp port", mutate(func(b *Blueprint) { b.Health.Type = "http" }), ""},
		{"http path relative", mutate(func(b *Blueprint) { b.Health = &Health{Type: "http", Port: "game", Path: "healthz"} }), "health.path"},
		{"http path with space", mutate(func(b *Blueprint) { b.Health = &Health{Type: "http", Port: "game", Path: "/a b"} }), "health.path"},
		{"http path with newline", mutate(func(b *Blueprint) { b.Health = &Health{Type: "http", Port: "game", Path: "/a\nb"} }), "health.path"},
		{"http path with NUL", mutate(func(b *Blueprint) { b.Health = &Health{Type: "http", Port: "game", Path: "/\x00"} }), "health.path"},
		{"http path with query", mutate(func(b *Blueprint) { b.Health = &Health{Type: "http", Port: "game", Path: "/h?x=1"} }), ""},
		{"interval too short", mutate(func(b *Blueprint) {
			b.Health.Interval, b.Health.Timeout = Duration(99*time.Millisecond), Duration(50*time.Millisecond)
		}), "health.interval"},
		{"interval shortest", mutate(func(b *Blueprint) {
			b.Health.Interval, b.Health.Timeout = Duration(100*time.Millisecond), Duration(100*time.Millisecond)
		}), ""},
		{"interval longest", mutate(func(b *Blueprint) { b.Health.Interval = Duration(time.Hour) }), ""},
		{"interval too long", mutate(func(b *Blueprint) { b.Health.Interval = Duration(time.Hour + 1) }), "health.interval"},
		{"interval negative", mutate(func(b *Blueprint) { b.Health.Interval = Duration(-time.Second) }), "health.interval"},
		{"timeout equal to interval", mutate(func(b *Blueprint) { b.Health.Timeout = b.Health.Interval }), ""},
		{"timeout over interval", mutate(func(b *Blueprint) { b.Health.Timeout = b.Health.Interval + 1 }), "health.timeout"},
		{"timeout negative", mutate(func(b *Blueprint) { b.Health.Timeout = -1 }), "health.timeout"},
		{"failures max", mutate(func(b *Blueprint) { b.Health.Failures = 100 }), ""},
		{"failures over max", mutate(func(b *Blueprint) { b.Health.Failures = 101 }), "health.failures"},
		{"failures negative", mutate(func(b *Blueprint) { b.Health.Failures = -1 }), "health.failures"},

		// labels and node selector
		{"label key dotted and slashed", mutate(func(b *Blueprint) { b.Labels["example.com/tier"] = "front-end_1.0" }), ""},
		{"label key empty", mutate(func(b *Blueprint) { b.Labels[""] = "x" }), "labels."},
		{"label key leading dash", mutate(func(b *Blueprint) { b.Labels["-x"] = "x" }), "labels.-x"},
		{"label key trailing dot", mutate(func(b *Blueprint) { b.Labels["x."] = "x" }), "labels.x."},
		{"label key 63 chars", mutate(func(b *Blueprint) { b.Labels[long(63)] = "x" }), ""},
		{"label key 64 chars", mutate(func(b *Blueprint) { b.Labels[long(64)] = "x" }), "labels." + long(64)},
		{"label value empty", mutate(func(b *Blueprint) { b.Labels["game"] = "" }), ""},
		{"label value space", mutate(func(b *Blueprint) { b.Labels["game"] = "a b" }), "labels.game"},
		{"label value slash", mutate(func(b *Blueprint) { b.Labels["game"] = "a/b" }), "labels.game"},
		{"label value 63 chars", mutate(func(b *Blueprint) { b.Labels["game"] = long(63) }), ""},
		{"label value 64 chars", mutate(func(b *Blueprint) { b.Labels["game"] = long(64) }), "labels.game"},
		{"too many labels", mutate(func(b *Blueprint) { b.Labels = manyMap(257) }), "labels"},
		{"selector key bad", mutate(func(b *Blueprint) { b.NodeSelector["a b"] = "x" }), "node_selector.a b"},
		{"selector value bad", mutate(func(b *Blueprint) { b.NodeSelector["region"] = "eu west" }), "node_selector.region"},
		{"too many selectors", mutate(func(b *Blueprint) { b.NodeSelector = manyMap(257) }), "node_selector"},

		// The first problem wins, in field order.
		{"name before unit", mutate(func(b *Blueprint) { b.Name, b.Unit = "", "" }), "name"},
		{"unit before resources", mutate(func(b *Blueprint) { b.Unit, b.Resources.CPUMHz = "", -1 }), "unit"},
		{"env before health", mutate(func(b *Blueprint) { b.Env["A-"], b.Health.Type = "", "bad" }), "env.A-"},
		{"labels before selector", mutate(func(b *Blueprint) { b.Labels["-"], b.NodeSelector["-"] = "", "" }), "labels.-"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := ValidateBlueprint(tc.bp)
			switch {
			case tc.field == "" && e != nil:
				t.Fatalf("unexpected error %v", e)
			case tc.field != "" && e == nil:
				t.Fatalf("valid, want an error on %q", tc.field)
			case e != nil && (e.Code != ErrInvalid || e.Field != tc.field || e.Message == ""):
				t.Fatalf("error %s/%q %q, want field %q", e.Code, e.Field, e.Message, tc.field)
			}
		})
	}
}

func TestValidateBlueprintDefaults(t *testing.T) {
	bp := &Blueprint{
		Name: "x", Unit: "[Service]\nExecStart=/bin/x",
		Ports:  []Port{{Name: "a"}, {Name: "b", Protocol: "udp"}},
		Health: &Health{Type: "http", Port: "a"},
	}
	if e := ValidateBlueprint(bp); e != nil {
		t.Fatal(e)
	}
	requireEqual(t, "ports", bp.Ports, []Port{{Name: "a", Protocol: "tcp"}, {Name: "b", Protocol: "udp"}})
	requireEqual(t, "health", bp.Health, &Health{Type: "http", Port: "a", Path: "/", Interval: Duration(5 * time.Second), Timeout: Duration(2 * time.Second), Failures: 3})

	// tcp checks get no path.
	bp.Health = &Health{Type: "tcp", Port: "a", Interval: Duration(10 * time.Second)}
	if e := ValidateBlueprint(bp); e != nil {
		t.Fatal(e)
	}
	requireEqual(t, "tcp health", bp.Health, &Health{Type: "tcp", Port: "a", Interval: Duration(10 * time.Second), Timeout: Duration(2 * time.Second), Failures: 3})

	// A short interval the user chose caps the default timeout instead of
	// making the defaults invalid.
	bp.Health = &Health{Type: "sdk", Interval: Duration(time.Second)}
	if e := ValidateBlueprint(bp); e != nil {
		t.Fatalf("interval 1s with the default timeout: %v", e)
	}
	if bp.Health.Timeout != Duration(time.Second) {
		t.Fatalf("default timeout with a 1s interval: %v", time.Duration(bp.Health.Timeout))
	}

	// Validating twice changes nothing more.
	again := *bp
	h := *bp.Health
	again.Health = &h
	again.Ports = append([]Port(nil), bp.Ports...)
	if e := ValidateBlueprint(&again); e != nil {
		t.Fatal(e)
	}
	requireEqual(t, "second validation", &again, bp)
}

func TestValidNameMatchesRule(t *testing.T) {
	for s, want := range map[string]bool{"a": true, "a1-b2": true, "0": true, "": false, "A": false, "a_": false, "a-": false, long63(): true, long63() + "a": false} {
		if ValidName(s) != want {
			t.Errorf("ValidName(%q) = %v", s, !want)
		}
	}
}

func long63() string { return strings.Repeat("z", 63) }

func TestPrepareBlueprint(t *testing.T) {
	in := specBlueprint()
	in.Version, in.Created, in.SecretNames = 9, 99, []string{"STALE"}
	in.Secrets = map[string]string{"API_KEY": "s3cr3t", "B_TOKEN": "b"}
	c, err := PrepareBlueprint(testKey, in)
	if err != nil {
		t.Fatal(err)
	}
	if c.Spec.Secrets != nil {
		t.Fatalf("command carries plaintext secrets: %v", c.Spec.Secrets)
	}
	requireEqual(t, "secret names", c.Spec.SecretNames, []string{"API_KEY", "B_TOKEN"})
	if c.Spec.Version != 0 || c.Spec.Created != 0 {
		t.Fatalf("version %d created %d carried over", c.Spec.Version, c.Spec.Created)
	}
	if len(c.Sealed) == 0 || len(c.SecretsHash) == 0 {
		t.Fatal("no sealed secrets or hash")
	}
	enc := Encode(c)
	if bytes.Contains(enc, []byte("s3cr3t")) || bytes.Contains(c.Sealed, []byte("s3cr3t")) {
		t.Fatal("plaintext secret in the log entry")
	}
	got, err := OpenSecrets(testKey, c.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	requireEqual(t, "opened secrets", got, map[string]string{"API_KEY": "s3cr3t", "B_TOKEN": "b"})
	// The caller's blueprint keeps its secrets.
	if in.Secrets["API_KEY"] != "s3cr3t" {
		t.Fatal("PrepareBlueprint consumed the caller's secrets")
	}

	// Same secrets: new nonce, same hash. Different secrets or key: new hash.
	c2, _ := PrepareBlueprint(testKey, in)
	if bytes.Equal(c2.Sealed, c.Sealed) {
		t.Fatal("sealing reuses its nonce")
	}
	if !bytes.Equal(c2.SecretsHash, c.SecretsHash) {
		t.Fatal("hash of equal secrets differs")
	}
	in2 := specBlueprint()
	in2.Secrets = map[string]string{"API_KEY": "s3cr3t", "B_TOKEN": "c"}
	c3, _ := PrepareBlueprint(testKey, in2)
	if bytes.Equal(c3.SecretsHash, c.SecretsHash) {
		t.Fatal("hash of different secrets is equal")
	}
	otherKey := bytes.Repeat([]byte{1}, 32)
	c4, _ := PrepareBlueprint(otherKey, in)
	if bytes.Equal(c4.SecretsHash, c.SecretsHash) {
		t.Fatal("hash does not depend on the key")
	}

	// Applied, the command stores only names; the secrets come back
	// through the view with the cluster key.
	h := newHarness(t)
	h.ok(&ClusterInit{ClusterID: "c", Key: testKey})
	r := h.ok(c)
	requireEqual(t, "stored names", r.Blueprint.SecretNames, []string{"API_KEY", "B_TOKEN"})
	h.view(func(v *View) {
		sec, err := v.BlueprintSecrets("arena", 0)
		if err != nil {
			t.Fatal(err)
		}
		requireEqual(t, "view secrets", sec, got)
	})
}

func TestPrepareBlueprintErrors(t *testing.T) {
	bad := specBlueprint()
	bad.Ports[0].Protocol = "icmp"
	_, err := PrepareBlueprint(testKey, bad)
	var e *Error
	if !errors.As(err, &e) || e.Field != "ports[0].protocol" {
		t.Fatalf("invalid blueprint: %v", err)
	}
	// Secrets need a usable key; without secrets no key is needed.
	if _, err := PrepareBlueprint(nil, specBlueprint()); err == nil {
		t.Fatal("sealed secrets without a key")
	}
	if _, err := PrepareBlueprint([]byte("short"), specBlueprint()); err == nil {
		t.Fatal("sealed secrets with a 5-byte key")
	}
	noSecrets := specBlueprint()
	noSecrets.Secrets = nil
	c, err := PrepareBlueprint(nil, noSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sealed != nil || c.SecretsHash != nil || c.Spec.SecretNames != nil {
		t.Fatalf("no secrets but %s", jsonString(c))
	}
}

func TestOpenSecretsErrors(t *testing.T) {
	sealed, _, err := SealSecrets(testKey, map[string]string{"A": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := OpenSecrets(testKey, nil); err != nil || m != nil {
		t.Fatalf("nothing sealed: %v %v", m, err)
	}
	for name, tc := range map[string]struct{ key, sealed []byte }{
		"wrong key":  {bytes.Repeat([]byte{9}, 32), sealed},
		"bad key":    {[]byte("k"), sealed},
		"truncated":  {testKey, sealed[:5]},
		"tampered":   {testKey, flip(sealed, len(sealed)-1, 1)},
		"bad nonce":  {testKey, flip(sealed, 0, 1)},
		"no payload": {testKey, sealed[:12]},
	} {
		if m, err := OpenSecrets(tc.key, tc.sealed); err == nil {
			t.Errorf("%s: opened %v", name, m)
		}
	}
}

// TestBlueprintJSONRoundTrip checks that what the API returns (JSON) parses
// back to the same blueprint.
func TestBlueprintJSONRoundTrip(t *testing.T) {
	bp := specBlueprint()
	if e := ValidateBlueprint(bp); e != nil {
		t.Fatal(e)
	}
	bp.Version, bp.Created, bp.SecretNames = 2, 5, []string{"API_KEY"}
	js := []byte(jsonString(bp))
	back, err := ParseBlueprint(js)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, bp) {
		t.Fatalf("round trip:\n got  %s\n want %s", jsonString(back), js)
	}
}

func TestValidateLabelsExported(t *testing.T) {
	if e := ValidateLabels("node.labels", map[string]string{"region": "eu", "example.com/rack": "r1"}); e != nil {
		t.Fatalf("valid labels: %v", e)
	}
	if e := ValidateLabels("node.labels", map[string]string{"ok": "x", "bad key": "x"}); e == nil || e.Field != "node.labels.bad key" || e.Code != ErrInvalid {
		t.Fatalf("bad key: %+v", e)
	}
	if e := ValidateLabels("sel", map[string]string{"k": "bad value"}); e == nil || e.Field != "sel.k" {
		t.Fatalf("bad value: %+v", e)
	}
	if e := ValidateLabels("x", nil); e != nil {
		t.Fatalf("nil labels: %v", e)
	}
}
