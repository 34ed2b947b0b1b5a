package redis

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/redcon"
)

// feedAll runs a guard over b in random pieces (one piece when rng is
// nil), as guardConn does, and returns what it hands on.
func feedAll(b []byte, rng *rand.Rand, preAuth bool) ([]byte, bool, string, *guard) {
	g := &guard{password: preAuth, preAuth: preAuth}
	var out []byte
	for len(b) > 0 || g.stopped {
		n := len(b)
		if rng != nil && n > 0 {
			n = 1 + rng.IntN(len(b))
		}
		piece := b[:n]
		for len(piece) > 0 || g.stopped {
			var used int
			var ok bool
			var msg string
			if out, used, ok, msg = g.feed(out, piece); !ok {
				return out, false, msg, g
			}
			piece = piece[used:]
		}
		b = b[n:]
	}
	return out, true, "", g
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
		{"an inline line with a NUL never ends", "ECHO a\x00b\r\n" + strings.Repeat("PING\r\n", maxInlineLen/6), "too big inline request"},
		{"a count line that never ends", "*" + strings.Repeat("1", maxInlineLen+1), "too big mbulk count string"},
		{"a length line that never ends", "*1\r\n$" + strings.Repeat("1", maxInlineLen), "too big bulk count string"},
		{"a count line with a NUL never ends", "*1\x00\r\n" + strings.Repeat("PING\r\n", maxInlineLen/6+1), "too big mbulk count string"},
		{"a command over the limit", fmt.Sprintf("*17\r\n$3\r\nSET\r\n%s$%d\r\n", strings.Repeat(fmt.Sprintf("$%d\r\n%s\r\n", 4<<20, strings.Repeat("y", 4<<20)), 15), 4<<20), "invalid bulk length"},
		{"inline over the limit", strings.Repeat("a", maxInlineLen+1), "too big inline request"},
	} {
		for range 5 {
			_, ok, msg, g := feedAll([]byte(c.in), rng, false)
			if c.msg == "" && (!ok || g.state != gStart) {
				t.Fatalf("%s: refused (%q) or left mid-command (state %d)", c.name, msg, g.state)
			}
			if c.msg != "" && (ok || msg != c.msg) {
				t.Fatalf("%s: %v %q, want %q", c.name, ok, msg, c.msg)
			}
		}
	}
}

// FuzzGuard: the guard never panics, and neither its verdict nor what it
// hands on depends on how the stream is split.
func FuzzGuard(f *testing.F) {
	f.Add([]byte(resp("SET", "k", "v")+"PING\r\n"), uint64(1))
	f.Add([]byte("*1\r\n$536870913\r\n"), uint64(2))
	f.Add([]byte("*3\r\n$-1\r\n*x\r\n"), uint64(3))
	f.Add([]byte("*0\r\n*-1\r\nECHO \"a\\x41\" 'b\\'c'\r\n\r\n*1\r\n$4\r\nPINGxx"), uint64(4))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		preAuth := seed%2 == 1
		out1, ok1, msg1, _ := feedAll(in, nil, preAuth)
		out2, ok2, msg2, _ := feedAll(in, rand.New(rand.NewPCG(seed, 7)), preAuth)
		if ok1 != ok2 || msg1 != msg2 || string(out1) != string(out2) {
			t.Fatalf("at once %v %q %q, in pieces %v %q %q", ok1, msg1, out1, ok2, msg2, out2)
		}
		// What the guard hands on is always RESP that redcon takes.
		rd := redcon.NewReader(bytes.NewReader(out1))
		for {
			_, err := rd.ReadCommands()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("redcon refused what the guard handed on (%q): %v", out1, err)
			}
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

// readThrough writes chunks one by one into a guardConn over a pipe (each
// write is one read on the other side) and returns what the guard hands
// on, read into buffers of size bufSize.
func readThrough(t *testing.T, chunks []string, bufSize int) string {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		for _, c := range chunks {
			client.Write([]byte(c))
		}
		client.Close()
	}()
	gc := newGuardConn(server)
	var out []byte
	buf := make([]byte, bufSize)
	for {
		n, err := gc.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return string(out)
		}
	}
}

