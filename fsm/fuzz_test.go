package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// normalizeCommand maps the few representations a decode can produce that
// encode identically onto one, so that commands can be compared with
// reflect.DeepEqual: the JSON body of BlueprintPut drops empty maps and
// slices (omitempty), which decode back as nil, and so does FleetPut's for
// placement constraints.
func normalizeCommand(c Command) Command {
	switch p := c.(type) {
	case *BlueprintPut:
		q := *p
		normalizeBlueprint(&q.Spec)
		return &q
	case *FleetPut:
		q := *p
		if pl := q.Spec.Placement; pl != nil && len(pl.Constraints) == 0 {
			c := *pl
			c.Constraints = nil
			q.Spec.Placement = &c
		}
		return &q
	case *Batch:
		q := &Batch{Cmds: make([]Command, len(p.Cmds))}
		for i, sub := range p.Cmds {
			q.Cmds[i] = normalizeCommand(sub)
		}
		return q
	}
	return c
}

func normalizeBlueprint(bp *Blueprint) {
	if len(bp.Ports) == 0 {
		bp.Ports = nil
	}
	if len(bp.SecretNames) == 0 {
		bp.SecretNames = nil
	}
	for _, m := range []*map[string]string{&bp.Env, &bp.Secrets, &bp.Labels, &bp.NodeSelector} {
		if len(*m) == 0 {
			*m = nil
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range append(sampleCommands(), zeroCommands()...) {
		f.Add(Encode(c))
	}
	prep, err := PrepareBlueprint(testKey, specBlueprint())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(Encode(prep))
	f.Add(rawBlueprintPut(`{"name":"x","env":{},"ports":[],"health":{"interval":5}}`))
	f.Add(rawBlueprintPut(`{"health":{"interval":-1e300}}`))
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Add([]byte{byte(CmdKVPut), 0x80})
	f.Add(EncodeBatch([][]byte{Encode(prep), Encode(put("a", "b")), Encode(&Expire{Now: 1})}))
	f.Add(EncodeBatch([][]byte{EncodeBatch(nil)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			if c != nil {
				t.Fatalf("Decode returned a command and an error %v", err)
			}
			return
		}
		if c.Type() != CmdType(data[0]) {
			t.Fatalf("decoded type %d from type byte %d", c.Type(), data[0])
		}
		b := Encode(c)
		c2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-encoding of %#v does not decode: %v", c, err)
		}
		if !reflect.DeepEqual(normalizeCommand(c2), normalizeCommand(c)) {
			t.Fatalf("round trip changed the command:\n got  %#v\n want %#v", c2, c)
		}
		// The encoding is canonical from then on.
		if b2 := Encode(c2); !bytes.Equal(b2, b) {
			t.Fatalf("encoding is not stable:\n%x\n%x", b, b2)
		}
	})
}

func FuzzParseBlueprint(f *testing.F) {
	f.Add([]byte(specYAML))
	f.Add([]byte(specJSON))
	f.Add([]byte(jsonString(validBlueprint())))
	f.Add([]byte("name: x\nunit: \"[Service]\\nExecStart=/bin/x\"\nhealth: {type: http, port: p, interval: 1}\nports: [{name: p}]\n"))
	f.Add([]byte("name: x\nunit: \"[Service]\\nExecStart=/bin/x\"\nenv: {}\nports: []\nlabels: {a: ''}\n"))
	f.Add([]byte("name: x\nnmae: y\n"))
	f.Add([]byte("{"))
	f.Add([]byte(""))
	f.Add([]byte("[Service]\nExecStart=/bin/x"))
	// Inputs behind fixed bugs: trailing documents, duplicate keys, an
	// out-of-range number of seconds, a wrongly typed duration.
	f.Add([]byte("name: x\n---\nname: y\n"))
	f.Add([]byte(`{"name":"x"} {"name":"y"}`))
	f.Add([]byte("name: x\nname: y\n"))
	f.Add([]byte("name: x\nhealth: {type: sdk, interval: 1e300}\n"))
	f.Add([]byte("name: x\nhealth: {type: sdk, interval: soon, timeout: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		bp, err := ParseBlueprint(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != ErrInvalid {
				t.Fatalf("ParseBlueprint error %T %v is not an invalid *Error", err, err)
			}
			return
		}
		if e := ValidateBlueprint(bp); e != nil {
			if e.Code != ErrInvalid || e.Field == "" {
				t.Fatalf("validation error without a field: %+v", e)
			}
			return
		}
		// A valid blueprint, written back as JSON (as the API returns it),
		// parses and validates to the same value.
		js, err := json.Marshal(bp)
		if err != nil {
			t.Fatalf("marshal a valid blueprint: %v", err)
		}
		back, err := ParseBlueprint(js)
		if err != nil {
			t.Fatalf("re-parse %s: %v", js, err)
		}
		if e := ValidateBlueprint(back); e != nil {
			t.Fatalf("re-validate %s: %v", js, e)
		}
		want := *bp
		normalizeBlueprint(&want)
		normalizeBlueprint(back)
		if !reflect.DeepEqual(back, &want) {
			t.Fatalf("JSON round trip:\n got  %#v\n want %#v", back, &want)
		}
		// And as a log entry it survives Encode/Decode unchanged.
		c, err := Decode(Encode(&BlueprintPut{Spec: want}))
		if err != nil {
			t.Fatalf("decode the blueprint's entry: %v", err)
		}
		got := c.(*BlueprintPut).Spec
		normalizeBlueprint(&got)
		if !reflect.DeepEqual(&got, &want) {
			t.Fatalf("entry round trip:\n got  %#v\n want %#v", &got, &want)
		}
	})
}
