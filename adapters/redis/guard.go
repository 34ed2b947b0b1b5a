package redis

import (
	"errors"
	"net"
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
	maxMultiBulk  = 1 << 20  // arguments in one command (Redis' own limit)
	maxCommandLen = 64 << 20 // all the arguments of one command
	maxInlineLen  = 64 << 10 // an inline command's line (Redis' own limit)
	maxHeaderLen  = 32       // a "*count" or "$length" line
	guardDeadline = time.Second
)

// errGuard ends a connection that broke a limit, after the guard told the
// client why.
var errGuard = errors.New("redis: protocol limit")

// guardListener hands out connections whose reads are checked by a guard.
type guardListener struct{ net.Listener }

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c}, nil
}

// guardConn follows the RESP framing of what the client sends. At the first
// length over a limit it lets redcon have that read (the commands before it
// are answered; the oversized one is incomplete, so redcon reads again),
// then answers Redis' protocol error for it and ends the connection: no
// more than one read's worth of the oversized argument is taken in.
type guardConn struct {
	net.Conn
	g      guard
	refuse string // why the next read ends the connection
}

func (c *guardConn) Read(p []byte) (int, error) {
	if c.refuse != "" {
		// redcon writes replies from the goroutine that reads, and only
		// between reads, so this cannot cut into a reply.
		c.Conn.SetWriteDeadline(time.Now().Add(guardDeadline))
		c.Conn.Write([]byte("-ERR Protocol error: " + c.refuse + "\r\n"))
		return 0, errGuard
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if ok, msg := c.g.scan(p[:n]); !ok {
			c.refuse = msg
		}
	}
	return n, err
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
	state   int // what the next byte is part of: one of the guard states
	line    []byte
	left    int64 // bytes of the current bulk string (and its CRLF) still to come
	args    int64 // bulk strings still to come in the current command
	cmdSize int64 // bytes of bulk strings in the current command so far
}

const (
	gStart  = iota // the first byte of a command
	gCount         // the "*count" line
	gDollar        // the '$' of the next argument
	gLen           // the "$length" line
	gBulk          // inside a bulk string
	gInline        // an inline command's line
	gStop          // past a framing error redcon answers: nothing more to check
)

// scan advances the guard over b. It reports false, with Redis' message,
// when the stream breaks a limit; framing errors that are not about sizes
// are left to redcon's parser.
func (g *guard) scan(b []byte) (bool, string) {
	for i := 0; i < len(b); {
		switch g.state {
		case gStart:
			if b[i] == '*' {
				g.state, g.line = gCount, g.line[:0]
			} else {
				g.state, g.line = gInline, g.line[:0]
				continue
			}
			i++
		case gCount, gLen, gInline:
			j := i
			for j < len(b) && b[j] != '\n' {
				j++
			}
			g.line = append(g.line, b[i:j]...)
			limit := maxHeaderLen
			if g.state == gInline {
				limit = maxInlineLen
			}
			if len(g.line) > limit {
				switch g.state {
				case gInline:
					return false, "too big inline request"
				case gCount:
					return false, "invalid multibulk length"
				}
				return false, "invalid bulk length"
			}
			if j == len(b) {
				return true, ""
			}
			i = j + 1
			if ok, msg := g.endLine(); !ok {
				return false, msg
			}
		case gDollar:
			if b[i] != '$' {
				g.state = gStop // redcon answers the framing error
				continue
			}
			g.state, g.line = gLen, g.line[:0]
			i++
		case gStop:
			return true, ""
		case gBulk:
			n := min(int64(len(b)-i), g.left)
			g.left -= n
			i += int(n)
			if g.left == 0 {
				g.nextArg()
			}
		}
	}
	return true, ""
}

// endLine acts on a complete line (without its '\n').
func (g *guard) endLine() (bool, string) {
	line := g.line
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	switch g.state {
	case gInline:
		g.state = gStart
	case gCount:
		n, ok := atoi(line)
		if !ok {
			g.state = gStop // not a count: redcon answers the framing error
			return true, ""
		}
		if n > maxMultiBulk {
			return false, "invalid multibulk length"
		}
		g.args, g.cmdSize = n, 0
		g.nextArgOrEnd()
	case gLen:
		n, ok := atoi(line)
		if !ok || n < 0 {
			g.state = gStop // redcon answers the framing error
			return true, ""
		}
		if n > maxBulkLen || g.cmdSize+n > maxCommandLen {
			return false, "invalid bulk length"
		}
		g.cmdSize += n
		g.left, g.state = n+2, gBulk // the bytes and their CRLF
	}
	return true, ""
}

func (g *guard) nextArg() {
	g.args--
	g.nextArgOrEnd()
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
