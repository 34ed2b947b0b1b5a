package fsm

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"
)

var (
	nameRe     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	portNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)
	envKeyRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	labelKeyRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$`)
	labelValRe = regexp.MustCompile(`^[A-Za-z0-9._-]{0,63}$`)
)

// Limits on blueprints.
const (
	MaxUnitLen   = 64 << 10
	MaxEnvValue  = 32 << 10
	MaxPorts     = 32
	MaxCPUMHz    = 1_000_000
	MaxMemoryMB  = 16 << 20
	maxMapLen    = 256
	maxHealthTry = 100
)

// ValidName reports whether s is a valid object name: [a-z0-9-], 1..63,
// starting and ending with a letter or digit.
func ValidName(s string) bool { return nameRe.MatchString(s) }

// ParseBlueprint reads a blueprint from YAML or JSON. Unknown fields are
// errors, so a typo never silently drops a setting.
func ParseBlueprint(data []byte) (*Blueprint, error) {
	var bp Blueprint
	if err := StrictUnmarshal(data, &bp); err != nil {
		return nil, err
	}
	return &bp, nil
}

// FieldBody is the field an error names when the document as a whole is
// at fault (not YAML or JSON, empty, trailing data): the request's body.
const FieldBody = "body"

// StrictUnmarshal decodes YAML or JSON into v, refusing unknown fields and
// trailing data. Errors are *Error naming the field, FieldBody when the
// document as a whole is at fault.
func StrictUnmarshal(data []byte, v any) error {
	// Strict: a key given twice is an error, not "the last one wins".
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return errf(ErrInvalid, FieldBody, "not valid YAML or JSON: %v", err)
	}
	// YAMLToJSON converts the first document only and silently drops
	// whatever follows it (a second document, a second JSON object, stray
	// characters), so look for that separately.
	if extraDocument(data) {
		return errf(ErrInvalid, FieldBody, "trailing data after the document")
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			want := te.Type.String()
			if te.Type == reflect.TypeFor[Duration]() {
				want = `a duration like "5s"`
			}
			return errf(ErrInvalid, cmp.Or(te.Field, FieldBody), "must be %s, not %s", want, te.Value)
		}
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return errf(ErrInvalid, f, "unknown field %q", f)
		}
		if err == io.EOF {
			return errf(ErrInvalid, FieldBody, "empty document")
		}
		return errf(ErrInvalid, FieldBody, "%s", strings.TrimPrefix(msg, "json: "))
	}
	if dec.More() {
		return errf(ErrInvalid, FieldBody, "trailing data after the document")
	}
	return nil
}

// extraDocument reports whether data holds anything after its first YAML
// document other than empty documents.
func extraDocument(data []byte) (extra bool) {
	defer func() {
		if recover() != nil { // the YAML decoder panics on some malformed input
			extra = true
		}
	}()
	dec := yamlv2.NewDecoder(bytes.NewReader(data))
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return false // empty (EOF), or invalid and already reported
	}
	for {
		doc = nil
		err := dec.Decode(&doc)
		if err == io.EOF {
			return false
		}
		if err != nil || doc != nil {
			return true
		}
	}
}

// ValidateBlueprint checks every field of a blueprint and fills in
// defaults (port protocol, health timings). It returns the first problem
// as an *Error naming its field.
func ValidateBlueprint(bp *Blueprint) *Error {
	if !ValidName(bp.Name) {
		return errf(ErrInvalid, "name", "must be 1..63 of [a-z0-9-], starting and ending with a letter or digit")
	}
	if e := validateUnit(bp.Unit); e != nil {
		return e
	}
	if r := bp.Resources; r.CPUMHz < 0 || r.CPUMHz > MaxCPUMHz {
		return errf(ErrInvalid, "resources.cpu_mhz", "must be 0..%d", MaxCPUMHz)
	}
	if r := bp.Resources; r.MemoryMB < 0 || r.MemoryMB > MaxMemoryMB {
		return errf(ErrInvalid, "resources.memory_mb", "must be 0..%d", MaxMemoryMB)
	}
	if len(bp.Ports) > MaxPorts {
		return errf(ErrInvalid, "ports", "at most %d ports", MaxPorts)
	}
	ports := map[string]bool{}
	for i := range bp.Ports {
		p := &bp.Ports[i]
		f := fmt.Sprintf("ports[%d]", i)
		if !portNameRe.MatchString(p.Name) {
			return errf(ErrInvalid, f+".name", "must be 1..31 of [a-z0-9_], starting with a letter (it becomes ARMADA_PORT_%s)", strings.ToUpper(p.Name))
		}
		if ports[p.Name] {
			return errf(ErrInvalid, f+".name", "port %q is named twice", p.Name)
		}
		ports[p.Name] = true
		switch p.Protocol {
		case "":
			p.Protocol = "tcp"
		case "tcp", "udp":
		default:
			return errf(ErrInvalid, f+".protocol", "must be tcp or udp, not %q", p.Protocol)
		}
	}
	if e := validateEnv("env", bp.Env, nil); e != nil {
		return e
	}
	if e := validateEnv("secrets", bp.Secrets, bp.Env); e != nil {
		return e
	}
	if e := validateHealth(bp.Health, ports); e != nil {
		return e
	}
	if e := validateLabels("labels", bp.Labels); e != nil {
		return e
	}
	return validateLabels("node_selector", bp.NodeSelector)
}

func validateUnit(text string) *Error {
	if strings.TrimSpace(text) == "" {
		return errf(ErrInvalid, "unit", "is required: a systemd unit with [Service] ExecStart=")
	}
	if len(text) > MaxUnitLen {
		return errf(ErrInvalid, "unit", "is %d bytes; the limit is %d", len(text), MaxUnitLen)
	}
	opts, err := unit.DeserializeOptions(strings.NewReader(text))
	if err != nil {
		return errf(ErrInvalid, "unit", "not a valid systemd unit: %v", err)
	}
	for _, o := range opts {
		if o.Section == "Service" && o.Name == "ExecStart" && strings.TrimSpace(o.Value) != "" {
			return nil
		}
	}
	return errf(ErrInvalid, "unit", "[Service] ExecStart= is required")
}

func validateEnv(field string, env, other map[string]string) *Error {
	if len(env) > maxMapLen {
		return errf(ErrInvalid, field, "at most %d entries", maxMapLen)
	}
	for _, k := range sortedKeys(env) {
		f := field + "." + k
		if !envKeyRe.MatchString(k) {
			return errf(ErrInvalid, f, "name must match [A-Za-z_][A-Za-z0-9_]*")
		}
		if strings.HasPrefix(k, "ARMADA_") {
			return errf(ErrInvalid, f, "names starting with ARMADA_ are set by Armada")
		}
		if _, dup := other[k]; dup {
			return errf(ErrInvalid, f, "is set in env too")
		}
		v := env[k]
		if len(v) > MaxEnvValue {
			return errf(ErrInvalid, f, "value is %d bytes; the limit is %d", len(v), MaxEnvValue)
		}
		if strings.ContainsAny(v, "\x00\n") {
			return errf(ErrInvalid, f, "value must not contain NUL or newline")
		}
	}
	return nil
}

func validateHealth(h *Health, ports map[string]bool) *Error {
	if h == nil {
		return nil
	}
	switch h.Type {
	case "none", "sdk":
	case "http", "tcp":
		if h.Port == "" {
			return errf(ErrInvalid, "health.port", "is required for %s checks", h.Type)
		}
		if !ports[h.Port] {
			return errf(ErrInvalid, "health.port", "names no port of this blueprint: %q", h.Port)
		}
		if h.Type == "http" {
			if h.Path == "" {
				h.Path = "/"
			}
			if !strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \n\x00") {
				return errf(ErrInvalid, "health.path", "must be a URL path starting with /")
			}
		}
	default:
		return errf(ErrInvalid, "health.type", "must be http, tcp, sdk or none, not %q", h.Type)
	}
	if h.Interval == 0 {
		h.Interval = Duration(5 * time.Second)
	}
	if h.Timeout == 0 {
		// The default must not exceed a short interval the user chose.
		h.Timeout = min(Duration(2*time.Second), h.Interval)
	}
	if h.Failures == 0 {
		h.Failures = 3
	}
	if h.Interval < Duration(100*time.Millisecond) || h.Interval > Duration(time.Hour) {
		return errf(ErrInvalid, "health.interval", "must be between 100ms and 1h")
	}
	if h.Timeout <= 0 || h.Timeout > h.Interval {
		return errf(ErrInvalid, "health.timeout", "must be positive and at most the interval")
	}
	if h.Failures < 1 || h.Failures > maxHealthTry {
		return errf(ErrInvalid, "health.failures", "must be 1..%d", maxHealthTry)
	}
	return nil
}

func validateLabels(field string, labels map[string]string) *Error {
	if len(labels) > maxMapLen {
		return errf(ErrInvalid, field, "at most %d entries", maxMapLen)
	}
	for _, k := range sortedKeys(labels) {
		if !labelKeyRe.MatchString(k) {
			return errf(ErrInvalid, field+"."+k, "key must be 1..63 of [A-Za-z0-9._/-], starting and ending with a letter or digit")
		}
		if !labelValRe.MatchString(labels[k]) {
			return errf(ErrInvalid, field+"."+k, "value must be 0..63 of [A-Za-z0-9._-]")
		}
	}
	return nil
}

// PrepareBlueprint validates a blueprint from a user and turns it into the
// command that stores it: secrets sealed with the cluster key and replaced
// by their names.
func PrepareBlueprint(key []byte, bp *Blueprint) (*BlueprintPut, error) {
	spec := *bp
	spec.Version, spec.Created, spec.SecretNames = 0, 0, nil
	if e := ValidateBlueprint(&spec); e != nil {
		return nil, e
	}
	sealed, hash, err := SealSecrets(key, spec.Secrets)
	if err != nil {
		return nil, err
	}
	if len(spec.Secrets) > 0 {
		spec.SecretNames = sortedKeys(spec.Secrets)
	}
	spec.Secrets = nil
	return &BlueprintPut{Spec: spec, Sealed: sealed, SecretsHash: hash}, nil
}

// elemField names the i-th element of a list field, for an error: checks
// build it only once they fail.
func elemField(name string, i int) string { return name + "[" + strconv.Itoa(i) + "]" }
