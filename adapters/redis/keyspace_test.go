package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestKeySpaceIsShared checks that Redis strings are /v1/kv keys and that
// hashes and lists live in the same namespace.
func TestKeySpaceIsShared(t *testing.T) {
	nodes := startCluster(t)
	n := follower(nodes)
	c := goredis.NewClient(&goredis.Options{Addr: n.redis.Addr()})
	defer c.Close()
	ctx := context.Background()
	base := "http://" + n.httpAddr + "/v1/kv/"

	if err := c.Set(ctx, "foo", "bar", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if code, body := httpDo(t, http.MethodGet, base+"foo?raw=true", ""); code != 200 || body != "bar" {
		t.Fatalf("GET /v1/kv/foo after SET: %d %q", code, body)
	}
	if code, body := httpDo(t, http.MethodPut, base+"cnt", "41"); code != 200 {
		t.Fatalf("PUT /v1/kv/cnt: %d %s", code, body)
	}
	waitFor(t, 5*time.Second, func() error {
		if v, err := c.Get(ctx, "cnt").Result(); err != nil || v != "41" {
			return fmt.Errorf("GET cnt = %q, %v", v, err)
		}
		return nil
	})
	if v, err := c.Incr(ctx, "cnt").Result(); err != nil || v != 42 {
		t.Fatalf("INCR cnt = %d, %v", v, err)
	}
	var kv struct {
		Value   string `json:"value"`
		Version int    `json:"version"`
	}
	_, body := httpDo(t, http.MethodGet, base+"cnt", "")
	if err := json.Unmarshal([]byte(body), &kv); err != nil || kv.Value != "42" || kv.Version != 2 {
		t.Fatalf("GET /v1/kv/cnt: %s (%v)", body, err)
	}

	// A hash is a key of the same space: listed by /v1/kv and by KEYS,
	// and replaced by a PUT like any key.
	if err := c.HSet(ctx, "h", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	if code, _ := httpDo(t, http.MethodGet, base+"h", ""); code != 200 {
		t.Fatalf("GET /v1/kv/h: %d", code)
	}
	if err := c.SetArgs(ctx, "h", "x", goredis.SetArgs{Mode: "NX"}).Err(); err != goredis.Nil {
		t.Fatalf("SET NX over a hash: %v", err)
	}
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil || fmt.Sprint(keys) != "[cnt foo h]" {
		t.Fatalf("KEYS * = %v, %v", keys, err)
	}
	if code, _ := httpDo(t, http.MethodPut, base+"h", "plain"); code != 200 {
		t.Fatalf("PUT over a hash: %d", code)
	}
	waitFor(t, 5*time.Second, func() error {
		if typ, err := c.Type(ctx, "h").Result(); err != nil || typ != "string" {
			return fmt.Errorf("TYPE h = %q, %v", typ, err)
		}
		return nil
	})
	if code, _ := httpDo(t, http.MethodDelete, base+"foo", ""); code != 200 {
		t.Fatalf("DELETE /v1/kv/foo: %d", code)
	}
	waitFor(t, 5*time.Second, func() error {
		if n, err := c.Exists(ctx, "foo").Result(); err != nil || n != 0 {
			return fmt.Errorf("EXISTS foo = %d, %v", n, err)
		}
		return nil
	})
}
