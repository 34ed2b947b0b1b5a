package fsm

import (
	"bytes"
	"encoding/json"
	"sort"
)

func bpVersionKey(name string, v int) []byte {
	return append(append([]byte(name), 0), u64(uint64(v))...)
}

func (c *BlueprintPut) apply(t *txn) *Result {
	spec := c.Spec
	if err := ValidateBlueprint(&spec); err != nil {
		return fail(err)
	}
	if len(spec.Secrets) > 0 {
		return fail(errf(ErrInvalid, "secrets", "secrets must be sealed before they are logged"))
	}
	info, exists := getJSON[BlueprintInfo](t.b(bBlueprints), []byte(spec.Name))
	if exists {
		if latest, ok := getJSON[storedBlueprint](t.b(bBPVersions), bpVersionKey(spec.Name, info.Latest)); ok &&
			sameSpec(&latest.Spec, &spec) && bytes.Equal(latest.SecretsHash, c.SecretsHash) {
			return &Result{Blueprint: &latest.Spec}
		}
	} else {
		info = &BlueprintInfo{Name: spec.Name, Created: c.Now}
	}
	info.Latest++
	info.Versions = append(info.Versions, info.Latest)
	info.Updated = c.Now
	spec.Version, spec.Created = info.Latest, c.Now
	t.putJSON(bBPVersions, bpVersionKey(spec.Name, spec.Version), &storedBlueprint{Spec: spec, Sealed: c.Sealed, SecretsHash: c.SecretsHash})
	t.putJSON(bBlueprints, []byte(spec.Name), info)
	t.changed("blueprint", spec.Name, "put")
	return &Result{Blueprint: &spec}
}

// sameSpec reports whether two blueprints differ only in version and time.
func sameSpec(a, b *Blueprint) bool {
	x, y := *a, *b
	x.Version, y.Version, x.Created, y.Created = 0, 0, 0, 0
	return sameJSON(&x, &y)
}

func sameJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func (c *BlueprintDelete) apply(t *txn) *Result {
	info, ok := getJSON[BlueprintInfo](t.b(bBlueprints), []byte(c.Name))
	if !ok {
		return fail(errf(ErrNotFound, "name", "blueprint %q not found", c.Name))
	}
	var used string
	t.b(bFleets).ForEach(func(k, _ []byte) error {
		if f, ok := getJSON[Fleet](t.b(bFleets), k); ok && used == "" {
			for _, v := range f.Versions {
				if v.Blueprint == c.Name {
					used = f.Name
				}
			}
		}
		return nil
	})
	if used != "" {
		return fail(errf(ErrConflict, "name", "blueprint %q is used by fleet %q", c.Name, used))
	}
	// Ships without a fleet use it too (fleet ships go with their fleet).
	cur := t.b(bFleetShips).Cursor()
	for k, v := cur.Seek([]byte{0}); k != nil && k[0] == 0; k, v = cur.Next() {
		if s, ok := decodeSummary(v); ok && s.Blueprint == c.Name && s.Live() {
			return fail(errf(ErrConflict, "name", "blueprint %q is used by ship %q", c.Name, k[1:]))
		}
	}
	for _, v := range info.Versions {
		t.del(bBPVersions, bpVersionKey(c.Name, v))
	}
	t.del(bBlueprints, []byte(c.Name))
	t.changed("blueprint", c.Name, "delete")
	return &Result{Deleted: len(info.Versions)}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
