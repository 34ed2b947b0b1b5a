package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/armada-orchestrator/armada/adapters/etcd"
	"github.com/armada-orchestrator/armada/adapters/redis"
	"github.com/armada-orchestrator/armada/adapters/zk"
	"github.com/armada-orchestrator/armada/cluster"
	"github.com/armada-orchestrator/armada/fsm"
	"github.com/armada-orchestrator/armada/scheduler"
	"github.com/armada-orchestrator/armada/web"
	"github.com/armada-orchestrator/armada/worker"
)

type joinFlags struct {
	name, dataDir, gossipAddr, raftAddr, httpAddr, advertise string
	voters                                                   int
	role, driver, labels, portsRange                         string
	redisAddr, etcdAddr, zkAddr, lb                          string
	sdkAddr                                                  string
	token                                                    string // the root's --token (ARMADA_TOKEN)
	logLevel, debugAddr                                      string
	reapTimeout, heartbeat, probe, lostGrace                 time.Duration
}

func newJoin(version string, cf *clientFlags) *cobra.Command {
	f := &joinFlags{}
	cmd := &cobra.Command{
		Use:   "join [SEED...]",
		Short: "Run this node: start a new cluster, restart one from --data-dir, or join through SEED gossip addresses",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, seeds []string) error {
			// --token (ARMADA_TOKEN), the clients' flag, is also what this
			// node's API requires and what it sends to the other nodes.
			f.token = cf.token
			return runJoin(cmd.Context(), f, seeds, version)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// register defines the join flags on fl, with their defaults.
func (f *joinFlags) register(fl *pflag.FlagSet) {
	host, _ := os.Hostname()
	fl.StringVar(&f.name, "name", host, "node name, unique in the cluster")
	fl.StringVar(&f.dataDir, "data-dir", "./armada-data", "where Raft's log, snapshots and the state live")
	fl.StringVar(&f.gossipAddr, "gossip-addr", "127.0.0.1:7946", "gossip bind address (TCP and UDP)")
	fl.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:7947", "Raft bind address")
	fl.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:7070", "HTTP API and web UI address")
	fl.StringVar(&f.advertise, "advertise", "", "IP address to advertise to other nodes (default: the bind addresses)")
	fl.IntVar(&f.voters, "voters", 3, "number of Raft voters the leader aims for")
	fl.StringVar(&f.role, "role", cluster.RoleBoth, "server (Raft voter candidate), worker (runs ships) or both")
	fl.StringVar(&f.driver, "driver", "auto", "ship driver: auto, systemd or exec")
	fl.StringVar(&f.labels, "labels", "", "node labels, k=v,k2=v2")
	fl.StringVar(&f.portsRange, "ports-range", "20000-29999", "dynamic host ports for ships")
	fl.StringVar(&f.sdkAddr, "sdk-addr", "127.0.0.1:7071", "the ship SDK endpoint (loopback; given to ships as ARMADA_SDK_ADDR; keep it fixed so that adopted ships keep reaching it)")
	fl.StringVar(&f.redisAddr, "redis-addr", "", "serve the Redis protocol on this address (off unless set)")
	fl.StringVar(&f.etcdAddr, "etcd-addr", "", "serve the etcd v3 protocol on this address (off unless set)")
	fl.StringVar(&f.zkAddr, "zk-addr", "", "serve the ZooKeeper protocol on this address (off unless set)")
	fl.StringVar(&f.lb, "lb", "", "load-balancer adapter (off unless set)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (off unless set; keep it on loopback)")
	fl.DurationVar(&f.reapTimeout, "reap-timeout", 24*time.Hour, "how long a dead node stays before it is removed")
	fl.DurationVar(&f.heartbeat, "raft-heartbeat", 500*time.Millisecond, "Raft heartbeat and election timeout")
	fl.DurationVar(&f.probe, "gossip-probe", 500*time.Millisecond, "gossip failure-detector probe interval")
	fl.DurationVar(&f.lostGrace, "lost-grace", 2*time.Second, "how long a node may be dead before its ships are lost and replaced elsewhere")
}

func parseLabels(s string) (map[string]string, error) { return parseKV("--labels", s) }

// parseKV reads "k=v,k=v" label pairs given to flag.
func parseKV(flag, s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: %q is not k=v", flag, kv)
		}
		out[k] = v
	}
	if e := fsm.ValidateLabels(strings.TrimPrefix(flag, "--"), out); e != nil {
		return nil, fmt.Errorf("--%w", e)
	}
	return out, nil
}

func parsePortsRange(s string) error {
	if _, _, err := fsm.ParsePortsRange(s); err != nil {
		return fmt.Errorf("--ports-range: %w", err)
	}
	return nil
}

