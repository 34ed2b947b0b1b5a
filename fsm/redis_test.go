package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
)

// rx builds a RedisExec from space-separated commands (no argument holds a
// space) stamped at now.
func rx(now int64, cmds ...string) *RedisExec {
	c := &RedisExec{Now: now}
	for _, line := range cmds {
		var argv [][]byte
		for _, a := range strings.Fields(line) {
			argv = append(argv, []byte(a))
		}
		c.Cmds = append(c.Cmds, argv)
	}
	return c
}

// replyString renders a reply compactly for comparisons.
func replyString(r RedisReply) string {
	switch r.Kind {
	case RedisStatus:
		return "+" + string(r.Str)
	case RedisErr:
		return "-" + string(r.Str)
	case RedisInt:
		return fmt.Sprintf(":%d", r.Int)
	case RedisBulk:
		return fmt.Sprintf("%q", r.Str)
	case RedisNil:
		return "nil"
	case RedisNilArray:
		return "*nil"
	case RedisArray:
		parts := make([]string, len(r.Arr))
		for i, a := range r.Arr {
			parts[i] = replyString(a)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return "?"
}

func requireReplies(t *testing.T, r *Result, want ...string) {
	t.Helper()
	if len(r.Redis) != len(want) {
		t.Fatalf("%d replies, want %d: %s", len(r.Redis), len(want), jsonString(r))
	}
	for i, w := range want {
		if got := replyString(r.Redis[i]); got != w {
			t.Errorf("reply %d = %s, want %s", i, got, w)
		}
	}
}

func redisExecCases() []cmdCase {
	return []cmdCase{
		{
			name: "strings, one namespace with the key space",
			cmd:  rx(1000, "SET foo bar", "GET foo", "APPEND foo !", "STRLEN foo", "SETNX foo x", "GETSET foo y", "MSET a 1 b 2", "MGET a b c"),
			check: func(t *testing.T, h *harness, r *Result) {
				requireReplies(t, r, "+OK", `"bar"`, ":4", ":4", ":0", `"bar!"`, "+OK", `["1" "2" nil]`)
				kv, ok := h.kv("foo")
				if !ok || string(kv.Value) != "y" || kv.Type != KVString || kv.Version != 3 || kv.ModRev != h.idx {
					t.Fatalf("foo = %+v", kv)
				}
				h.requireChanges(h.idx, ch("kv", "foo", "put"), ch("kv", "foo", "put"), ch("kv", "foo", "put"), ch("kv", "a", "put"), ch("kv", "b", "put"))
			},
		},
		{
			name:  "a /v1/kv key is a Redis string",
			setup: []Command{put("k", "41")},
			cmd:   rx(1000, "INCR k", "TYPE k"),
			check: func(t *testing.T, h *harness, r *Result) {
				requireReplies(t, r, ":42", "+string")
				if kv, _ := h.kv("k"); kv.Version != 2 || kv.CreateRev != 1 {
					t.Fatalf("k = %+v", kv)
				}
			},
		},
		{
			name: "hashes and lists are typed keys",
			cmd:  rx(1000, "HSET h f1 v1 f2 v2", "HINCRBY h n 3", "HGETALL h", "RPUSH l a b", "LPUSH l z", "LRANGE l 0 -1", "TYPE h", "TYPE l", "GET h", "HDEL h f1 f2 n", "EXISTS h"),
			check: func(t *testing.T, h *harness, r *Result) {
				requireReplies(t, r, ":2", ":3", `["f1" "v1" "f2" "v2" "n" "3"]`, ":2", ":3", `["z" "a" "b"]`, "+hash", "+list", "-"+errWrongType, ":3", ":0")
				kv, ok := h.kv("l")
				if !ok || kv.Type != KVList || !bytes.Equal(kv.Value, encodeList([][]byte{[]byte("z"), []byte("a"), []byte("b")})) {
					t.Fatalf("l = %+v", kv)
				}
			},
		},
		{
			name:  "a PUT over a hash makes it a string again",
			setup: []Command{rx(1000, "HSET h f v"), put("h", "plain")},
			cmd:   rx(1000, "GET h", "TYPE h"),
			check: func(t *testing.T, h *harness, r *Result) { requireReplies(t, r, `"plain"`, "+string") },
		},
		{
			name: "TTL through a lease of its own, from the stamped time",
			cmd:  rx(5000, "SET t v EX 10", "PTTL t", "TTL t", "PERSIST t", "TTL t", "PEXPIRE t 1500", "PTTL t"),
			check: func(t *testing.T, h *harness, r *Result) {
				requireReplies(t, r, "+OK", ":10000", ":10", ":1", ":-1", ":1", ":1500")
				kv, _ := h.kv("t")
				l, ok := h.lease(kv.Lease)
				if !ok || l.Expiry != 6500 || l.Key != "t" {
					t.Fatalf("lease %+v", l)
				}
				// The leases of the earlier TTLs ended with them.
				var leases int
				h.view(func(v *View) {
					for id := uint64(1); id <= h.idx+10; id++ {
						if _, ok := v.Lease(id); ok {
							leases++
						}
					}
				})
				if leases != 1 {
					t.Fatalf("%d leases left, want 1", leases)
				}
			},
		},
		{
			name:  "an expired key is absent at the stamped time, before Expire removes it",
			setup: []Command{rx(1000, "SET t v PX 100", "RPUSH l a")},
			cmd:   rx(1100, "GET t", "SET t w NX", "TTL t", "EXPIRE l 0", "EXISTS l"),
			check: func(t *testing.T, h *harness, r *Result) {
				requireReplies(t, r, "nil", "+OK", ":-1", ":1", ":0")
			},
		},
		{
			name: "errors are replies and change nothing",
			cmd:  rx(1000, "SET n 9223372036854775807", "INCR n", "SET s abc", "INCRBY s 1", "INCRBY n x", "LPUSH s x", "SET k v EX 0", "SET k v BOGUS", "HSET s f v", "LPOP s -1"),
			check: func(t *testing.T, h *harness, r *Result) {
				requireReplies(t, r, "+OK", "-"+errOverflow, "+OK", "-"+errNotInt, "-"+errNotInt, "-"+errWrongType,
					"-ERR invalid expire time in 'set' command", "-"+errSyntax, "-"+errWrongType, "-"+errNotPositive)
				if _, ok := h.kv("k"); ok {
					t.Fatal("k was written")
				}
			},
		},
		{
			name:  "a non-blocking BLPOP pops from the first list that has elements",
			setup: []Command{rx(1000, "RPUSH b x y")},
			cmd:   rx(1000, "BLPOP a b 0", "BRPOP a b 0", "BLPOP a b 0"),
			check: func(t *testing.T, h *harness, r *Result) {
				requireReplies(t, r, `["b" "x"]`, `["b" "y"]`, "*nil")
			},
		},
		{
			name: "the adapter's address record",
			cmd:  rx(1000, "armada.node n1 127.0.0.1:6379"),
			check: func(t *testing.T, h *harness, r *Result) {
				requireReplies(t, r, "+OK")
				h.view(func(v *View) {
					if got := v.RedisNodes(); got["n1"] != "127.0.0.1:6379" || len(got) != 1 {
						t.Fatalf("redis nodes %v", got)
					}
				})
			},
		},
		{name: "no commands", cmd: &RedisExec{Now: 1}, code: ErrInvalid, field: "cmds"},
		{name: "unknown command", setup: []Command{put("a", "1")}, cmd: rx(1, "SET a 2", "FLUSHALL"), code: ErrInvalid, field: "cmds[1]"},
		{name: "wrong number of arguments", cmd: rx(1, "GET"), code: ErrInvalid, field: "cmds[0]"},
		{name: "empty argv", cmd: &RedisExec{Cmds: [][][]byte{{}}}, code: ErrInvalid, field: "cmds[0]"},
	}
}

func TestApplyRedisExec(t *testing.T) { runCmdCases(t, redisExecCases()) }

func TestRedisReadMatchesApply(t *testing.T) {
	h := newHarness(t)
	h.ok(rx(1000, "SET s v EX 100", "HSET h a 1 b 2", "RPUSH l x y z", "SET n 5"))
	reads := []string{"GET s", "TTL s", "PTTL s", "HGETALL h", "HMGET h a zz", "LRANGE l 1 -1", "LLEN l", "MGET s h n",
		"KEYS *", "SCAN 0 COUNT 2", "SCAN 2 COUNT 2", "TYPE l", "EXISTS s h l n zz", "STRLEN h", "HLEN h", "HEXISTS h b", "ECHO hi", "PING"}
	r := h.ok(rx(2000, reads...))
	var got []RedisReply
	h.view(func(v *View) { got = v.RedisRead(rx(0, reads...).Cmds, 2000) })
	requireEqual(t, "view replies", got, r.Redis)
	h.view(func(v *View) {
		if rep := v.RedisRead(rx(0, "SET a b").Cmds, 0); rep[0].Kind != RedisErr {
			t.Fatalf("a write on a view: %s", replyString(rep[0]))
		}
		if !v.RedisHasList([]string{"zz", "l"}, 0) || !v.RedisHasList([]string{"h"}, 0) || v.RedisHasList([]string{"zz"}, 0) {
			t.Fatal("RedisHasList")
		}
	})
}

func TestKVEncodingWithoutTypeReadsAsString(t *testing.T) {
	old := &KV{Key: "k", Value: []byte("v"), CreateRev: 1, ModRev: 2, Version: 2, Lease: 0}
	b := encodeKV(old)
	if got := decodeKV("k", b); got == nil || got.Type != KVString {
		t.Fatalf("decode %+v", got)
	}
	typed := *old
	typed.Type = KVList
	tb := encodeKV(&typed)
	if got := decodeKV("k", tb); got == nil || got.Type != KVList {
		t.Fatalf("decode typed %+v", got)
	}
	if decodeKV("k", append(b, 9)) != nil || decodeKV("k", append(tb, 0)) != nil {
		t.Fatal("an unknown type or trailing bytes decoded")
	}
}

func TestRedisMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*c", "abbbc", true}, {"a*c", "abcd", false}, {"a?c", "abc", true},
		{"a?c", "ac", false}, {"[ab]x", "bx", true}, {"[^ab]x", "bx", false}, {"[a-c]", "b", true}, {"[c-a]", "b", true},
		{`\*`, "*", true}, {`\*`, "a", false}, {"h[^e]llo", "hallo", true}, {"k[12]", "k3", false}, {"**a", "ba", true},
		{"[abc", "a", true}, {"[abc", "ab", false},
	} {
		if got := RedisMatch([]byte(c.p), []byte(c.s)); got != c.ok {
			t.Errorf("RedisMatch(%q, %q) = %v, want %v", c.p, c.s, got, c.ok)
		}
	}
}