// TestGuardDropsEmptyCommands: "*0" and negative counts never reach redcon,
// however the stream is cut, and nothing else is lost or reordered (an
// inline command is handed on in RESP).
func TestGuardDropsEmptyCommands(t *testing.T) {
	want := resp("PING") + resp("PING") + resp("ECHO", "*0\r\n") + resp("GET", "k")
	for _, c := range []struct {
		name   string
		chunks []string
	}{
		{"whole", []string{"*0\r\n" + resp("PING") + "*-1\r\nPING\r\n*0\r\n" + resp("ECHO", "*0\r\n") + "*-12\r\n" + resp("GET", "k")}},
		{"count lines cut", []string{"*", "0\r", "\n" + resp("PING") + "*-", "1\r\nPING\r\n*0", "\r\n" + resp("ECHO", "*0\r\n") + "*", "-12\r\n*", "2\r\n$3\r\nGET\r\n$1\r\nk\r\n"}},
		{"byte by byte", strings.Split("*0\r\n"+resp("PING")+"*-1\r\nPING\r\n"+resp("ECHO", "*0\r\n")+"*-12\r\n"+resp("GET", "k"), "")},
	} {
		for _, size := range []int{1, 3, 4096} {
			if got := readThrough(t, c.chunks, size); got != want {
				t.Errorf("%s, reads of %d: handed on %q, want %q", c.name, size, got, want)
			}
		}
	}
}

// TestFramingDifferential: the same bytes get the same answers from
// redis-server and from the adapter, byte for byte: empty commands,
// framing errors after good commands, the bytes after a bulk string,
// inline commands with quotes and escapes, a NUL in an inline line, and
// each session's own ending (QUIT, or the error that closes it).
func TestFramingDifferential(t *testing.T) {
	ref := startRedisServer(t)
	s := startLocal(t)
	sessions := [][]string{
		{"*0\r\n*-1\r\n" + resp("SET", "k", "v") + "*0\r\nPING\r\n*", "-3\r\n" + resp("GET", "k") + "*0\r\n*1\r\n$-1\r\n"},
		{"PING\r\n" + resp("PING") + "*1\r\nx4\r\nPING\r\n"},
		{"PING\r\n*1\n$4\r\nPING\r\n"},
		{"PING\r\n*1\r\n$4\nPING\r\n"},
		{"PING\r\n*x\r\n"},
		{"PING\r\n*\r\n"},
		{resp("ECHO", "x") + "*1\r\n*1\r\n"},
		{"PING\r\n*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPI", "NG\r\n*2\r\n$4\r\nECHO\r\n$2\r\nab\n\n", "QUIT\r\n"},
		{"*01\r\n$4\r\nPING\r\n"},
		{"PING\r\n*1\r\n$04\r\nPING\r\n"},
		{"PING\r\n*-0\r\n"},
		{"PING\r\n*1\r\n$-0\r\n"},
		{"PING\r\n*+1\r\n"},
		{"*1\rX$4\rXPING\r\n" + resp("ECHO", "a\rb") + "QUIT\r\n"},
		{"PING\r\n*1\r\n\r\n"},
		{"PING\r\n*1\r\n\n4\r\n"},
		{"PING\r\n*1\r\n\x01$4\r\n"},
		{"PING\r\nRESET\r\n" + resp("DEL", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j") + "QUIT\r\n"},
		{"SUBSCRIBE ch\r\n*x\r\n"},
		{"SUBSCRIBE ch\r\nPING\r\nPING a\r\n*1\r\n$-5\r\n"},
		{"PING\r\nECHO \"a\r\n"},
		{"PING\r\nECHO \"a\"b\r\n"},
		{"PING\r\nECHO 'a\r\n"},
		{"PING\r\nECHO a\"b\r\n"},
		{"DEL l\r\n", "RPUSH l a \"b c\" 'd e' \"\\x4g\" x\ty \"\\x41\\a\\\"q\\n\" 'it\\'s' a\"b\" ''  \"\"\r\n",
			"\r\n   \r\n\n\t\r\nLRANGE l 0 -1\r\nECHO \"x\\\"\r\nQUIT\r\n"},
	}
	for i, chunks := range sessions {
		want, got := sendRaw(t, ref, chunks), sendRaw(t, s.Addr(), chunks)
		if got != want {
			t.Errorf("session %d %q:\nredis-server answered\n%q\nArmada answered\n%q", i, chunks, want, got)
		}
		if !strings.Contains(want, "Protocol error") && !strings.HasSuffix(want, "+OK\r\n") {
			t.Errorf("session %d: the reference neither refused nor quit: %q", i, want)
		}
	}
}

// sendRaw writes chunks to addr, one write each, and returns every byte
// the server answers until it closes the connection.
func sendRaw(t *testing.T, addr string, chunks []string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, c := range chunks {
		if _, err := conn.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	out, err := io.ReadAll(conn)
	// A server that closes with input unread resets the connection.
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %s: %v (so far %q)", addr, err, out)
	}
	return string(out)
}
