package redis

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits on what a client may send, checked as the bytes arrive: redcon
// buffers a whole command before it parses it, so a bulk string announced
// as a gigabyte would otherwise be read into memory to the end. Values are
// at most fsm.MaxValueLen (512 KiB) and keys 1 KiB, so a longer bulk string
// can never be a valid write; PUBLISH is the only command that could use
// one, and its messages are capped here too.
const (
	maxBulkLen    = 4 << 20  // one argument
	maxMultiBulk  = 1 << 20  // arguments in one command (Redis 6's limit; Redis 7 allows more)
	maxCommandLen = 64 << 20 // all the arguments of one command
	maxInlineLen  = 64 << 10 // an inline command's line, or a count or length line (Redis' own limit)
	guardDeadline = time.Second

	// Redis' smaller limits for a connection that has not given the
	// password yet.
	maxMultiBulkPreAuth = 10
	maxBulkLenPreAuth   = 16 << 10
)

// errGuard ends a connection that broke a limit or the framing, after the
// guard told the client why.
var errGuard = errors.New("redis: protocol error")

// guardListener hands out connections whose reads go through a guard.
type guardListener struct {
	net.Listener
	password bool // connections must AUTH: Redis' pre-auth limits apply until they do
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	gc := newGuardConn(c)
	gc.g.password = l.password
	gc.authed.Store(!l.password)
	return gc, nil
}

func newGuardConn(c net.Conn) *guardConn {
	gc := &guardConn{Conn: c, in: make([]byte, 16<<10)}
	gc.authed.Store(true)
	return gc
}

// guardConn reads what the client sends through a guard, which hands redcon
// the stream as Redis would parse it:
//   - at the first length over a limit, or the first framing error, redcon
//     gets what came before it (the commands there are answered; redcon
//     itself would drop a whole read at a framing error); the guard then
//     answers Redis' protocol error and ends the connection, and no more
//     than one read's worth of an oversized argument is taken in;
//   - commands of no arguments ("*0", a negative count, an empty line) are
//     dropped, as Redis skips them without an answer (redcon would refuse
//     the first two);
//   - a count or length line ends, as in Redis, at its first CR (not after
//     a NUL), and the byte after the CR is skipped unread, as are the two
//     bytes after a bulk string: redcon gets CRLF for them;
//   - an inline command is split into arguments as Redis splits it (quotes,
//     escapes and all) and handed on in RESP;
//   - until the connection has given the password, a command of more than
//     10 arguments or an argument over 16 KiB gets Redis' "unauthenticated"
//     protocol error. The guard reads ahead of the commands redcon runs, so
//     at such a length after a command it handed on in the same read (an
//     AUTH or a RESET, perhaps) it stops: once redcon has run them and reads
//     again, it decides.
type guardConn struct {
	net.Conn
	g      guard
	in     []byte // read from the socket
	rest   []byte // the part of in the guard stopped before
	out    []byte // what the guard made of the last read
	ready  []byte // the part of out redcon has not read yet
	refuse string // why the next read ends the connection
	authed atomic.Bool
	// detached: a subscriber's goroutine reads, and others write replies;
	// a refusal is then returned as a protocolError for it to queue.
	detached atomic.Bool
}

// protocolError is a refusal returned to a detached connection's reader.
type protocolError struct{ msg string }

func (e protocolError) Error() string { return "ERR Protocol error: " + e.msg }

func (c *guardConn) Read(p []byte) (int, error) {
	for len(c.ready) == 0 {
		if c.refuse != "" {
			if c.detached.Load() {
				return 0, protocolError{c.refuse}
			}
			// redcon writes replies from the goroutine that reads, and only
			// between reads, so this cannot cut into a reply.
			c.Conn.SetWriteDeadline(time.Now().Add(guardDeadline))
			c.Conn.Write([]byte("-ERR Protocol error: " + c.refuse + "\r\n"))
			return 0, errGuard
		}
		in, err := c.rest, error(nil)
		if len(in) == 0 && !c.g.stopped {
			var n int
			n, err = c.Conn.Read(c.in)
			in = c.in[:n]
		}
		c.g.preAuth = c.g.password && !c.authed.Load()
		var used int
		var ok bool
		c.out, used, ok, c.refuse = c.g.feed(c.out[:0], in)
		c.rest, c.ready = in[used:], c.out
		if ok && err != nil && len(c.ready) == 0 {
			return 0, err
		}
	}
	n := copy(p, c.ready)
	c.ready = c.ready[n:]
	return n, nil
}

// SyscallConn is the socket's, for connGone's peek.
func (c *guardConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("redis: not a socket")
	}
	return sc.SyscallConn()
}

