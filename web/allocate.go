package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/armada-orchestrator/armada/fsm"
)

// allocateShip is POST /v1/allocate: {"fleet": NAME, "selector": {k: v},
// "strategy": "packed|distributed", "metadata": {"labels": {k: v}}} →
// {"ship": SHIP, "address": IP, "ports": {name: port}}, or 409 when no
// ready ship matches.
func (s *Server) allocateShip(c echo.Context) error {
	var body struct {
		Fleet    string            `json:"fleet"`
		Selector map[string]string `json:"selector"`
		Strategy string            `json:"strategy"`
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	req := fsm.AllocRequest{Fleet: body.Fleet, Selector: body.Selector, Strategy: body.Strategy, Labels: body.Metadata.Labels}
	if e := fsm.ValidateAlloc(&req); e != nil {
		return e
	}
	// Requests that arrive together go out in one Raft entry through the
	// cluster's group commit (no added wait), and the state machine shares
	// one scan of the fleet between the allocations of an entry.
	res, err := s.c.Apply(c.Request().Context(), &fsm.ShipAllocate{Requests: []fsm.AllocRequest{req}})
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
