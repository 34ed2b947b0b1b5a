package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/web"
)

// seen is one event as the tests compare them: everything but the object.
type seen struct {
	ID, Type, Topic, Op, Key string
}

func (s seen) String() string { return s.ID + " " + s.Type + " " + s.Op + " " + s.Key }

// subscribe opens GET /v1/events with the query and headers and fails the
// test unless it answers 200 with an event stream.
func (tc *testCluster) subscribe(ctx context.Context, client *http.Client, query string, hdr ...string) *http.Response {
	tc.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tc.url+"/v1/events"+query, nil)
	if err != nil {
		tc.t.Fatalf("new request: %v", err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		tc.t.Fatalf("GET /v1/events%s: %v", query, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		tc.t.Fatalf("GET /v1/events%s: %d %s", query, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp
}

// collect reads state-change events (those with an id) from resp until
// stop says so or the stream ends; it returns them and the last event of
// any kind.
func collect(t *testing.T, resp *http.Response, stop func([]seen) bool) ([]seen, web.StreamEvent) {
	t.Helper()
	defer resp.Body.Close()
	var got []seen
	var last web.StreamEvent
	errStop := errors.New("stop")
	err := web.ReadEvents(resp.Body, func(ev web.StreamEvent) error {
		last = ev
		if ev.ID == "" {
			return nil
		}
		var e web.Event
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			return fmt.Errorf("event %s: %w: %s", ev.ID, err, ev.Data)
		}
		if e.ID != ev.ID || e.Topic != ev.Type {
			return fmt.Errorf("event id/type %s/%s disagree with its data %s", ev.ID, ev.Type, ev.Data)
		}
		got = append(got, seen{ID: ev.ID, Type: ev.Type, Topic: e.Topic, Op: e.Op, Key: e.Key})
		if stop(got) {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		t.Fatalf("read events: %v", err)
	}
	return got, last
}

// makeChanges writes n rounds of blueprints, ships and placements (entries
// that change several objects at once) and returns the key of the last
// blueprint written.
func (tc *testCluster) makeChanges(n int) string {
	tc.t.Helper()
	var last string
	for i := range n {
		last = fmt.Sprintf("bp-%d", i)
		tc.doJSON(http.MethodPut, "/v1/blueprints/"+last, []byte(`unit: "[Service]\nExecStart=/bin/true"`+"\nresources: {cpu_mhz: 1, memory_mb: 1}\n"), http.StatusOK, nil)
		var a, b fsm.Ship
		tc.doJSON(http.MethodPost, "/v1/ships", []byte(`{"blueprint":"`+last+`"}`), http.StatusCreated, &a)
		tc.doJSON(http.MethodPost, "/v1/ships", []byte(`{"blueprint":"`+last+`"}`), http.StatusCreated, &b)
		tc.apply(&fsm.ShipPlace{Places: []fsm.Place{{Ship: a.ID, Node: tc.name}, {Ship: b.ID, Node: tc.name}}})
	}
	return last
}

// TestEventsResumeExactlyOnce: a consumer that drops its connection at
// arbitrary points (also in the middle of one entry's events) and comes
// back with Last-Event-ID receives exactly the events of one uninterrupted
// subscription, each once.
func TestEventsResumeExactlyOnce(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	ctx := t.Context()
	client := &http.Client{}
	since := strconv.FormatUint(tc.stateIndex(), 10)
	const rounds = 15
	done := func(got []seen) bool {
		return len(got) > 0 && got[len(got)-1].Key == fmt.Sprintf("bp-%d", rounds-1) && got[len(got)-1].Topic == "blueprint"
	}
	ref := tc.subscribe(ctx, client, "?since="+since)
	var want []seen
	refDone := make(chan struct{})
	go func() {
		defer close(refDone)
		want, _ = collect(t, ref, done)
	}()

	writes := make(chan struct{})
	go func() {
		defer close(writes)
		tc.makeChanges(rounds)
	}()

	var got []seen
	multi, cuts := 0, 0
	for cut := 1; ; cut++ {
		cuts = cut
		var resp *http.Response
		if len(got) == 0 {
			resp = tc.subscribe(ctx, client, "?since="+since)
		} else {
			// The original ?since= stays in the URL, as with an EventSource.
			resp = tc.subscribe(ctx, client, "?since="+since, "Last-Event-ID", got[len(got)-1].ID)
		}
		n := 0
		part, _ := collect(t, resp, func(s []seen) bool {
			n++
			return done(s) || n == cut%4+1
		})
		got = append(got, part...)
		if done(got) {
			break
		}
	}
	<-writes
	<-refDone
	for _, s := range want {
		if strings.Contains(s.ID, ".") {
			multi++
		}
	}
	if multi == 0 {
		t.Errorf("no entry changed several objects; the test does not cover resuming inside one")
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resumed consumer got %d events, the uninterrupted one %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	ids := map[string]bool{}
	for _, s := range got {
		if ids[s.ID] {
			t.Fatalf("event %s received twice", s.ID)
		}
		ids[s.ID] = true
	}
	t.Logf("%d events (%d inside multi-change entries) over %d connections", len(got), multi, cuts)
}

// TestEventsTopicsAndObjects: ?topic= filters, every event carries the
// object after the change, deletes carry the key, bad input is a 400 naming
// the field.
func TestEventsTopicsAndObjects(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	ctx := t.Context()
	since := strconv.FormatUint(tc.stateIndex(), 10)
	tc.putArenas()
	tc.doJSON(http.MethodPut, "/v1/fleets/arena-eu", []byte(arenaEUYAML), http.StatusOK, nil)
	tc.doJSON(http.MethodDelete, "/v1/fleets/arena-eu", nil, http.StatusOK, nil)
	tc.doJSON(http.MethodDelete, "/v1/blueprints/arena", nil, http.StatusOK, nil)

	resp := tc.subscribe(ctx, &http.Client{}, "?topic=blueprint,fleet&since="+since)
	var events []web.Event
	err := web.ReadEvents(resp.Body, func(ev web.StreamEvent) error {
		if ev.ID == "" {
			return nil
		}
		var e web.Event
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			return err
		}
		events = append(events, e)
		if len(events) == 5 {
			return errors.New("enough")
		}
		return nil
	})
	resp.Body.Close()
	if len(events) != 5 {
		t.Fatalf("got %d events (%v), want 5", len(events), err)
	}
	var summary []string
	for _, e := range events {
		summary = append(summary, e.Topic+" "+e.Op+" "+e.Key)
	}
	want := "blueprint put arena|blueprint put arena|fleet put arena-eu|fleet delete arena-eu|blueprint delete arena"
	if got := strings.Join(summary, "|"); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	// The object is read at or after the change: both puts of arena were
	// sent after the whole sequence, when the blueprint was already gone.
	obj, _ := json.Marshal(events[2].Object)
	var f struct {
		Name     string `json:"name"`
		Replicas int    `json:"replicas"`
		Status   struct {
			Desired int `json:"desired"`
		} `json:"status"`
	}
	if err := json.Unmarshal(obj, &f); err != nil || (f.Name != "" && (f.Name != "arena-eu" || f.Status.Desired != 10)) {
		t.Errorf("fleet event object %s", obj)
	}
	if events[3].Object != nil || events[4].Object != nil {
		t.Errorf("delete events carry objects: %v %v", events[3].Object, events[4].Object)
	}

	// A live subscription carries the object as it is then.
	live := tc.subscribe(ctx, &http.Client{}, "?topic=blueprint")
	// The PUT runs beside the read (its event may come before its answer)
	// and is waited for before the test goes on: a test that ended first
	// would stop the server under it.
	putDone := make(chan string, 1)
	go func() {
		resp, data := tc.tryDo(http.MethodPut, "/v1/blueprints/arena", []byte(arenaYAML))
		switch {
		case resp == nil:
			putDone <- string(data)
		case resp.StatusCode != http.StatusOK:
			putDone <- fmt.Sprintf("status %d: %s", resp.StatusCode, data)
		default:
			putDone <- ""
		}
	}()
	var bp struct {
		Name     string            `json:"name"`
		Version  int               `json:"version"`
		Versions []int             `json:"versions"`
		Env      map[string]string `json:"env"`
	}
	_ = web.ReadEvents(live.Body, func(ev web.StreamEvent) error {
		if ev.Type != "blueprint" {
			return nil
		}
		var e struct {
			Object json.RawMessage `json:"object"`
		}
		_ = json.Unmarshal(ev.Data, &e)
		_ = json.Unmarshal(e.Object, &bp)
		return errors.New("done")
	})
	live.Body.Close()
	if msg := <-putDone; msg != "" {
		t.Fatalf("PUT /v1/blueprints/arena: %s", msg)
	}
	if bp.Name != "arena" || len(bp.Versions) != 1 || bp.Versions[0] != bp.Version || bp.Env["MODE"] != "ranked" {
		t.Errorf("live blueprint event object %+v", bp)
	}

	for _, c := range []struct{ query, hdr, field string }{
		{"?topic=nope", "", "topic"},
		{"?topic=ship,nope", "", "topic"},
		{"?since=abc", "", "since"},
		{"?since=5.-1", "", "since"},
		{"?buffer=10", "", "buffer"},
		{"", "x", "Last-Event-ID"},
	} {
		var r *http.Response
		var body []byte
		if c.hdr != "" {
			r, body = tc.do(http.MethodGet, "/v1/events"+c.query, nil, "Last-Event-ID", c.hdr)
		} else {
			r, body = tc.do(http.MethodGet, "/v1/events"+c.query, nil)
		}
		checkError(t, "GET /v1/events"+c.query, r, body, http.StatusBadRequest, "bad_request", c.field)
	}
}

// TestEventsKeySpaceOnRequest: key-space changes are streamed, with the
// key as /v1/kv shows it, to a subscriber that asks for topic kv, and not
// in the stream of everything else.
func TestEventsKeySpaceOnRequest(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	ctx := t.Context()
	since := strconv.FormatUint(tc.stateIndex(), 10)
	tc.putKV("app/mode", []byte("ranked"))
	tc.putArenas()
	tc.do(http.MethodDelete, "/v1/kv/app/mode", nil)
	first := func(query string, n int) []web.Event {
		t.Helper()
		resp := tc.subscribe(ctx, &http.Client{}, query)
		defer resp.Body.Close()
		var events []web.Event
		web.ReadEvents(resp.Body, func(ev web.StreamEvent) error {
			if ev.ID == "" {
				return nil
			}
			var e web.Event
			if err := json.Unmarshal(ev.Data, &e); err != nil {
				return err
			}
			if events = append(events, e); len(events) == n {
				return errors.New("enough")
			}
			return nil
		})
		return events
	}
	kv := first("?topic=kv&since="+since, 2)
	if len(kv) != 2 || kv[0].Topic != "kv" || kv[0].Op != "put" || kv[0].Key != "app/mode" || kv[1].Op != "delete" {
		t.Fatalf("kv events %+v", kv)
	}
	obj, _ := json.Marshal(kv[0].Object)
	if kv[0].Object != nil && !strings.Contains(string(obj), `"value":"ranked"`) {
		t.Errorf("kv event object %s", obj)
	}
	all := first("?since="+since, 1)
	if len(all) != 1 || all[0].Topic != "blueprint" {
		t.Fatalf("the stream of everything starts with %+v, want the blueprint (no kv)", all)
	}
}

// TestEventsSlowConsumerDropped: a subscriber that stops reading is sent a
// final "dropped" event naming where to resume, while writes go on at full
// speed; resuming from there continues without a gap.
func TestEventsSlowConsumerDropped(t *testing.T) {
	t.Parallel()
	tc := newCluster(t)
	// Bounded, so that a stream that is never dropped fails the test
	// rather than hanging it.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	since := strconv.FormatUint(tc.stateIndex(), 10)
	// A tiny receive buffer, so the server's queue fills soon.
	slow := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}).DialContext}}
	resp := tc.subscribe(ctx, slow, "?buffer=4096&since="+since)

	// Big events: blueprints with 16 KiB of env each, written by 8 writers:
	// about 5 MB in all, more than the server's socket can buffer (Linux
	// grows a send buffer up to 4 MiB); with less, the kernel could take
	// every event and the subscriber would never fall behind.
	env := "env: {PAD: " + strings.Repeat("x", 16<<10) + "}\n"
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				body := `unit: "[Service]\nExecStart=/bin/true"` + "\n" + env
				tc.doJSON(http.MethodPut, fmt.Sprintf("/v1/blueprints/pad-%d-%d", w, i), []byte(body), http.StatusOK, nil)
			}
		}()
	}
	wg.Wait()
	t.Logf("320 blueprint writes with a stalled subscriber took %s", time.Since(start).Round(time.Millisecond))

	got, last := collect(t, resp, func([]seen) bool { return false })
	if last.Type != "dropped" {
		t.Fatalf("the stream ended with %q %s after %d events, want a final dropped event", last.Type, last.Data, len(got))
	}
	var d struct{ Reason, Resume string }
	if err := json.Unmarshal(last.Data, &d); err != nil || d.Reason == "" {
		t.Fatalf("dropped event %s: %v", last.Data, err)
	}
	if len(got) > 0 && d.Resume != got[len(got)-1].ID {
		t.Errorf("dropped says resume from %s, the last event received was %s", d.Resume, got[len(got)-1].ID)
	}
	// Resuming from there gives the rest: with what came before, every
	// blueprint once.
	rest := tc.subscribe(ctx, &http.Client{}, "?topic=blueprint", "Last-Event-ID", d.Resume)
	all := append(got, func() []seen {
		s, _ := collect(t, rest, func(s []seen) bool { return len(got)+len(s) >= 320 })
		return s
	}()...)
	keys := map[string]int{}
	for _, s := range all {
		keys[s.Key]++
	}
	if len(keys) != 320 || len(all) != 320 {
		t.Fatalf("dropped %d events in, then resumed: %d events over %d blueprints, want 320 once each", len(got), len(all), len(keys))
	}
	t.Logf("dropped after %d events: %s", len(got), d.Reason)
}
