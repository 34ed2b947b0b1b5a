package redis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/redcon"

	"github.com/armada-orchestrator/armada/fsm"
)

// localApplier applies commands straight to one state, as a single-node
// cluster's leader would.
type localApplier struct {
	mu sync.Mutex
	st *fsm.State
}

func (a *localApplier) Apply(_ context.Context, c fsm.Command) (*fsm.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fsm.Stamp(c, time.Now())
	r := a.st.Apply(a.st.Index()+1, fsm.Encode(c))
	if r.Err != nil {
		return r, r.Err
	}
	return r, nil
}

// localServer is a Server over a local state, not listening anywhere.
func localServer(tb testing.TB) *Server {
	tb.Helper()
	st, err := fsm.Open(filepath.Join(tb.TempDir(), "state.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	s := New(st, &localApplier{st: st}, Config{})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	tb.Cleanup(s.cancel)
	s.peers = newPeers(s)
	return s
}

// bufConn is a redcon.Conn that writes into a buffer.
type bufConn struct {
	redcon.Conn // not implemented: calling anything else panics
	w           *redcon.Writer
	ctx         any
	closed      bool
}

func (c *bufConn) WriteError(msg string)       { c.w.WriteError(msg) }
func (c *bufConn) WriteString(str string)      { c.w.WriteString(str) }
func (c *bufConn) WriteBulk(bulk []byte)       { c.w.WriteBulk(bulk) }
func (c *bufConn) WriteBulkString(bulk string) { c.w.WriteBulkString(bulk) }
func (c *bufConn) WriteInt(num int)            { c.w.WriteInt(num) }
func (c *bufConn) WriteInt64(num int64)        { c.w.WriteInt64(num) }
func (c *bufConn) WriteArray(count int)        { c.w.WriteArray(count) }
func (c *bufConn) WriteNull()                  { c.w.WriteNull() }
func (c *bufConn) WriteRaw(data []byte)        { c.w.WriteRaw(data) }
func (c *bufConn) Context() any                { return c.ctx }
func (c *bufConn) SetContext(v any)            { c.ctx = v }
func (c *bufConn) Close() error                { c.closed = true; return nil }
func (c *bufConn) ReadPipeline() []redcon.Command {
	return nil
}

// readReply reads one RESP2 reply and fails on anything malformed.
func readReply(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasSuffix(line, "\r\n") || len(line) < 3 {
		return fmt.Errorf("bad line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+', '-':
		if strings.ContainsAny(body, "\r\n") {
			return fmt.Errorf("line break in %q", line)
		}
		return nil
	case ':':
		_, err := strconv.ParseInt(body, 10, 64)
		return err
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 {
			return fmt.Errorf("bad bulk length %q", body)
		}
		if n == -1 {
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		if string(buf[n:]) != "\r\n" {
			return errors.New("bulk without CRLF")
		}
		return nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 {
			return fmt.Errorf("bad array length %q", body)
		}
		for range n {
			if err := readReply(r); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("bad reply type %q", line)
}

// FuzzRESP feeds arbitrary bytes through the guard and redcon's reader, as
// a connection's bytes go, into the
// adapter's command path on a one-node state: nothing may panic, and every
// command gets exactly one well-formed reply.
func FuzzRESP(f *testing.F) {
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"))
	f.Add([]byte("MULTI\r\nINCR n\r\nHSET h f v\r\nLPUSH h x\r\nEXEC\r\n"))
	f.Add([]byte("PING\r\nECHO hi\r\nCLIENT SETNAME x\r\nCLIENT GETNAME\r\nNOSUCH a b\r\nGET\r\nPUBLISH c m\r\n"))
	f.Add([]byte("RPUSH l a b c\r\nLRANGE l 0 -1\r\nLPOP l 2\r\nKEYS *\r\nSCAN 0 MATCH [a-\r\nBLPOP l 0\r\n"))
	f.Add([]byte("*-1\r\n*1\r\n$-5\r\n"))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$100\r\nshort\r\n"))
	s := localServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		handed, _, _, _ := (&guard{}).feed(nil, data) // what redcon gets of data, as on a connection
		rd := redcon.NewReader(bytes.NewReader(handed))
		var out bytes.Buffer
		conn := &bufConn{w: redcon.NewWriter(&out)}
		n := 0
		for n < 64 && !conn.closed {
			cmds, err := rd.ReadCommands()
			if err != nil {
				break
			}
			var argv [][][]byte
			for _, c := range cmds {
				if len(c.Args) == 0 {
					continue
				}
				switch strings.ToLower(string(c.Args[0])) {
				case "subscribe", "psubscribe", "blpop", "brpop":
					continue // they detach or block: tested against real servers instead
				}
				argv = append(argv, c.Args)
			}
			n += len(argv)
			s.process(conn, conn.clientState(), argv, nil)
			if err := conn.w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		r := bufio.NewReader(&out)
		for i := 0; ; i++ {
			if _, err := r.Peek(1); err == io.EOF {
				if i > n || i < n && !conn.closed {
					t.Fatalf("%d replies for %d commands", i, n)
				}
				return
			}
			if err := readReply(r); err != nil {
				t.Fatalf("reply %d: %v\n%q", i, err, out.String())
			}
		}
	})
}

func (c *bufConn) clientState() *client {
	if cl, ok := c.ctx.(*client); ok {
		return cl
	}
	cl := &client{id: 1}
	c.ctx = cl
	return cl
}
