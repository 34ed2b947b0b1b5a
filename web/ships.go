package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/armada-orchestrator/armada/fsm"
)

// shipStates are the states GET /v1/ships?state= accepts.
var shipStates = []string{
	fsm.ShipQueued, fsm.ShipScheduled, fsm.ShipStarting, fsm.ShipReady, fsm.ShipAllocated, fsm.ShipReserved,
	fsm.ShipStopping, fsm.ShipStopped, fsm.ShipFailed, fsm.ShipLostState,
}

func (s *Server) listShips(c echo.Context) error {
	f := fsm.ShipFilter{Fleet: c.QueryParam("fleet"), Node: c.QueryParam("node"), State: c.QueryParam("state")}
	if f.State != "" && !slices.Contains(shipStates, f.State) {
		return badRequest("state", "must be one of %s, not %q", strings.Join(shipStates, ", "), f.State)
	}
	return s.read(c, func(v *fsm.View) error {
		return c.JSON(http.StatusOK, orEmpty(v.Ships(f)))
	})
}

func (s *Server) getShip(c echo.Context) error {
	id := c.Param("id")
	return s.read(c, func(v *fsm.View) error {
		sh, ok := v.Ship(id)
		if !ok {
			return notFound("id", "ship %q not found", id)
		}
		return c.JSON(http.StatusOK, sh)
	})
}

// createShip queues one ship of a blueprint outside any fleet:
// {"blueprint": NAME, "version": N} (version omitted: the latest).
func (s *Server) createShip(c echo.Context) error {
	var body struct {
		Blueprint *string `json:"blueprint"`
		Version   int     `json:"version"`
	}
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	if body.Blueprint == nil || *body.Blueprint == "" {
		return badRequest("blueprint", "blueprint is required")
	}
	bp := *body.Blueprint
	if !fsm.ValidName(bp) {
		return &fsm.Error{Code: fsm.ErrInvalid, Field: "blueprint", Message: "must name a blueprint"}
	}
	if body.Version < 0 {
		return &fsm.Error{Code: fsm.ErrInvalid, Field: "version", Message: "must be positive (or omitted for the latest)"}
	}
	// A blueprint the body names but the state lacks is bad input (422),
	// as for a fleet, and stays out of the log.
	err := s.c.State().View(func(v *fsm.View) error {
		info, ok := v.BlueprintInfo(bp)
		if !ok {
			return &fsm.Error{Code: fsm.ErrInvalid, Field: "blueprint", Message: fmt.Sprintf("blueprint %q not found", bp)}
		}
		if body.Version != 0 && !slices.Contains(info.Versions, body.Version) {
			return &fsm.Error{Code: fsm.ErrInvalid, Field: "version", Message: fmt.Sprintf("blueprint %q has no version %d", bp, body.Version)}
		}
		return nil
	})
	if err != nil {
		return err
	}
	res, err := s.c.Apply(c.Request().Context(), &fsm.ShipCreate{Blueprint: bp, Version: body.Version, Count: 1})
	if err != nil {
		var fe *fsm.Error
		if errors.As(err, &fe) && fe.Code == fsm.ErrNotFound && fe.Field == "blueprint" {
			// Deleted between the check and the apply.
			return &fsm.Error{Code: fsm.ErrInvalid, Field: "blueprint", Message: fe.Message}
		}
		return err
	}
	if len(res.Ships) == 0 {
		return fmt.Errorf("ship create: no ship created")
	}
	c.Response().Header().Set("X-Armada-Index", strconv.FormatUint(res.Index, 10))
	return c.JSON(http.StatusCreated, res.Ships[0])
}

// stopShip asks a ship to stop and returns it. Stopping a ship that is
// already stopping or has ended changes nothing and returns it as it is.
func (s *Server) stopShip(c echo.Context) error {
	id := c.Param("id")
	var current *fsm.Ship
	var index uint64
	err := s.c.State().View(func(v *fsm.View) error {
		sh, ok := v.Ship(id)
		if !ok {
			return notFound("id", "ship %q not found", id)
		}
		current, index = sh, v.Index()
		return nil
	})
	if err != nil {
		return err
	}
	if !current.Live() {
		c.Response().Header().Set("X-Armada-Index", strconv.FormatUint(index, 10))
		return c.JSON(http.StatusOK, current)
	}
	res, err := s.c.Apply(c.Request().Context(), &fsm.ShipStop{Ships: []string{id}, Why: fsm.StopUser, Reason: "stopped by an operator"})
	if err != nil {
		return err
	}
	c.Response().Header().Set("X-Armada-Index", strconv.FormatUint(res.Index, 10))
	if len(res.Ships) > 0 {
		return c.JSON(http.StatusOK, res.Ships[0])
	}
	// It ended or was stopped meanwhile: answer with what the state holds.
	return s.read(c, func(v *fsm.View) error {
		sh, ok := v.Ship(id)
		if !ok {
			return notFound("id", "ship %q not found", id)
		}
		return c.JSON(http.StatusOK, sh)
	})
}