func (f *joinFlags) check() error {
	switch f.driver {
	case "auto", "systemd", "exec":
	default:
		return fmt.Errorf("--driver: must be auto, systemd or exec, not %q", f.driver)
	}
	if err := parsePortsRange(f.portsRange); err != nil {
		return err
	}
	if f.voters < 1 {
		return fmt.Errorf("--voters: must be at least 1, not %d", f.voters)
	}
	if f.lostGrace <= 0 {
		return fmt.Errorf("--lost-grace: must be positive, not %s", f.lostGrace)
	}
	if host, _, err := net.SplitHostPort(f.sdkAddr); err != nil {
		return fmt.Errorf("--sdk-addr: %w", err)
	} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--sdk-addr: must be a loopback address (ships call it on their own host), not %q", host)
	}
	for _, a := range []struct{ flag, val string }{{"--lb", f.lb}} {
		if a.val != "" {
			return fmt.Errorf("%s: this adapter is not in this build yet", a.flag)
		}
	}
	return nil
}

// newDriver picks the ship driver: auto is systemd when systemd's private
// socket answers, exec otherwise.
func newDriver(ctx context.Context, name, dir string, log *slog.Logger) (worker.Driver, error) {
	if name == "auto" {
		name = "exec"
		if worker.SystemdAvailable() {
			name = "systemd"
		}
		log.Info("driver auto: using "+name, "systemd_socket", worker.SystemdSocket)
	}
	if name == "systemd" {
		d, err := worker.NewSystemd(ctx, worker.SystemdConfig{LogDir: dir, Logger: log.With("component", "systemd")})
		if err != nil {
			return nil, fmt.Errorf("--driver systemd: %w", err)
		}
		return d, nil
	}
	return worker.NewExec(dir, log.With("component", "exec"))
}

// collectors is several Prometheus collectors as one.
type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// serveDebug serves net/http/pprof on its own listener, never on the API.
func serveDebug(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving pprof", "addr", addr)
	if err := srv.ListenAndServe(); err != nil {
		log.Error("pprof server", "err", err)
	}
}

// startEtcd serves the etcd v3 API from the node's state. MemberList
// shows it at the --advertise IP when it listens on all interfaces.
func startEtcd(ctx context.Context, f *joinFlags, node *cluster.Node, log *slog.Logger) (*etcd.Server, error) {
	es := etcd.New(node.State(), node, etcd.Config{Addr: f.etcdAddr, Node: f.name, AdvertiseHost: f.advertise, Password: f.token,
		Logger: log.With("component", "etcd")})
	if err := es.Start(ctx); err != nil {
		return nil, fmt.Errorf("--etcd-addr: %w", err)
	}
	return es, nil
}

// startRedis serves the Redis protocol from the node's state. Other nodes
// reach it at the --advertise IP when it listens on all interfaces.
func startRedis(ctx context.Context, f *joinFlags, node *cluster.Node, log *slog.Logger) (*redis.Server, error) {
	rs := redis.New(node.State(), node, redis.Config{Addr: f.redisAddr, Node: f.name, AdvertiseHost: f.advertise, Password: f.token,
		Logger: log.With("component", "redis")})
	if err := rs.Start(ctx); err != nil {
		return nil, fmt.Errorf("--redis-addr: %w", err)
	}
	return rs, nil
}

// startZK serves the ZooKeeper protocol from the node's state.
func startZK(ctx context.Context, f *joinFlags, node *cluster.Node, log *slog.Logger) (*zk.Server, error) {
	zs := zk.New(node.State(), node, zk.Config{Addr: f.zkAddr, Node: f.name, Logger: log.With("component", "zk")})
	if err := zs.Start(ctx); err != nil {
		return nil, fmt.Errorf("--zk-addr: %w", err)
	}
	return zs, nil
}

