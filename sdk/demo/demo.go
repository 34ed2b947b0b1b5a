// Package demo is the demo game server built into the armada binary
// (`armada demo-server`): a TCP and UDP echo server on one port that uses
// the ship SDK the way a real game server would. It says it is ready once
// it listens, sends heartbeats, watches its own ship record, and when it
// is allocated and a player sends "END", the match is over: it shuts its
// ship down and exits.
package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/armada-orchestrator/armada/sdk"
)

// Config is one demo server.
type Config struct {
	Port      int           // TCP and UDP port to serve
	SDK       *sdk.Client   // nil: run without the SDK (outside Armada)
	Heartbeat time.Duration // default 1s
	Logger    *slog.Logger
}

// Server is a running demo server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	mu    sync.Mutex
	state string // the ship's state as last seen
	over  chan struct{}
	once  sync.Once
}

// Run serves until ctx ends or the match is over (then it has already
// asked Armada to stop the ship).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, state: "unknown", over: make(chan struct{})}
	addr := net.JoinHostPort("", strconv.Itoa(cfg.Port))
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen tcp: %w", err)
	}
	defer tl.Close()
	ul, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("listen udp: %w", err)
	}
	defer ul.Close()
	s.log.Info("demo server listening", "port", cfg.Port)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	if c := cfg.SDK; c != nil {
		wg.Add(2)
		go func() { defer wg.Done(); c.Heartbeat(ctx, cfg.Heartbeat) }()
		go func() {
			defer wg.Done()
			// Watch its record for as long as it runs: a watch cut (the
			// node's armada restarting) is taken up again.
			for wait := 100 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 5*time.Second) {
				err := c.Watch(ctx, func(sh *sdk.Ship) bool {
					wait = 100 * time.Millisecond
					s.mu.Lock()
					if sh.State != s.state {
						s.log.Info("ship state", "state", sh.State, "labels", sh.Labels)
					}
					s.state = sh.State
					s.mu.Unlock()
					return true
				})
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("watch ended; again soon", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		}()
		if err := c.Ready(ctx); err != nil {
			return fmt.Errorf("ready: %w", err)
		}
		s.log.Info("told armada we are ready", "ship", c.ID())
	}
	go s.serveUDP(ul)
	go s.serveTCP(ctx, tl)
	select {
	case <-ctx.Done():
	case <-s.over:
		s.log.Info("match over: shutting down")
		if c := cfg.SDK; c != nil {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			if err := c.Shutdown(sctx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
		}
	}
	return nil
}

// answer is the reply to one line from a player.
func (s *Server) answer(line string) string {
	if !strings.EqualFold(strings.TrimSpace(line), "END") {
		return "echo: " + line
	}
	s.mu.Lock()
	state := s.state
	s.mu.Unlock()
	if s.cfg.SDK != nil && state != "allocated" {
		return fmt.Sprintf("no match to end: this server is %s", state)
	}
	s.once.Do(func() { close(s.over) })
	return "match over, bye"
}

func (s *Server) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		reply := s.answer(strings.TrimRight(string(buf[:n]), "\r\n"))
		pc.WriteTo([]byte(reply+"\n"), from)
	}
}

func (s *Server) serveTCP(ctx context.Context, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				s.log.Warn("accept", "err", err)
			}
			return
		}
		go func() {
			defer conn.Close()
			sc := bufio.NewScanner(conn)
			for sc.Scan() {
				if _, err := fmt.Fprintln(conn, s.answer(sc.Text())); err != nil {
					return
				}
			}
		}()
	}
}