// drainNode turns a node's drain on or off: {"enable": bool}.
func (s *Server) drainNode(c echo.Context) error {
	name := c.Param("name")
	var body struct {
		Enable *bool `json:"enable"`
	}
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	if body.Enable == nil {
		return badRequest("enable", "enable is required (true or false)")
	}
	err := s.c.State().View(func(v *fsm.View) error {
		if _, ok := v.Node(name); !ok {
			return notFound("name", "node %q not found", name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	res, err := s.c.Apply(c.Request().Context(), &fsm.NodeDrain{Name: name, Enable: *body.Enable})
	if err != nil {
		return err
	}
	c.Response().Header().Set("X-Armada-Index", strconv.FormatUint(res.Index, 10))
	return c.JSON(http.StatusOK, res.Node)
}

// Ship logs.
const (
	// maxLogTail is how much of a log file's end a request reads at most
	// before it follows.
	maxLogTail = 1 << 20
	// logPoll is how often a followed log file is checked for more data.
	logPoll = 200 * time.Millisecond
	// forwardedHeader marks a request one node passed to another, so a
	// request is passed on at most once.
	forwardedHeader = "X-Armada-Forwarded"
)

// logProxy carries log requests to the node that runs the ship. It has no
// overall timeout: a followed log streams for as long as the client stays.
var logProxy = &http.Client{Transport: &http.Transport{
	Proxy:                 nil,
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	ResponseHeaderTimeout: 15 * time.Second,
	MaxIdleConnsPerHost:   4,
	IdleConnTimeout:       90 * time.Second,
}}

// shipLogs serves a ship's captured stdout and stderr as text: the last
// ?tail=N lines (default: all of it, at most the last MiB), and with
// ?follow=true whatever is appended after, until the client goes away or
// the ship has ended and nothing more comes. A ship on another node is
// read through that node.
func (s *Server) shipLogs(c echo.Context) error {
	id := c.Param("id")
	tail := -1
	if q := c.QueryParam("tail"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 {
			return badRequest("tail", "must be a non-negative integer, not %q", q)
		}
		tail = n
	}
	follow := false
	if q := c.QueryParam("follow"); q != "" {
		b, err := strconv.ParseBool(q)
		if err != nil {
			return badRequest("follow", "must be true or false, not %q", q)
		}
		follow = b
	}
	var (
		ship  *fsm.Ship
		node  *fsm.Node
		index uint64
	)
	err := s.c.State().View(func(v *fsm.View) error {
		sh, ok := v.Ship(id)
		if !ok {
			return notFound("id", "ship %q not found", id)
		}
		ship, index = sh, v.Index()
		if sh.Node != "" {
			node, _ = v.Node(sh.Node)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if ship.Node == "" {
		return &statusError{status: http.StatusConflict, body: apiError{Code: "not_placed", Field: "id",
			Message: fmt.Sprintf("ship %q is %s and not placed on a node yet: it has no logs", id, ship.State)}}
	}
	if ship.Node != s.c.Name() {
		if c.Request().Header.Get(forwardedHeader) != "" {
			return notFound("id", "ship %q does not run on node %s", id, s.c.Name())
		}
		if node == nil || node.HTTPAddr == "" {
			return &statusError{status: http.StatusBadGateway, body: apiError{Code: "node_unreachable", Field: "id",
				Message: fmt.Sprintf("ship %q runs on node %s, whose HTTP address is unknown", id, ship.Node)}}
		}
		return s.proxyLogs(c, node)
	}
	if s.logs == nil {
		return notFound("id", "no logs yet for ship %q: node %s keeps no ship logs", id, s.c.Name())
	}
	if j, ok := s.logs.(ShipJournal); ok {
		if done, err := s.journalLogs(c, j, id, tail, follow, index); done || err != nil {
			return err
		}
	}
	f, err := os.Open(s.logs.LogPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return notFound("id", "no logs yet for ship %q", id)
	}
	if err != nil {
		return fmt.Errorf("open logs of ship %s: %w", id, err)
	}
	defer f.Close()
	start, err := tailStart(f, tail)
	if err != nil {
		return fmt.Errorf("read logs of ship %s: %w", id, err)
	}
	resp := s.startLogs(c, index)
	off, err := copyFrom(resp, f, start)
	if err != nil {
		return nil // the client went away; the status is already sent
	}
	flush(resp)
	if !follow {
		return nil
	}
	ctx := c.Request().Context()
	tick := time.NewTicker(logPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		n, err := copyFrom(resp, f, off)
		if err != nil {
			return nil
		}
		if n > off {
			off = n
			flush(resp)
			continue
		}
		if n < off { // truncated: start over
			off = 0
			continue
		}
		if s.shipEnded(id) {
			// One last read for what was written just before it ended.
			if n, err := copyFrom(resp, f, off); err == nil && n > off {
				flush(resp)
			}
			return nil
		}
	}
}

// shipEnded reports whether a ship has ended, been forgotten, or is not on
// this node any more.
func (s *Server) shipEnded(id string) bool {
	ended := true
	s.c.State().View(func(v *fsm.View) error {
		if sh, ok := v.Ship(id); ok && !sh.Ended() && sh.Node == s.c.Name() {
			ended = false
		}
		return nil
	})
	return ended
}

// tailStart is where in f the last n lines begin (n < 0: all of it), at
// most maxLogTail bytes before its end. When that cap cuts a line, the cut
// line is left out.
func tailStart(f *os.File, n int) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	from := max(size-maxLogTail, 0)
	if n < 0 && from == 0 {
		return 0, nil
	}
	buf := make([]byte, size-from)
	if _, err := f.ReadAt(buf, from); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	if n == 0 {
		return size, nil
	}
	if n > 0 {
		// Count newlines back from the end; a final newline ends the last
		// line rather than starting an empty one.
		end := len(buf)
		if end > 0 && buf[end-1] == '\n' {
			end--
		}
		for i := end - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				n--
				if n == 0 {
					return from + int64(i) + 1, nil
				}
			}
		}
	}
	if from == 0 {
		return 0, nil
	}
	// Cut by the cap: start after the first newline, if there is one.
	if i := bytes.IndexByte(buf, '\n'); i >= 0 && i+1 < len(buf) {
		return from + int64(i) + 1, nil
	}
	return from, nil
}

// copyFrom writes f from off to its current end and returns the offset it
// reached, or the file's size when that is below off (truncated).
func copyFrom(w io.Writer, f *os.File, off int64) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return off, err
	}
	if st.Size() < off {
		return st.Size(), nil
	}
	n, err := io.Copy(w, io.NewSectionReader(f, off, st.Size()-off))
	return off + n, err
}

func flush(w http.ResponseWriter) { _ = http.NewResponseController(w).Flush() }

// proxyLogs passes a log request on to the node that runs the ship and
// streams its answer back as it comes.
func (s *Server) proxyLogs(c echo.Context, node *fsm.Node) error {
	base := node.HTTPAddr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	r := c.Request()
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, strings.TrimRight(base, "/")+r.URL.RequestURI(), nil)
	if err != nil {
		return err
	}
	req.Header.Set(forwardedHeader, "1")
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	up, err := logProxy.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return &statusError{status: http.StatusBadGateway, body: apiError{Code: "node_unreachable",
			Message: fmt.Sprintf("read logs from node %s: %v", node.Name, err)}}
	}
	defer up.Body.Close()
	resp := c.Response()
	for _, k := range []string{echo.HeaderContentType, "X-Content-Type-Options", "Cache-Control", "X-Armada-Index", "X-Armada-Node"} {
		if v := up.Header.Get(k); v != "" {
			resp.Header().Set(k, v)
		}
	}
	resp.WriteHeader(up.StatusCode)
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Body.Read(buf)
		if n > 0 {
			if _, werr := resp.Write(buf[:n]); werr != nil {
				return nil
			}
			flush(resp)
		}
		if err != nil {
			return nil // the answer is sent; a cut stream ends it
		}
	}
}

