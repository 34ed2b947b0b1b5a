package web_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestUIAssets: the page names its stylesheet and script, every file comes
// with an ETag and no-cache (a revalidation answers 304), and the whole
// first load stays within the UI's 300 KB budget.
func TestUIAssets(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	resp, page := tc.do(http.MethodGet, "/ui/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/: %d", resp.StatusCode)
	}
	refs := regexp.MustCompile(`(?:href|src)="([a-z]+\.(?:css|js))"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) != 2 {
		t.Fatalf("the page names %d local assets, want app.css and app.js: %v", len(refs), refs)
	}
	total := len(page)
	want := map[string]string{"app.css": "text/css", "app.js": "text/javascript"}
	for _, r := range refs {
		path := "/ui/" + r[1]
		resp, body := tc.do(http.MethodGet, path, nil)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want[r[1]]) {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		total += len(body)
		tag := resp.Header.Get("ETag")
		if tag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("GET %s: ETag %q, Cache-Control %q", path, tag, resp.Header.Get("Cache-Control"))
		}
		again, body := tc.do(http.MethodGet, path, nil, "If-None-Match", tag)
		if again.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("GET %s with its ETag: %d and %d bytes, want 304", path, again.StatusCode, len(body))
		}
	}
	if total > 300<<10 {
		t.Errorf("the UI's first load is %d bytes, over its 300 KB budget", total)
	}
	t.Logf("first load: %d bytes", total)
}