// guard is the state of a RESP stream between reads.
type guard struct {
	state    int    // what the next byte is part of: one of the guard states
	line     []byte // the count, length or inline line so far, without its terminator
	nul      bool   // the line has a NUL byte: it never ends (Redis' strchr stops there)
	cr       bool   // the count or length line has ended at a CR: the byte after it is skipped
	left     int64  // bytes of the current bulk string still to come
	skip     int    // bytes after it still to come (the CRLF Redis does not check)
	args     int64  // bulk strings still to come in the current command
	cmdSize  int64  // bytes of bulk strings in the current command so far
	password bool   // the connection must give a password: Redis' pre-auth limits may apply
	preAuth  bool   // it has not given it (as of this feed)
	sent     bool   // a command ended earlier in this feed: it has not run yet
	stopped  bool   // the line is whole, but its verdict waits for the next feed
}

const (
	gStart  = iota // the first byte of a command
	gCount         // the "*count" line, after the '*'
	gLen           // the "$length" line, from its '$'
	gBulk          // inside a bulk string, or the two bytes after it
	gInline        // an inline command's line
)

// feed advances the guard over in and appends to out what redcon is to
// see of it. It reports false, with Redis' message, at the first byte that
// breaks a limit or the framing; out then ends before it. It stops, having
// used the first n bytes of in, at a line whose verdict depends on whether
// the connection has given the password, when a command it handed on in
// this feed has not run yet; the next feed decides on it first.
func (g *guard) feed(out, in []byte) (_ []byte, n int, ok bool, msg string) {
	g.sent = false
	if g.stopped {
		g.stopped = false
		if out, msg = g.endLine(out); msg != "" {
			return out, 0, false, msg
		}
	}
	for i := 0; i < len(in); {
		switch g.state {
		case gStart:
			g.line, g.nul, g.cr = g.line[:0], false, false
			if in[i] == '*' {
				g.state = gCount
				i++
			} else {
				g.state = gInline
			}
		case gCount, gLen, gInline:
			if g.cr {
				g.cr = false
				i++ // Redis skips it unread
				if g.password && g.sent && g.verdict(true) != g.verdict(false) {
					g.stopped = true
					return out, i, true, ""
				}
				if out, msg = g.endLine(out); msg != "" {
					return out, i, false, msg
				}
				continue
			}
			end := byte('\r')
			if g.state == gInline {
				end = '\n'
			}
			j := i
			for ; j < len(in) && (in[j] != end || g.nul); j++ {
				if in[j] == 0 {
					g.nul = true
				}
			}
			g.line = append(g.line, in[i:j]...)
			if len(g.line) > maxInlineLen {
				return out, j, false, g.tooLong()
			}
			if j == len(in) {
				return out, j, true, ""
			}
			i = j + 1
			if g.state != gInline {
				g.cr = true
				continue
			}
			if out, msg = g.endLine(out); msg != "" {
				return out, i, false, msg
			}
		case gBulk:
			if g.left > 0 {
				n := min(int64(len(in)-i), g.left)
				out = append(out, in[i:i+int(n)]...)
				g.left -= n
				i += int(n)
				continue
			}
			n := min(len(in)-i, g.skip)
			out = append(out, "\r\n"[2-g.skip:2-g.skip+n]...)
			g.skip -= n
			i += n
			if g.skip == 0 {
				g.args--
				g.nextArgOrEnd()
			}
		}
	}
	return out, len(in), true, ""
}

// tooLong is Redis' message for a line over its limit.
func (g *guard) tooLong() string {
	switch g.state {
	case gInline:
		return "too big inline request"
	case gCount:
		return "too big mbulk count string"
	}
	return "too big bulk count string"
}

// Redis' own limits: its multibulk count is an int, and proto-max-bulk-len
// is 512 MB by default.
const (
	redisMaxMultiBulk = 1<<31 - 1
	redisMaxBulkLen   = 512 << 20
)

// verdict is Redis' message for the whole count or length line in g.line,
// for a connection that has given the password or not, or "" if it is
// good; the limits are Redis', then the pre-auth ones, then the guard's.
func (g *guard) verdict(preAuth bool) string {
	switch g.state {
	case gCount:
		n, ok := atoi(g.line)
		switch {
		case !ok || n > redisMaxMultiBulk:
			return "invalid multibulk length"
		case preAuth && n > maxMultiBulkPreAuth:
			return "unauthenticated multibulk length"
		case n > maxMultiBulk:
			return "invalid multibulk length"
		}
	case gLen:
		if len(g.line) == 0 || g.line[0] != '$' {
			c := byte('\r') // the line is empty: its CR is where the '$' should be
			if len(g.line) > 0 {
				c = g.line[0]
			}
			if c == '\r' || c == '\n' {
				c = ' ' // as Redis' error replies
			}
			return "expected '$', got '" + string([]byte{c}) + "'"
		}
		n, ok := atoi(g.line[1:])
		switch {
		case !ok || n < 0 || n > redisMaxBulkLen:
			return "invalid bulk length"
		case preAuth && n > maxBulkLenPreAuth:
			return "unauthenticated bulk length"
		case n > maxBulkLen || g.cmdSize+n > maxCommandLen:
			return "invalid bulk length"
		}
	}
	return ""
}

