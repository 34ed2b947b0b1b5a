package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/armada-orchestrator/armada/fsm"
)

// fleetSummary is a fleet as GET /v1/fleets returns it: the spec and the
// status counted from its ships.
type fleetSummary struct {
	fsm.Fleet
	Status fsm.FleetStatus `json:"status"`
}

// versionsString is "bp:v@weight,..." for a fleet's versions.
func versionsString(vs []fsm.FleetVersion) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%s:%d@%d", v.Blueprint, v.Version, v.Weight))
	}
	return strings.Join(parts, ",")
}

func newFleet(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "fleet", Short: "Manage fleets"}
	var file string
	apply := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update a fleet from a YAML or JSON file (- for stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f: a fleet file is required")
			}
			data, err := readInput(file)
			if err != nil {
				return err
			}
			f, err := fsm.ParseFleet(data)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if f.Name == "" {
				return fmt.Errorf("%s: name: is required", file)
			}
			var raw json.RawMessage
			if err := cf.client().do(cmd.Context(), http.MethodPut, "/v1/fleets/"+url.PathEscape(f.Name), data, "application/yaml", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var out fsm.Fleet
				if err := json.Unmarshal(raw, &out); err != nil {
					return err
				}
				fmt.Printf("fleet %s: generation %d, %d replicas of %s\n", out.Name, out.Generation, out.Replicas, versionsString(out.Versions))
				return nil
			})
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "fleet file (YAML or JSON), - for stdin")

	list := &cobra.Command{
		Use:   "list",
		Short: "List fleets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := cf.client().get(cmd.Context(), "/v1/fleets", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var fleets []fleetSummary
				if err := json.Unmarshal(raw, &fleets); err != nil {
					return err
				}
				rows := make([][]string, 0, len(fleets))
				for _, f := range fleets {
					st := f.Status
					rows = append(rows, []string{f.Name, strconv.Itoa(f.Replicas), strconv.Itoa(st.Ready), strconv.Itoa(st.Allocated),
						strconv.Itoa(st.Queued), versionsString(f.Versions), f.Strategy()})
				}
				table([]string{"NAME", "REPLICAS", "READY", "ALLOCATED", "QUEUED", "VERSIONS", "STRATEGY"}, rows)
				return nil
			})
		},
	}

	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a fleet, its versions and its ships",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cf.client()
			var raw json.RawMessage
			if err := c.get(cmd.Context(), "/v1/fleets/"+url.PathEscape(args[0]), &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var f fleetSummary
				if err := json.Unmarshal(raw, &f); err != nil {
					return err
				}
				var ships []*fsm.Ship
				if err := c.get(cmd.Context(), "/v1/ships?fleet="+url.QueryEscape(f.Name), &ships); err != nil {
					return err
				}
				showFleet(&f, ships)
				return nil
			})
		},
	}

	cmd.AddCommand(apply, list, show, newRollout(cf), &cobra.Command{
		Use:   "scale NAME N",
		Short: "Set a fleet's replicas",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return fmt.Errorf("replicas: must be a non-negative integer, not %q", args[1])
			}
			body, _ := json.Marshal(map[string]int{"replicas": n})
			var raw json.RawMessage
			if err := cf.client().do(cmd.Context(), http.MethodPost, "/v1/fleets/"+url.PathEscape(args[0])+"/scale", body, "application/json", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var f fsm.Fleet
				if err := json.Unmarshal(raw, &f); err != nil {
					return err
				}
				fmt.Printf("fleet %s: %d replicas (generation %d)\n", f.Name, f.Replicas, f.Generation)
				return nil
			})
		},
	}, &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a fleet and stop its ships",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := cf.client().do(cmd.Context(), http.MethodDelete, "/v1/fleets/"+url.PathEscape(args[0]), nil, "", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var out struct {
					ShipsStopped int `json:"ships_stopped"`
				}
				if err := json.Unmarshal(raw, &out); err != nil {
					return err
				}
				fmt.Printf("fleet %s deleted (%d ships stopping)\n", args[0], out.ShipsStopped)
				return nil
			})
		},
	})
	return cmd
}

func showFleet(f *fleetSummary, ships []*fsm.Ship) {
	st := f.Status
	rows := [][]string{
		{"name", f.Name},
		{"replicas", strconv.Itoa(f.Replicas)},
		{"generation", strconv.FormatUint(f.Generation, 10)},
		{"strategy", f.Strategy()},
	}
	if p := f.Placement; p != nil && len(p.Constraints) > 0 {
		cons := make([]string, 0, len(p.Constraints))
		for _, c := range p.Constraints {
			cons = append(cons, strings.TrimSpace(c.Label+" "+c.Op+" "+c.Value))
		}
		rows = append(rows, []string{"constraints", strings.Join(cons, ", ")})
	}
	if b := f.Buffer; b != nil {
		rows = append(rows, []string{"buffer", fmt.Sprintf("ready %d, min %d, max %d", b.Ready, b.Min, b.Max)})
	}
	if u := f.Update; u != nil {
		rows = append(rows, []string{"update", fmt.Sprintf("max_parallel %d, drain_lb %t, auto_rollback %t", u.MaxParallel, u.DrainLB, u.AutoRollback)})
	}
	rows = append(rows,
		[]string{"ships", fmt.Sprintf("%d of %d: %d ready, %d allocated, %d starting, %d scheduled, %d queued, %d stopping",
			st.Total, st.Desired, st.Ready, st.Allocated, st.Starting, st.Scheduled, st.Queued, st.Stopping)},
		[]string{"ended", fmt.Sprintf("%d stopped, %d failed, %d lost", st.Stopped, st.Failed, st.Lost)},
		[]string{"created", ago(f.Created)}, []string{"updated", ago(f.Updated)},
	)
	table([]string{"FIELD", "VALUE"}, rows)

	fmt.Println()
	vrows := make([][]string, 0, len(st.Versions))
	for _, v := range st.Versions {
		vrows = append(vrows, []string{v.Blueprint, strconv.Itoa(v.Version), strconv.Itoa(v.Weight), strconv.Itoa(v.Desired),
			strconv.Itoa(v.Ships), strconv.Itoa(v.Ready)})
	}
	table([]string{"BLUEPRINT", "VERSION", "WEIGHT", "DESIRED", "SHIPS", "READY"}, vrows)

	fmt.Println()
	shipTable(ships)
}
