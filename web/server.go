// Package web is Armada's HTTP API (echo): status, nodes, the key space and
// blueprints, with one JSON error shape for every failure. It reads the
// local replicated state and sends every write through the cluster.
package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
)

// Cluster is what the API needs from the node it runs on.
type Cluster interface {
	Name() string
	Leader() string
	Term() uint64
	State() *fsm.State
	Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error)
	ReadIndex(ctx context.Context) (uint64, error)
	Leave(ctx context.Context) error
	Restore(ctx context.Context, snapshot io.Reader) (uint64, error)
}

// Options are the parts of a node the API mounts besides the Cluster.
type Options struct {
	Internal  http.Handler         // node-to-node endpoints under /v1/internal/
	Collector prometheus.Collector // the node's metrics
	Logger    *slog.Logger
	SpoolDir  string // where snapshots are spooled before they are sent (default: the system temp dir)
	// Logs finds the captured output of the ships this node runs; nil on a
	// node that runs no ships.
	Logs ShipLogs
	// Token, when set, is required on every API call (see requireToken).
	Token string
}

// ShipLogs is the local worker as the API sees it.
type ShipLogs interface {
	// LogPath is the file holding a ship's captured stdout and stderr.
	LogPath(id string) string
}

// ShipJournal is a ShipLogs whose ships may log to the journal instead
// (the systemd driver where journald runs): OpenJournal streams the last
// tail lines (tail < 0: all) and, with follow, what comes after; ok is
// false when the ship's output is in LogPath.
type ShipJournal interface {
	OpenJournal(ctx context.Context, id string, tail int, follow bool) (rc io.ReadCloser, ok bool, err error)
}

// Server is the HTTP API of one node.
type Server struct {
	c   Cluster
	e   *echo.Echo
	log *slog.Logger
	reg *prometheus.Registry
	req *prometheus.HistogramVec

	spoolDir string
	logs     ShipLogs // nil on a node that runs no ships
	streams  streams  // open event streams, ended by CloseStreams
}

// New builds the API for a node.
func New(c Cluster, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{c: c, e: echo.New(), log: opts.Logger, reg: prometheus.NewRegistry(), spoolDir: opts.SpoolDir, logs: opts.Logs}
	s.req = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "armada_http_request_duration_seconds",
		Help:    "HTTP API requests by route, method and status.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method", "code"})
	s.reg.MustRegister(s.req, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Collector != nil {
		s.reg.MustRegister(opts.Collector)
	}

	e := s.e
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// The key space's handlers read at most a value's limit themselves and
	// answer 413 naming the value; every other route has the 4M cap.
	e.Use(s.observe, middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{
		Limit: "4M",
		Skipper: func(c echo.Context) bool {
			// The key space caps values itself (413 naming the value), snapshots
			// are as large as the state, and node-to-node calls carry both.
			p := c.Path()
			return strings.HasPrefix(p, "/v1/kv/") || p == "/v1/snapshot" || strings.HasPrefix(p, "/v1/internal/")
		},
	}))

	if opts.Token != "" {
		e.Use(requireToken(opts.Token))
	}
	e.GET("/healthz", s.healthz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})))
	e.GET("/v1/status", s.status)
	e.GET("/v1/nodes", s.listNodes)
	e.GET("/v1/nodes/:name", s.getNode)
	e.POST("/v1/nodes/:name/drain", s.drainNode)
	e.GET("/v1/kv/*", s.getKV)
	e.PUT("/v1/kv/*", s.putKV)
	e.DELETE("/v1/kv/*", s.deleteKV)
	e.GET("/v1/blueprints", s.listBlueprints)
	e.PUT("/v1/blueprints/:name", s.putBlueprint)
	e.GET("/v1/blueprints/:name", s.getBlueprint)
	e.DELETE("/v1/blueprints/:name", s.deleteBlueprint)
	e.GET("/v1/blueprints/:name/versions", s.listBlueprintVersions)
	e.GET("/v1/blueprints/:name/versions/:version", s.getBlueprintVersion)
	e.GET("/v1/fleets", s.listFleets)
	e.PUT("/v1/fleets/:name", s.putFleet)
	e.GET("/v1/fleets/:name", s.getFleet)
	e.DELETE("/v1/fleets/:name", s.deleteFleet)
	e.POST("/v1/fleets/:name/scale", s.scaleFleet)
	e.GET("/v1/fleets/:name/deployments", s.listDeployments)
	e.GET("/v1/ships", s.listShips)
	e.POST("/v1/ships", s.createShip)
	e.GET("/v1/ships/:id", s.getShip)
	e.DELETE("/v1/ships/:id", s.stopShip)
	e.GET("/v1/ships/:id/logs", s.shipLogs)
	e.POST("/v1/allocate", s.allocateShip)
	e.POST("/v1/agent/leave", s.leave)
	e.GET("/v1/snapshot", s.saveSnapshot)
	e.PUT("/v1/snapshot", s.restoreSnapshot)
	e.GET("/v1/events", s.events)
	if opts.Internal != nil {
		e.Any("/v1/internal/*", echo.WrapHandler(opts.Internal))
	}
	s.mountUI()
	return s
}

