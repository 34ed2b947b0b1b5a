package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
)

func newSnapshot(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Back up and restore the whole cluster state"}
	cmd.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "Write a snapshot of the cluster state (every acknowledged write) to FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cf.client()
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, c.base+"/v1/snapshot", nil)
			if err != nil {
				return err
			}
			resp, err := c.http.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				body, _ := io.ReadAll(resp.Body)
				return fmt.Errorf("snapshot: HTTP %d: %s", resp.StatusCode, body)
			}
			// Write beside the target and rename, so FILE is never half a snapshot.
			tmp, err := os.CreateTemp(filepath.Dir(args[0]), ".armada-snapshot-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			n, err := io.Copy(tmp, resp.Body)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("write snapshot: %w", err)
			}
			if err := os.Rename(tmp.Name(), args[0]); err != nil {
				return err
			}
			index, _ := strconv.ParseUint(resp.Header.Get("X-Armada-Index"), 10, 64)
			return cf.result(map[string]any{"file": args[0], "snapshot_index": index, "bytes": n},
				"snapshot at index %d saved to %s (%d bytes)\n", index, args[0], n)
		},
	}, &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the whole cluster state with a snapshot (disaster recovery: later writes are lost)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(args[0])
			if err != nil {
				return err
			}
			var out struct {
				Index uint64 `json:"snapshot_index"`
			}
			if err := cf.client().do(cmd.Context(), http.MethodPut, "/v1/snapshot", data, "application/octet-stream", &out); err != nil {
				return err
			}
			return cf.result(map[string]any{"file": args[0], "snapshot_index": out.Index},
				"cluster state restored from %s (snapshot index %d)\n", args[0], out.Index)
		},
	})
	return cmd
}
