package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The Redis figure: go-redis clients SETting or GETting their own key —
// against one redis-server (the Debian package) with its append-only file
// fsynced on every write (`appendfsync always`), and against the Redis
// adapters of a 3-node Armada of the real binary, in the same run. There
// is no target: the ratios are reported.

var redisServing = regexp.MustCompile(`msg="serving redis" .*addr=(\S+)`)

// redisLoad opens a client (a pool of n connections) per address for n
// workers — worker w on addrs[w % len(addrs)] — and SETs each worker's
// key bench:w<w>.
func redisLoad(ctx context.Context, addrs []string, n int, value []byte) (adapterClients, error) {
	clients := make([]*goredis.Client, len(addrs))
	for i, a := range addrs {
		clients[i] = goredis.NewClient(&goredis.Options{Addr: a, PoolSize: n, Protocol: 2,
			DisableIdentity: true, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	}
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	key := func(w int) string { return "bench:w" + strconv.Itoa(w) }
	set := func(ctx context.Context, worker, _ int) error {
		return clients[worker%len(clients)].Set(ctx, key(worker), value, 0).Err()
	}
	for w := range n {
		if err := set(ctx, w, 0); err != nil {
			closeAll()
			return adapterClients{}, fmt.Errorf("redis SET on %s: %w", addrs[w%len(addrs)], err)
		}
	}
	get := func(ctx context.Context, worker, _ int) error {
		b, err := clients[worker%len(clients)].Get(ctx, key(worker)).Bytes()
		if err == nil && len(b) != len(value) {
			err = fmt.Errorf("GET %s: %d bytes, want %d", key(worker), len(b), len(value))
		}
		return err
	}
	return adapterClients{write: set, read: get, close: closeAll}, nil
}

// runRedisReference measures one redis-server, its append-only file in
// dir fsynced on every write.
func runRedisReference(ctx context.Context, cfg config, dir string, value []byte) (res []loadResult, err error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("redis dir: %w", err)
	}
	slog.Info("starting redis-server", "dir", dir)
	p, err := startProc("redis", "redis-server", []string{"--port", strconv.Itoa(ports[0]), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir}, filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, err
	}
	defer p.stop(5 * time.Second)
	addr := loopback(ports[0])
	for deadline := time.Now().Add(30 * time.Second); ; {
		c := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
		err := c.Ping(ctx).Err()
		c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("redis-server: %w\n%s", err, p.logTail(15))
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return runAdapterRows(ctx, cfg, "redis-server", "one server", []string{addr},
		[]watched{{"redis-server", p.pid()}, {"driver", os.Getpid()}}, redisLoad, value)
}

// runRedis runs the Redis part: the reference when installed, then Armada.
func runRedis(ctx context.Context, cfg config, bin, dir string, value []byte) (*adapterBench, error) {
	ab := &adapterBench{
		title:   "Redis: SET and GET",
		refName: "redis-server",
		writeOp: "SET",
		readOp:  "GET",
		about: "go-redis clients, `SET` or `GET` of their own key: one redis-server 7 (Debian package, no replication, " +
			"`--appendonly yes --appendfsync always`, its append-only file in its own directory under the benchmark's temp " +
			"dir: it fsyncs the file before answering the writes, one fsync per event-loop turn for all of that turn's writes) and the Redis adapters (`--redis-addr`) of a 3-node " +
			"Armada. " + rowsText(cfg, len(value), "Against redis-server every client talks to its one server; "+
			"against Armada client i talks to node i mod 3, node 0 being the leader, so a 1-client row talks to the leader; "+
			"followers forward writes to the leader.") + " Every Armada write is a Raft entry replicated to a quorum; " +
			"`GET` is answered from the state of the server the client talks to, by redis-server and by Armada's adapter " +
			"alike (on an Armada follower it may lag the leader). There is no target: the ratios are reported.",
	}
	_, err := exec.LookPath("redis-server")
	return ab.run(cfg.adapterRounds, err == nil, "redis-server in $PATH", func(round int) ([]loadResult, error) {
		return runRedisReference(ctx, cfg, filepath.Join(dir, roundDir("redis-server", round)), value)
	}, func(round int) ([]loadResult, error) {
		return runAdapterArmada(ctx, cfg, bin, filepath.Join(dir, roundDir("armada-redis", round)), "--redis-addr", redisServing,
			"all 3 nodes' Redis adapters", redisLoad, value)
	})
}
