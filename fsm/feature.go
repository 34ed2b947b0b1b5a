package fsm

import (
	"slices"

	"go.etcd.io/bbolt"
)

// Features change how later entries apply. A node that knows one says so
// in gossip; the leader logs FeatureOn once every server of the
// configuration does, so that every node, and every replay of the log at
// boot, switches at the same entry, and no node that applies the old way
// ever sees an entry applied the new way.
const (
	// FeatureOwnRevisions gives every command that writes keys a revision
	// of its own (txn.revision). Before it, the commands grouped into one
	// entry all took the entry's index.
	FeatureOwnRevisions = "own_revisions"
	// FeatureZKEmptyData lets ZooKeeper writes tell empty data from null
	// (CmdZKMultiData), as ZooKeeper does: a node created or set with an
	// empty buffer reads back empty, not null.
	FeatureZKEmptyData = "zk_empty_data"
)

// Features lists the features this version knows.
func Features() []string { return []string{FeatureOwnRevisions, FeatureZKEmptyData} }

func knownFeature(name string) bool { return slices.Contains(Features(), name) }

// FeatureOn switches a feature on from the next command on. Switching one
// on again changes nothing.
type FeatureOn struct{ Name string }

func (*FeatureOn) Type() CmdType       { return CmdFeatureOn }
func (c *FeatureOn) encode(e *encoder) { e.str(c.Name) }
func (c *FeatureOn) decode(d *decoder) { c.Name = d.str() }

func (c *FeatureOn) apply(t *txn) *Result {
	if !knownFeature(c.Name) {
		return fail(errf(ErrInvalid, "name", "unknown feature %q", c.Name))
	}
	if !featureOn(t.tx, c.Name) {
		t.put(bMeta, featureKey(c.Name), u64(t.index))
	}
	if c.Name == FeatureOwnRevisions {
		t.ownRev, t.ownRevLoaded = true, true
	}
	return &Result{}
}

func featureKey(name string) []byte { return []byte("feature/" + name) }

func featureOn(tx *bbolt.Tx, name string) bool { return tx.Bucket(bMeta).Get(featureKey(name)) != nil }

// Feature reports whether a feature is on.
func (v *View) Feature(name string) bool { return featureOn(v.tx, name) }
