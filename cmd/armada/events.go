package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/armada-orchestrator/armada/web"
)

func newEvents(cf *clientFlags) *cobra.Command {
	var topics []string
	var since string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Follow the cluster's state changes as they happen (reconnects and resumes by itself)",
		Example: `  armada events
  armada events --topic ship --topic fleet
  armada events --since 1200 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return followEvents(ctx, cf, topics, since, os.Stdout)
		},
	}
	cmd.Flags().StringSliceVar(&topics, "topic", nil, "only these topics: node, blueprint, fleet, ship, allocation, deployment, cluster (repeat or comma-separate)")
	cmd.Flags().StringVar(&since, "since", "", "start after this Raft index or event id instead of now")
	return cmd
}

// followEvents prints events until ctx ends. A cut connection is resumed
// after the last event printed, so nothing is missed or printed twice; a
// stream the server dropped, or a position it no longer keeps, is an error.
func followEvents(ctx context.Context, cf *clientFlags, topics []string, since string, out io.Writer) error {
	if cf.output != "table" && cf.output != "" && cf.output != "json" {
		return fmt.Errorf("--output: must be table or json, not %q", cf.output)
	}
	c := cf.client()
	q := url.Values{}
	if len(topics) > 0 {
		q.Set("topic", strings.Join(topics, ","))
	}
	if since != "" {
		q.Set("since", since)
	}
	path := "/v1/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	hc := &http.Client{} // no timeout: the stream is long-lived
	last := ""
	backoff := time.Second
	for {
		err := streamOnce(ctx, c, hc, path, &last, cf.output == "json", out)
		if ctx.Err() != nil {
			return nil
		}
		var fatal *fatalStream
		if errors.As(err, &fatal) {
			return fatal.err
		}
		if err == nil {
			backoff = time.Second
		} else {
			fmt.Fprintf(os.Stderr, "events: %v; reconnecting\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// fatalStream is an error that reconnecting cannot fix.
type fatalStream struct{ err error }

func (f *fatalStream) Error() string { return f.err.Error() }

func streamOnce(ctx context.Context, c *client, hc *http.Client, path string, last *string, asJSON bool, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return &fatalStream{err}
	}
	req.Header.Set("Accept", "text/event-stream")
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var ae apiError
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &ae) == nil && ae.Error.Message != "" {
			msg = ae.Error.Message + " (" + ae.Error.Code + ")"
			if ae.Error.Field != "" {
				msg = ae.Error.Field + ": " + msg
			}
		}
		err := fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, msg)
		if resp.StatusCode/100 == 4 {
			return &fatalStream{err}
		}
		return err
	}
	return web.ReadEvents(resp.Body, func(ev web.StreamEvent) error {
		switch ev.Type {
		case "dropped":
			var d struct{ Reason, Resume string }
			_ = json.Unmarshal(ev.Data, &d)
			return &fatalStream{fmt.Errorf("the server dropped this subscription: %s (resume with --since %s)", d.Reason, d.Resume)}
		case "leader":
			if !asJSON {
				var l struct {
					Leader string `json:"leader"`
					Term   uint64 `json:"term"`
				}
				_ = json.Unmarshal(ev.Data, &l)
				fmt.Fprintf(out, "%-10s %-10s leader %s, term %d\n", "-", "leader", dash(l.Leader), l.Term)
				return nil
			}
		}
		if ev.ID != "" {
			*last = ev.ID
		}
		if asJSON {
			_, err := fmt.Fprintf(out, "%s\n", ev.Data)
			return err
		}
		var e web.Event
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			return nil
		}
		_, err := fmt.Fprintf(out, "%-10s %-10s %-6s %s%s\n", e.ID, e.Topic, e.Op, e.Key, eventSummary(e))
		return err
	})
}

// eventSummary is a few words on the object of an event.
func eventSummary(e web.Event) string {
	m, ok := e.Object.(map[string]any)
	if !ok {
		return ""
	}
	var parts []string
	for _, k := range []string{"state", "status", "node", "version", "replicas", "reason"} {
		switch v := m[k].(type) {
		case string:
			if v != "" {
				parts = append(parts, k+"="+v)
			}
		case float64:
			parts = append(parts, k+"="+strconv.FormatFloat(v, 'f', -1, 64))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "  " + strings.Join(parts, " ")
}
