package web

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/armada-orchestrator/armada/fsm"
)

const maxFleetBody = 1 << 20

// maxSmallBody caps the small JSON bodies (scale, drain, ship create).
const maxSmallBody = 64 << 10

// fleetOut is a fleet as the API returns it: its spec and a status counted
// from its ships.
type fleetOut struct {
	*fsm.Fleet
	Status fsm.FleetStatus `json:"status"`
}

// fleetSummary counts the ships of f in v.
func fleetSummary(v *fsm.View, f *fsm.Fleet) fleetOut {
	st := fsm.FleetStatus{Desired: f.Replicas}
	ships := v.Ships(fsm.ShipFilter{Fleet: f.Name})
	retired := 0
	for _, s := range ships {
		if s.Live() && s.Occupied() && !f.Runs(s.Blueprint, s.Version) {
			retired++
		}
	}
	desired := f.DesiredAfter(retired)
	for i, fv := range f.Versions {
		st.Versions = append(st.Versions, fsm.VersionStatus{Blueprint: fv.Blueprint, Version: fv.Version, Weight: fv.Weight, Desired: desired[i]})
	}
	find := func(bp string, ver int) *fsm.VersionStatus {
		for i := range st.Versions {
			if st.Versions[i].Blueprint == bp && st.Versions[i].Version == ver {
				return &st.Versions[i]
			}
		}
		st.Versions = append(st.Versions, fsm.VersionStatus{Blueprint: bp, Version: ver})
		return &st.Versions[len(st.Versions)-1]
	}
	draining := map[string]bool{}
	drains := func(node string) bool {
		d, ok := draining[node]
		if !ok {
			n, found := v.Node(node)
			d = !found || n.Drain
			draining[node] = d
		}
		return d
	}
	for _, s := range ships {
		switch s.State {
		case fsm.ShipQueued:
			st.Queued++
		case fsm.ShipScheduled:
			st.Scheduled++
		case fsm.ShipStarting:
			st.Starting++
		case fsm.ShipReady:
			st.Ready++
		case fsm.ShipAllocated:
			st.Allocated++
		case fsm.ShipReserved:
			st.Reserved++
		case fsm.ShipStopping:
			st.Stopping++
		case fsm.ShipStopped:
			st.Stopped++
		case fsm.ShipFailed:
			st.Failed++
		case fsm.ShipLostState:
			st.Lost++
		}
		if s.Ended() {
			continue
		}
		st.Total++
		vs := find(s.Blueprint, s.Version)
		if !s.Live() || s.State == fsm.ShipStopping || (s.Node != "" && drains(s.Node)) {
			continue
		}
		vs.Ships++
		if s.Up() {
			vs.Ready++
		}
	}
	return fleetOut{Fleet: f, Status: st}
}

