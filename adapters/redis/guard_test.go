package redis

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
)

// scanAll runs a guard over b in random pieces.
func scanAll(b []byte, rng *rand.Rand) (bool, string, *guard) {
	g := &guard{}
	for len(b) > 0 {
		n := 1 + rng.IntN(len(b))
		if ok, msg := g.scan(b[:n]); !ok {
			return false, msg, g
		}
		b = b[n:]
	}
	return true, "", g
}

func resp(args ...string) string {
	s := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		s += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	return s
}

// TestGuard passes what is within the limits, however it is split, and
// stops at the first length over one with Redis' message.
func TestGuard(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	big := strings.Repeat("x", 600<<10)
	for _, c := range []struct {
		name, in, msg string
	}{
		{"commands", resp("SET", "k", "v") + resp("GET", "k") + "PING\r\n" + resp("MSET", "a", big, "b", "\r\n$9\r\n"), ""},
		{"empty and inline", "*0\r\n\r\nPING\n" + resp("ECHO", ""), ""},
		{"bulk over the limit", resp("SET", "k") + fmt.Sprintf("*2\r\n$3\r\nSET\r\n$%d\r\n", maxBulkLen+1), "invalid bulk length"},
		{"a gigabyte", "*1\r\n$536870913\r\n", "invalid bulk length"},
		{"too many arguments", fmt.Sprintf("*%d\r\n", maxMultiBulk+1), "invalid multibulk length"},
		{"a count line that never ends", "*" + strings.Repeat("1", 40), "invalid multibulk length"},
		{"a length line that never ends", "*1\r\n$" + strings.Repeat("1", 40), "invalid bulk length"},
		{"a command over the limit", fmt.Sprintf("*17\r\n$3\r\nSET\r\n%s$%d\r\n", strings.Repeat(fmt.Sprintf("$%d\r\n%s\r\n", 4<<20, strings.Repeat("y", 4<<20)), 15), 4<<20), "invalid bulk length"},
		{"inline over the limit", strings.Repeat("a", maxInlineLen+1), "too big inline request"},
	} {
		for range 5 {
			ok, msg, g := scanAll([]byte(c.in), rng)
			if c.msg == "" && (!ok || g.state != gStart) {
				t.Fatalf("%s: refused (%q) or left mid-command (state %d)", c.name, msg, g.state)
			}
			if c.msg != "" && (ok || msg != c.msg) {
				t.Fatalf("%s: %v %q, want %q", c.name, ok, msg, c.msg)
			}
		}
	}
}

// FuzzGuard: the guard never panics, and its verdict does not depend on
// how the stream is split.
func FuzzGuard(f *testing.F) {
	f.Add([]byte(resp("SET", "k", "v")+"PING\r\n"), uint64(1))
	f.Add([]byte("*1\r\n$536870913\r\n"), uint64(2))
	f.Add([]byte("*3\r\n$-1\r\n*x\r\n"), uint64(3))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		whole := &guard{}
		ok1, msg1 := whole.scan(in)
		ok2, msg2, _ := scanAll(in, rand.New(rand.NewPCG(seed, 7)))
		if ok1 != ok2 || msg1 != msg2 {
			t.Fatalf("at once %v %q, in pieces %v %q", ok1, msg1, ok2, msg2)
		}
	})
}

// TestOversizedBulkIsRefused: a client announcing a bulk string over the
// limit gets Redis' protocol error at once and its connection ends, before
// the server reads the body; other clients carry on.
func TestOversizedBulkIsRefused(t *testing.T) {
	n := startNode(t, t.TempDir(), "n1", "", nil)
	c, err := net.DialTimeout("tcp", n.redis.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(resp("PING") + "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\nxxxx")); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(c)
	got, _ := io.ReadAll(rd)
	if string(got) != "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n" {
		t.Fatalf("answer %q", got)
	}
	other, err := net.DialTimeout("tcp", n.redis.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetDeadline(time.Now().Add(10 * time.Second))
	other.Write([]byte(resp("PING")))
	if line, err := bufio.NewReader(other).ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("another client: %q %v", line, err)
	}
}
