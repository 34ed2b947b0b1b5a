package web_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// kvOut is a key as the API returns it.
type kvOut struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	Encoding    string `json:"encoding"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
	Version     uint64 `json:"version"`
	Lease       uint64 `json:"lease"`
}

func (tc *testCluster) putKV(path string, value []byte) kvOut {
	tc.t.Helper()
	var out kvOut
	resp := tc.doJSON(http.MethodPut, "/v1/kv/"+path, value, http.StatusOK, &out)
	// The key's revision is an ID of its own, at least the index of its
	// entry (leases, queue items and the commands grouped before it in the
	// entry take IDs too).
	if idx := index(tc.t, resp); idx > out.ModifyIndex {
		tc.t.Errorf("PUT %s: X-Armada-Index %d, modify_index %d", path, idx, out.ModifyIndex)
	}
	return out
}

func (tc *testCluster) getKV(path string) (kvOut, *http.Response) {
	tc.t.Helper()
	var out kvOut
	resp := tc.doJSON(http.MethodGet, "/v1/kv/"+path, nil, http.StatusOK, &out)
	return out, resp
}

func TestKVPutGetDelete(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)

	put := tc.putKV("app/config", []byte(`{"x": "ü"}`))
	if put.Key != "app/config" || put.Value != `{"x": "ü"}` || put.Version != 1 || put.CreateIndex == 0 || put.CreateIndex != put.ModifyIndex || put.Lease != 0 {
		t.Errorf("PUT = %+v", put)
	}
	got, resp := tc.getKV("app/config")
	if got.Value != `{"x": "ü"}` || got.Encoding != "" || got.ModifyIndex != put.ModifyIndex || got.Version != 1 {
		t.Errorf("GET = %+v", got)
	}
	if idx := index(t, resp); idx < put.ModifyIndex {
		t.Errorf("X-Armada-Index %d is behind the write at %d", idx, put.ModifyIndex)
	}

	// An update keeps create_index and bumps version and modify_index.
	upd := tc.putKV("app/config", []byte("v2"))
	if upd.Value != "v2" || upd.CreateIndex != put.CreateIndex || upd.ModifyIndex <= put.ModifyIndex || upd.Version != 2 {
		t.Errorf("update = %+v after %+v", upd, put)
	}
	got, _ = tc.getKV("app/config?consistent=true")
	if got.Value != "v2" || got.Version != 2 {
		t.Errorf("consistent GET = %+v", got)
	}

	// An empty value is a value.
	tc.putKV("app/empty", nil)
	if got, _ := tc.getKV("app/empty"); got.Value != "" || got.Version != 1 {
		t.Errorf("empty value = %+v", got)
	}

	// Delete.
	var del map[string]any
	resp = tc.doJSON(http.MethodDelete, "/v1/kv/app/config", nil, http.StatusOK, &del)
	if del["deleted"] != float64(1) {
		t.Errorf("DELETE = %v", del)
	}
	index(t, resp)
	r, body := tc.do(http.MethodGet, "/v1/kv/app/config", nil)
	checkError(t, "GET deleted key", r, body, http.StatusNotFound, "not_found", "key")
	index(t, r)
	tc.doJSON(http.MethodDelete, "/v1/kv/app/config", nil, http.StatusOK, &del)
	if del["deleted"] != float64(0) {
		t.Errorf("DELETE of a missing key = %v, want deleted 0", del)
	}
	r, body = tc.do(http.MethodGet, "/v1/kv/never/was", nil)
	checkError(t, "GET missing key", r, body, http.StatusNotFound, "not_found", "key")

	// Empty keys.
	r, body = tc.do(http.MethodPut, "/v1/kv/", []byte("x"))
	checkError(t, "PUT empty key", r, body, http.StatusBadRequest, "bad_request", "key")
	r, body = tc.do(http.MethodGet, "/v1/kv/", nil)
	checkError(t, "GET empty key", r, body, http.StatusBadRequest, "bad_request", "key")
	r, body = tc.do(http.MethodDelete, "/v1/kv/", nil)
	checkError(t, "DELETE empty key", r, body, http.StatusBadRequest, "bad_request", "key")

	// Key length.
	long := strings.Repeat("k", 1024)
	tc.putKV(long, []byte("x"))
	before := tc.stateIndex()
	r, body = tc.do(http.MethodPut, "/v1/kv/"+long+"k", []byte("x"))
	checkError(t, "PUT 1025-byte key", r, body, http.StatusBadRequest, "bad_request", "key")
	if after := tc.stateIndex(); after != before {
		t.Errorf("rejected PUT wrote: %d -> %d", before, after)
	}
}

func TestKVKeyEscaping(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	for _, c := range []struct{ path, key string }{
		{"with%20space", "with space"},
		{"a%2Fb", "a/b"},
		{"caf%C3%A9", "café"},
		{"100%25", "100%"},       // a literal percent sign
		{"x%2541", "x%41"},       // must not be unescaped twice into "xA"
		{"p%25/q%2Fr", "p%/q/r"}, // both kinds in one key
		{"deep/er/key:1", "deep/er/key:1"},
	} {
		resp, body := tc.do(http.MethodPut, "/v1/kv/"+c.path, []byte(c.key))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("PUT /v1/kv/%s: %d %s", c.path, resp.StatusCode, body)
			continue
		}
		var out kvOut
		if err := json.Unmarshal(body, &out); err != nil || out.Key != c.key {
			t.Errorf("PUT /v1/kv/%s stored key %q, want %q", c.path, out.Key, c.key)
		}
		resp, body = tc.do(http.MethodGet, "/v1/kv/"+c.path, nil)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || out.Key != c.key || out.Value != c.key {
			t.Errorf("GET /v1/kv/%s: %d %s, want key %q", c.path, resp.StatusCode, body, c.key)
		}
	}
}

func TestKVPrefixAndKeys(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	for _, k := range []string{"list/b", "list/a", "list/c/d", "lis", "list0", "other"} {
		tc.putKV(k, []byte("value of "+k))
	}
	var list []kvOut
	resp := tc.doJSON(http.MethodGet, "/v1/kv/list/?prefix=true", nil, http.StatusOK, &list)
	index(t, resp)
	var keys []string
	for _, kv := range list {
		keys = append(keys, kv.Key)
		if kv.Value != "value of "+kv.Key || kv.ModifyIndex == 0 {
			t.Errorf("listed %+v", kv)
		}
	}
	if strings.Join(keys, ",") != "list/a,list/b,list/c/d" {
		t.Errorf("prefix list/ = %v, want list/a, list/b, list/c/d in key order", keys)
	}

	tc.doJSON(http.MethodGet, "/v1/kv/list?prefix=true&keys=true", nil, http.StatusOK, &list)
	keys = keys[:0]
	for _, kv := range list {
		keys = append(keys, kv.Key)
		if kv.Value != "" || kv.Encoding != "" {
			t.Errorf("keys=true returned a value: %+v", kv)
		}
	}
	if strings.Join(keys, ",") != "list/a,list/b,list/c/d,list0" {
		t.Errorf("prefix list = %v", keys)
	}

	// Everything, in key order.
	tc.doJSON(http.MethodGet, "/v1/kv/?prefix=true&keys=true", nil, http.StatusOK, &list)
	keys = keys[:0]
	for _, kv := range list {
		keys = append(keys, kv.Key)
	}
	if strings.Join(keys, ",") != "lis,list/a,list/b,list/c/d,list0,other" {
		t.Errorf("all keys = %v", keys)
	}

	// A single key with keys=true has no value either.
	var one kvOut
	tc.doJSON(http.MethodGet, "/v1/kv/other?keys=true", nil, http.StatusOK, &one)
	if one.Key != "other" || one.Value != "" {
		t.Errorf("keys=true on one key = %+v", one)
	}

	// No match is an empty list, not null or 404.
	resp, body := tc.do(http.MethodGet, "/v1/kv/nothing/?prefix=true", nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("empty prefix: %d %s, want 200 []", resp.StatusCode, body)
	}

	// Prefix delete.
	resp, body = tc.do(http.MethodDelete, "/v1/kv/list/?prefix=true&cas=1", nil)
	checkError(t, "prefix delete with cas", resp, body, http.StatusBadRequest, "bad_request", "cas")
	var del map[string]any
	tc.doJSON(http.MethodDelete, "/v1/kv/list/?prefix=true", nil, http.StatusOK, &del)
	if del["deleted"] != float64(3) {
		t.Errorf("prefix delete = %v, want 3", del)
	}
	tc.doJSON(http.MethodGet, "/v1/kv/?prefix=true&keys=true", nil, http.StatusOK, &list)
	keys = keys[:0]
	for _, kv := range list {
		keys = append(keys, kv.Key)
	}
	if strings.Join(keys, ",") != "lis,list0,other" {
		t.Errorf("after deleting list/: %v", keys)
	}
}

func TestKVBinaryAndRaw(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	bin := []byte{0xff, 0x00, 0xfe, 0x80, 'a', 0x00}
	tc.putKV("bin", bin)

	got, _ := tc.getKV("bin")
	if got.Encoding != "base64" {
		t.Errorf("binary value encoding %q, want base64", got.Encoding)
	}
	if dec, err := base64.StdEncoding.DecodeString(got.Value); err != nil || !bytes.Equal(dec, bin) {
		t.Errorf("binary value %q decodes to %x (%v), want %x", got.Value, dec, err, bin)
	}

	resp, body := tc.do(http.MethodGet, "/v1/kv/bin?raw=true", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, bin) {
		t.Errorf("raw = %d %x, want %x", resp.StatusCode, body, bin)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("raw content type %q", ct)
	}
	index(t, resp)

	text := "plain text\nwith \"quotes\" and <html>"
	tc.putKV("text", []byte(text))
	resp, body = tc.do(http.MethodGet, "/v1/kv/text?raw=true", nil)
	if resp.StatusCode != http.StatusOK || string(body) != text {
		t.Errorf("raw text = %d %q", resp.StatusCode, body)
	}
	got, _ = tc.getKV("text")
	if got.Value != text || got.Encoding != "" {
		t.Errorf("text value = %+v", got)
	}

	// Binary values in a listing are encoded too.
	var list []kvOut
	tc.doJSON(http.MethodGet, "/v1/kv/?prefix=true", nil, http.StatusOK, &list)
	if len(list) != 2 || list[0].Key != "bin" || list[0].Encoding != "base64" || list[1].Encoding != "" {
		t.Errorf("list = %+v", list)
	}

	resp, body = tc.do(http.MethodGet, "/v1/kv/missing?raw=true", nil)
	checkError(t, "raw GET of a missing key", resp, body, http.StatusNotFound, "not_found", "key")
}

func TestKVCAS(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)

	// cas=0: create only.
	first := tc.putKV("lock?cas=0", []byte("me"))
	before := tc.stateIndex()
	resp, body := tc.do(http.MethodPut, "/v1/kv/lock?cas=0", []byte("you"))
	checkError(t, "second create-only PUT", resp, body, http.StatusConflict, "conflict", "cas")
	if got, _ := tc.getKV("lock"); got.Value != "me" || got.ModifyIndex != first.ModifyIndex {
		t.Errorf("after a failed cas the key is %+v", got)
	}
	if after := tc.stateIndex(); after < before {
		t.Errorf("index went back: %d -> %d", before, after)
	}

	// cas=<modify_index>: succeeds once, then it is stale.
	second := tc.putKV(fmt.Sprintf("lock?cas=%d", first.ModifyIndex), []byte("me again"))
	if second.Version != 2 || second.ModifyIndex <= first.ModifyIndex {
		t.Errorf("cas update = %+v", second)
	}
	resp, body = tc.do(http.MethodPut, fmt.Sprintf("/v1/kv/lock?cas=%d", first.ModifyIndex), []byte("stale"))
	checkError(t, "stale cas", resp, body, http.StatusConflict, "conflict", "cas")
	resp, body = tc.do(http.MethodPut, fmt.Sprintf("/v1/kv/lock?cas=%d", second.ModifyIndex+1000), []byte("future"))
	checkError(t, "future cas", resp, body, http.StatusConflict, "conflict", "cas")
	if got, _ := tc.getKV("lock"); got.Value != "me again" {
		t.Errorf("after stale cas the value is %q", got.Value)
	}
	// cas on a missing key other than 0 fails.
	resp, body = tc.do(http.MethodPut, "/v1/kv/nokey?cas=5", []byte("x"))
	checkError(t, "cas on a missing key", resp, body, http.StatusConflict, "conflict", "cas")
	resp, body = tc.do(http.MethodGet, "/v1/kv/nokey", nil)
	checkError(t, "GET after failed cas", resp, body, http.StatusNotFound, "not_found", "key")

	// Delete with cas.
	resp, body = tc.do(http.MethodDelete, fmt.Sprintf("/v1/kv/lock?cas=%d", first.ModifyIndex), nil)
	checkError(t, "stale cas delete", resp, body, http.StatusConflict, "conflict", "cas")
	var del map[string]any
	tc.doJSON(http.MethodDelete, fmt.Sprintf("/v1/kv/lock?cas=%d", second.ModifyIndex), nil, http.StatusOK, &del)
	if del["deleted"] != float64(1) {
		t.Errorf("cas delete = %v", del)
	}

	// Malformed cas.
	for _, v := range []string{"x", "-1", "1.5"} {
		before := tc.stateIndex()
		resp, body = tc.do(http.MethodPut, "/v1/kv/lock?cas="+v, []byte("x"))
		checkError(t, "cas="+v, resp, body, http.StatusBadRequest, "bad_request", "cas")
		if after := tc.stateIndex(); after != before {
			t.Errorf("cas=%s wrote: %d -> %d", v, before, after)
		}
	}
}

func TestKVTTL(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)

	start := time.Now()
	put := tc.putKV("session?ttl=1s", []byte("alive"))
	if put.Lease == 0 {
		t.Errorf("PUT with ttl has no lease: %+v", put)
	}
	if got, _ := tc.getKV("session"); got.Value != "alive" || got.Lease != put.Lease {
		t.Errorf("just after PUT: %+v", got)
	}
	// A key without ttl next to it stays.
	tc.putKV("forever", []byte("x"))

	// A blocking query on the key wakes when the leader expires it.
	woke := make(chan time.Duration, 1)
	go func() {
		resp, _ := tc.tryDo(http.MethodGet, fmt.Sprintf("/v1/kv/session?index=%d&wait=10s", put.ModifyIndex), nil)
		if resp == nil || resp.StatusCode != http.StatusNotFound {
			woke <- -1
			return
		}
		woke <- time.Since(start)
	}()

	var gone time.Duration
	tc.eventually(5*time.Second, "key with ttl=1s expires", func() error {
		resp, body := tc.tryDo(http.MethodGet, "/v1/kv/session", nil)
		if resp == nil {
			return fmt.Errorf("%s", body)
		}
		if resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("still there: %d %s", resp.StatusCode, body)
		}
		gone = time.Since(start)
		return nil
	})
	if gone < 900*time.Millisecond {
		t.Errorf("ttl=1s key gone after %s", gone)
	}
	select {
	case d := <-woke:
		if d < 0 {
			t.Error("blocking query on the expiring key did not end with 404")
		} else if d > 4*time.Second {
			t.Errorf("blocking query woke %s after the PUT; the key expired after %s", d, gone)
		}
	case <-time.After(5 * time.Second):
		t.Error("blocking query on the expiring key did not wake up")
	}
	if got, _ := tc.getKV("forever"); got.Value != "x" {
		t.Errorf("key without ttl: %+v", got)
	}

	// Re-putting without ttl detaches the key from its lease.
	tc.putKV("sticky?ttl=1s", []byte("a"))
	if p := tc.putKV("sticky", []byte("b")); p.Lease != 0 {
		t.Errorf("PUT without ttl kept lease %d", p.Lease)
	}
	tc.putKV("marker?ttl=1s", []byte("m"))
	tc.eventually(5*time.Second, "marker expires", func() error {
		if resp, _ := tc.tryDo(http.MethodGet, "/v1/kv/marker", nil); resp == nil || resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("marker still there")
		}
		return nil
	})
	if got, _ := tc.getKV("sticky"); got.Value != "b" {
		t.Errorf("key re-put without ttl expired with its old lease: %+v", got)
	}

	for _, v := range []string{"abc", "500ms", "0s", "-1s", "200h", "10"} {
		before := tc.stateIndex()
		resp, body := tc.do(http.MethodPut, "/v1/kv/bad-ttl?ttl="+v, []byte("x"))
		checkError(t, "ttl="+v, resp, body, http.StatusBadRequest, "bad_request", "ttl")
		if after := tc.stateIndex(); after != before {
			t.Errorf("ttl=%s wrote: %d -> %d", v, before, after)
		}
	}
	resp, body := tc.do(http.MethodGet, "/v1/kv/bad-ttl", nil)
	checkError(t, "GET after bad ttl", resp, body, http.StatusNotFound, "not_found", "key")
}

func TestKVValueLimit(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)

	exact := bytes.Repeat([]byte("v"), 512<<10)
	tc.putKV("exact", exact)
	resp, body := tc.do(http.MethodGet, "/v1/kv/exact?raw=true", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, exact) {
		t.Errorf("512 KiB value: %d, %d bytes back", resp.StatusCode, len(body))
	}

	for _, n := range []int{512<<10 + 1, 3 << 20} {
		before := tc.stateIndex()
		resp, body = tc.do(http.MethodPut, "/v1/kv/big", make([]byte, n))
		checkError(t, fmt.Sprintf("PUT %d bytes", n), resp, body, http.StatusRequestEntityTooLarge, "too_large", "value")
		if after := tc.stateIndex(); after != before {
			t.Errorf("oversize PUT wrote: %d -> %d", before, after)
		}
		resp, body = tc.do(http.MethodGet, "/v1/kv/big", nil)
		checkError(t, "GET after oversize PUT", resp, body, http.StatusNotFound, "not_found", "key")
	}
	// An oversize replacement leaves the old value.
	resp, body = tc.do(http.MethodPut, "/v1/kv/exact", make([]byte, 512<<10+1))
	checkError(t, "oversize replacement", resp, body, http.StatusRequestEntityTooLarge, "too_large", "value")
	if got, _ := tc.getKV("exact?keys=true"); got.Version != 1 {
		t.Errorf("oversize replacement changed the key: %+v", got)
	}
}

// TestKVValueOverBodyLimit: a value over the API's 4 MiB body cap is still
// a value over the limit, answered like one.
func TestKVValueOverBodyLimit(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	before := tc.stateIndex()
	resp, body := tc.do(http.MethodPut, "/v1/kv/huge", make([]byte, 5<<20))
	checkError(t, "PUT 5 MiB", resp, body, http.StatusRequestEntityTooLarge, "too_large", "value")
	if after := tc.stateIndex(); after != before {
		t.Errorf("oversize PUT wrote: %d -> %d", before, after)
	}
	resp, body = tc.do(http.MethodGet, "/v1/kv/huge", nil)
	checkError(t, "GET after a 5 MiB PUT", resp, body, http.StatusNotFound, "not_found", "key")
}

// blockingGet runs a GET in the background and reports when it answered.
type blockingResult struct {
	resp    *http.Response
	body    []byte
	elapsed time.Duration
}

func (tc *testCluster) blockingGet(path string) <-chan blockingResult {
	ch := make(chan blockingResult, 1)
	start := time.Now()
	go func() {
		resp, body := tc.tryDo(http.MethodGet, path, nil)
		ch <- blockingResult{resp, body, time.Since(start)}
	}()
	return ch
}

// stillBlocked asserts the query has not answered within d.
func stillBlocked(t *testing.T, what string, ch <-chan blockingResult, d time.Duration) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s answered at once (after %s): %v %s", what, r.elapsed, status(r.resp), r.body)
	case <-time.After(d):
	}
}

func awaitAnswer(t *testing.T, what string, ch <-chan blockingResult, within time.Duration) blockingResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.resp == nil {
			t.Fatalf("%s: %s", what, r.body)
		}
		return r
	case <-time.After(within):
		t.Fatalf("%s: no answer within %s", what, within)
	}
	return blockingResult{}
}

func TestKVBlockingQuery(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	first := tc.putKV("watched", []byte("one"))

	// Wakes on a put, well before the wait.
	ch := tc.blockingGet(fmt.Sprintf("/v1/kv/watched?index=%d&wait=5s", first.ModifyIndex))
	stillBlocked(t, "blocking GET at the current index", ch, 300*time.Millisecond)
	// A write to another key does not wake it.
	tc.putKV("unrelated", []byte("x"))
	tc.putKV("watched-not", []byte("x"))
	stillBlocked(t, "blocking GET after writes to other keys", ch, 200*time.Millisecond)
	second := tc.putKV("watched", []byte("two"))
	r := awaitAnswer(t, "blocking GET after a PUT", ch, 3*time.Second)
	var got kvOut
	if r.resp.StatusCode != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.Value != "two" || got.ModifyIndex != second.ModifyIndex {
		t.Errorf("blocking GET after a PUT = %d %s", r.resp.StatusCode, r.body)
	}
	if r.elapsed > 2*time.Second {
		t.Errorf("blocking GET answered %s after it was sent; the PUT came after ~0.5s", r.elapsed)
	}
	if idx := index(t, r.resp); idx < second.ModifyIndex {
		t.Errorf("X-Armada-Index %d after waking for index %d", idx, second.ModifyIndex)
	}

	// An index already passed answers at once.
	r = awaitAnswer(t, "GET with a passed index", tc.blockingGet(fmt.Sprintf("/v1/kv/watched?index=%d&wait=5s", first.ModifyIndex)), time.Second)
	if r.resp.StatusCode != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.Value != "two" {
		t.Errorf("GET with a passed index = %d %s", r.resp.StatusCode, r.body)
	}

	// Times out with the current value when nothing changes.
	r = awaitAnswer(t, "blocking GET with wait=300ms", tc.blockingGet(fmt.Sprintf("/v1/kv/watched?index=%d&wait=300ms", second.ModifyIndex)), 3*time.Second)
	if r.resp.StatusCode != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.Value != "two" || got.ModifyIndex != second.ModifyIndex {
		t.Errorf("timed-out blocking GET = %d %s", r.resp.StatusCode, r.body)
	}
	if r.elapsed < 290*time.Millisecond || r.elapsed > 2*time.Second {
		t.Errorf("wait=300ms answered after %s", r.elapsed)
	}
	index(t, r.resp)

	// Wakes on a delete of the key.
	ch = tc.blockingGet(fmt.Sprintf("/v1/kv/watched?index=%d&wait=5s", second.ModifyIndex))
	stillBlocked(t, "blocking GET before the delete", ch, 300*time.Millisecond)
	tc.doJSON(http.MethodDelete, "/v1/kv/watched", nil, http.StatusOK, nil)
	r = awaitAnswer(t, "blocking GET after a DELETE", ch, 3*time.Second)
	checkError(t, "blocking GET after a DELETE", r.resp, r.body, http.StatusNotFound, "not_found", "key")
	if r.elapsed > 2*time.Second {
		t.Errorf("blocking GET answered %s after it was sent; the DELETE came after ~0.3s", r.elapsed)
	}

	// Waiting on a key that does not exist yet wakes when it is created.
	now := tc.stateIndex()
	ch = tc.blockingGet(fmt.Sprintf("/v1/kv/later?index=%d&wait=5s", now))
	stillBlocked(t, "blocking GET on a missing key", ch, 300*time.Millisecond)
	created := tc.putKV("later", []byte("here"))
	r = awaitAnswer(t, "blocking GET after the key is created", ch, 3*time.Second)
	if r.resp.StatusCode != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.ModifyIndex != created.ModifyIndex {
		t.Errorf("blocking GET on a created key = %d %s", r.resp.StatusCode, r.body)
	}

	// A prefix query wakes on any key under it, and only those.
	now = tc.stateIndex()
	ch = tc.blockingGet(fmt.Sprintf("/v1/kv/jobs/?prefix=true&index=%d&wait=5s", now))
	tc.putKV("jobsx", []byte("not under jobs/"))
	stillBlocked(t, "prefix blocking GET after a write outside it", ch, 300*time.Millisecond)
	tc.putKV("jobs/1", []byte("queued"))
	r = awaitAnswer(t, "prefix blocking GET after a PUT under it", ch, 3*time.Second)
	var list []kvOut
	if r.resp.StatusCode != http.StatusOK || json.Unmarshal(r.body, &list) != nil || len(list) != 1 || list[0].Key != "jobs/1" {
		t.Errorf("prefix blocking GET = %d %s", r.resp.StatusCode, r.body)
	}

	// Malformed parameters.
	for _, q := range []struct{ query, field string }{
		{"index=x", "index"}, {"index=-1", "index"}, {"index=1&wait=forever", "wait"}, {"index=1&wait=0s", "wait"}, {"index=1&wait=11m", "wait"},
	} {
		resp, body := tc.do(http.MethodGet, "/v1/kv/later?"+q.query, nil)
		checkError(t, q.query, resp, body, http.StatusBadRequest, "bad_request", q.field)
	}
}

// TestKVBlockingQueryEndsWithClient: a client that goes away ends its
// blocking query at once (not after the wait), and that is not counted or
// logged as a server error.
func TestKVBlockingQueryEndsWithClient(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	kv := tc.putKV("k", []byte("v"))
	client := &http.Client{Timeout: 300 * time.Millisecond}
	start := time.Now()
	resp, err := client.Get(fmt.Sprintf("%s/v1/kv/k?index=%d&wait=10m", tc.url, kv.ModifyIndex))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("blocking GET with 10m wait answered after %s", time.Since(start))
	}
	// The handler has finished once the request duration is recorded: the
	// only GET of /v1/kv/* so far is this one.
	var series string
	tc.eventually(5*time.Second, "abandoned blocking GET ends", func() error {
		_, body := tc.do(http.MethodGet, "/metrics", nil)
		for line := range strings.SplitSeq(string(body), "\n") {
			if strings.HasPrefix(line, "armada_http_request_duration_seconds_count{") &&
				strings.Contains(line, `method="GET",route="/v1/kv/*"`) {
				series = line
				return nil
			}
		}
		return fmt.Errorf("not recorded yet")
	})
	if strings.Contains(series, `code="5`) {
		t.Errorf("a client going away is recorded as a server error: %s", series)
	}
	if got, _ := tc.getKV("k"); got.Value != "v" {
		t.Errorf("GET = %+v", got)
	}
}
