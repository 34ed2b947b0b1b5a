package testnode

import (
	"fmt"
	"strings"
)

// DiffLines compares two transcripts line by line, the reference's (want,
// named wantName) and Armada's (got, named gotName), and returns every
// line where they differ, or "" when they are the same.
func DiffLines(want, got []string, wantName, gotName string) string {
	var out strings.Builder
	width := max(len(wantName), len(gotName))
	for i := range max(len(want), len(got)) {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			fmt.Fprintf(&out, "line %d:\n  %-*s %s\n  %-*s %s\n", i, width+1, wantName+":", w, width+1, gotName+":", g)
		}
	}
	return out.String()
}