func TestRedisErrUnknownIsBounded(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 1000)
	msg := RedisErrUnknown([][]byte{[]byte("nope"), long, long})
	if len(msg) > 400 || !strings.HasPrefix(msg, "ERR unknown command 'nope', with args beginning with: 'xxx") {
		t.Fatalf("%d bytes: %s", len(msg), msg)
	}
}

// FuzzRedisExec decodes arbitrary RedisExec entries and applies what
// decodes: nothing may panic, and a decoded entry round-trips.
func FuzzRedisExec(f *testing.F) {
	f.Add(Encode(rx(1000, "SET a b EX 10", "GET a", "HSET h f v", "RPUSH l x", "BLPOP l 0")))
	f.Add(Encode(rx(0, "INCR a", "LRANGE l -5 5", "SCAN 0 MATCH [a-")))
	f.Add([]byte{byte(CmdRedisExec), 1, 2, 3, 's', 'e', 't', 1, 'k', 0})
	f.Add([]byte{byte(CmdRedisExec), 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || data[0] != byte(CmdRedisExec) {
			data = append([]byte{byte(CmdRedisExec)}, data...)
		}
		c, err := Decode(data)
		if err != nil {
			return
		}
		b := Encode(c)
		if !bytes.Equal(b, data) {
			c2, err := Decode(b)
			if err != nil || !bytes.Equal(Encode(c2), b) {
				t.Fatalf("re-encoding is not canonical: %v", err)
			}
		}
		if len(c.(*RedisExec).Cmds) > 64 {
			return
		}
		h := newHarness(t)
		h.ok(rx(0, "SET a 1", "HSET h f v", "RPUSH l x y"))
		r := h.apply(c)
		if r.Err == nil && len(r.Redis) != len(c.(*RedisExec).Cmds) {
			t.Fatalf("%d replies for %d commands", len(r.Redis), len(c.(*RedisExec).Cmds))
		}
		checkInvariants(t, h.s)
	})
}