// requireToken refuses, with 401 naming the token, a call that does not
// carry token as "Authorization: Bearer <token>", or for a GET as
// ?token= (an EventSource cannot set headers). Health checks and the UI's
// own files need none: the UI asks for the token and sends it.
func requireToken(token string) echo.MiddlewareFunc {
	want := []byte(token)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if p := r.URL.Path; p == "/healthz" || p == "/" || p == "/ui" || strings.HasPrefix(p, "/ui/") {
				return next(c)
			}
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok && r.Method == http.MethodGet {
				got, ok = r.URL.Query().Get("token"), true
			}
			if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
				return &statusError{status: http.StatusUnauthorized, body: apiError{Code: "unauthorized", Field: "token",
					Message: "this cluster requires its API token: Authorization: Bearer <token> (the CLI's --token or ARMADA_TOKEN)"}}
			}
			return next(c)
		}
	}
}

// Handler is the API's http.Handler.
func (s *Server) Handler() http.Handler { return s.e }

func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.req.WithLabelValues(c.Path(), c.Request().Method, strconv.Itoa(c.Response().Status)).Observe(time.Since(start).Seconds())
		return nil
	}
}

// apiError is the body of every non-2xx answer.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// badRequest is a 400 naming the input at fault.
func badRequest(field, format string, args ...any) error {
	return &statusError{status: http.StatusBadRequest, body: apiError{Code: "bad_request", Field: field, Message: fmt.Sprintf(format, args...)}}
}

func notFound(field, format string, args ...any) error {
	return &statusError{status: http.StatusNotFound, body: apiError{Code: fsm.ErrNotFound, Field: field, Message: fmt.Sprintf(format, args...)}}
}

type statusError struct {
	status int
	body   apiError
}

func (e *statusError) Error() string { return e.body.Message }

func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := classify(err)
	if status >= 500 && status != statusClientClosed {
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	_ = c.JSON(status, map[string]apiError{"error": body})
}

// statusClientClosed is the status recorded when the client went away
// before the answer (nginx's 499).
const statusClientClosed = 499

// classify maps an error to its HTTP status and JSON body.
func classify(err error) (int, apiError) {
	var se *statusError
	var fe *fsm.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &se):
		return se.status, se.body
	case errors.As(err, &fe):
		status := map[string]int{fsm.ErrNotFound: http.StatusNotFound, fsm.ErrConflict: http.StatusConflict, fsm.ErrInvalid: http.StatusUnprocessableEntity}[fe.Code]
		if status == 0 {
			status = http.StatusBadRequest
		}
		return status, apiError{Code: fe.Code, Message: fe.Message, Field: fe.Field}
	case errors.Is(err, cluster.ErrUnknownOutcome):
		return http.StatusServiceUnavailable, apiError{Code: "unknown_outcome", Message: err.Error()}
	case errors.Is(err, cluster.ErrNoLeader):
		return http.StatusServiceUnavailable, apiError{Code: "no_leader", Message: err.Error()}
	case errors.Is(err, context.Canceled):
		// The client went away (a watcher stopped waiting): not a server error.
		return statusClientClosed, apiError{Code: "canceled", Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, apiError{Code: "timeout", Message: err.Error()}
	case errors.As(err, &he):
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		code := map[int]string{http.StatusNotFound: "not_found", http.StatusMethodNotAllowed: "method_not_allowed",
			http.StatusRequestEntityTooLarge: "too_large", http.StatusBadRequest: "bad_request"}[he.Code]
		if code == "" {
			code = "http_" + strconv.Itoa(he.Code)
		}
		return he.Code, apiError{Code: code, Message: msg}
	}
	return http.StatusInternalServerError, apiError{Code: "internal", Message: err.Error()}
}

// read serves a read from the local state: with ?consistent=true it first
// waits for a read index from the leader, making the read linearizable.
// The view's index goes out as X-Armada-Index. The answer is buffered and
// sent after the view ends, so a slow client never holds a read
// transaction (which would hold up a snapshot restore, and every read
// queued behind it).
func (s *Server) read(c echo.Context, fn func(v *fsm.View) error) error {
	if c.QueryParam("consistent") == "true" {
		if _, err := s.c.ReadIndex(c.Request().Context()); err != nil {
			return err
		}
	}
	resp := c.Response()
	buf := &bufferedWriter{ResponseWriter: resp.Writer}
	resp.Writer = buf
	err := s.c.State().View(func(v *fsm.View) error {
		resp.Header().Set("X-Armada-Index", strconv.FormatUint(v.Index(), 10))
		return fn(v)
	})
	resp.Writer = buf.ResponseWriter
	if err != nil {
		if resp.Committed {
			// fn wrote an answer and then failed: send what it wrote.
			return buf.flush()
		}
		return err
	}
	return buf.flush()
}

