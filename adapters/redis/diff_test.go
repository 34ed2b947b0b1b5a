package redis

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/armada-orchestrator/armada/internal/textdiff"
)

// recorder collects the normalised outcome of every step of the script.
type recorder struct {
	t     *testing.T
	lines []string
}

func (r *recorder) add(step string, val any, err error) {
	switch {
	case errors.Is(err, goredis.Nil):
		r.lines = append(r.lines, fmt.Sprintf("%s -> (nil)", step))
	case err != nil:
		r.lines = append(r.lines, fmt.Sprintf("%s -> error: %v", step, err))
	default:
		r.lines = append(r.lines, fmt.Sprintf("%s -> %v", step, val))
	}
}

// cmd records a go-redis command's value and error.
func (r *recorder) cmd(step string, c interface {
	Err() error
	String() string
}) {
	if c.Err() != nil {
		r.add(step, nil, c.Err())
		return
	}
	// String() is "name args: value"; keep the value only.
	s := c.String()
	if i := strings.Index(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	r.add(step, s, nil)
}

// ttlClass maps a TTL to what two servers can agree on: they differ by
// the milliseconds between the calls.
func ttlClass(d time.Duration, err error, max time.Duration) string {
	switch {
	case err != nil:
		return "error: " + err.Error()
	case d < 0:
		return d.String()
	case d > 0 && d <= max:
		return fmt.Sprintf("in (0, %s]", max)
	}
	return "out of range: " + d.String()
}

func sortedStrings(ss []string) string {
	ss = slices.Clone(ss)
	sort.Strings(ss)
	return fmt.Sprint(ss)
}

func sortedMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s ", k, m[k])
	}
	return b.String()
}