// TestRedisTTLLeaseEndsWithItsKey: a key's Redis TTL lease ends when the
// key goes or is overwritten by any writer — /v1/kv's KVPut and KVDelete
// included — so no lease outlives its key.
func TestRedisTTLLeaseEndsWithItsKey(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name  string
		write Command
	}{
		{"KVPut over it", &KVPut{Key: "a", Value: []byte("plain"), Now: 1100}},
		{"KVDelete", &KVDelete{Key: "a"}},
		{"KVDelete by prefix", &KVDelete{Key: "a", Prefix: true}},
		{"Redis DEL", rx(1100, "DEL a")},
		{"Redis SET without KEEPTTL", rx(1100, "SET a b")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.ok(rx(1000, "SET a 1 EX 1000000"))
			kv, ok := h.kv("a")
			if !ok || kv.Lease == 0 {
				t.Fatalf("key %+v", kv)
			}
			h.ok(tc.write)
			if l, ok := h.lease(kv.Lease); ok {
				t.Errorf("lease %+v of the key outlives it", l)
			}
			checkInvariants(t, h.s)
		})
	}
}

// TestRedisArgumentLimit: a command with more arguments than an entry may
// carry is refused before it reaches the log.
func TestRedisArgumentLimit(t *testing.T) {
	argv := make([][]byte, MaxRedisArgs+1)
	argv[0], argv[1] = []byte("RPUSH"), []byte("l")
	for i := 2; i < len(argv); i++ {
		argv[i] = []byte("x")
	}
	r := RedisCheck(argv)
	if r == nil || r.Kind != RedisErr || !strings.Contains(string(r.Str), "arguments; the limit is") {
		t.Fatalf("RedisCheck = %+v", r)
	}
	if RedisCheck(argv[:MaxRedisArgs]) != nil {
		t.Fatal("a command at the limit refused")
	}
}

