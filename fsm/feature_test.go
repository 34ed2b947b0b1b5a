package fsm

import (
	"testing"
)

func TestApplyFeatureOn(t *testing.T) { runCmdCases(t, featureOnCases()) }

func featureOnCases() []cmdCase {
	ownRevisions := &FeatureOn{Name: FeatureOwnRevisions}
	return []cmdCase{
		{
			// After the switch, each command of one entry that writes keys
			// takes a revision of its own; the state's revision follows.
			name:  "own revisions: a batch's commands each take one",
			setup: []Command{ownRevisions, put("x", "y")}, // entries 1, 2: x at revision 2
			cmd: &Batch{Cmds: []Command{
				put("k", "1"),
				&KVPut{Key: "k", Value: []byte("2"), HasCAS: true, CAS: 3},
				&KVDelete{Key: "x"},
				&KVPut{Key: "x", Value: []byte("again"), HasCAS: true, CAS: 0},
				&QueuePush{Queue: "q", Data: []byte("i")},
			}},
			check: func(t *testing.T, h *harness, r *Result) {
				for i, sub := range r.Batch {
					if sub.Err != nil {
						t.Fatalf("sub-command %d: %v", i, sub.Err)
					}
				}
				requireKV(t, h, &KV{Key: "k", Value: []byte("2"), CreateRev: 3, ModRev: 4, Version: 2})
				requireKV(t, h, &KV{Key: "x", Value: []byte("again"), CreateRev: 6, ModRev: 6, Version: 1})
				if r.Batch[4].Item.ID != 7 {
					t.Errorf("queue item %d: IDs come from the same allocator", r.Batch[4].Item.ID)
				}
				for i, want := range []uint64{3, 4, 5, 6, 7} {
					if r.Batch[i].Rev != want {
						t.Errorf("sub-command %d: revision %d, want %d", i, r.Batch[i].Rev, want)
					}
				}
				h.view(func(v *View) {
					if !v.Feature(FeatureOwnRevisions) || v.Revision() != 7 || v.Index() != 3 {
						t.Errorf("feature %v, revision %d, index %d", v.Feature(FeatureOwnRevisions), v.Revision(), v.Index())
					}
				})
				// The feed can be read from any of them.
				got, through, _, err := h.s.ChangesAfterRev(4)
				if err != nil || through != 3 || len(got) != 3 || got[0].Key != "x" || got[0].Op != "delete" || got[0].Rev != 5 {
					t.Errorf("changes after revision 4: %+v, through %d, %v", got, through, err)
				}
			},
		},
		{
			// Before it, they share the entry's index, as every earlier
			// version applied them.
			name:  "before the switch a batch's commands share the index",
			setup: []Command{put("x", "y")},
			cmd:   &Batch{Cmds: []Command{put("k", "1"), put("j", "2")}},
			check: func(t *testing.T, h *harness, r *Result) {
				requireKV(t, h, &KV{Key: "k", Value: []byte("1"), CreateRev: 2, ModRev: 2, Version: 1})
				requireKV(t, h, &KV{Key: "j", Value: []byte("2"), CreateRev: 2, ModRev: 2, Version: 1})
				h.view(func(v *View) {
					if v.Feature(FeatureOwnRevisions) || v.Revision() != 2 {
						t.Errorf("feature %v, revision %d", v.Feature(FeatureOwnRevisions), v.Revision())
					}
				})
			},
		},
		{
			name:  "switching on again changes nothing",
			setup: []Command{ownRevisions},
			cmd:   &FeatureOn{Name: FeatureOwnRevisions},
			check: func(t *testing.T, h *harness, r *Result) {
				h.view(func(v *View) {
					if got := getU64(v.tx.Bucket(bMeta).Get(featureKey(FeatureOwnRevisions))); got != 1 {
						t.Errorf("switched on at %d, want 1", got)
					}
				})
			},
		},
		{name: "unknown feature", cmd: &FeatureOn{Name: "teleport"}, code: ErrInvalid, field: "name"},
	}
}
