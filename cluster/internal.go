package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/hashicorp/raft"

	"github.com/armada-orchestrator/armada/fsm"
)

// internalAPI serves the node-to-node endpoints under /v1/internal/: the
// leader's end of write forwarding and read indexes, and a node's applied
// index for the leader's promotion checks.
type internalAPI struct{ n *Node }

// InternalHandler returns the handler for /v1/internal/ requests.
func (n *Node) InternalHandler() http.Handler { return &internalAPI{n} }

func (a *internalAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == streamPath:
		a.serveForwardStream(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/internal/apply":
		a.apply(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/internal/restore":
		a.restore(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/internal/read-index":
		if a.n.raft.State() != raft.Leader {
			writeInternalError(w, codeNotLeader, "not the leader")
			return
		}
		idx, err := a.n.leaderReadIndex(r.Context())
		if err != nil {
			writeApplyError(w, err)
			return
		}
		writeJSON(w, map[string]uint64{"index": idx})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/internal/applied":
		writeJSON(w, map[string]uint64{"applied": a.n.raft.AppliedIndex(), "fsm": a.n.state.Index(), "last": a.n.raft.LastIndex()})
	default:
		http.NotFound(w, r)
	}
}

func (a *internalAPI) apply(w http.ResponseWriter, r *http.Request) {
	if a.n.raft.State() != raft.Leader {
		writeInternalError(w, codeNotLeader, "not the leader")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c, err := fsm.Decode(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := forwardable(c); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.n.met.forwarded.Inc()
	defer a.n.push.kick() // the follower waits to apply what it sent
	if b, ok := c.(*fsm.Batch); ok {
		writeJSON(w, map[string]any{"batch": a.n.applyForwardedBatch(r.Context(), b)})
		return
	}
	res, err := a.n.applyLocal(r.Context(), c)
	var fe *fsm.Error
	if err != nil && !errors.As(err, &fe) {
		writeApplyError(w, err)
		return
	}
	writeJSON(w, res)
}

// leaderOnly reports the commands only the leader itself issues: node
// records follow gossip and Raft, the cluster's identity is set once, and
// expiry is decided by the leader's clock, and placements, lost ships and
// purges are the scheduler's, which runs on the leader. A forwarded request
// may not carry them.
func leaderOnly(t fsm.CmdType) bool {
	switch t {
	case fsm.CmdNodeUpsert, fsm.CmdNodeRemove, fsm.CmdClusterInit, fsm.CmdExpire,
		fsm.CmdShipPlace, fsm.CmdShipLost, fsm.CmdShipPurge:
		return true
	}
	return false
}

func forwardable(c fsm.Command) error {
	cmds := []fsm.Command{c}
	if b, ok := c.(*fsm.Batch); ok {
		cmds = b.Cmds
	}
	for _, sub := range cmds {
		if leaderOnly(sub.Type()) {
			return fmt.Errorf("command type %d is issued by the leader only", sub.Type())
		}
	}
	return nil
}

func writeApplyError(w http.ResponseWriter, err error) {
	var rt retryable
	switch {
	case errors.As(err, &rt):
		writeInternalError(w, codeNotLeader, err.Error())
	case errors.Is(err, ErrUnknownOutcome):
		writeInternalError(w, codeUnknownOutcome, err.Error())
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "internal", "message": err.Error()}})
	}
}

func writeInternalError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