// script runs the same go-redis session against a server: a and b are two
// clients (on Armada, connected to different nodes).
func script(t *testing.T, a, b *goredis.Client) []string {
	ctx := context.Background()
	r := &recorder{t: t}

	// Connection.
	r.cmd("PING", a.Ping(ctx))
	r.cmd("ECHO", a.Echo(ctx, "hi"))
	r.cmd("SELECT 0", a.Do(ctx, "SELECT", "0"))
	r.cmd("AUTH x", a.Do(ctx, "AUTH", "x"))
	{
		conn := a.Conn()
		r.cmd("CLIENT GETNAME before", conn.ClientGetName(ctx))
		r.cmd("CLIENT SETNAME", conn.Do(ctx, "CLIENT", "SETNAME", "me"))
		r.cmd("CLIENT GETNAME", conn.ClientGetName(ctx))
		id, err := conn.ClientID(ctx).Result()
		r.add("CLIENT ID", id > 0, err)
		conn.Close()
	}

	// Strings.
	r.cmd("SET foo bar", a.Set(ctx, "foo", "bar", 0))
	r.cmd("GET foo (other client)", b.Get(ctx, "foo"))
	r.cmd("GET missing", a.Get(ctx, "missing"))
	r.cmd("SETNX foo", a.SetNX(ctx, "foo", "x", 0))
	r.cmd("SETNX new", a.SetNX(ctx, "new", "1", 0))
	r.cmd("SET GET", a.SetArgs(ctx, "foo", "v2", goredis.SetArgs{Get: true}))
	r.cmd("SET NX existing", a.SetArgs(ctx, "foo", "v", goredis.SetArgs{Mode: "NX"}))
	r.cmd("SET XX missing", a.SetArgs(ctx, "nothere", "v", goredis.SetArgs{Mode: "XX"}))
	r.cmd("SET XX existing", a.SetArgs(ctx, "new", "2", goredis.SetArgs{Mode: "XX"}))
	r.cmd("SET NX GET", a.Do(ctx, "SET", "new", "3", "NX", "GET"))
	r.cmd("SET NX XX", a.Do(ctx, "SET", "new", "3", "NX", "XX"))
	r.cmd("GETSET", a.Do(ctx, "GETSET", "foo", "v3"))
	r.cmd("GETSET missing", a.Do(ctx, "GETSET", "gs", "1"))
	r.cmd("MSET", a.MSet(ctx, "a", "1", "b", "2"))
	r.cmd("MSET odd", a.Do(ctx, "MSET", "a", "1", "b"))
	r.cmd("MGET", a.MGet(ctx, "a", "b", "missing"))
	r.cmd("APPEND", a.Append(ctx, "foo", "!!"))
	r.cmd("APPEND missing", a.Append(ctx, "app", "xy"))
	r.cmd("STRLEN", a.StrLen(ctx, "foo"))
	r.cmd("STRLEN missing", a.StrLen(ctx, "missing"))
	r.cmd("INCR", a.Incr(ctx, "cnt"))
	r.cmd("INCRBY", a.IncrBy(ctx, "cnt", 10))
	r.cmd("DECR", a.Decr(ctx, "cnt"))
	r.cmd("DECRBY", a.DecrBy(ctx, "cnt", 5))
	r.cmd("INCRBY negative", a.IncrBy(ctx, "cnt", -100))
	r.cmd("GET cnt", b.Get(ctx, "cnt"))
	r.cmd("SET max", a.Set(ctx, "big", "9223372036854775807", 0))
	r.cmd("INCR overflow", a.Incr(ctx, "big"))
	r.cmd("DECRBY min", a.Do(ctx, "DECRBY", "cnt", "-9223372036854775808"))
	r.cmd("INCR not int", a.Incr(ctx, "foo"))
	r.cmd("INCRBY bad arg", a.Do(ctx, "INCRBY", "cnt", "x"))
	r.cmd("SET spaced", a.Set(ctx, "sp", " 1", 0))
	r.cmd("INCR spaced", a.Incr(ctx, "sp"))
	r.cmd("SET leading zero", a.Set(ctx, "lz", "01", 0))
	r.cmd("INCR leading zero", a.Incr(ctx, "lz"))
	r.cmd("SET bad option", a.Do(ctx, "SET", "k", "v", "BOGUS"))
	r.cmd("SET EX 0", a.Do(ctx, "SET", "k", "v", "EX", "0"))
	r.cmd("SET EX nan", a.Do(ctx, "SET", "k", "v", "EX", "soon"))
	r.cmd("SET EX KEEPTTL", a.Do(ctx, "SET", "k", "v", "EX", "10", "KEEPTTL"))
	r.cmd("SET binary", a.Set(ctx, "bin", "\x00\xff\r\n", 0))
	r.cmd("GET binary", a.Get(ctx, "bin"))

	// Keys and TTLs.
	r.cmd("EXISTS", a.Exists(ctx, "a", "b", "missing", "a"))
	r.cmd("DEL", a.Del(ctx, "a", "missing"))
	r.cmd("TYPE string", a.Type(ctx, "foo"))
	r.cmd("TYPE none", a.Type(ctx, "missing"))
	r.cmd("EXPIRE", a.Expire(ctx, "foo", 100*time.Second))
	d, err := b.TTL(ctx, "foo").Result()
	r.add("TTL", ttlClass(d, err, 100*time.Second), nil)
	d, err = a.PTTL(ctx, "foo").Result()
	r.add("PTTL", ttlClass(d, err, 100*time.Second), nil)
	r.cmd("PERSIST", a.Persist(ctx, "foo"))
	r.cmd("PERSIST again", a.Persist(ctx, "foo"))
	r.cmd("TTL persisted", a.TTL(ctx, "foo"))
	r.cmd("TTL missing", a.TTL(ctx, "missing"))
	r.cmd("PTTL missing", a.PTTL(ctx, "missing"))
	r.cmd("EXPIRE missing", a.Expire(ctx, "missing", time.Second))
	r.cmd("EXPIRE not int", a.Do(ctx, "EXPIRE", "foo", "x"))
	r.cmd("EXPIRE NX", a.Do(ctx, "EXPIRE", "foo", "50", "NX"))
	r.cmd("EXPIRE NX again", a.Do(ctx, "EXPIRE", "foo", "60", "NX"))
	r.cmd("EXPIRE GT smaller", a.Do(ctx, "EXPIRE", "foo", "10", "GT"))
	r.cmd("EXPIRE LT smaller", a.Do(ctx, "EXPIRE", "foo", "10", "LT"))
	d, err = a.TTL(ctx, "foo").Result()
	r.add("TTL after LT", ttlClass(d, err, 10*time.Second), nil)
	r.cmd("PERSIST foo", a.Persist(ctx, "foo"))
	r.cmd("SET EX", a.Set(ctx, "kt", "v", 100*time.Second))
	r.cmd("SET KEEPTTL", a.SetArgs(ctx, "kt", "v2", goredis.SetArgs{KeepTTL: true}))
	d, err = a.TTL(ctx, "kt").Result()
	r.add("TTL kept", ttlClass(d, err, 100*time.Second), nil)
	r.cmd("SET clears TTL", a.Set(ctx, "kt", "v3", 0))
	r.cmd("TTL cleared", a.TTL(ctx, "kt"))
	r.cmd("PEXPIRE", a.PExpire(ctx, "kt", 50*time.Second))
	d, err = a.PTTL(ctx, "kt").Result()
	r.add("PTTL after PEXPIRE", ttlClass(d, err, 50*time.Second), nil)
	r.cmd("INCR keeps TTL: SET", a.Set(ctx, "ik", "1", 100*time.Second))
	r.cmd("INCR keeps TTL: INCR", a.Incr(ctx, "ik"))
	d, err = a.TTL(ctx, "ik").Result()
	r.add("INCR keeps TTL: TTL", ttlClass(d, err, 100*time.Second), nil)
	r.cmd("EXPIRE negative deletes", a.Do(ctx, "EXPIRE", "ik", "-1"))
	r.cmd("EXISTS after negative EXPIRE", a.Exists(ctx, "ik"))
	r.cmd("SET PX", a.Set(ctx, "tmp", "v", 300*time.Millisecond))
	r.cmd("GET before expiry", a.Get(ctx, "tmp"))
	deadline := time.Now().Add(10 * time.Second)
	for a.Exists(ctx, "tmp").Val() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	r.cmd("EXISTS after expiry", a.Exists(ctx, "tmp"))
	r.cmd("GET after expiry (other client)", b.Get(ctx, "tmp"))
	r.cmd("SET NX after expiry", a.SetNX(ctx, "tmp", "again", 0))

	// Hashes.
	r.cmd("HSET", a.HSet(ctx, "h", "f1", "v1", "f2", "v2"))
	r.cmd("HSET update", a.HSet(ctx, "h", "f1", "x", "f3", "v3"))
	r.cmd("HSET odd", a.Do(ctx, "HSET", "h", "f1"))
	r.cmd("HGET", b.HGet(ctx, "h", "f1"))
	r.cmd("HGET missing field", a.HGet(ctx, "h", "nope"))
	r.cmd("HGET missing key", a.HGet(ctx, "nokey", "f"))
	r.cmd("HMGET", a.HMGet(ctx, "h", "f1", "nope", "f2"))
	r.cmd("HMGET missing key", a.HMGet(ctx, "nokey", "f1"))
	m, err := a.HGetAll(ctx, "h").Result()
	r.add("HGETALL", sortedMap(m), err)
	m, err = a.HGetAll(ctx, "nokey").Result()
	r.add("HGETALL missing", sortedMap(m), err)
	r.cmd("HLEN", a.HLen(ctx, "h"))
	r.cmd("HEXISTS", a.HExists(ctx, "h", "f2"))
	r.cmd("HEXISTS no", a.HExists(ctx, "h", "zz"))
	r.cmd("HDEL", a.HDel(ctx, "h", "f1", "nope"))
	r.cmd("HINCRBY new", a.HIncrBy(ctx, "h", "n", 5))
	r.cmd("HINCRBY again", a.HIncrBy(ctx, "h", "n", -7))
	r.cmd("HINCRBY not int field", a.HIncrBy(ctx, "h", "f2", 1))
	r.cmd("HINCRBY bad arg", a.Do(ctx, "HINCRBY", "h", "n", "x"))
	r.cmd("HSET max", a.HSet(ctx, "h", "m", "9223372036854775807"))
	r.cmd("HINCRBY overflow", a.HIncrBy(ctx, "h", "m", 1))
	r.cmd("TYPE hash", a.Type(ctx, "h"))
	r.cmd("HSET single", a.HSet(ctx, "h2", "only", "1"))
	r.cmd("HDEL last", a.HDel(ctx, "h2", "only"))
	r.cmd("EXISTS emptied hash", a.Exists(ctx, "h2"))

	// Lists.
	r.cmd("RPUSH", a.RPush(ctx, "l", "a", "b", "c"))
	r.cmd("LPUSH", a.LPush(ctx, "l", "z", "y"))
	r.cmd("LRANGE all", b.LRange(ctx, "l", 0, -1))
	r.cmd("LRANGE tail", a.LRange(ctx, "l", -2, -1))
	r.cmd("LRANGE out of range", a.LRange(ctx, "l", 10, 20))
	r.cmd("LRANGE reversed", a.LRange(ctx, "l", 3, 1))
	r.cmd("LRANGE big negative", a.LRange(ctx, "l", -100, 1))
	r.cmd("LRANGE missing", a.LRange(ctx, "nolist", 0, -1))
	r.cmd("LRANGE bad index", a.Do(ctx, "LRANGE", "l", "a", "1"))
	r.cmd("LLEN", a.LLen(ctx, "l"))
	r.cmd("LLEN missing", a.LLen(ctx, "nolist"))
	r.cmd("LPOP", a.LPop(ctx, "l"))
	r.cmd("RPOP", a.RPop(ctx, "l"))
	r.cmd("LPOP count", a.LPopCount(ctx, "l", 2))
	r.cmd("RPOP count", a.RPopCount(ctx, "l", 5))
	r.cmd("EXISTS emptied list", a.Exists(ctx, "l"))
	r.cmd("RPOP missing", a.RPop(ctx, "nolist"))
	r.cmd("LPOP count missing", a.Do(ctx, "LPOP", "nolist", "2"))
	r.cmd("LPOP count negative", a.Do(ctx, "LPOP", "nolist", "-1"))
	r.cmd("RPUSH one", a.RPush(ctx, "l0", "x"))
	r.cmd("LPOP count 0", a.Do(ctx, "LPOP", "l0", "0"))
	r.cmd("TYPE list", a.Type(ctx, "l0"))

	// Blocking pops from two clients: each element goes to exactly one.
	{
		var wg sync.WaitGroup
		got := make([]string, 2)
		errs := make([]error, 2)
		for i, c := range []*goredis.Client{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := c.BLPop(ctx, 10*time.Second, "q").Result()
				errs[i] = err
				got[i] = fmt.Sprint(v)
			}()
		}
		r.cmd("RPUSH q (blocked pops)", a.RPush(ctx, "q", "x"))
		// The list's length here depends on whether a blocked pop has
		// taken x yet: on either server, a matter of timing.
		n, err := b.RPush(ctx, "q", "y").Result()
		r.add("RPUSH q again", n == 1 || n == 2, err)
		wg.Wait()
		r.add("BLPOP results", sortedStrings(got), errors.Join(errs...))
	}
	r.cmd("BLPOP ready", a.Do(ctx, "BLPOP", "empty", "l0", "1"))
	r.cmd("BLPOP timeout", a.BLPop(ctx, 200*time.Millisecond, "empty"))
	r.cmd("BRPOP ready", func() *goredis.StringSliceCmd {
		a.RPush(ctx, "q2", "1", "2")
		return a.BRPop(ctx, time.Second, "q2")
	}())
	r.cmd("BLPOP bad timeout", a.Do(ctx, "BLPOP", "q", "soon"))
	r.cmd("BLPOP negative timeout", a.Do(ctx, "BLPOP", "q", "-1"))
	r.cmd("BLPOP on a string", func() *goredis.Cmd {
		a.Set(ctx, "bwrong", "x", 0)
		return a.Do(ctx, "BLPOP", "bwrong", "5") // WRONGTYPE at once, not after 5 s
	}())
	r.cmd("BLPOP tiny timeout", a.Do(ctx, "BLPOP", "nothing-here", "0.0001"))

	// Wrong types.
	r.cmd("GET hash", a.Get(ctx, "h"))
	r.cmd("LPUSH hash", a.LPush(ctx, "h", "x"))
	r.cmd("HGET string", a.HGet(ctx, "foo", "f"))
	r.cmd("LRANGE string", a.LRange(ctx, "foo", 0, -1))
	r.cmd("APPEND hash", a.Append(ctx, "h", "x"))
	r.cmd("SET GET hash", a.SetArgs(ctx, "h", "x", goredis.SetArgs{Get: true}))
	r.cmd("MGET mixed", a.MGet(ctx, "foo", "h", "q2"))
	r.cmd("SET over hash", a.Set(ctx, "h2x", "s", 0))

	// Key listing.
	r.cmd("SET k1", a.Set(ctx, "k1", "1", 0))
	r.cmd("SET k2", a.Set(ctx, "k2", "1", 0))
	r.cmd("SET kk", a.Set(ctx, "kk", "1", 0))
	keys, err := a.Keys(ctx, "*").Result()
	r.add("KEYS *", sortedStrings(keys), err)
	keys, err = a.Keys(ctx, "k?").Result()
	r.add("KEYS k?", sortedStrings(keys), err)
	keys, err = a.Keys(ctx, "k[12]").Result()
	r.add("KEYS k[12]", sortedStrings(keys), err)
	keys, err = a.Keys(ctx, "k[^1]*").Result()
	r.add("KEYS k[^1]*", sortedStrings(keys), err)
	var scanned []string
	iter := b.Scan(ctx, 0, "k*", 2).Iterator()
	for iter.Next(ctx) {
		scanned = append(scanned, iter.Val())
	}
	r.add("SCAN k*", sortedStrings(scanned), iter.Err())
	scanned = nil
	iter = a.ScanType(ctx, 0, "*", 3, "hash").Iterator()
	for iter.Next(ctx) {
		scanned = append(scanned, iter.Val())
	}
	r.add("SCAN TYPE hash", sortedStrings(scanned), iter.Err())
	r.cmd("SCAN bad cursor", a.Do(ctx, "SCAN", "x"))
	r.cmd("SCAN cursor past 64 bits", a.Do(ctx, "SCAN", "18446744073709551616"))

	// Pipelines.
	{
		cmds, err := a.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, "p1", "1", 0)
			p.Get(ctx, "p1")
			p.Incr(ctx, "p2")
			p.Incr(ctx, "p2")
			p.LPush(ctx, "p3", "x")
			p.Get(ctx, "p3")
			p.HGet(ctx, "p3", "f")
			p.Do(ctx, "NOSUCH", "x")
			p.Do(ctx, "GET")
			p.Exists(ctx, "p1", "p2", "p3")
			return nil
		})
		r.add("PIPELINE error", nil, err)
		for i, c := range cmds {
			r.cmd(fmt.Sprintf("PIPELINE %d %s", i, c.Name()), c)
		}
		cmds, err = a.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.Get(ctx, "p1")
			p.LRange(ctx, "p3", 0, -1)
			p.Ping(ctx)
			return nil
		})
		r.add("READ PIPELINE error", nil, err)
		for i, c := range cmds {
			r.cmd(fmt.Sprintf("READ PIPELINE %d %s", i, c.Name()), c)
		}
	}

	// Transactions.
	{
		cmds, err := a.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, "t1", "1", 0)
			p.Incr(ctx, "t1")
			p.Get(ctx, "t1")
			p.HSet(ctx, "t1", "f", "v") // WRONGTYPE at run time; the rest still runs
			p.RPush(ctx, "t2", "a")
			p.LPop(ctx, "t2")
			p.Exists(ctx, "t2")
			return nil
		})
		r.add("MULTI error", nil, err)
		for i, c := range cmds {
			r.cmd(fmt.Sprintf("MULTI %d %s", i, c.Name()), c)
		}
		conn := a.Conn()
		r.cmd("EXEC without MULTI", conn.Do(ctx, "EXEC"))
		r.cmd("DISCARD without MULTI", conn.Do(ctx, "DISCARD"))
		r.cmd("MULTI", conn.Do(ctx, "MULTI"))
		r.cmd("MULTI nested", conn.Do(ctx, "MULTI"))
		r.cmd("queued SET", conn.Do(ctx, "SET", "t3", "x"))
		r.cmd("queued unknown", conn.Do(ctx, "NOSUCH"))
		r.cmd("EXEC aborted", conn.Do(ctx, "EXEC"))
		r.cmd("GET t3", conn.Do(ctx, "GET", "t3"))
		r.cmd("MULTI 2", conn.Do(ctx, "MULTI"))
		r.cmd("queued SET 2", conn.Do(ctx, "SET", "t3", "x"))
		r.cmd("DISCARD", conn.Do(ctx, "DISCARD"))
		r.cmd("GET t3 after DISCARD", conn.Do(ctx, "GET", "t3"))
		r.cmd("MULTI 3", conn.Do(ctx, "MULTI"))
		r.cmd("EXEC empty", conn.Do(ctx, "EXEC"))
		r.cmd("MULTI 4", conn.Do(ctx, "MULTI"))
		r.cmd("queued GET", conn.Do(ctx, "GET", "t1"))
		r.cmd("queued arity", conn.Do(ctx, "GET"))
		r.cmd("EXEC after arity error", conn.Do(ctx, "EXEC"))
		conn.Close()
	}

	// Pub/sub: the subscriber on b, the publisher on a.
	{
		sub := b.Subscribe(ctx, "news")
		msg, err := sub.Receive(ctx)
		r.add("SUBSCRIBE", msg, err)
		if err := sub.PSubscribe(ctx, "ne*"); err != nil {
			r.add("PSUBSCRIBE", nil, err)
		}
		msg, err = sub.Receive(ctx)
		r.add("PSUBSCRIBE", msg, err)
		r.cmd("PUBLISH news", a.Publish(ctx, "news", "hello"))
		r.cmd("PUBLISH other", a.Publish(ctx, "sports", "nobody"))
		var got []string
		for range 2 {
			m, err := sub.ReceiveMessage(ctx)
			if err != nil {
				r.add("receive", nil, err)
				break
			}
			got = append(got, fmt.Sprintf("%s/%s/%s", m.Pattern, m.Channel, m.Payload))
		}
		r.add("messages", sortedStrings(got), nil)
		if err := sub.Unsubscribe(ctx, "news"); err != nil {
			r.add("UNSUBSCRIBE", nil, err)
		}
		msg, err = sub.Receive(ctx)
		r.add("UNSUBSCRIBE", msg, err)
		r.cmd("PUBLISH after unsubscribe", a.Publish(ctx, "news", "again"))
		m, err := sub.ReceiveMessage(ctx)
		if err == nil {
			r.add("pattern still gets", m.Pattern+"/"+m.Channel+"/"+m.Payload, nil)
		} else {
			r.add("pattern still gets", nil, err)
		}
		sub.Close()
	}

	// Errors.
	r.cmd("unknown command", a.Do(ctx, "NOSUCH", "a", "b"))
	r.cmd("unknown command no args", a.Do(ctx, "FOOBAR"))
	r.cmd("GET arity", a.Do(ctx, "GET"))
	r.cmd("SET arity", a.Do(ctx, "SET", "k"))
	r.cmd("HSET arity", a.Do(ctx, "HSET", "h", "f"))
	r.cmd("LPOP arity", a.Do(ctx, "LPOP", "l", "1", "2"))
	r.cmd("EXISTS arity", a.Do(ctx, "EXISTS"))
	r.cmd("PUBLISH arity", a.Do(ctx, "PUBLISH", "c"))
	r.cmd("CLIENT bad subcommand", a.Do(ctx, "CLIENT", "NOPE"))
	return r.lines
}

