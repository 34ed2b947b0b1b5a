package etcd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/armada-orchestrator/armada/fsm"
)

// etcd answers plain HTTP on its client port besides gRPC: load balancers
// and probes ask GET /health, tools GET /version. A connection whose first
// bytes are not HTTP/2's preface (gRPC) is served as HTTP/1.1.

// http2Preface is what an HTTP/2 client (gRPC) sends first.
var http2Preface = []byte("PRI * HTTP/2.0")

// peekTimeout bounds how long a new connection may take to say which
// protocol it speaks.
const peekTimeout = 10 * time.Second

// splitListener hands out the connections of one listener to two: gRPC's
// and HTTP/1's.
type splitListener struct {
	net.Listener
	grpc, http *connQueue
}

func newSplitListener(ln net.Listener) *splitListener {
	l := &splitListener{Listener: ln, grpc: newConnQueue(ln), http: newConnQueue(ln)}
	go l.run()
	return l
}

func (l *splitListener) run() {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if acceptCanRetry(err) {
			// Back off and go on, as gRPC's and net/http's servers do.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		if err != nil {
			l.grpc.close(err)
			l.http.close(err)
			return
		}
		delay = 0
		go l.route(c)
	}
}

// acceptCanRetry reports the Accept errors that pass: out of file
// descriptors or buffers, or a connection gone before it was accepted.
func acceptCanRetry(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// route reads the start of a connection and queues it for its server.
func (l *splitListener) route(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(peekTimeout))
	br := bufio.NewReaderSize(c, 64)
	start, err := br.Peek(len(http2Preface))
	c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	switch {
	case err == nil && bytes.Equal(start, http2Preface):
		// gRPC sets TCP_USER_TIMEOUT to its keepalive timeout only on a
		// *net.TCPConn, which the wrapper hides: set it here.
		setUserTimeout(c, keepaliveTimeout)
		l.grpc.put(pc)
	case len(start) > 0:
		l.http.put(pc)
	default:
		c.Close()
	}
}

// setUserTimeout sets a TCP connection's TCP_USER_TIMEOUT: how long sent
// data may stay unacknowledged before the kernel drops the connection.
func setUserTimeout(c net.Conn, d time.Duration) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d/time.Millisecond))
	})
}

// peekedConn reads what route peeked before the rest of the connection.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// connQueue is one side of a splitListener.
type connQueue struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error
}

func newConnQueue(ln net.Listener) *connQueue {
	return &connQueue{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) put(c net.Conn) {
	select {
	case q.conns <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) close(err error) {
	q.once.Do(func() {
		q.err = err
		close(q.done)
	})
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, q.err
	}
}

func (q *connQueue) Close() error   { q.close(net.ErrClosed); return nil }
func (q *connQueue) Addr() net.Addr { return q.addr }

// httpHandler serves etcd's /health and /version.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"etcdserver": Version, "etcdcluster": clusterVersion})
	})
	// As etcd's: healthy when the member has a leader and a linearizable
	// read succeeds within a second.
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		healthy := s.raft.Leader() != "" && s.view(ctx, true, func(*fsm.View) error { return nil }) == nil
		w.Header().Set("Content-Type", "application/json")
		if !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		health := "false"
		if healthy {
			health = "true"
		}
		json.NewEncoder(w).Encode(map[string]string{"health": health})
	})
	return mux
}

// serveHTTP serves HTTP/1.1 on ln until it closes.
func (s *Server) serveHTTP(ln net.Listener) {
	srv := &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-s.ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && s.ctx.Err() == nil {
		s.log.Error("etcd http server stopped", "err", err)
	}
}