// bufferedWriter holds a response until flush.
type bufferedWriter struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (b *bufferedWriter) WriteHeader(status int) { b.status = status }

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.body = append(b.body, p...)
	return len(p), nil
}

func (b *bufferedWriter) flush() error {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	b.ResponseWriter.WriteHeader(b.status)
	_, err := b.ResponseWriter.Write(b.body)
	return err
}

// orEmpty makes a nil list encode as [] rather than null.
func orEmpty[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

func (s *Server) healthz(c echo.Context) error {
	leader := s.c.Leader()
	body := map[string]any{"node": s.c.Name(), "leader": leader, "index": s.c.State().Index()}
	if leader == "" {
		body["status"] = "no leader"
		body["error"] = apiError{Code: "no_leader", Message: "this node knows of no cluster leader"}
		return c.JSON(http.StatusServiceUnavailable, body)
	}
	body["status"] = "ok"
	return c.JSON(http.StatusOK, body)
}

func (s *Server) status(c echo.Context) error {
	return s.read(c, func(v *fsm.View) error {
		return c.JSON(http.StatusOK, map[string]any{
			"leader": s.c.Leader(), "term": s.c.Term(), "index": v.Index(),
			"node": s.c.Name(), "cluster_id": v.ClusterID(), "nodes": orEmpty(v.Nodes()),
		})
	})
}

func (s *Server) listNodes(c echo.Context) error {
	return s.read(c, func(v *fsm.View) error {
		return c.JSON(http.StatusOK, orEmpty(v.Nodes()))
	})
}

func (s *Server) getNode(c echo.Context) error {
	name := c.Param("name")
	return s.read(c, func(v *fsm.View) error {
		n, ok := v.Node(name)
		if !ok {
			return notFound("name", "node %q not found", name)
		}
		return c.JSON(http.StatusOK, n)
	})
}

func (s *Server) leave(c echo.Context) error {
	go func() {
		// Ships are drained elsewhere first: the node drains, and leaves
		// once its ships have stopped (their replacements are ready by
		// then) or after drainWait.
		ctx, cancel := context.WithTimeout(context.Background(), drainWait+30*time.Second)
		defer cancel()
		if err := s.drainSelf(ctx); err != nil {
			s.log.Warn("drain before leaving", "err", err)
		}
		if err := s.c.Leave(ctx); err != nil {
			s.log.Error("leave", "err", err)
		}
	}()
	return c.JSON(http.StatusAccepted, map[string]string{"node": s.c.Name(), "status": "leaving"})
}

// drainWait bounds how long a leaving node waits for its ships to move.
const drainWait = 2 * time.Minute

// drainSelf drains this node and waits until none of its ships is live.
func (s *Server) drainSelf(ctx context.Context) error {
	name := s.c.Name()
	var known bool
	s.c.State().View(func(v *fsm.View) error {
		_, known = v.Node(name)
		return nil
	})
	if !known {
		return nil
	}
	if _, err := s.c.Apply(ctx, &fsm.NodeDrain{Name: name, Enable: true}); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, drainWait)
	defer cancel()
	for {
		live := 0
		var since uint64
		s.c.State().View(func(v *fsm.View) error {
			since = v.Index()
			for _, sh := range v.Ships(fsm.ShipFilter{Node: name}) {
				if !sh.Ended() {
					live++
				}
			}
			return nil
		})
		if live == 0 {
			return nil
		}
		if err := s.c.State().WaitIndex(ctx, since+1); err != nil {
			return fmt.Errorf("wait for %d ships to move: %w", live, err)
		}
	}
}

// saveSnapshot streams the whole state as a snapshot (a logical dump with a
// checksum). It first waits for a read index, so the snapshot holds every
// write acknowledged before the request; ?stale=true skips that. The
// snapshot is spooled to a temporary file first, so a slow client never
// holds the state's read transaction.
func (s *Server) saveSnapshot(c echo.Context) error {
	if c.QueryParam("stale") != "true" {
		if _, err := s.c.ReadIndex(c.Request().Context()); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(s.spoolDir, "snapshot-*.snap")
	if err != nil {
		return fmt.Errorf("spool snapshot: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	sn, err := s.c.State().Snapshot()
	if err != nil {
		return err
	}
	index := sn.Index()
	_, err = sn.WriteTo(f)
	sn.Release()
	if err != nil {
		return fmt.Errorf("spool snapshot: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Disposition", `attachment; filename="armada.snap"`)
	h.Set("X-Armada-Index", strconv.FormatUint(index, 10))
	return c.Stream(http.StatusOK, "application/octet-stream", f)
}

// restoreSnapshot replaces the cluster's whole state with the snapshot in
// the body. A snapshot that does not check out changes nothing.
func (s *Server) restoreSnapshot(c echo.Context) error {
	index, err := s.c.Restore(c.Request().Context(), c.Request().Body)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]uint64{"snapshot_index": index})
}
