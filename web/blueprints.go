package web

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/armada-orchestrator/armada/fsm"
)

const maxBlueprintBody = 1 << 20

// putBlueprint stores a blueprint as its next version (YAML or JSON body).
// The name in the body, if any, must match the path. Nothing is written
// unless every field is valid.
func (s *Server) putBlueprint(c echo.Context) error {
	name := c.Param("name")
	if !fsm.ValidName(name) {
		return &fsm.Error{Code: fsm.ErrInvalid, Field: "name", Message: "must be 1..63 of [a-z0-9-], starting and ending with a letter or digit"}
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxBlueprintBody+1))
	if err != nil {
		return badRequest(fsm.FieldBody, "read body: %v", err)
	}
	if len(body) > maxBlueprintBody {
		return &statusError{status: http.StatusRequestEntityTooLarge, body: apiError{Code: "too_large", Field: fsm.FieldBody, Message: fmt.Sprintf("blueprint is over %d bytes", maxBlueprintBody)}}
	}
	bp, err := fsm.ParseBlueprint(body)
	if err != nil {
		return err
	}
	if bp.Name == "" {
		bp.Name = name
	}
	if bp.Name != name {
		return &fsm.Error{Code: fsm.ErrInvalid, Field: "name", Message: fmt.Sprintf("%q in the body does not match %q in the path", bp.Name, name)}
	}
	var key []byte
	s.c.State().View(func(v *fsm.View) error {
		key = v.SecretKey()
		return nil
	})
	if key == nil && len(bp.Secrets) > 0 {
		return &statusError{status: http.StatusServiceUnavailable, body: apiError{Code: "not_ready", Field: "secrets", Message: "the cluster key is not replicated to this node yet; retry"}}
	}
	cmd, err := fsm.PrepareBlueprint(key, bp)
	if err != nil {
		return err
	}
	res, err := s.c.Apply(c.Request().Context(), cmd)
	if err != nil {
		return err
	}
	c.Response().Header().Set("X-Armada-Index", strconv.FormatUint(res.Index, 10))
	return c.JSON(http.StatusOK, res.Blueprint)
}

func (s *Server) listBlueprints(c echo.Context) error {
	return s.read(c, func(v *fsm.View) error {
		return c.JSON(http.StatusOK, orEmpty(v.Blueprints()))
	})
}

func (s *Server) getBlueprint(c echo.Context) error {
	return s.blueprintVersion(c, 0)
}

func (s *Server) getBlueprintVersion(c echo.Context) error {
	v, err := strconv.Atoi(c.Param("version"))
	if err != nil || v < 1 {
		return badRequest("version", "must be a positive integer, not %q", c.Param("version"))
	}
	return s.blueprintVersion(c, v)
}

func (s *Server) blueprintVersion(c echo.Context, version int) error {
	name := c.Param("name")
	return s.read(c, func(v *fsm.View) error {
		bp, ok := v.Blueprint(name, version)
		if !ok {
			if version == 0 {
				return notFound("name", "blueprint %q not found", name)
			}
			return notFound("version", "blueprint %q has no version %d", name, version)
		}
		return c.JSON(http.StatusOK, bp)
	})
}

func (s *Server) listBlueprintVersions(c echo.Context) error {
	name := c.Param("name")
	return s.read(c, func(v *fsm.View) error {
		info, ok := v.BlueprintInfo(name)
		if !ok {
			return notFound("name", "blueprint %q not found", name)
		}
		out := make([]*fsm.Blueprint, 0, len(info.Versions))
		for _, ver := range info.Versions {
			if bp, ok := v.Blueprint(name, ver); ok {
				out = append(out, bp)
			}
		}
		return c.JSON(http.StatusOK, out)
	})
}

func (s *Server) deleteBlueprint(c echo.Context) error {
	name := c.Param("name")
	res, err := s.c.Apply(c.Request().Context(), &fsm.BlueprintDelete{Name: name})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"deleted": name, "versions": res.Deleted, "index": res.Index})
}
