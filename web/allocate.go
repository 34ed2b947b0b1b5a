package web

import (
	"context"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/armada-orchestrator/armada/fsm"
)

// allocFlights is how many ShipAllocate entries may be in flight at once.
const allocFlights = 2

// allocator groups allocation requests into ShipAllocate entries. A lone
// request goes out at once; requests that arrive while entries are in
// flight wait for the next one, which carries them all. Nothing waits for
// a batch to fill.
type allocator struct {
	apply func(ctx context.Context, c fsm.Command) (*fsm.Result, error)

	mu      sync.Mutex
	pending []*allocCall
	flying  int
}

type allocCall struct {
	req  fsm.AllocRequest
	done chan allocAnswer // buffered 1
}

type allocAnswer struct {
	res *fsm.Result
	err error
}

// allocate queues one request and waits for its answer.
func (a *allocator) allocate(ctx context.Context, req fsm.AllocRequest) (*fsm.Result, error) {
	call := &allocCall{req: req, done: make(chan allocAnswer, 1)}
	a.mu.Lock()
	a.pending = append(a.pending, call)
	if a.flying < allocFlights {
		a.flying++
		go a.flush()
	}
	a.mu.Unlock()
	select {
	case ans := <-call.done:
		return ans.res, ans.err
	case <-ctx.Done():
		// The entry may still commit: the ship stays allocated, as an
		// allocation whose answer was lost would in any system.
		return nil, ctx.Err()
	}
}

// flush sends what is pending, again and again, until nothing is.
func (a *allocator) flush() {
	for {
		a.mu.Lock()
		n := min(len(a.pending), fsm.MaxAllocBatch)
		if n == 0 {
			a.flying--
			a.mu.Unlock()
			return
		}
		batch := a.pending[:n:n]
		a.pending = a.pending[n:]
		a.mu.Unlock()

		c := &fsm.ShipAllocate{Requests: make([]fsm.AllocRequest, n)}
		for i, call := range batch {
			c.Requests[i] = call.req
		}
		// Not tied to any one caller: the others still want the answer.
		res, err := a.apply(context.Background(), c)
		for i, call := range batch {
			switch {
			case err != nil:
				call.done <- allocAnswer{err: err}
			case res.Err != nil:
				call.done <- allocAnswer{err: res.Err}
			default:
				call.done <- allocAnswer{res: res.Batch[i]}
			}
		}
	}
}

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
	res, err := s.alloc.allocate(c.Request().Context(), req)
	if err != nil {
		return err
	}
	if res.Err != nil {
		return res.Err
	}
	sh := res.Ships[0]
	return c.JSON(http.StatusOK, map[string]any{"ship": sh, "address": sh.Address, "ports": sh.Ports})
}
