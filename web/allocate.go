package web

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
)

// allocateShip is POST /v1/allocate: {"fleet": NAME, "selector": {k: v},
// "strategy": "packed|distributed", "metadata": {"labels": {k: v}},
// "request_id": ID} → {"ship": SHIP, "address": IP, "ports": {name: port}},
// or 409 when no ready ship matches. A request sent again with the same
// request_id (within fsm.AllocIDTTL) gets the same ship.
func (s *Server) allocateShip(c echo.Context) error {
	var body struct {
		Fleet    string            `json:"fleet"`
		Selector map[string]string `json:"selector"`
		Strategy string            `json:"strategy"`
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		RequestID string `json:"request_id"`
	}
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	req := fsm.AllocRequest{Fleet: body.Fleet, Selector: body.Selector, Strategy: body.Strategy, Labels: body.Metadata.Labels, RequestID: body.RequestID}
	if e := fsm.ValidateAlloc(&req); e != nil {
		return e
	}
	// Requests that arrive together go out in one Raft entry through the
	// cluster's group commit (no added wait), and the state machine shares
	// one scan of the fleet between the allocations of an entry.
	ctx := c.Request().Context()
	res, err := s.c.Apply(ctx, &fsm.ShipAllocate{Requests: []fsm.AllocRequest{req}})
	// With a request ID the request is safe to send again: when its
	// outcome is unknown (the leader changed while it was in flight), ask
	// again, and the state answers with the ship it got, if it got one.
	for try := 1; req.RequestID != "" && errors.Is(err, cluster.ErrUnknownOutcome) && try < 5; try++ {
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
		res, err = s.c.Apply(ctx, &fsm.ShipAllocate{Requests: []fsm.AllocRequest{req}})
	}
	if err != nil {
		return err
	}
	if res.Err != nil {
		return res.Err
	}
	if r := res.Batch[0]; r.Err != nil {
		return r.Err
	}
	sh := res.Batch[0].Ships[0]
	return c.JSON(http.StatusOK, map[string]any{"ship": sh, "address": sh.Address, "ports": sh.Ports})
}