func TestDifferentialGoRedis(t *testing.T) {
	ref := startRedisServer(t)
	nodes := startCluster(t)
	fol := follower(nodes)
	other := nodes[0]
	if other == fol {
		other = nodes[1]
	}

	run := func(addrA, addrB string) []string {
		a := goredis.NewClient(&goredis.Options{Addr: addrA})
		b := goredis.NewClient(&goredis.Options{Addr: addrB})
		defer a.Close()
		defer b.Close()
		return script(t, a, b)
	}
	want := run(ref, ref)
	got := run(fol.redis.Addr(), other.redis.Addr())
	if diff := textdiff.Lines(want, got, "redis-server", "armada", 0); diff != "" {
		t.Errorf("Armada differs from redis-server:\n%s", diff)
	}
	t.Logf("%d steps compared", len(want))

	// redis-cli against both.
	cli := func(addr string, args ...string) string {
		host, port, _ := strings.Cut(addr, ":")
		out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%s (exit: %v)", out, err)
		}
		return string(out)
	}
	for _, args := range [][]string{
		{"SET", "cli", "1"}, {"INCR", "cli"}, {"GET", "cli"}, {"INCR", "foo"}, {"HSET", "clih", "a", "1", "b", "2"},
		{"HGETALL", "clih"}, {"RPUSH", "clil", "x", "y"}, {"LRANGE", "clil", "0", "-1"}, {"GET", "nothing"},
		{"TYPE", "clih"}, {"NOSUCH", "arg"}, {"GET"}, {"PING"}, {"LPOP", "nolist", "2"}, {"LRANGE", "nolist", "0", "-1"},
		{"HGETALL", "nokey"}, {"MGET", "cli", "nothing"}, {"BLPOP", "nolist", "0.1"}, {"LPUSH", "clih", "x"}, {"EXISTS", "cli", "clih"},
		{"DEL", "cli", "clih", "clil"}, {"KEYS", "cli*"},
	} {
		w, g := cli(ref, args...), cli(fol.redis.Addr(), args...)
		if w != g {
			t.Errorf("redis-cli %s:\n redis-server: %q\n armada:       %q", strings.Join(args, " "), w, g)
		}
	}
}
