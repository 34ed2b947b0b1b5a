package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/sdk"
	"github.com/armada-orchestrator/armada/sdk/demo"
)

// allocation is POST /v1/allocate's answer.
type allocation struct {
	Ship    fsm.Ship       `json:"ship"`
	Address string         `json:"address"`
	Ports   map[string]int `json:"ports"`
}

func newAllocate(cf *clientFlags) *cobra.Command {
	var selector, labels, strategy, requestID string
	cmd := &cobra.Command{
		Use:   "allocate FLEET",
		Short: "Allocate one ready ship of a fleet to a match; prints its address and ports",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := parseKV("--selector", selector)
			if err != nil {
				return err
			}
			lab, err := parseKV("--label", labels)
			if err != nil {
				return err
			}
			if requestID == "" {
				// Retries of this one allocation (after a lost answer)
				// then get the same ship instead of another.
				requestID = randomID()
			}
			body := map[string]any{"fleet": args[0], "request_id": requestID}
			if sel != nil {
				body["selector"] = sel
			}
			if strategy != "" {
				body["strategy"] = strategy
			}
			if lab != nil {
				body["metadata"] = map[string]any{"labels": lab}
			}
			b, _ := json.Marshal(body)
			var raw json.RawMessage
			if err := cf.client().do(cmd.Context(), "POST", "/v1/allocate", b, "application/json", &raw); err != nil {
				return err
			}
			return cf.render(raw, func() error {
				var a allocation
				if err := json.Unmarshal(raw, &a); err != nil {
					return err
				}
				table([]string{"SHIP", "NODE", "ADDRESS", "PORTS"}, [][]string{{a.Ship.ID, a.Ship.Node, a.Address, dash(portsString(a.Ports))}})
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&selector, "selector", "", "only ships with these labels: k=v[,k=v]")
	cmd.Flags().StringVar(&labels, "label", "", "labels to set on the allocated ship: k=v[,k=v]")
	cmd.Flags().StringVar(&strategy, "strategy", "", "packed (default: fill the busiest nodes first) or distributed")
	cmd.Flags().StringVar(&requestID, "request-id", "", "the allocation's ID: sent again with it, it gets the same ship (default: a random one)")
	return cmd
}

func newDemoServer() *cobra.Command {
	var port int
	return &cobra.Command{
		Use:   "demo-server",
		Short: "Run the demo game server: TCP and UDP echo on $ARMADA_PORT_GAME; send END to end an allocated match",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			if port == 0 {
				p, err := strconv.Atoi(os.Getenv("ARMADA_PORT_GAME"))
				if err != nil {
					return fmt.Errorf("--port or ARMADA_PORT_GAME is required")
				}
				port = p
			}
			cfg := demo.Config{Port: port, Logger: log}
			if os.Getenv("ARMADA_SDK_ADDR") != "" {
				c, err := sdk.FromEnv()
				if err != nil {
					return err
				}
				cfg.SDK = c
			} else {
				log.Info("no ARMADA_SDK_ADDR: running without the SDK")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return demo.Run(ctx, cfg)
		},
	}
}

// randomID is a fresh random ID (26 base32 characters, 130 bits).
func randomID() string { return rand.Text() }
