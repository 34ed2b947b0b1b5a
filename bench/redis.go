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

// The Redis write figure: 64 go-redis workers, spread evenly over the
// servers, each SETting its own key to the benchmark's value (128 bytes) as fast as the
// answers come back — against one redis-server (the Debian package; no
// replication, no persistence: Redis' default deployment, and far less
// work per write than a replicated, fsynced log) and against the Redis
// adapters of a 3-node Armada of the real binary, in the same run. There
// is no target: the ratio is reported.

// redisClients is the number of concurrent workers of the Redis rows.
const redisClients = 64

var redisServing = regexp.MustCompile(`msg="serving redis" .*addr=(\S+)`)

// redisLoad opens a client per address and returns the put function of
// worker i, which SETs its own key through addrs[i % len(addrs)].
func redisLoad(addrs []string, value []byte) (putFunc, func(), error) {
	clients := make([]*goredis.Client, len(addrs))
	for i, a := range addrs {
		clients[i] = goredis.NewClient(&goredis.Options{Addr: a, PoolSize: redisClients, Protocol: 2,
			DisableIdentity: true, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	}
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	for i, c := range clients {
		if err := c.Ping(context.Background()).Err(); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("redis client on %s: %w", addrs[i], err)
		}
	}
	put := func(ctx context.Context, worker, _ int) error {
		return clients[worker%len(clients)].Set(ctx, "bench:w"+strconv.Itoa(worker), value, 0).Err()
	}
	return put, closeAll, nil
}

// runRedisReference measures one redis-server.
func runRedisReference(ctx context.Context, cfg config, dir string, value []byte) (res loadResult, err error) {
	ports, err := freePorts(1)
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, fmt.Errorf("redis dir: %w", err)
	}
	slog.Info("starting redis-server", "dir", dir)
	p, err := startProc("redis", "redis-server", []string{"--port", strconv.Itoa(ports[0]), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir}, filepath.Join(dir, "redis.log"))
	if err != nil {
		return res, err
	}
	defer p.stop(5 * time.Second)
	addr := loopback(ports[0])
	var put putFunc
	var closeAll func()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if put, closeAll, err = redisLoad([]string{addr}, value); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("redis-server: %w\n%s", err, p.logTail(15))
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return res, err
		}
	}
	defer closeAll()
	return runLoad(ctx, loadSpec{system: "redis-server", target: "one server", writers: redisClients, put: put,
		procs: []watched{{"redis-server", p.pid()}, {"driver", os.Getpid()}}}, cfg.warmup, cfg.duration)
}

// runRedis runs the Redis part: the reference when installed, then Armada.
func runRedis(ctx context.Context, cfg config, bin, dir string, value []byte) (*adapterBench, error) {
	ab := &adapterBench{
		title:   "Redis writes",
		refName: "redis-server",
		about: fmt.Sprintf("%d go-redis workers, spread evenly over the servers, each `SET`ting its own key to a %d-byte value "+
			"as fast as the answers come back: one redis-server 7 (Debian package, no replication, no persistence) and the "+
			"Redis adapters (`--redis-addr`) of a 3-node Armada, in the same run. Every Armada write is a Raft entry "+
			"replicated to a quorum; redis-server's is a memory write, so there is no target: the ratio is reported.",
			redisClients, len(value)),
	}
	_, err := exec.LookPath("redis-server")
	return ab.run(err == nil, "redis-server in $PATH", func() (loadResult, error) {
		return runRedisReference(ctx, cfg, filepath.Join(dir, "redis-server"), value)
	}, func() (loadResult, error) {
		return runAdapterArmada(ctx, cfg, bin, filepath.Join(dir, "armada-redis"), "--redis-addr", redisServing,
			"all 3 nodes' Redis adapters", redisClients, redisLoad, value)
	})
}
