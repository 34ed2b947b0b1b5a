package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/armada-orchestrator/armada/fsm"
)

// portsString is "name:port,..." sorted by name.
func portsString(ports map[string]int) string {
	parts := make([]string, 0, len(ports))
	for name, p := range ports {
		parts = append(parts, name+":"+strconv.Itoa(p))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// age is how long ago a Unix-millisecond time was, in its largest unit or
// two ("45s", "3m", "2h5m", "4d").
func age(ms int64) string {
	if ms == 0 {
		return "-"
	}
	d := max(time.Since(time.UnixMilli(ms)), 0)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return strconv.Itoa(h) + "h"
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shipTable(ships []*fsm.Ship) {
	rows := make([][]string, 0, len(ships))
	for _, s := range ships {
		rows = append(rows, []string{s.ID, dash(s.Fleet), s.Blueprint, strconv.Itoa(s.Version), dash(s.Node), s.State,
			dash(portsString(s.Ports)), dash(s.Address), age(s.Created), s.Reason})
	}
	table([]string{"ID", "FLEET", "BLUEPRINT", "VERSION", "NODE", "STATE", "PORTS", "ADDRESS", "AGE", "REASON"}, rows)
}

func showShip(s *fsm.Ship) {
	rows := [][]string{
		{"id", s.ID}, {"fleet", dash(s.Fleet)}, {"blueprint", fmt.Sprintf("%s version %d", s.Blueprint, s.Version)},
		{"node", dash(s.Node)}, {"state", s.State}, {"desired", s.Desired},
		{"ports", dash(portsString(s.Ports))}, {"address", dash(s.Address)}, {"labels", dash(labelsString(s.Labels))},
		{"resources", fmt.Sprintf("%d MHz, %d MB", s.Resources.CPUMHz, s.Resources.MemoryMB)},
		{"usage", usageString(s.Usage)},
		{"reason", dash(s.Reason)}, {"created", ago(s.Created)}, {"updated", ago(s.Updated)},
	}
	table([]string{"FIELD", "VALUE"}, rows)
}

// usageString is a measured usage, "-" when none was reported.
func usageString(u *fsm.Usage) string {
	if u == nil {
		return "-"
	}
	return fmt.Sprintf("%d MHz, %d MB (%s)", u.CPUMHz, u.MemoryMB, ago(u.At))
}

func newShip(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "ship", Short: "Inspect and stop ships"}
	var fleet, node, state string
	list := &cobra.Command{
		Use:   "list",
		Short: "List ships (--fleet, --node and --state narrow the list)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"fleet": fleet, "node": node, "state": state} {
				if v != "" {
					q.Set(k, v)
				}
			}
			path := "/v1/ships"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var raw json.RawMessage
			if err := cf.client().get(cmd.Context(), path, &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var ships []*fsm.Ship
				if err := json.Unmarshal(raw, &ships); err != nil {
					return err
				}
				shipTable(ships)
				return nil
			})
		},
	}
	list.Flags().StringVar(&fleet, "fleet", "", "only the ships of this fleet")
	list.Flags().StringVar(&node, "node", "", "only the ships on this node")
	list.Flags().StringVar(&state, "state", "", "only the ships in this state (queued, scheduled, starting, ready, allocated, stopping, stopped, failed, lost)")

	var tail int
	var follow bool
	logs := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a ship's output (--follow streams what it writes next)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if tail >= 0 {
				q.Set("tail", strconv.Itoa(tail))
			}
			if follow {
				q.Set("follow", "true")
			}
			path := "/v1/ships/" + url.PathEscape(args[0]) + "/logs"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			err := cf.client().stream(cmd.Context(), path, os.Stdout)
			if errors.Is(err, context.Canceled) {
				return nil // interrupted while following
			}
			return err
		},
	}
	logs.Flags().IntVar(&tail, "tail", -1, "only the last N lines (default: all, at most the last MiB)")
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the ship writes until it ends")

	cmd.AddCommand(list, logs, &cobra.Command{
		Use:   "show ID",
		Short: "Show one ship",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := cf.client().get(cmd.Context(), "/v1/ships/"+url.PathEscape(args[0]), &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var s fsm.Ship
				if err := json.Unmarshal(raw, &s); err != nil {
					return err
				}
				showShip(&s)
				return nil
			})
		},
	}, &cobra.Command{
		Use:   "stop ID",
		Short: "Stop a ship",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := cf.client().do(cmd.Context(), http.MethodDelete, "/v1/ships/"+url.PathEscape(args[0]), nil, "", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var s fsm.Ship
				if err := json.Unmarshal(raw, &s); err != nil {
					return err
				}
				fmt.Printf("ship %s: %s\n", s.ID, s.State)
				return nil
			})
		},
	})
	return cmd
}

// stream copies a GET's body to w as it arrives, with no overall timeout
// (a followed log lasts as long as the ship). A non-2xx answer is an
// error carrying the API's field and message.
func (c *client) stream(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var ae apiError
		if json.Unmarshal(data, &ae) == nil && ae.Error.Message != "" {
			if ae.Error.Field != "" {
				return fmt.Errorf("%s: %s (%s, HTTP %d)", ae.Error.Field, ae.Error.Message, ae.Error.Code, resp.StatusCode)
			}
			return fmt.Errorf("%s (%s, HTTP %d)", ae.Error.Message, ae.Error.Code, resp.StatusCode)
		}
		return fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}
