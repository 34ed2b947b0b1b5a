package textdiff

import "testing"

func TestLines(t *testing.T) {
	if d := Lines([]string{"a", "b"}, []string{"a", "b"}, "ref", "armada", 0); d != "" {
		t.Fatalf("same transcripts differ: %q", d)
	}
	want := "line 1:\n  ref:    b\n  armada: c\nline 2:\n  ref:    \n  armada: d\n"
	if d := Lines([]string{"a", "b"}, []string{"a", "c", "d"}, "ref", "armada", 0); d != want {
		t.Fatalf("got %q, want %q", d, want)
	}
	if d := Lines([]string{"a", "b"}, []string{"a", "c", "d"}, "ref", "armada", 1); d != "line 1:\n  ref:    b\n  armada: c\n" {
		t.Fatalf("limit 1: got %q", d)
	}
}