// putFleet creates or changes a fleet (YAML or JSON body). The name in the
// body, if any, must match the path. Nothing is written unless every field
// is valid and every blueprint version it names exists.
func (s *Server) putFleet(c echo.Context) error {
	name := c.Param("name")
	if !fsm.ValidName(name) {
		return &fsm.Error{Code: fsm.ErrInvalid, Field: "name", Message: "must be 1..63 of [a-z0-9-], starting and ending with a letter or digit"}
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxFleetBody+1))
	if err != nil {
		return badRequest(fsm.FieldBody, "read body: %v", err)
	}
	if len(body) > maxFleetBody {
		return &statusError{status: http.StatusRequestEntityTooLarge, body: apiError{Code: "too_large", Field: fsm.FieldBody, Message: fmt.Sprintf("fleet is over %d bytes", maxFleetBody)}}
	}
	f, err := fsm.ParseFleet(body)
	if err != nil {
		return err
	}
	if f.Name == "" {
		f.Name = name
	}
	if f.Name != name {
		return &fsm.Error{Code: fsm.ErrInvalid, Field: "name", Message: fmt.Sprintf("%q in the body does not match %q in the path", f.Name, name)}
	}
	if e := fsm.ValidateFleet(f); e != nil {
		return e
	}
	// The state machine checks the blueprints again when it applies the
	// fleet; checking here first keeps a fleet naming a missing one out of
	// the log.
	err = s.c.State().View(func(v *fsm.View) error {
		type ver struct {
			bp string
			v  int
		}
		seen := map[ver]bool{}
		for i, fv := range f.Versions {
			field := fmt.Sprintf("versions[%d]", i)
			info, ok := v.BlueprintInfo(fv.Blueprint)
			if !ok {
				return &fsm.Error{Code: fsm.ErrInvalid, Field: field + ".blueprint", Message: fmt.Sprintf("blueprint %q not found", fv.Blueprint)}
			}
			if fv.Version != 0 && !slices.Contains(info.Versions, fv.Version) {
				return &fsm.Error{Code: fsm.ErrInvalid, Field: field + ".version", Message: fmt.Sprintf("blueprint %q has no version %d", fv.Blueprint, fv.Version)}
			}
			k := ver{fv.Blueprint, fv.Version}
			if k.v == 0 {
				k.v = info.Latest
			}
			if seen[k] {
				return &fsm.Error{Code: fsm.ErrInvalid, Field: field, Message: fmt.Sprintf("%s version %d is listed twice", k.bp, k.v)}
			}
			seen[k] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	res, err := s.c.Apply(c.Request().Context(), &fsm.FleetPut{Spec: *f})
	if err != nil {
		return err
	}
	c.Response().Header().Set("X-Armada-Index", strconv.FormatUint(res.Index, 10))
	return c.JSON(http.StatusOK, res.Fleet)
}

func (s *Server) listFleets(c echo.Context) error {
	return s.read(c, func(v *fsm.View) error {
		fleets := v.Fleets()
		out := make([]fleetOut, 0, len(fleets))
		for _, f := range fleets {
			out = append(out, fleetSummary(v, f))
		}
		return c.JSON(http.StatusOK, out)
	})
}

func (s *Server) getFleet(c echo.Context) error {
	name := c.Param("name")
	return s.read(c, func(v *fsm.View) error {
		f, ok := v.Fleet(name)
		if !ok {
			return notFound("name", "fleet %q not found", name)
		}
		return c.JSON(http.StatusOK, fleetSummary(v, f))
	})
}

// listDeployments is a fleet's deployments, newest first: the running one
// with its progress, then the history.
func (s *Server) listDeployments(c echo.Context) error {
	name := c.Param("name")
	return s.read(c, func(v *fsm.View) error {
		if _, ok := v.Fleet(name); !ok {
			return notFound("name", "fleet %q not found", name)
		}
		return c.JSON(http.StatusOK, orEmpty(v.Deployments(name)))
	})
}

// scaleFleet sets a fleet's replicas: {"replicas": N}.
func (s *Server) scaleFleet(c echo.Context) error {
	name := c.Param("name")
	var body struct {
		Replicas *int `json:"replicas"`
	}
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	if body.Replicas == nil {
		return badRequest("replicas", "replicas is required")
	}
	if n := *body.Replicas; n < 0 || n > fsm.MaxReplicas {
		return &fsm.Error{Code: fsm.ErrInvalid, Field: "replicas", Message: fmt.Sprintf("must be 0..%d, not %d", fsm.MaxReplicas, n)}
	}
	if err := s.fleetExists(name); err != nil {
		return err
	}
	res, err := s.c.Apply(c.Request().Context(), &fsm.FleetScale{Name: name, Replicas: *body.Replicas})
	if err != nil {
		return err
	}
	c.Response().Header().Set("X-Armada-Index", strconv.FormatUint(res.Index, 10))
	return c.JSON(http.StatusOK, res.Fleet)
}

// fleetExists is a 404 naming the fleet when the local state has no such
// fleet, so a command for a missing fleet stays out of the log.
func (s *Server) fleetExists(name string) error {
	return s.c.State().View(func(v *fsm.View) error {
		if _, ok := v.Fleet(name); !ok {
			return notFound("name", "fleet %q not found", name)
		}
		return nil
	})
}

func (s *Server) deleteFleet(c echo.Context) error {
	name := c.Param("name")
	if err := s.fleetExists(name); err != nil {
		return err
	}
	res, err := s.c.Apply(c.Request().Context(), &fsm.FleetDelete{Name: name})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"deleted": name, "ships_stopped": res.Count, "index": res.Index})
}

// decodeJSON reads a small JSON object strictly: unknown fields, wrong
// types, trailing data and bodies over maxSmallBody are 400s naming the
// field when there is one.
func decodeJSON(c echo.Context, v any) error {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxSmallBody+1))
	if err != nil {
		return badRequest(fsm.FieldBody, "read body: %v", err)
	}
	if len(body) > maxSmallBody {
		return &statusError{status: http.StatusRequestEntityTooLarge, body: apiError{Code: "too_large", Field: fsm.FieldBody, Message: fmt.Sprintf("body is over %d bytes", maxSmallBody)}}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest(fsm.FieldBody, "a JSON object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return badRequest(cmp.Or(te.Field, fsm.FieldBody), "must be %s, not %s", te.Type, te.Value)
		case errors.As(err, &se):
			return badRequest(fsm.FieldBody, "not valid JSON: %v", err)
		}
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return badRequest(f, "unknown field %q", f)
		}
		return badRequest(fsm.FieldBody, "not valid JSON: %s", strings.TrimPrefix(msg, "json: "))
	}
	if rest := body[dec.InputOffset():]; len(bytes.TrimSpace(rest)) > 0 {
		return badRequest(fsm.FieldBody, "trailing data after the JSON object")
	}
	return nil
}