func runJoin(ctx context.Context, f *joinFlags, seeds []string, version string) error {
	if err := f.check(); err != nil {
		return err
	}
	log, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	labels, err := parseLabels(f.labels)
	if err != nil {
		return err
	}
	// A node's live heap is small (tens of MB) and its garbage comes in
	// bursts (allocation storms, placements): collecting at twice the live
	// heap rather than once halves the collector's CPU in a burst, which
	// on a small machine shared by the node's Raft, API and worker is
	// latency, for a few MB more heap. GOGC set by the operator wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	portsRange := f.portsRange
	if f.role == cluster.RoleServer {
		portsRange = ""
	}
	capacity, err := worker.Capacity("/proc")
	if err != nil {
		log.Warn("cannot read capacity", "err", err)
	}
	// Listen first so that the advertised HTTP address is the real one
	// (port 0 picks a free port).
	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	node, err := cluster.New(cluster.Config{
		Name: f.name, DataDir: f.dataDir, GossipAddr: f.gossipAddr, RaftAddr: f.raftAddr,
		HTTPAddr: ln.Addr().String(), Advertise: f.advertise, Voters: f.voters, Role: f.role,
		Labels: labels, Seeds: seeds, Version: version, ReapTimeout: f.reapTimeout, PortsRange: portsRange,
		HeartbeatTimeout: f.heartbeat, ProbeInterval: f.probe, Token: f.token, Logger: log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	// Hooks go in before Start: leadership may come at once.
	node.OnLeader(func(ctx context.Context) {
		scheduler.Run(ctx, node.State(), node, scheduler.Config{LostGrace: f.lostGrace, Logger: log.With("component", "scheduler")})
	})
	if err := node.Start(ctx, capacity); err != nil {
		ln.Close()
		return err
	}
	// The Redis adapter stops before the node does (stopRedis is called
	// again by the defer, harmlessly, on the early-return paths).
	stopRedis := func() {}
	if f.redisAddr != "" {
		rs, err := startRedis(ctx, f, node, log)
		if err != nil {
			ln.Close()
			node.Shutdown()
			return err
		}
		stopRedis = func() {
			if err := rs.Close(); err != nil {
				log.Warn("stop redis adapter", "err", err)
			}
		}
		defer stopRedis()
	}
	// The etcd adapter, too, stops before the node does.
	stopEtcd := func() {}
	if f.etcdAddr != "" {
		es, err := startEtcd(ctx, f, node, log)
		if err != nil {
			ln.Close()
			stopRedis()
			node.Shutdown()
			return err
		}
		stopEtcd = func() {
			if err := es.Close(); err != nil {
				log.Warn("stop etcd adapter", "err", err)
			}
		}
		defer stopEtcd()
	}
	// The ZooKeeper adapter, too, stops before the node does.
	stopZK := func() {}
	if f.zkAddr != "" {
		zs, err := startZK(ctx, f, node, log)
		if err != nil {
			ln.Close()
			stopRedis()
			stopEtcd()
			node.Shutdown()
			return err
		}
		stopZK = func() {
			if err := zs.Close(); err != nil {
				log.Warn("stop zookeeper adapter", "err", err)
			}
		}
		defer stopZK()
	}
	var wk *worker.Worker
	if f.role != cluster.RoleServer {
		drv, err := newDriver(ctx, f.driver, filepath.Join(f.dataDir, "ships"), log)
		if err != nil {
			ln.Close()
			node.Shutdown()
			return err
		}
		sdkLn, err := net.Listen("tcp", f.sdkAddr)
		if err != nil {
			drv.Close()
			ln.Close()
			node.Shutdown()
			return fmt.Errorf("--sdk-addr: %w", err)
		}
		wk = worker.New(node.State(), node, worker.Config{Node: f.name, PortsRange: f.portsRange, Driver: drv,
			SDKAddr: "http://" + sdkLn.Addr().String(), Logger: log.With("component", "worker")})
		sdkSrv := &http.Server{Handler: wk.SDK(), ReadHeaderTimeout: 10 * time.Second}
		go sdkSrv.Serve(sdkLn)
		defer sdkSrv.Close()
		wctx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
		workerDone := make(chan struct{})
		go func() { defer close(workerDone); wk.Run(wctx) }()
		defer func() {
			stopWorker()
			<-workerDone
			if err := drv.Close(); err != nil {
				log.Warn("stop ships", "err", err)
			}
		}()
	}
	opts := web.Options{Internal: node.InternalHandler(), Collector: node.Collector(),
		Logger: log.With("component", "http"), SpoolDir: f.dataDir, Token: f.token}
	if wk != nil {
		opts.Logs = wk
		opts.Collector = collectors{node.Collector(), wk}
	}
	api := web.New(node, opts)
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(api.CloseStreams)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if f.debugAddr != "" {
		go serveDebug(f.debugAddr, log)
	}
	log.Info("armada is up", "ui", "http://"+ln.Addr().String()+"/ui/")

	select {
	case <-ctx.Done():
		log.Info("stopping")
	case <-node.Done():
		log.Info("left the cluster")
	case err = <-served:
		log.Error("http server stopped", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	stopRedis()
	stopEtcd()
	stopZK()
	if serr := node.Shutdown(); serr != nil && err == nil && !errors.Is(serr, http.ErrServerClosed) {
		log.Warn("shutdown", "err", serr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
