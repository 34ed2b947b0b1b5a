package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// TestRedisClientSurvivesKilledNode runs three real nodes with
// --redis-addr, writes through a follower's Redis port with go-redis,
// SIGKILLs that follower, and checks that the client, dialling the next
// node, reads everything back and keeps writing. redis-cli talks to the
// real binary too.
func TestRedisClientSurvivesKilledNode(t *testing.T) {
	nodes, redisAddr, leader := startAdapterCluster(t, "--redis-addr")
	var fol *Node
	var addrs []string
	for _, n := range nodes {
		if n.Name != leader && fol == nil {
			fol = n
			addrs = append([]string{redisAddr[n.Name]}, addrs...)
		} else {
			addrs = append(addrs, redisAddr[n.Name])
		}
	}

	cli := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strings.Split(addrs[0], ":")[1], "SET", "cli", "from-redis-cli")
	if out, err := cli.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("redis-cli SET: %q %v (redis-cli comes with `make deps`)", out, err)
	}

	dialer := &net.Dialer{Timeout: time.Second}
	client := goredis.NewClient(&goredis.Options{
		Addr: addrs[0], MaxRetries: 5, MinRetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond,
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var errs []error
			for _, a := range addrs {
				conn, err := dialer.DialContext(ctx, network, a)
				if err == nil {
					return conn, nil
				}
				errs = append(errs, err)
			}
			return nil, errors.Join(errs...)
		},
	})
	defer client.Close()
	ctx := context.Background()
	for i := range 20 {
		if err := client.Set(ctx, fmt.Sprintf("r%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET through follower %s: %v", fol.Name, err)
		}
	}
	if err := client.HSet(ctx, "rh", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	// The key space is shared with /v1/kv.
	if _, kv, err := getKV(fol, "r3", false); err != nil || kv.Value != "3" {
		t.Fatalf("GET /v1/kv/r3 on %s: %+v %v", fol.Name, kv, err)
	}

	fol.Kill()
	waitFor(t, 20*time.Second, func() error {
		v, err := client.Get(ctx, "r19").Result()
		if err != nil || v != "19" {
			return fmt.Errorf("GET r19 after killing %s = %q, %v", fol.Name, v, err)
		}
		return nil
	})
	if v, err := client.Get(ctx, "cli").Result(); err != nil || v != "from-redis-cli" {
		t.Fatalf("GET cli = %q, %v", v, err)
	}
	if v, err := client.HGet(ctx, "rh", "f").Result(); err != nil || v != "v" {
		t.Fatalf("HGET rh f = %q, %v", v, err)
	}
	waitFor(t, 20*time.Second, func() error { return client.Set(ctx, "after-kill", "1", 0).Err() })
	if v, err := client.Get(ctx, "after-kill").Result(); err != nil || v != "1" {
		t.Fatalf("GET after-kill = %q, %v", v, err)
	}
}
