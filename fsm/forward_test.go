package fsm

import (
	"bytes"
	"testing"
	"time"
)

func forwardedCases() []cmdCase {
	return []cmdCase{
		{
			name:  "applies its command; the result carries the tag",
			setup: []Command{put("k", "v1")},
			cmd:   &Forwarded{Origin: 3, Seq: 7, Cmd: &KVPut{Key: "k", Value: []byte("v2"), HasCAS: true, CAS: 1}},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.Origin != 3 || r.Seq != 7 {
					t.Fatalf("tag %d/%d, want 3/7", r.Origin, r.Seq)
				}
				requireKV(t, h, &KV{Key: "k", Value: []byte("v2"), CreateRev: 1, ModRev: 2, Version: 2})
			},
		},
		{
			name:  "its command's rejection is its own",
			cmd:   &Forwarded{Origin: 3, Seq: 8, Cmd: &KVDelete{}},
			code:  ErrInvalid,
			field: "key",
		},
	}
}

func TestApplyForwarded(t *testing.T) { runCmdCases(t, forwardedCases()) }

func TestForwardedStampsItsCommand(t *testing.T) {
	f := &Forwarded{Origin: 1, Seq: 2, Cmd: put("a", "b")}
	Stamp(f, time.UnixMilli(4242))
	if f.Cmd.(*KVPut).Now != 4242 || f.Origin != 1 || f.Seq != 2 {
		t.Fatalf("forwarded command not stamped: %+v %+v", f, f.Cmd)
	}
}

func TestForwardedNeedsACommand(t *testing.T) {
	for name, b := range map[string][]byte{
		"no command":         Encode(&Forwarded{Origin: 1, Seq: 1}),
		"a batch inside":     EncodeForwarded(1, 1, Encode(&Batch{Cmds: []Command{&LeaseRevoke{ID: 1}}})),
		"a forwarded inside": EncodeForwarded(1, 2, EncodeForwarded(1, 1, Encode(&LeaseRevoke{ID: 1}))),
		"cut short":          EncodeForwarded(1, 1, Encode(&LeaseRevoke{ID: 1}))[:4],
	} {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: decoded % x", name, b)
		}
	}
}

func TestEncodeForwardedMatchesEncode(t *testing.T) {
	c := &KVPut{Key: "k", Value: []byte("v"), Now: 7}
	want := Encode(&Forwarded{Origin: 1 << 62, Seq: 300, Cmd: c})
	if got := EncodeForwarded(1<<62, 300, Encode(c)); !bytes.Equal(got, want) {
		t.Fatalf("EncodeForwarded % x, Encode % x", got, want)
	}
}

// A forwarded command applies as its command does, alone or in a batch,
// and its result carries the tag.
func TestForwardedAppliesItsCommand(t *testing.T) {
	s := openState(t)
	put := &KVPut{Key: "k", Value: []byte("v1"), Now: 1}
	fw := &Forwarded{Origin: 9, Seq: 4, Cmd: &KVPut{Key: "k", Value: []byte("v2"), HasCAS: true, CAS: 1, Now: 2}}
	bad := &Forwarded{Origin: 9, Seq: 5, Cmd: &KVPut{Key: "k", Value: []byte("v3"), HasCAS: true, CAS: 1, Now: 3}}
	rs := s.ApplyBatch([]Entry{
		{Index: 1, Data: Encode(put)},
		{Index: 2, Data: Encode(fw)},
		{Index: 3, Data: EncodeBatch([][]byte{Encode(bad), Encode(&Forwarded{Origin: 8, Seq: 5, Cmd: &KVDelete{Key: "k"}})})},
	})
	if r := rs[1]; r.Err != nil || r.Origin != 9 || r.Seq != 4 || r.Index != 2 || r.KV == nil || string(r.KV.Value) != "v2" {
		t.Fatalf("tagged put: %+v", r)
	}
	sub := rs[2].Batch
	if len(sub) != 2 || sub[0].Err == nil || sub[0].Origin != 9 || sub[0].Seq != 5 || sub[1].Err != nil || sub[1].Origin != 8 {
		t.Fatalf("tagged batch: %+v %+v", sub[0], sub[1])
	}
	_ = s.View(func(v *View) error {
		if kv, ok := v.KV("k"); ok {
			t.Fatalf("the tagged delete did not apply: %+v", kv)
		}
		return nil
	})
}
