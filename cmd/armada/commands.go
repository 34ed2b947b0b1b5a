package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/armada-orchestrator/armada/fsm"
)

func sortStrings(s []string) { sort.Strings(s) }

func newStatus(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the leader, term, index and nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := cf.client().get(cmd.Context(), "/v1/status", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var st struct {
					Leader, Node string
					ClusterID    string `json:"cluster_id"`
					Term, Index  uint64
					Nodes        []*fsm.Node
				}
				if err := json.Unmarshal(raw, &st); err != nil {
					return err
				}
				leader := st.Leader
				if leader == "" {
					leader = "(none)"
				}
				fmt.Printf("Leader: %s   Term: %d   Index: %d   Nodes: %d\n\n", leader, st.Term, st.Index, len(st.Nodes))
				nodeTable(st.Nodes)
				return nil
			})
		},
	}
}

func nodeTable(nodes []*fsm.Node) {
	rows := make([][]string, 0, len(nodes))
	for _, n := range nodes {
		drain := ""
		if n.Drain {
			drain = "draining"
		}
		rows = append(rows, []string{n.Name, n.Status, n.Role, n.Address, n.HTTPAddr, strconv.FormatInt(n.Capacity.CPUMHz, 10),
			strconv.FormatInt(n.Capacity.MemoryMB, 10), labelsString(n.Labels), drain})
	}
	table([]string{"NAME", "STATUS", "ROLE", "ADDRESS", "HTTP", "CPU_MHZ", "MEMORY_MB", "LABELS", "DRAIN"}, rows)
}

func newNode(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Inspect and drain nodes"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := cf.client().get(cmd.Context(), "/v1/nodes", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var nodes []*fsm.Node
				if err := json.Unmarshal(raw, &nodes); err != nil {
					return err
				}
				nodeTable(nodes)
				return nil
			})
		},
	}, &cobra.Command{
		Use:   "show NAME",
		Short: "Show one node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := cf.client().get(cmd.Context(), "/v1/nodes/"+url.PathEscape(args[0]), &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var n fsm.Node
				if err := json.Unmarshal(raw, &n); err != nil {
					return err
				}
				var ships []*fsm.Ship
				if err := cf.client().get(cmd.Context(), "/v1/ships?node="+url.QueryEscape(n.Name), &ships); err != nil {
					return err
				}
				ports := n.PortsRange
				if ports == "" {
					ports = "-"
				} else {
					ports += fmt.Sprintf(" (%d used by ships, %d by the host)", len(n.UsedPorts), len(n.HostPorts))
				}
				table([]string{"FIELD", "VALUE"}, [][]string{
					{"name", n.Name}, {"status", n.Status + " (since " + ago(n.StatusSince) + ")"}, {"role", n.Role},
					{"address", n.Address}, {"http", n.HTTPAddr}, {"gossip", n.GossipAddr}, {"raft", n.RaftAddr},
					{"worker", strconv.FormatBool(n.Worker)}, {"drain", strconv.FormatBool(n.Drain)}, {"labels", labelsString(n.Labels)},
					{"capacity", fmt.Sprintf("%d MHz, %d MB", n.Capacity.CPUMHz, n.Capacity.MemoryMB)},
					{"allocated", fmt.Sprintf("%d MHz (%s), %d MB (%s)", n.Allocated.CPUMHz, percent(n.Allocated.CPUMHz, n.Capacity.CPUMHz),
						n.Allocated.MemoryMB, percent(n.Allocated.MemoryMB, n.Capacity.MemoryMB))},
					{"usage", usageString(n.Usage)},
					{"ships", strconv.Itoa(n.Ships)}, {"ports", ports}, {"version", n.Version},
				})
				fmt.Println()
				shipTable(ships)
				return nil
			})
		},
	}, nodeDrainCmd(cf, "drain", true), nodeDrainCmd(cf, "undrain", false))
	return cmd
}

// percent is part of whole as "12.5%", or "-" when whole is 0.
func percent(part, whole int64) string {
	if whole <= 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(part)*100/float64(whole), 'f', 1, 64) + "%"
}

func nodeDrainCmd(cf *clientFlags, use string, enable bool) *cobra.Command {
	short := "Drain a node: no new ships go there and its ships move elsewhere"
	if !enable {
		short = "Stop draining a node: it takes ships again"
	}
	return &cobra.Command{
		Use:   use + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, _ := json.Marshal(map[string]bool{"enable": enable})
			var raw json.RawMessage
			if err := cf.client().do(cmd.Context(), http.MethodPost, "/v1/nodes/"+url.PathEscape(args[0])+"/drain", body, "application/json", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var n fsm.Node
				if err := json.Unmarshal(raw, &n); err != nil {
					return err
				}
				if n.Drain {
					fmt.Printf("node %s: draining (%d ships)\n", n.Name, n.Ships)
				} else {
					fmt.Printf("node %s: not draining\n", n.Name)
				}
				return nil
			})
		},
	}
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

