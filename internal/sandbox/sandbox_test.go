package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBoot boots two sandboxes at once, runs a unit in each and checks
// that ending them removes every trace (processes and cgroups) and leaves
// the host's /tmp alone.
func TestBoot(t *testing.T) {
	marker := filepath.Join(os.TempDir(), "armada-sandbox-marker")
	if err := os.WriteFile(marker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(marker)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := Boot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := Start(t)
	for _, s := range []*Sandbox{a, b} {
		if out, err := s.Run(ctx, "systemd-run", "--unit=probe", "sleep", "600"); err != nil {
			t.Fatalf("systemd-run: %v %s", err, out)
		}
		if st, err := s.Show(ctx, "probe.service", "ActiveState"); err != nil || st != "active" {
			t.Fatalf("probe: %q %v", st, err)
		}
	}
	pa, _ := a.Show(ctx, "probe.service", "MainPID")
	pb, _ := b.Show(ctx, "probe.service", "MainPID")
	if pa == "" || pa == "0" || pb == "" || pb == "0" {
		t.Fatalf("main pids %q %q", pa, pb)
	}
	cg := a.cgroup
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*" + cg); len(left) > 0 {
		t.Fatalf("cgroups left: %v", left)
	}
	if st, err := b.Show(ctx, "probe.service", "ActiveState"); err != nil || st != "active" {
		t.Fatalf("the other sandbox's unit after the first ended: %q %v", st, err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("host temp dir touched: %v", err)
	}
}
