package web

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/armada-orchestrator/armada/fsm"
)

const maxWait = 10 * time.Minute

// kvOut is a key as the API returns it. Values that are UTF-8 are returned
// as strings; others as base64 with "encoding": "base64".
type kvOut struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	Encoding    string `json:"encoding,omitempty"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
	Version     uint64 `json:"version"`
	Lease       uint64 `json:"lease,omitempty"`
}

func toKVOut(kv *fsm.KV, keysOnly bool) kvOut {
	o := kvOut{Key: kv.Key, CreateIndex: kv.CreateRev, ModifyIndex: kv.ModRev, Version: kv.Version, Lease: kv.Lease}
	switch {
	case keysOnly:
	case utf8.Valid(kv.Value):
		o.Value = string(kv.Value)
	default:
		o.Value, o.Encoding = base64.StdEncoding.EncodeToString(kv.Value), "base64"
	}
	return o
}

func kvKey(c echo.Context) (string, error) {
	// echo routes on URL.RawPath when the request has one (the path holds
	// an escape that does not round-trip, such as %2F) and on the already
	// decoded URL.Path otherwise: unescape only in the first case, or
	// "100%25" fails and "x%2541" becomes "xA".
	if c.Request().URL.RawPath == "" {
		return c.Param("*"), nil
	}
	key, err := url.PathUnescape(c.Param("*"))
	if err != nil {
		return "", badRequest("key", "bad key escaping: %v", err)
	}
	return key, nil
}

func queryUint(c echo.Context, name string) (uint64, bool, error) {
	s := c.QueryParam(name)
	if s == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, badRequest(name, "must be a non-negative integer, not %q", s)
	}
	return v, true, nil
}

func queryDuration(c echo.Context, name string, lo, hi time.Duration) (time.Duration, bool, error) {
	s := c.QueryParam(name)
	if s == "" {
		return 0, false, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false, badRequest(name, "must be a duration like 30s, not %q", s)
	}
	if d < lo || d > hi {
		return 0, false, badRequest(name, "must be between %s and %s", lo, hi)
	}
	return d, true, nil
}

// getKV reads a key or, with ?prefix=true, every key under it. With
// ?index=N it blocks (up to ?wait, default 5m) until the key's (or
// prefix's) modify index passes N, then answers with the current value.
func (s *Server) getKV(c echo.Context) error {
	key, err := kvKey(c)
	if err != nil {
		return err
	}
	prefix := c.QueryParam("prefix") == "true"
	if key == "" && !prefix {
		return badRequest("key", "key is empty (use ?prefix=true to list everything)")
	}
	index, blocking, err := queryUint(c, "index")
	if err != nil {
		return err
	}
	wait, hasWait, err := queryDuration(c, "wait", time.Millisecond, maxWait)
	if err != nil {
		return err
	}
	if !hasWait {
		wait = 5 * time.Minute
	}
	if blocking {
		ctx, cancel := context.WithTimeout(c.Request().Context(), wait)
		defer cancel()
		if err := s.waitKV(ctx, key, prefix, index); err != nil && c.Request().Context().Err() != nil {
			return err
		}
	}
	keysOnly := c.QueryParam("keys") == "true"
	return s.read(c, func(v *fsm.View) error {
		if prefix {
			kvs := v.KVPrefix(key, 0)
			out := make([]kvOut, 0, len(kvs))
			for _, kv := range kvs {
				out = append(out, toKVOut(kv, keysOnly))
			}
			return c.JSON(http.StatusOK, out)
		}
		kv, ok := v.KV(key)
		if !ok {
			return notFound("key", "key %q not found", key)
		}
		if c.QueryParam("raw") == "true" {
			return c.Blob(http.StatusOK, "application/octet-stream", kv.Value)
		}
		return c.JSON(http.StatusOK, toKVOut(kv, keysOnly))
	})
}

// waitKV blocks until a change to key (or under prefix) has a revision
// above index, or ctx ends. It reads the key's modify revision once, then
// follows the change feed from there, so a waiter costs a few comparisons
// per applied batch.
func (s *Server) waitKV(ctx context.Context, key string, prefix bool, index uint64) error {
	st := s.c.State()
	matches := func(ch fsm.Change) bool {
		return ch.Topic == "kv" && ch.Rev > index && (ch.Key == key || prefix && strings.HasPrefix(ch.Key, key))
	}
	var modified uint64
	st.View(func(v *fsm.View) error {
		if prefix {
			for _, kv := range v.KVPrefix(key, 0) {
				modified = max(modified, kv.ModRev)
			}
		} else if kv, ok := v.KV(key); ok {
			modified = kv.ModRev
		}
		return nil
	})
	if modified > index {
		return nil
	}
	// Deletions leave no modify revision behind: look back in the feed too.
	changes, cursor, wake, err := st.ChangesAfterRev(index)
	for {
		if err != nil {
			// History after index is gone (a delete may hide in it), or the
			// state is closing: answer now with the current value and index.
			return nil
		}
		for _, ch := range changes {
			if matches(ch) {
				return nil
			}
			cursor = max(cursor, ch.Index)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
		changes, wake, err = st.Changes(cursor)
	}
}

func (s *Server) putKV(c echo.Context) error {
	key, err := kvKey(c)
	if err != nil {
		return err
	}
	if key == "" {
		return badRequest("key", "key is empty")
	}
	if len(key) > fsm.MaxKeyLen {
		return badRequest("key", "key is %d bytes; the limit is %d", len(key), fsm.MaxKeyLen)
	}
	ttl, _, err := queryDuration(c, "ttl", time.Second, 7*24*time.Hour)
	if err != nil {
		return err
	}
	cas, hasCAS, err := queryUint(c, "cas")
	if err != nil {
		return err
	}
	value, err := io.ReadAll(io.LimitReader(c.Request().Body, fsm.MaxValueLen+1))
	if err != nil {
		return badRequest("value", "read body: %v", err)
	}
	if len(value) > fsm.MaxValueLen {
		return &statusError{status: http.StatusRequestEntityTooLarge, body: apiError{Code: "too_large", Field: "value",
			Message: fmt.Sprintf("value is over the %d-byte limit", fsm.MaxValueLen)}}
	}
	res, err := s.c.Apply(c.Request().Context(), &fsm.KVPut{Key: key, Value: value, TTLms: ttl.Milliseconds(), HasCAS: hasCAS, CAS: cas})
	if err != nil {
		return err
	}
	c.Response().Header().Set("X-Armada-Index", strconv.FormatUint(res.Index, 10))
	return c.JSON(http.StatusOK, toKVOut(res.KV, false))
}

func (s *Server) deleteKV(c echo.Context) error {
	key, err := kvKey(c)
	if err != nil {
		return err
	}
	prefix := c.QueryParam("prefix") == "true"
	if key == "" && !prefix {
		return badRequest("key", "key is empty")
	}
	cas, hasCAS, err := queryUint(c, "cas")
	if err != nil {
		return err
	}
	if prefix && hasCAS {
		return badRequest("cas", "cas does not apply to a prefix delete")
	}
	res, err := s.c.Apply(c.Request().Context(), &fsm.KVDelete{Key: key, Prefix: prefix, HasCAS: hasCAS, CAS: cas})
	if err != nil {
		return err
	}
	c.Response().Header().Set("X-Armada-Index", strconv.FormatUint(res.Index, 10))
	return c.JSON(http.StatusOK, map[string]any{"deleted": res.Deleted, "index": res.Index})
}
