package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/web"
)

// sseEvent is one state-change event as these tests compare them.
type sseEvent struct{ id, typ string }

// readSSE opens GET /v1/events on n with the query (and Last-Event-ID when
// last is set) and reads up to max state-change events, or until stop says
// so. It returns them and the X-Armada-Node header (the node that served).
func readSSE(t *testing.T, n *Node, query, last string, max int, stop func([]sseEvent) bool) ([]sseEvent, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.BaseURL()+"/v1/events"+query, nil)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /v1/events%s on %s: %v", query, n.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events%s on %s: HTTP %d", query, n.Name, resp.StatusCode)
	}
	var got []sseEvent
	errStop := errors.New("stop")
	err = web.ReadEvents(resp.Body, func(ev web.StreamEvent) error {
		if ev.ID == "" {
			return nil
		}
		got = append(got, sseEvent{ev.ID, ev.Type})
		if len(got) == max || stop(got) {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("events on %s ended after %d: %v", n.Name, len(got), err)
	}
	return got, resp.Header.Get("X-Armada-Node")
}

// TestEventsResumeAcrossNodes: a consumer that hops between the nodes of a
// real cluster, resuming each time with Last-Event-ID, receives exactly the
// events of an uninterrupted subscription, each once; a follower serves
// the leader's stream unless asked for its own with ?stale=true. The CLI
// follows the same stream.
func TestEventsResumeAcrossNodes(t *testing.T) {
	c := NewCluster(t)
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	follower := nonLeader(nodes, leader)
	st, err := api.Status()
	if err != nil {
		t.Fatal(err)
	}
	since := fmt.Sprintf("?since=%d&topic=blueprint,fleet", st.Index)

	cli := exec.Command(armadaBin, "events", "--addr", follower.BaseURL(), "--topic", "blueprint", "--since", fmt.Sprint(st.Index))
	cli.Env = childEnv()
	out, err := cli.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Process.Kill(); _ = cli.Wait() })

	const rounds = 12
	for i := range rounds {
		body := fmt.Sprintf(`{"unit":"[Service]\nExecStart=/bin/true\n","env":{"N":"%d"}}`, i)
		if r, err := writeAPI(nodes[i%3], http.MethodPut, fmt.Sprintf("/v1/blueprints/bp-%d", i), []byte(body), 20*time.Second); err != nil {
			t.Fatalf("blueprint %d: %v %v", i, r, err)
		}
		fleet := fmt.Sprintf(`{"replicas":0,"versions":[{"blueprint":"bp-%d"}]}`, i)
		if r, err := writeAPI(api, http.MethodPut, fmt.Sprintf("/v1/fleets/f-%d", i), []byte(fleet), 20*time.Second); err != nil {
			t.Fatalf("fleet %d: %v %v", i, r, err)
		}
	}
	want, served := readSSE(t, api, since, "", 2*rounds, func([]sseEvent) bool { return false })
	if served != "" {
		t.Errorf("the leader's stream says it was served by %q", served)
	}

	var got []sseEvent
	for hop := 0; len(got) < len(want); hop++ {
		n, query := nodes[hop%3], since
		if hop%2 == 1 {
			query += "&stale=true"
		}
		last := ""
		if len(got) > 0 {
			last = got[len(got)-1].id
		}
		part, by := readSSE(t, n, query, last, hop%3+1, func([]sseEvent) bool { return false })
		switch {
		case n.Name != leader && !strings.Contains(query, "stale") && by != leader:
			t.Errorf("follower %s served the stream itself (X-Armada-Node %q), want the leader %s's", n.Name, by, leader)
		case strings.Contains(query, "stale") && by != "":
			t.Errorf("%s with ?stale=true passed the stream to %s", n.Name, by)
		}
		got = append(got, part...)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("hopping consumer got\n%v\nthe uninterrupted one\n%v", got, want)
	}

	// The CLI prints each blueprint once, in order.
	sc := bufio.NewScanner(out)
	for i := 0; i < rounds; {
		if !sc.Scan() {
			t.Fatalf("armada events ended after blueprint %d: %v", i, sc.Err())
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[1] != "blueprint" {
			continue
		}
		if f[3] != fmt.Sprintf("bp-%d", i) || f[2] != "put" {
			t.Fatalf("armada events printed %q, want the put of bp-%d", sc.Text(), i)
		}
		i++
	}

	// Open streams do not hold up a node that is told to stop: SIGTERM
	// ends them (the HTTP server would otherwise wait 5 s for them).
	ended := make(chan error, 2)
	for _, q := range []string{"", "?stale=true"} {
		resp, err := http.Get(follower.BaseURL() + "/v1/events" + q)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer resp.Body.Close()
			ended <- web.ReadEvents(resp.Body, func(web.StreamEvent) error { return nil })
		}()
	}
	follower.mu.Lock()
	proc := follower.cmd.Process
	follower.mu.Unlock()
	stopped := time.Now()
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exited, err := follower.WaitExit(4 * time.Second); !exited || err != nil {
		t.Fatalf("%s with 2 open event streams: exited %v (%v) 4s after SIGTERM", follower.Name, exited, err)
	}
	for range 2 {
		if err := <-ended; err != nil {
			t.Errorf("a stream of the stopped node ended with %v, want its end", err)
		}
	}
	t.Logf("%s with 2 open event streams stopped %s after SIGTERM", follower.Name, time.Since(stopped).Round(time.Millisecond))
}