func newBlueprint(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "blueprint", Aliases: []string{"bp"}, Short: "Manage ship blueprints"}
	var file string
	apply := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update a blueprint from a YAML or JSON file (- for stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f: a blueprint file is required")
			}
			data, err := readInput(file)
			if err != nil {
				return err
			}
			bp, err := fsm.ParseBlueprint(data)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if bp.Name == "" {
				return fmt.Errorf("%s: name: is required", file)
			}
			var raw json.RawMessage
			if err := cf.client().do(cmd.Context(), http.MethodPut, "/v1/blueprints/"+url.PathEscape(bp.Name), data, "application/yaml", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var out fsm.Blueprint
				if err := json.Unmarshal(raw, &out); err != nil {
					return err
				}
				fmt.Printf("blueprint %s: version %d\n", out.Name, out.Version)
				return nil
			})
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "blueprint file (YAML or JSON), - for stdin")

	var version int
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a blueprint (the latest version, or --version N)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/blueprints/" + url.PathEscape(args[0])
			if version > 0 {
				path += "/versions/" + strconv.Itoa(version)
			}
			var raw json.RawMessage
			if err := cf.client().get(cmd.Context(), path, &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				y, err := yaml.JSONToYAML(raw)
				if err != nil {
					return err
				}
				_, err = os.Stdout.Write(y)
				return err
			})
		},
	}
	show.Flags().IntVar(&version, "version", 0, "version to show (default: the latest)")

	cmd.AddCommand(apply, show, &cobra.Command{
		Use:   "list",
		Short: "List blueprints",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw json.RawMessage
			if err := cf.client().get(cmd.Context(), "/v1/blueprints", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var list []fsm.BlueprintInfo
				if err := json.Unmarshal(raw, &list); err != nil {
					return err
				}
				rows := make([][]string, 0, len(list))
				for _, b := range list {
					rows = append(rows, []string{b.Name, strconv.Itoa(b.Latest), strconv.Itoa(len(b.Versions)), ago(b.Updated)})
				}
				table([]string{"NAME", "LATEST", "VERSIONS", "UPDATED"}, rows)
				return nil
			})
		},
	}, &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a blueprint and all its versions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := cf.client().do(cmd.Context(), http.MethodDelete, "/v1/blueprints/"+url.PathEscape(args[0]), nil, "", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				fmt.Printf("blueprint %s deleted\n", args[0])
				return nil
			})
		},
	})
	return cmd
}

func newKV(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "kv", Short: "Read and write the shared key space"}
	var ttl string
	put := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Set a key (--ttl attaches a lease)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/kv/" + args[0]
			if ttl != "" {
				path += "?ttl=" + url.QueryEscape(ttl)
			}
			var raw json.RawMessage
			if err := cf.client().do(cmd.Context(), http.MethodPut, path, []byte(args[1]), "application/octet-stream", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var out struct {
					ModifyIndex uint64 `json:"modify_index"`
				}
				json.Unmarshal(raw, &out)
				fmt.Printf("%s set at index %d\n", args[0], out.ModifyIndex)
				return nil
			})
		},
	}
	put.Flags().StringVar(&ttl, "ttl", "", "delete the key after this long (e.g. 30s)")
	var prefix bool
	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a key's value (--prefix lists keys under KEY)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/kv/" + args[0]
			if prefix {
				path += "?prefix=true"
			}
			var raw json.RawMessage
			if err := cf.client().get(cmd.Context(), path, &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				type kv struct {
					Key, Value, Encoding string
					ModifyIndex          uint64 `json:"modify_index"`
				}
				if prefix {
					var list []kv
					json.Unmarshal(raw, &list)
					rows := make([][]string, 0, len(list))
					for _, k := range list {
						rows = append(rows, []string{k.Key, k.Value, strconv.FormatUint(k.ModifyIndex, 10)})
					}
					table([]string{"KEY", "VALUE", "INDEX"}, rows)
					return nil
				}
				var k kv
				json.Unmarshal(raw, &k)
				fmt.Println(k.Value)
				return nil
			})
		},
	}
	get.Flags().BoolVar(&prefix, "prefix", false, "list every key under KEY")
	cmd.AddCommand(put, get, &cobra.Command{
		Use:   "delete KEY",
		Short: "Delete a key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.client().do(cmd.Context(), http.MethodDelete, "/v1/kv/"+args[0], nil, "", nil)
		},
	})
	return cmd
}

func newLeave(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "leave",
		Short: "Make the node at --addr leave the cluster gracefully and stop",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cf.client().do(cmd.Context(), http.MethodPost, "/v1/agent/leave", nil, "", nil); err != nil {
				return err
			}
			fmt.Println("leaving")
			return nil
		},
	}
}
