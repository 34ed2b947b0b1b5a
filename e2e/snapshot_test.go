package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A snapshot saved with the CLI holds every acknowledged write, survives
// the node being killed, and restores the cluster to exactly that state.
func TestSnapshotSaveAndRestoreCLI(t *testing.T) {
	c := NewCluster(t)
	n := c.StartNode("n1")
	waitSingleLeader(t, n, 30*time.Second)
	for _, k := range []string{"e2e/a", "e2e/b"} {
		if _, err := putKV(n, k, "in the backup", 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "backup.snap")
	res := mustCLI(t, nil, "--addr", n.BaseURL(), "snapshot", "save", file)
	if !strings.Contains(res.Stdout, "saved to") {
		t.Fatalf("unexpected output\n%s", res)
	}
	if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
		t.Fatalf("snapshot file: %v", err)
	}
	// -o json says the same for scripts.
	again := filepath.Join(t.TempDir(), "again.snap")
	res = mustCLI(t, nil, "--addr", n.BaseURL(), "-o", "json", "snapshot", "save", again)
	var saved struct {
		File  string `json:"file"`
		Index uint64 `json:"snapshot_index"`
		Bytes int64  `json:"bytes"`
	}
	if fi, err := os.Stat(again); json.Unmarshal([]byte(res.Stdout), &saved) != nil || saved.File != again ||
		saved.Index == 0 || err != nil || saved.Bytes != fi.Size() {
		t.Fatalf("snapshot save -o json: %+v\n%s", saved, res)
	}
	if _, err := putKV(n, "e2e/later", "not in the backup", 20*time.Second); err != nil {
		t.Fatal(err)
	}

	// A damaged file is refused, naming the snapshot, and changes nothing.
	data, _ := os.ReadFile(file)
	data[len(data)/2] ^= 0xff
	bad := filepath.Join(t.TempDir(), "bad.snap")
	os.WriteFile(bad, data, 0o600)
	if res := runCLI(t, nil, "--addr", n.BaseURL(), "snapshot", "restore", bad); res.Code == 0 || !strings.Contains(res.Stderr, "snapshot") {
		t.Fatalf("a damaged snapshot was not refused clearly\n%s", res)
	}
	if _, kv, err := getKV(n, "e2e/later", true); err != nil || kv == nil {
		t.Fatalf("a refused restore changed the state: %v", err)
	}

	n.Kill()
	n.Restart()
	waitSingleLeader(t, n, 30*time.Second)
	mustCLI(t, nil, "--addr", n.BaseURL(), "snapshot", "restore", file)
	for _, k := range []string{"e2e/a", "e2e/b"} {
		if _, kv, err := getKV(n, k, true); err != nil || kv == nil || kv.Value != "in the backup" {
			t.Fatalf("%s after restore: %+v %v", k, kv, err)
		}
	}
	if r, kv, _ := getKV(n, "e2e/later", true); kv != nil {
		t.Fatalf("a write made after the snapshot survived the restore: %v", r)
	}
	// And the restored state is what a restart rebuilds.
	n.Kill()
	n.Restart()
	waitSingleLeader(t, n, 30*time.Second)
	if _, kv, err := getKV(n, "e2e/a", true); err != nil || kv == nil {
		t.Fatalf("restored key lost across a restart: %v", err)
	}
	if _, kv, _ := getKV(n, "e2e/later", true); kv != nil {
		t.Fatal("the pre-restore state came back after a restart")
	}
}
