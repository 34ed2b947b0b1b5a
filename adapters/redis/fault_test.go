package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// TestClientOnFollowerFailsOver connects go-redis to a follower, writes
// through it (the follower forwards to the leader), stops that node, and
// checks that the client, dialling the next address, still reads its data
// and writes.
func TestClientOnFollowerFailsOver(t *testing.T) {
	nodes := startCluster(t)
	fol := follower(nodes)
	addrs := []string{fol.redis.Addr()}
	for _, n := range nodes {
		if n != fol {
			addrs = append(addrs, n.redis.Addr())
		}
	}
	dialer := &net.Dialer{Timeout: time.Second}
	c := goredis.NewClient(&goredis.Options{
		Addr: addrs[0], MaxRetries: 5, MinRetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: 100 * time.Millisecond,
		// Try the addresses in order: the follower while it lives, then
		// the others.
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
	defer c.Close()
	ctx := context.Background()

	for i := range 20 {
		if err := c.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET through the follower: %v", err)
		}
	}
	if err := c.HSet(ctx, "h", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.RPush(ctx, "l", "a", "b").Err(); err != nil {
		t.Fatal(err)
	}
	// A connection sees its own writes at once, even on a follower.
	if v, err := c.Get(ctx, "k19").Result(); err != nil || v != "19" {
		t.Fatalf("GET k19 = %q, %v", v, err)
	}
	fol.stop()

	waitFor(t, 15*time.Second, func() error {
		v, err := c.Get(ctx, "k7").Result()
		if err != nil || v != "7" {
			return fmt.Errorf("GET k7 after the follower stopped = %q, %v", v, err)
		}
		return nil
	})
	if v, err := c.HGet(ctx, "h", "f").Result(); err != nil || v != "v" {
		t.Fatalf("HGET = %q, %v", v, err)
	}
	if v, err := c.LRange(ctx, "l", 0, -1).Result(); err != nil || fmt.Sprint(v) != "[a b]" {
		t.Fatalf("LRANGE = %v, %v", v, err)
	}
	waitFor(t, 15*time.Second, func() error { return c.Set(ctx, "after", "1", 0).Err() })
	if v, err := c.Get(ctx, "after").Result(); err != nil || v != "1" {
		t.Fatalf("GET after = %q, %v", v, err)
	}
}