// TestRedisRepliesOfAnEntryAreBounded: reads pipelined with writes stop
// running once the entry's replies pass the limit; writes still run.
func TestRedisRepliesOfAnEntryAreBounded(t *testing.T) {
	h := newHarness(t)
	big := strings.Repeat("x", 400<<10)
	h.ok(&KVPut{Key: "big", Value: []byte(big), Now: 1000})
	cmds := []string{"SET w 1"}
	for range 40 { // 40 × 400 KiB = 16 MiB of replies asked for
		cmds = append(cmds, "GET big")
	}
	cmds = append(cmds, "SET w2 2")
	r := h.ok(rx(1000, cmds...))
	if got := r.Redis[1]; got.Kind != RedisBulk {
		t.Fatalf("first read: %s", replyString(got))
	}
	if got := r.Redis[len(cmds)-2]; got.Kind != RedisErr || !strings.Contains(string(got.Str), "exceed") {
		t.Fatalf("a read past the limit: %s", replyString(got))
	}
	if _, ok := h.kv("w2"); !ok {
		t.Fatal("the write after the limit did not run")
	}
}

// TestRedisBadListValueIsRefusedBySnapshotsAndReadsAsAbsent: a list or hash
// value that does not decode never reaches the state through a snapshot,
// and reads as absent rather than crash a pop.
func TestRedisBadListValueIsRefusedBySnapshotsAndReadsAsAbsent(t *testing.T) {
	for _, bad := range [][]byte{{0}, {2, 1, 'x'}, {1, 1, 'x', 9}} {
		if validRedisValue(KVList, bad) {
			t.Errorf("list value %x passes", bad)
		}
	}
	if !validRedisValue(KVList, encodeList([][]byte{[]byte("a")})) || !validRedisValue(KVHash, encodeHash([]hashPair{{[]byte("f"), []byte("v")}})) {
		t.Fatal("good values refused")
	}
	h := newHarness(t)
	h.view(func(*View) {}) // commits the open write transaction
	err := h.s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bKV).Put([]byte("l"), encodeKV(&KV{Key: "l", Value: []byte{0}, CreateRev: 1, ModRev: 1, Version: 1, Type: KVList}))
	})
	if err != nil {
		t.Fatal(err)
	}
	r := h.ok(rx(1000, "LPOP l", "RPOP l 2", "LLEN l"))
	requireReplies(t, r, "nil", "*nil", ":0")
}

