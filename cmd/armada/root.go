package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newRoot builds the command tree. Every flag can also be set through an
// ARMADA_<FLAG> environment variable (dashes become underscores); a flag
// on the command line wins.
func newRoot(version string) *cobra.Command {
	root := &cobra.Command{
		Use:           "armada",
		Short:         "Armada runs services and game servers on a cluster of machines",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Flags())
		},
	}
	cf := &clientFlags{}
	root.PersistentFlags().StringVar(&cf.addr, "addr", "http://127.0.0.1:7070", "HTTP address of an Armada node (env ARMADA_ADDR)")
	root.PersistentFlags().StringVar(&cf.token, "token", "", "API token: what the client sends, and what armada join requires on its API and sends to other nodes (env ARMADA_TOKEN)")
	root.PersistentFlags().StringVarP(&cf.output, "output", "o", "table", "output format: table or json (env ARMADA_OUTPUT)")
	root.AddCommand(newJoin(version, cf), newLeave(cf), newStatus(cf), newNode(cf), newBlueprint(cf), newFleet(cf), newShip(cf), newKV(cf), newSnapshot(cf),
		newAllocate(cf), newDemoServer(), newEvents(cf))
	return root
}

func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		env := "ARMADA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
		}
	})
	return err
}
