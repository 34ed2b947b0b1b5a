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
	maxInlineLen  = 64 << 10 // an inline command's line (Redis' own limit)
	maxHeaderLen  = 32       // a "*count" or "$length" line
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
//   - the two bytes after a bulk string become CRLF, as Redis skips them
//     unread (redcon would refuse anything else);
//   - an inline command is split into arguments as Redis splits it (quotes,
//     escapes and all) and handed on in RESP;
//   - until the connection has given the password, a command of more than
//     10 arguments or an argument over 16 KiB gets Redis' "unauthenticated"
//     protocol error. The guard reads ahead of the commands redcon runs, so
//     at such a length it first stops: once redcon has run everything before
//     it (an AUTH among them, perhaps) and reads again, it decides.
type guardConn struct {
	net.Conn
	g      guard
	in     []byte // read from the socket
	rest   []byte // the part of in the guard stopped before
	out    []byte // what the guard made of the last read
	ready  []byte // the part of out redcon has not read yet
	refuse string // why the next read ends the connection
	authed atomic.Bool
}

func (c *guardConn) Read(p []byte) (int, error) {
	for len(c.ready) == 0 {
		if c.refuse != "" {
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
		c.g.preAuth = !c.authed.Load()
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
	state   int    // what the next byte is part of: one of the guard states
	line    []byte // the count, length or inline line so far
	left    int64  // bytes of the current bulk string still to come
	skip    int    // bytes after it still to come (the CRLF Redis does not check)
	args    int64  // bulk strings still to come in the current command
	cmdSize int64  // bytes of bulk strings in the current command so far
	nul     bool   // the inline line has a NUL byte
	preAuth bool   // apply Redis' limits for a connection without the password
	stopped bool   // the line is whole, but over a pre-auth limit: to decide on the next feed
}

const (
	gStart  = iota // the first byte of a command
	gCount         // the "*count" line
	gDollar        // the '$' of the next argument
	gLen           // the "$length" line
	gBulk          // inside a bulk string, or the two bytes after it
	gInline        // an inline command's line
)

// feed advances the guard over in and appends to out what redcon is to
// see of it. It reports false, with Redis' message, at the first byte that
// breaks a limit or the framing; out then ends before it. It stops, having
// used the first n bytes of in, at a length over a pre-auth limit; the next
// feed decides on it first, before it goes on with what follows.
func (g *guard) feed(out, in []byte) (_ []byte, n int, ok bool, msg string) {
	if g.stopped {
		g.stopped = false
		if out, msg = g.endLine(out); msg != "" {
			return out, 0, false, msg
		}
	}
	for i := 0; i < len(in); {
		switch g.state {
		case gStart:
			if in[i] == '*' {
				g.state, g.line = gCount, g.line[:0]
				i++
			} else {
				g.state, g.line = gInline, g.line[:0]
			}
		case gCount, gLen, gInline:
			j := i
			for j < len(in) && (in[j] != '\n' || g.nul) {
				if in[j] == 0 && g.state == gInline {
					// Redis looks for the end of an inline line with strchr,
					// which stops at a NUL: the line never ends, and grows
					// into "too big inline request".
					g.nul = true
				}
				j++
			}
			g.line = append(g.line, in[i:j]...)
			if len(g.line) > g.lineLimit() {
				return out, j, false, g.tooLong()
			}
			if j == len(in) {
				return out, j, true, ""
			}
			i = j + 1
			if g.overPreAuth() {
				g.stopped = true
				return out, i, true, ""
			}
			if out, msg = g.endLine(out); msg != "" {
				return out, i, false, msg
			}
		case gDollar:
			if in[i] != '$' {
				return out, i, false, "expected '$', got '" + string(in[i:i+1]) + "'"
			}
			g.state, g.line = gLen, g.line[:0]
			i++
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

// overPreAuth reports whether the whole line in g.line is a count or a
// length over a pre-auth limit that is not over the general ones.
func (g *guard) overPreAuth() bool {
	if !g.preAuth || g.state != gCount && g.state != gLen {
		return false
	}
	line, cr := bytes.CutSuffix(g.line, []byte("\r"))
	n, ok := atoi(line)
	if !ok || !cr {
		return false // not a number: endLine refuses it
	}
	if g.state == gCount {
		return n > maxMultiBulkPreAuth && n <= maxMultiBulk
	}
	return n > maxBulkLenPreAuth && n <= maxBulkLen && g.cmdSize+n <= maxCommandLen
}

func (g *guard) lineLimit() int {
	if g.state == gInline {
		return maxInlineLen
	}
	return maxHeaderLen
}

// tooLong is Redis' message for a line over its limit.
func (g *guard) tooLong() string {
	switch g.state {
	case gInline:
		return "too big inline request"
	case gCount:
		return "invalid multibulk length"
	}
	return "invalid bulk length"
}

// endLine acts on a complete line (without its '\n'), appending to out
// what redcon is to see of it; it returns Redis' message for a bad one.
func (g *guard) endLine(out []byte) ([]byte, string) {
	line, cr := g.line, len(g.line) > 0 && g.line[len(g.line)-1] == '\r'
	if cr {
		line = line[:len(line)-1]
	}
	switch g.state {
	case gInline:
		g.state = gStart
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
	case gCount:
		n, ok := atoi(line)
		if !ok || !cr || n > maxMultiBulk {
			return out, "invalid multibulk length"
		}
		if g.preAuth && n > maxMultiBulkPreAuth {
			return out, "unauthenticated multibulk length"
		}
		if n <= 0 { // Redis skips it; redcon would refuse it
			g.state = gStart
			return out, ""
		}
		out = append(append(append(out, '*'), g.line...), '\n')
		g.args, g.cmdSize = n, 0
		g.nextArgOrEnd()
	case gLen:
		n, ok := atoi(line)
		if !ok || !cr || n < 0 || n > maxBulkLen || g.cmdSize+n > maxCommandLen {
			return out, "invalid bulk length"
		}
		if g.preAuth && n > maxBulkLenPreAuth {
			return out, "unauthenticated bulk length"
		}
		out = append(append(append(out, '$'), g.line...), '\n')
		g.cmdSize += n
		g.left, g.skip, g.state = n, 2, gBulk
	}
	return out, ""
}

func (g *guard) nextArgOrEnd() {
	if g.args > 0 {
		g.state = gDollar
	} else {
		g.state = gStart
	}
}

// atoi reads a decimal integer of at most 18 digits, with an optional
// minus sign.
func atoi(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
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
		inDouble, inSingle := false, false
		for done := false; !done; {
			c := at(i)
			switch {
			case inDouble:
				switch {
				case c == '\\' && at(i+1) == 'x' && isHex(at(i+2)) && isHex(at(i+3)):
					arg = append(arg, unhex(at(i+2))<<4|unhex(at(i+3)))
					i += 3
				case c == '\\' && at(i+1) != 0:
					i++
					arg = append(arg, unescape(at(i)))
				case c == '"':
					if n := at(i + 1); n != 0 && !isSpace(n) {
						return nil, false
					}
					done = true
				case c == 0:
					return nil, false
				default:
					arg = append(arg, c)
				}
			case inSingle:
				switch {
				case c == '\\' && at(i+1) == '\'':
					i++
					arg = append(arg, '\'')
				case c == '\'':
					if n := at(i + 1); n != 0 && !isSpace(n) {
						return nil, false
					}
					done = true
				case c == 0:
					return nil, false
				default:
					arg = append(arg, c)
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inDouble = true
				case '\'':
					inSingle = true
				default:
					arg = append(arg, c)
				}
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
