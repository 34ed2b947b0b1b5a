package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/armada-orchestrator/armada/web"
)

// TestTokenRequired: with a token, every API call needs it as a bearer
// token (or, on a GET, as ?token=), a wrong or missing one is a 401 naming
// the token and writes nothing; health checks and the UI's files need none.
func TestTokenRequired(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	srv := httptest.NewServer(web.New(tc.node, web.Options{Internal: tc.node.InternalHandler(), Logger: testLogger(), Token: "s3cret"}).Handler())
	defer srv.Close()
	call := func(method, path, auth, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	before := tc.stateIndex()
	for _, c := range []struct{ method, path, auth string }{
		{"GET", "/v1/status", ""},
		{"GET", "/v1/status", "Bearer wrong"},
		{"GET", "/v1/status", "s3cret"},
		{"GET", "/v1/status?token=wrong", ""},
		{"PUT", "/v1/kv/k?token=s3cret", ""}, // a query token only for GET
		{"PUT", "/v1/kv/k", "Bearer s3cre"},
		{"POST", "/v1/internal/apply", ""},
		{"GET", "/metrics", ""},
	} {
		code, body := call(c.method, c.path, c.auth, "v")
		if code != http.StatusUnauthorized || !strings.Contains(body, `"field":"token"`) {
			t.Errorf("%s %s with %q: %d %s", c.method, c.path, c.auth, code, body)
		}
	}
	if after := tc.stateIndex(); after != before {
		t.Errorf("refused calls wrote: index %d -> %d", before, after)
	}
	for _, c := range []struct{ method, path, auth string }{
		{"GET", "/v1/status", "Bearer s3cret"},
		{"GET", "/v1/status?token=s3cret", ""},
		{"PUT", "/v1/kv/k", "Bearer s3cret"},
		{"GET", "/healthz", ""},
		{"GET", "/ui/", ""},
		{"GET", "/ui/app.js", ""},
	} {
		if code, body := call(c.method, c.path, c.auth, "v"); code != http.StatusOK {
			t.Errorf("%s %s with %q: %d %s", c.method, c.path, c.auth, code, body)
		}
	}
}