// A removed node's Redis adapter address goes with it, so that PUBLISH no
// longer fans out to it.
func TestNodeRemoveForgetsItsRedisAddress(t *testing.T) {
	h := newHarness(t)
	h.ok(&NodeUpsert{Node: Node{Name: "n1", Status: NodeAlive}, Now: 1})
	h.ok(&NodeUpsert{Node: Node{Name: "n2", Status: NodeAlive}, Now: 1})
	h.ok(rx(1, "armada.node n1 10.0.0.1:6379", "armada.node n2 10.0.0.2:6379"))
	idx := h.ok(&NodeRemove{Name: "n1"}).Index
	var nodes map[string]string
	h.view(func(v *View) { nodes = v.RedisNodes() })
	if fmt.Sprint(nodes) != "map[n2:10.0.0.2:6379]" {
		t.Fatalf("redis nodes after removing n1: %v", nodes)
	}
	found := false
	for _, c := range h.changesAt(idx) {
		found = found || c.Topic == "redis_node" && c.Key == "n1" && c.Op == "delete"
	}
	if !found {
		t.Errorf("no redis_node delete change: %+v", h.changesAt(idx))
	}
}

// RedisClock is the latest leader time stamped on a RedisExec; it never
// goes back.
func TestRedisClockFollowsStampedTime(t *testing.T) {
	h := newHarness(t)
	clock := func() (ms int64) {
		h.view(func(v *View) { ms = v.RedisClock() })
		return ms
	}
	if c := clock(); c != 0 {
		t.Fatalf("clock before any entry = %d", c)
	}
	h.ok(rx(5000, "SET a 1"))
	h.ok(rx(4000, "GET a")) // a leader with a slower clock
	if c := clock(); c != 5000 {
		t.Fatalf("clock = %d, want 5000", c)
	}
	h.ok(rx(7000, "GET a"))
	if c := clock(); c != 7000 {
		t.Fatalf("clock = %d, want 7000", c)
	}
}

// ARMADA.POP applied again with the same ID answers the element the first
// one took and takes no other; old answers are dropped after
// PopRetention.
func TestArmadaPopIsIdempotent(t *testing.T) {
	h := newHarness(t)
	h.ok(rx(1000, "RPUSH q x y z"))
	id := func(ms int64, n byte) string {
		b := make([]byte, PopIDLen)
		binary.BigEndian.PutUint64(b, uint64(ms))
		b[15] = n
		return string(b)
	}
	pop := func(now int64, id string) *RedisExec {
		return &RedisExec{Now: now, Cmds: [][][]byte{{[]byte("armada.pop"), []byte(id), []byte("BLPOP"), []byte("q"), []byte("0")}}}
	}
	requireReplies(t, h.ok(pop(1000, id(1000, 1))), `["q" "x"]`)
	requireReplies(t, h.ok(pop(1001, id(1000, 1))), `["q" "x"]`)
	requireReplies(t, h.ok(rx(1002, "LRANGE q 0 -1")), `["y" "z"]`)
	requireReplies(t, h.ok(pop(1003, id(1003, 2))), `["q" "y"]`)
	// Long after, a new pop drops both records: the first ID pops anew.
	later := int64(1003 + PopRetention + 1)
	requireReplies(t, h.ok(pop(later, id(later, 3))), `["q" "z"]`)
	requireReplies(t, h.ok(pop(later, id(1000, 1))), `*nil`)
	h.ok(rx(later, "RPUSH q w"))
	requireReplies(t, h.ok(pop(later, id(1000, 1))), `["q" "w"]`)
	// A bad ID changes nothing.
	requireReplies(t, h.ok(pop(later, "short")), `-ERR armada: bad pop`)
	checkInvariants(t, h.s)
}

// TestParseScanCursor reads cursors as Redis' strtoul does: a sign, digits,
// 64 bits, a minus wrapping around.
func TestParseScanCursor(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "+7": 7, "-1": 1<<64 - 1, "-0": 0, "18446744073709551615": 1<<64 - 1} {
		if got, ok := parseScanCursor(in); !ok || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-", "+", " 1", "1 ", "x", "+-1", "18446744073709551616", "0x10"} {
		if got, ok := parseScanCursor(in); ok {
			t.Errorf("%q: read as %d", in, got)
		}
	}
}
