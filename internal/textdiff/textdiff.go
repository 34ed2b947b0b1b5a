// Package textdiff compares transcripts and dumps line by line, for tests'
// failure messages.
package textdiff

import (
	"fmt"
	"strings"
)

// Lines compares two transcripts line by line, want (named wantName) and
// got (named gotName), and returns the lines where they differ, at most
// limit of them (0: all), or "" when they are the same.
func Lines(want, got []string, wantName, gotName string, limit int) string {
	var out strings.Builder
	width := max(len(wantName), len(gotName))
	shown := 0
	for i := range max(len(want), len(got)) {
		if limit > 0 && shown == limit {
			break
		}
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			fmt.Fprintf(&out, "line %d:\n  %-*s %s\n  %-*s %s\n", i, width+1, wantName+":", w, width+1, gotName+":", g)
			shown++
		}
	}
	return out.String()
}
