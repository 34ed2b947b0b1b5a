package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// rawSession sends script to addr as inline commands and returns every
// byte the server answers until it closes the connection (the script
// ends with QUIT).
func rawSession(t *testing.T, addr string, script []string) string {
	t.Helper()
	return sendRaw(t, addr, []string{strings.Join(script, "\r\n") + "\r\n"})
}

// With a password (the cluster's --token), the adapter answers as
// redis-server with requirepass does: the same bytes for the same
// session, refusals, wrong passwords and RESET included.
func TestRequirePassDifferential(t *testing.T) {
	const pass = "s3cret"
	ref := startRedisServer(t, pass)
	s := startLocal(t, func(c *Config) { c.Password = pass })
	script := []string{
		"PING", "GET k", "SET k v", "GET", "FOO bar", "CLIENT BOGUS", "MULTI", "SUBSCRIBE news",
		"AUTH wrong", "AUTH default wrong", "AUTH nobody " + pass, "AUTH a b c", "GET k",
		"RESET", "AUTH " + pass, "SET k v", "GET k", "RESET", "GET k", "AUTH default " + pass, "GET k", "QUIT",
	}
	want := rawSession(t, ref, script)
	got := rawSession(t, s.Addr(), script)
	if got != want {
		t.Fatalf("redis-server answered\n%q\nArmada answered\n%q", want, got)
	}
	if !strings.Contains(want, "-NOAUTH") || !strings.Contains(want, "-WRONGPASS") {
		t.Fatalf("the reference refused nothing: %q", want)
	}
	// A subscribed connection that RESETs must give the password again,
	// subscriber commands included.
	subScript := []string{"AUTH " + pass, "SUBSCRIBE a", "RESET", "SUBSCRIBE b", "PSUBSCRIBE c*", "UNSUBSCRIBE",
		"PING", "AUTH " + pass, "SUBSCRIBE b", "RESET", "QUIT"}
	if want, got := rawSession(t, ref, subScript), rawSession(t, s.Addr(), subScript); got != want {
		t.Fatalf("subscriber session: redis-server answered\n%q\nArmada answered\n%q", want, got)
	}

	// A client without the password writes nothing; one with it works.
	ctx := context.Background()
	anon := goredis.NewClient(&goredis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer anon.Close()
	if err := anon.Set(ctx, "anon", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("SET without the password: %v, want NOAUTH", err)
	}
	authed := goredis.NewClient(&goredis.Options{Addr: s.Addr(), Password: pass})
	defer authed.Close()
	if n, err := authed.Exists(ctx, "anon").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS anon = %d, %v: the refused SET wrote", n, err)
	}
	if v, err := authed.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET k with the password = %q, %v", v, err)
	}
}

// Until a connection has given the password, Redis refuses a command of
// more than 10 arguments or an argument over 16 KiB with an
// "unauthenticated" protocol error, and so does the adapter, byte for byte:
// also when the AUTH that lifts the limits is in the same write, ahead of
// the command, or a RESET brings them back.
func TestPreAuthLimitsDifferential(t *testing.T) {
	const pass = "s3cret"
	ref := startRedisServer(t, pass)
	s := startLocal(t, func(c *Config) { c.Password = pass })
	eleven := []string{"DEL", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	big, limit := strings.Repeat("v", 16<<10+1), strings.Repeat("v", 16<<10)
	auth, quit := resp("AUTH", pass), resp("QUIT")
	sessions := [][]string{
		{resp(eleven...)},
		{resp(eleven[:10]...) + resp("SET", "k", limit) + quit},
		{resp("SET", "k", big)},
		{resp("PING"), resp("SET", "k", big)},
		{auth + resp("SET", "k", big) + resp(eleven...) + resp("STRLEN", "k") + quit},
		{resp("AUTH", "wrong") + resp("SET", "k", big)},
		{auth + resp("RESET") + resp(eleven...)},
		{auth + resp("RESET") + auth + resp(eleven...) + quit},
		{"DEL a b c d e f g h i j k\r\n" + quit},
		{"*abc\r\n"},
		{"*11\r\n$3\r\nDEL\r\n", "$1\r\na\r\n"},
		{resp("SUBSCRIBE", "ch") + quit},
		{"*2000000\r\n"},
		{"*1\r\n$5000000\r\n"},
		{"*1\r\n$600000000\r\n"},
		{auth, resp("RESET") + resp(eleven...) + quit},
		{auth, resp("PING") + resp("RESET") + resp("SET", "k", big) + quit},
		{auth + resp("SUBSCRIBE", "ch") + resp("RESET") + resp(eleven...) + quit},
	}
	for i, chunks := range sessions {
		want, got := sendRaw(t, ref, chunks), sendRaw(t, s.Addr(), chunks)
		if got != want {
			t.Errorf("session %d:\nredis-server answered\n%q\nArmada answered\n%q", i, want, got)
		}
		if i == 0 && !strings.Contains(want, "unauthenticated multibulk length") {
			t.Errorf("the reference did not refuse 11 arguments: %q", want)
		}
	}
}

// A PUBLISH on one node reaches a subscriber on another when the adapters
// need a password: the nodes' fan-out is not refused.
func TestPublishAcrossNodesWithPassword(t *testing.T) {
	const pass = "s3cret"
	nodes := startClusterWith(t, pass)
	ctx := context.Background()
	sub := goredis.NewClient(&goredis.Options{Addr: nodes[1].redis.Addr(), Password: pass})
	defer sub.Close()
	ps := sub.Subscribe(ctx, "news")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	pub := goredis.NewClient(&goredis.Options{Addr: nodes[0].redis.Addr(), Password: pass})
	defer pub.Close()
	waitFor(t, 10*time.Second, func() error {
		if n, err := pub.Publish(ctx, "news", "hello").Result(); err != nil || n != 1 {
			return fmt.Errorf("PUBLISH reached %d subscribers, %v", n, err)
		}
		return nil
	})
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "hello" {
		t.Fatalf("subscriber on another node got %v, %v", msg, err)
	}
	// A message over the pre-auth limit (16 KiB) too: the nodes' fan-out
	// gives the password first.
	big := strings.Repeat("m", 64<<10)
	if n, err := pub.Publish(ctx, "news", big).Result(); err != nil || n != 1 {
		t.Fatalf("PUBLISH of 64 KiB reached %d subscribers, %v", n, err)
	}
	if msg, err := ps.ReceiveMessage(ctx); err != nil || msg.Payload != big {
		t.Fatalf("subscriber on another node got %d bytes, %v", len(msg.Payload), err)
	}
}
