package worker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// SDK is the endpoint ships call on their own node (loopback only). Each
// ship's ARMADA_SDK_ADDR is its own URL on it, /ships/{id}/{token}, so
// `curl -XPOST $ARMADA_SDK_ADDR/ready` needs nothing else. The token
// (ARMADA_SDK_TOKEN, an HMAC of the ship's id under the cluster's key) is
// what proves the ship: no other process on the host can act as it, and
// no web page either, as it cannot know the token. A client may also call
// the endpoint's root and name the ship in the X-Armada-Ship and
// X-Armada-Token headers. A ship can only act on itself, and only while it
// is placed on this node:
//
//	POST /ready                 ready to serve (health type sdk)
//	POST /health                heartbeat (health type sdk)
//	POST /allocate              mark itself allocated
//	POST /reserve?seconds=N     reserved for N seconds, then ready again
//	POST /shutdown              stop for good
//	PUT  /labels/{key}          set a label; the body is the value ("" removes)
//	GET  /ship                  its ship record
//	GET  /watch                 its ship record now and on every change (SSE)
//
// Errors are {"error": {"code", "message", "field"}} as in the HTTP API.
func (w *Worker) SDK() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ready", w.sdkBeat(true))
	mux.HandleFunc("POST /health", w.sdkBeat(false))
	mux.HandleFunc("POST /allocate", w.sdkOp(fsm.SDKAllocate))
	mux.HandleFunc("POST /reserve", w.sdkOp(fsm.SDKReserve))
	mux.HandleFunc("POST /shutdown", w.sdkOp(fsm.SDKShutdown))
	mux.HandleFunc("PUT /labels/{key}", w.sdkOp(fsm.SDKLabel))
	mux.HandleFunc("GET /ship", w.sdkShip)
	mux.HandleFunc("GET /watch", w.sdkWatch)
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, shipsPrefix) {
			var err error
			if r, err = shipURL(r); err != nil {
				writeErr(rw, err)
				return
			}
		}
		mux.ServeHTTP(rw, r)
	})
}

const shipsPrefix = "/ships/"

// SDKPath is a ship's own path on the SDK endpoint, with its id and token.
func SDKPath(ship, token string) string {
	return shipsPrefix + url.PathEscape(ship) + "/" + url.PathEscape(token)
}

// shipURL turns a call to /ships/{id}/{token}/rest into one to /rest that
// names the ship in the headers.
func shipURL(r *http.Request) (*http.Request, error) {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.EscapedPath(), shipsPrefix), "/", 3)
	if len(parts) < 3 {
		return nil, sdkFail(http.StatusNotFound, fsm.ErrNotFound, "path", "%s is not a ship's SDK path: /ships/{id}/{token}/...", r.URL.Path)
	}
	id, err1 := url.PathUnescape(parts[0])
	token, err2 := url.PathUnescape(parts[1])
	rest := "/" + parts[2]
	path, err3 := url.PathUnescape(rest)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, sdkFail(http.StatusBadRequest, fsm.ErrInvalid, "path", "bad SDK path: %v", err)
	}
	r = r.Clone(r.Context())
	r.URL.Path, r.URL.RawPath = path, rest
	r.Header.Set("X-Armada-Ship", id)
	r.Header.Set("X-Armada-Token", token)
	return r, nil
}

// sdkError is an SDK answer other than 200.
type sdkError struct {
	status int
	body   fsm.Error
}

func (e *sdkError) Error() string { return e.body.Message }

func sdkFail(status int, code, field, format string, args ...any) *sdkError {
	return &sdkError{status: status, body: fsm.Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}}
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	json.NewEncoder(rw).Encode(v)
}

func writeErr(rw http.ResponseWriter, err error) {
	var se *sdkError
	var fe *fsm.Error
	switch {
	case errors.As(err, &se):
	case errors.As(err, &fe):
		status := map[string]int{fsm.ErrNotFound: http.StatusNotFound, fsm.ErrConflict: http.StatusConflict, fsm.ErrInvalid: http.StatusUnprocessableEntity}[fe.Code]
		se = &sdkError{status: max(status, http.StatusBadRequest), body: *fe}
	default:
		se = sdkFail(http.StatusServiceUnavailable, "unavailable", "", "%v", err)
	}
	writeJSON(rw, se.status, map[string]any{"error": se.body})
}