// endLine acts on a complete line, appending to out what redcon is to see
// of it; it returns Redis' message for a bad one.
func (g *guard) endLine(out []byte) ([]byte, string) {
	switch g.state {
	case gInline:
		g.state = gStart
		line, _ := bytes.CutSuffix(g.line, []byte("\r"))
		args, ok := splitArgs(line)
		if !ok {
			return out, "unbalanced quotes in request"
		}
		if len(args) == 0 {
			return out, "" // Redis skips an empty line
		}
		out = append(out, '*')
		out = strconv.AppendInt(out, int64(len(args)), 10)
		out = append(out, '\r', '\n')
		for _, a := range args {
			out = append(out, '$')
			out = strconv.AppendInt(out, int64(len(a)), 10)
			out = append(out, '\r', '\n')
			out = append(out, a...)
			out = append(out, '\r', '\n')
		}
		g.sent = true
		return out, ""
	}
	if msg := g.verdict(g.preAuth); msg != "" {
		return out, msg
	}
	if g.state == gCount {
		n, _ := atoi(g.line)
		if n <= 0 { // Redis skips it; redcon would refuse it
			g.state = gStart
			return out, ""
		}
		out = append(append(append(out, '*'), g.line...), '\r', '\n')
		g.args, g.cmdSize = n, 0
		g.nextArgOrEnd()
		return out, ""
	}
	n, _ := atoi(g.line[1:])
	out = append(append(out, g.line...), '\r', '\n')
	g.cmdSize += n
	g.left, g.skip, g.state = n, 2, gBulk
	return out, ""
}

func (g *guard) nextArgOrEnd() {
	if g.args > 0 {
		g.state, g.line, g.nul = gLen, g.line[:0], false
	} else {
		g.state = gStart
		g.sent = true
	}
}

// atoi reads a decimal integer of at most 18 digits as Redis' string2ll
// does: an optional minus sign, no plus sign, no leading zero (but "0"),
// no "-0".
func atoi(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 || b[0] == '0' && (len(b) > 1 || neg) {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// splitArgs splits an inline command's line into arguments as Redis does:
// blanks separate them; in double quotes, \xHH and the escapes \n \r \t \b
// \a stand for their bytes and a backslash takes the next byte as it is;
// in single quotes, only \' is an escape; a closing quote must end its
// argument. It reports false for a quote that is not closed, or closed
// inside an argument. (A line with a NUL byte never gets here.)
func splitArgs(line []byte) ([][]byte, bool) {
	at := func(i int) byte { // the byte at i, NUL past the end
		if i < len(line) {
			return line[i]
		}
		return 0
	}
	var args [][]byte
	i := 0
	for {
		for at(i) != 0 && isSpace(at(i)) {
			i++
		}
		if at(i) == 0 {
			return args, true
		}
		arg := []byte{}
		var quote byte // the quote the argument is in, if any
		for done := false; !done; {
			c := at(i)
			switch {
			case quote == '"' && c == '\\' && at(i+1) == 'x' && isHex(at(i+2)) && isHex(at(i+3)):
				arg = append(arg, unhex(at(i+2))<<4|unhex(at(i+3)))
				i += 3
			case quote == '"' && c == '\\' && at(i+1) != 0:
				i++
				arg = append(arg, unescape(at(i)))
			case quote == '\'' && c == '\\' && at(i+1) == '\'':
				i++
				arg = append(arg, '\'')
			case quote != 0 && c == quote:
				if n := at(i + 1); n != 0 && !isSpace(n) {
					return nil, false // a closing quote must end its argument
				}
				done = true
			case quote != 0 && c == 0:
				return nil, false // not closed
			case quote != 0:
				arg = append(arg, c)
			case c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == 0:
				done = true
			case c == '"' || c == '\'':
				quote = c
			default:
				arg = append(arg, c)
			}
			if at(i) != 0 {
				i++
			}
		}
		args = append(args, arg)
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// unescape is the byte a backslash and c stand for in double quotes.
func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}
