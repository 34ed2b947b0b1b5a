package testnode

import "testing"

func TestDiffLines(t *testing.T) {
	if d := DiffLines([]string{"a", "b"}, []string{"a", "b"}, "ref", "armada"); d != "" {
		t.Fatalf("same transcripts differ: %q", d)
	}
	want := "line 1:\n  ref:    b\n  armada: c\nline 2:\n  ref:    \n  armada: d\n"
	if d := DiffLines([]string{"a", "b"}, []string{"a", "c", "d"}, "ref", "armada"); d != want {
		t.Fatalf("got %q, want %q", d, want)
	}
}
