package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/armada-orchestrator/armada/fsm"
)

// Restore replaces the whole cluster state with a snapshot written by
// `armada snapshot save`. The snapshot is spooled to disk and checked in
// full (checksum, and that it loads) before Raft sees it; then the leader
// installs it and sends it to every follower. A follower forwards the
// snapshot to the leader. It returns the snapshot's index.
//
// This is disaster recovery: everything written since the snapshot is gone.
func (n *Node) Restore(ctx context.Context, r io.Reader) (uint64, error) {
	f, err := os.CreateTemp(n.cfg.DataDir, "restore-*.snap")
	if err != nil {
		return 0, fmt.Errorf("spool snapshot: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, err := io.Copy(f, r)
	if err != nil {
		return 0, fmt.Errorf("spool snapshot: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	index, err := fsm.CheckSnapshot(f, n.cfg.DataDir)
	if err != nil {
		return 0, &fsm.Error{Code: fsm.ErrInvalid, Field: "snapshot", Message: err.Error()}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if n.raft.State() != raft.Leader {
		addr, err := n.leaderHTTP()
		if err != nil {
			return 0, err
		}
		return index, n.fwd.restore(ctx, addr, f)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: index, Size: size}
	if err := n.raft.Restore(meta, f, 5*time.Minute); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	n.log.Info("restored the cluster state from a snapshot", "snapshot_index", index, "bytes", size)
	return index, nil
}

func (f *forwarder) restore(ctx context.Context, addr string, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/internal/restore", body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	f.auth(req)
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("forward restore: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusBadRequest:
		return &fsm.Error{Code: fsm.ErrInvalid, Field: "snapshot", Message: "the leader refused it: " + strings.TrimSpace(string(msg))}
	case resp.StatusCode == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: leadership moved during the restore", ErrNoLeader)
	}
	return errors.New("leader refused the restore: " + strings.TrimSpace(string(msg)))
}

func (a *internalAPI) restore(w http.ResponseWriter, r *http.Request) {
	if a.n.raft.State() != raft.Leader {
		writeInternalError(w, codeNotLeader, "not the leader")
		return
	}
	index, err := a.n.Restore(r.Context(), r.Body)
	var fe *fsm.Error
	switch {
	case errors.As(err, &fe):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		writeApplyError(w, err)
		return
	}
	writeJSON(w, map[string]uint64{"index": index})
}