// SDKToken is the secret a ship proves its identity with on the SDK
// endpoint: HMAC-SHA256 of its id under the cluster's key.
func SDKToken(key []byte, ship string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("armada-sdk-token\x00" + ship))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// caller finds the calling ship, checks its token and that it is placed
// here.
func (w *Worker) caller(r *http.Request) (*fsm.Ship, error) {
	id, token := r.Header.Get("X-Armada-Ship"), r.Header.Get("X-Armada-Token")
	if id == "" {
		return nil, sdkFail(http.StatusBadRequest, fsm.ErrInvalid, "ship", "name the ship in the X-Armada-Ship header (its ARMADA_SHIP_ID)")
	}
	var s *fsm.Ship
	var ok bool
	var key []byte
	w.st.View(func(v *fsm.View) error { s, ok = v.Ship(id); key = v.SecretKey(); return nil })
	if len(key) == 0 || !hmac.Equal([]byte(token), []byte(SDKToken(key, id))) {
		return nil, sdkFail(http.StatusUnauthorized, "unauthorized", "token", "the X-Armada-Token header must be the ship's ARMADA_SDK_TOKEN")
	}
	if !ok {
		return nil, sdkFail(http.StatusNotFound, fsm.ErrNotFound, "ship", "ship %q not found", id)
	}
	if s.Node != w.cfg.Node {
		return nil, sdkFail(http.StatusForbidden, "forbidden", "ship", "ship %q does not run on this node (%s)", id, w.cfg.Node)
	}
	return s, nil
}

func (w *Worker) sdkBeat(ready bool) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		s, err := w.caller(r)
		if err != nil {
			writeErr(rw, err)
			return
		}
		if s.Ended() || s.Desired != fsm.DesireRun {
			writeErr(rw, sdkFail(http.StatusConflict, fsm.ErrConflict, "ship", "ship %q is %s", s.ID, s.State))
			return
		}
		w.health.sdkCall(s.ID, ready)
		writeJSON(rw, http.StatusOK, s)
	}
}

func (w *Worker) sdkOp(op string) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		s, err := w.caller(r)
		if err != nil {
			writeErr(rw, err)
			return
		}
		c := &fsm.ShipSDK{Ship: s.ID, Node: w.cfg.Node, Op: op}
		switch op {
		case fsm.SDKReserve:
			n, err := strconv.ParseInt(r.URL.Query().Get("seconds"), 10, 64)
			if err != nil {
				writeErr(rw, sdkFail(http.StatusBadRequest, fsm.ErrInvalid, "seconds", "must be a whole number of seconds"))
				return
			}
			c.Seconds = n
		case fsm.SDKLabel:
			body, err := io.ReadAll(io.LimitReader(r.Body, 1024))
			if err != nil {
				writeErr(rw, sdkFail(http.StatusBadRequest, fsm.ErrInvalid, "value", "read body: %v", err))
				return
			}
			c.Key, c.Value = r.PathValue("key"), strings.TrimSpace(string(body))
		}
		res, err := w.ap.Apply(r.Context(), c)
		if err == nil && res.Err != nil {
			err = res.Err
		}
		if err != nil {
			writeErr(rw, err)
			return
		}
		w.log.Info("ship called the SDK", "ship", s.ID, "op", op)
		writeJSON(rw, http.StatusOK, res.Ships[0])
	}
}

func (w *Worker) sdkShip(rw http.ResponseWriter, r *http.Request) {
	s, err := w.caller(r)
	if err != nil {
		writeErr(rw, err)
		return
	}
	writeJSON(rw, http.StatusOK, s)
}

// sdkWatch streams the ship's record as server-sent events: now, and
// after every change, until the ship is gone or the caller leaves.
func (w *Worker) sdkWatch(rw http.ResponseWriter, r *http.Request) {
	s, err := w.caller(r)
	if err != nil {
		writeErr(rw, err)
		return
	}
	fl, ok := rw.(http.Flusher)
	if !ok {
		writeErr(rw, errors.New("streaming unsupported"))
		return
	}
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(http.StatusOK)
	var since uint64
	send := func() bool {
		var cur *fsm.Ship
		var found bool
		w.st.View(func(v *fsm.View) error {
			since = v.Index()
			cur, found = v.Ship(s.ID)
			return nil
		})
		if !found {
			fmt.Fprintf(rw, "event: gone\ndata: {}\n\n")
			fl.Flush()
			return false
		}
		b, _ := json.Marshal(cur)
		fmt.Fprintf(rw, "id: %d\ndata: %s\n\n", since, b)
		fl.Flush()
		return true
	}
	if !send() {
		return
	}
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		changes, ch, err := w.st.Changes(since)
		if err != nil && !errors.Is(err, fsm.ErrCompacted) {
			return
		}
		mine := errors.Is(err, fsm.ErrCompacted) // fell behind: just resend
		for _, c := range changes {
			since = c.Index
			if c.Topic == "ship" && c.Key == s.ID {
				mine = true
			}
		}
		if mine {
			if !send() {
				return
			}
			continue
		}
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			fmt.Fprint(rw, ": keep-alive\n\n")
			fl.Flush()
		case <-ch:
		}
	}
}
