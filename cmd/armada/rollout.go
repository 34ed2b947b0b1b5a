package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/armada-orchestrator/armada/fsm"
)

// newRollout is `armada fleet rollout NAME`: it follows the fleet's
// deployment with a progress bar until it ends, and fails when the
// deployment fails.
func newRollout(cf *clientFlags) *cobra.Command {
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "rollout NAME",
		Short: "Follow a fleet's deployment with a progress bar until it succeeds or fails",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := followRollout(cmd.Context(), cf.client(), args[0], every, os.Stdout, isTerminal(os.Stdout))
			if err != nil {
				return err
			}
			if cf.output == "json" {
				b, _ := json.MarshalIndent(d, "", "  ")
				fmt.Println(string(b))
			}
			if d.State != fsm.DeploySucceeded {
				return fmt.Errorf("deployment %d %s: %s", d.ID, d.State, d.Reason)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&every, "interval", 250*time.Millisecond, "how often to read the deployment")
	return cmd
}

// followRollout polls the fleet's newest deployment, drawing its progress
// on w (redrawn in place on a terminal, a line per change otherwise),
// until it is no longer running. A deployment superseded while followed
// is followed into its successor.
func followRollout(ctx context.Context, c *client, fleet string, every time.Duration, w io.Writer, tty bool) (*fsm.Deployment, error) {
	var following uint64
	last := ""
	for {
		var list []*fsm.Deployment
		if err := c.get(ctx, "/v1/fleets/"+url.PathEscape(fleet)+"/deployments", &list); err != nil {
			return nil, err
		}
		if len(list) == 0 {
			return nil, errors.New("fleet " + fleet + " has no deployment: change its versions or weights to start one")
		}
		d := list[0]
		if following == 0 && d.State != fsm.DeployRunning {
			fmt.Fprintf(w, "no deployment running; the last one:\n")
		}
		following = d.ID
		line := progressLine(d)
		if line != last {
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(w, line)
			}
			last = line
		}
		if d.State != fsm.DeployRunning {
			if tty {
				fmt.Fprintln(w)
			}
			if d.Reason != "" {
				fmt.Fprintf(w, "%s: %s\n", d.State, d.Reason)
			}
			return d, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(every):
		}
	}
}

// progressLine is "deployment 12 running [######------] 3/6 updated, 2 old  web:1@1 → web:2@1".
func progressLine(d *fsm.Deployment) string {
	const width = 24
	done := 0
	if d.Total > 0 {
		done = min(width, width*d.Updated/d.Total)
	}
	if d.State == fsm.DeploySucceeded {
		done = width
	}
	return fmt.Sprintf("deployment %d %-10s [%s%s] %d/%d updated, %d old  %s → %s", d.ID, d.State,
		strings.Repeat("#", done), strings.Repeat("-", width-done), d.Updated, d.Total, d.Old, versionsString(d.From), versionsString(d.To))
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
