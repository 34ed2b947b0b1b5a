package worker

import (
	"os"
	"path/filepath"
	"testing"
)

func writeProc(t *testing.T, cpuinfo, meminfo string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"cpuinfo": cpuinfo, "meminfo": meminfo} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCapacityFromProc(t *testing.T) {
	dir := writeProc(t,
		"processor\t: 0\ncpu MHz\t\t: 2596.100\n\nprocessor\t: 1\ncpu MHz\t\t: 2400.000\n",
		"MemTotal:       24682960 kB\nMemFree:         1000 kB\n")
	got, err := Capacity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.CPUMHz != 5192 || got.MemoryMB != 24104 {
		t.Fatalf("capacity %+v, want 5192 MHz (2 × 2596) and 24104 MB", got)
	}
}

func TestCapacityWithoutClockCountsGigahertzPerCore(t *testing.T) {
	dir := writeProc(t, "processor\t: 0\nprocessor\t: 1\nprocessor\t: 2\n", "MemTotal: 2048000 kB\n")
	got, err := Capacity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.CPUMHz != 3000 || got.MemoryMB != 2000 {
		t.Fatalf("capacity %+v", got)
	}
}

func TestCapacityErrors(t *testing.T) {
	if _, err := Capacity(t.TempDir()); err == nil {
		t.Fatal("no error for a missing /proc")
	}
	if _, err := Capacity(writeProc(t, "processor: 0\n", "MemFree: 1 kB\n")); err == nil {
		t.Fatal("no error without MemTotal")
	}
}

func TestCapacityOfThisMachine(t *testing.T) {
	got, err := Capacity("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if got.CPUMHz <= 0 || got.MemoryMB <= 0 {
		t.Fatalf("capacity %+v", got)
	}
}