// journalLogs serves a ship's output from the journal, when its driver
// logs there; done is false when it does not.
func (s *Server) journalLogs(c echo.Context, j ShipJournal, id string, tail int, follow bool, index uint64) (done bool, err error) {
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	rc, ok, err := j.OpenJournal(ctx, id, tail, follow)
	if !ok || err != nil {
		if err != nil {
			err = fmt.Errorf("read journal of ship %s: %w", id, err)
		}
		return ok, err
	}
	defer rc.Close()
	resp := s.startLogs(c, index)
	flush(resp)
	if follow {
		// journalctl --follow never ends by itself: stop it with the ship.
		go func() {
			tick := time.NewTicker(logPoll)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if s.shipEnded(id) {
					time.Sleep(logPoll) // what it wrote just before it ended
					cancel()
					return
				}
			}
		}()
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := resp.Write(buf[:n]); werr != nil {
				return true, nil // the client went away
			}
			flush(resp)
		}
		if err != nil {
			return true, nil
		}
	}
}

// startLogs sends the headers of a log answer.
func (s *Server) startLogs(c echo.Context, index uint64) *echo.Response {
	resp := c.Response()
	h := resp.Header()
	h.Set(echo.HeaderContentType, "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Armada-Index", strconv.FormatUint(index, 10))
	h.Set("X-Armada-Node", s.c.Name())
	resp.WriteHeader(http.StatusOK)
	return resp
}
