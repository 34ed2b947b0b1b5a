// Package redis serves the Redis protocol (RESP2) from the replicated key
// space: existing clients (redis-cli, go-redis, ...) work against any node.
//
// Reads run on the local state; writes become one fsm.RedisExec command per
// group of commands (a single command, the commands a connection pipelined
// together, or a MULTI/EXEC transaction) that goes through Raft, and the
// connection waits until its node has applied that entry before it answers,
// so it always sees its own writes. Blocking pops wait on the state's change
// feed and pop through Raft. Pub/sub is not replicated: a PUBLISH reaches
// this node's subscribers and, over the other nodes' Redis ports, theirs.
package redis

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tidwall/redcon"

	"github.com/armada-orchestrator/armada/fsm"
)

// Store is the local replicated state the adapter reads.
type Store interface {
	View(fn func(v *fsm.View) error) error
	WaitIndex(ctx context.Context, n uint64) error
	Changes(since uint64) ([]fsm.Change, <-chan struct{}, error)
	Index() uint64
}

// Applier commits commands through Raft (a follower forwards them to the
// leader).
type Applier interface {
	Apply(ctx context.Context, c fsm.Command) (*fsm.Result, error)
}

// Config configures the server.
type Config struct {
	// Addr is the address to listen on (host:port; port 0 picks one).
	Addr string
	// Node is this node's name; the adapter records its address under it
	// so that the other nodes' PUBLISH reaches its subscribers.
	Node string
	// AdvertiseHost is the host other nodes reach this adapter at when it
	// listens on all interfaces (default: the listener's address).
	AdvertiseHost string
	// WriteTimeout bounds one write through Raft (default 10s).
	WriteTimeout time.Duration
	// PubSubLimit is how many bytes of messages a subscriber may have
	// waiting to be written before it is disconnected (default 32 MiB,
	// Redis' client-output-buffer-limit pubsub hard limit).
	PubSubLimit int
	// Password, when set, is what a connection must give to AUTH before
	// anything else, as Redis' requirepass (the cluster's --token).
	Password string
	Logger   *slog.Logger
	// Now is the clock local TTL decisions extrapolate with from the
	// leader's last stamped time (default time.Now); only its rate matters.
	Now func() time.Time
}

// Server is a Redis protocol server over the replicated state.
type Server struct {
	st     Store
	ap     Applier
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	srv    *redcon.Server
	ctx    context.Context
	cancel context.CancelFunc
	ids    atomic.Int64
	conns  atomic.Int64
	hub    *hub
	peers  *peers
	wg     sync.WaitGroup
	clock  leaderClock
	token  atomic.Pointer[string] // ARMADA.PUBLISH's token, once the cluster key is known
}

// New makes a server; Start runs it.
func New(st Store, ap Applier, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.PubSubLimit <= 0 {
		cfg.PubSubLimit = 32 << 20
	}
	return &Server{st: st, ap: ap, cfg: cfg, log: cfg.Logger, hub: newHub()}
}

// client is the state of one connection.
type client struct {
	id     int64
	name   string
	authed bool       // gave Config.Password to AUTH
	guard  *guardConn // the connection's guard, told of authed (nil in tests without one)
	multi  bool
	dirty  bool
	queued [][][]byte
}

// Start listens and serves in the background until Close or ctx ends.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("redis: listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.peers = newPeers(s)
	s.srv = redcon.NewServerNetwork("tcp", ln.Addr().String(), s.handle, s.accept, func(redcon.Conn, error) { s.conns.Add(-1) })
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(guardListener{ln, s.cfg.Password != ""}); err != nil && s.ctx.Err() == nil {
			s.log.Error("redis server stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.register()
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.ctx.Done():
		}
	}()
	s.log.Info("serving redis", "addr", ln.Addr().String())
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and closes every connection.
func (s *Server) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	_ = s.srv.Close() // fails with "not serving" if Serve has not started yet
	err := s.ln.Close()
	s.hub.closeAll()
	s.wg.Wait()
	s.peers.close()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}

// register records this node's adapter address in the replicated state,
// retrying until a leader takes it.
func (s *Server) register() {
	addr := s.ln.Addr().String()
	if host, port, err := net.SplitHostPort(addr); err == nil && s.cfg.AdvertiseHost != "" {
		// A wildcard or loopback listener is reached by the other nodes
		// through the advertised host.
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() || ip.IsLoopback() {
			addr = net.JoinHostPort(s.cfg.AdvertiseHost, port)
		}
	}
	if s.cfg.Node == "" {
		return
	}
	delay := 100 * time.Millisecond
	for {
		var have string
		s.st.View(func(v *fsm.View) error {
			have = v.RedisNodes()[s.cfg.Node]
			return nil
		})
		if have == addr {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
		_, err := s.ap.Apply(ctx, &fsm.RedisExec{Cmds: [][][]byte{{[]byte("armada.node"), []byte(s.cfg.Node), []byte(addr)}}})
		cancel()
		if err == nil {
			return
		}
		s.log.Debug("record redis address", "err", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

func (s *Server) accept(conn redcon.Conn) bool {
	gc, _ := conn.NetConn().(*guardConn)
	conn.SetContext(&client{id: s.ids.Add(1), guard: gc})
	if s.ctx.Err() != nil {
		return false
	}
	s.conns.Add(1)
	return true
}

func argsOf(cmds []redcon.Command) [][][]byte {
	out := make([][][]byte, len(cmds))
	for i, c := range cmds {
		out[i] = c.Args
	}
	return out
}

func (s *Server) handle(conn redcon.Conn, cmd redcon.Command) {
	c, _ := conn.Context().(*client)
	if c == nil {
		c = &client{id: s.ids.Add(1)}
		conn.SetContext(c)
	}
	cmds := append([][][]byte{cmd.Args}, argsOf(conn.ReadPipeline())...)
	s.process(conn, c, cmds, nil)
}

// process runs a connection's commands in order. Runs of data commands
// outside MULTI go to the state together: one Raft entry for all of them
// if any writes. It returns early when the connection turns into a
// subscriber, handing it the commands that are left.
func (s *Server) process(w redcon.Conn, c *client, cmds [][][]byte, sub *subscriber) {
	for i := 0; i < len(cmds); {
		if r := s.authReply(c, cmds[i]); r != nil {
			writeReply(w, *r)
			i++
			continue
		}
		if !c.multi && batchable(cmds[i]) {
			j := i + 1
			for j < len(cmds) && batchable(cmds[j]) {
				j++
			}
			// A long pipeline goes in entries of bounded size: it is not
			// atomic in Redis either.
			for k := i; k < j; {
				end, size := k, 0
				for end < j && (end == k || end-k < fsm.MaxRedisCmds && size+argvSize(cmds[end]) <= maxEntryBytes) {
					size += argvSize(cmds[end])
					end++
				}
				for _, r := range s.run(cmds[k:end]) {
					writeReply(w, r)
				}
				k = end
			}
			i = j
			continue
		}
		switch s.command(w, c, cmds[i], sub) {
		case outClosed:
			return
		case outSubscribed:
			if sub == nil {
				s.subscribe(w, c, cmds[i], cmds[i+1:])
				return
			}
		}
		i++
	}
}

// authReply is what argv gets instead of running while the connection has
// not given the password, or nil when it may run. As Redis with
// requirepass: only AUTH, HELLO, RESET and QUIT run (HELLO then fails: it
// is not supported), an unknown command or a wrong number of arguments is
// reported as such first, and everything else is NOAUTH. The nodes' own
// fan-out (ARMADA.PUBLISH) carries the cluster's token instead.
func (s *Server) authReply(c *client, argv [][]byte) *fsm.RedisReply {
	if s.cfg.Password == "" || c.authed || len(argv) == 0 || isInternal(argv[0]) {
		return nil
	}
	name := strings.ToLower(string(argv[0]))
	switch name {
	case "auth", "hello", "quit", "reset":
		return nil
	}
	if known, _ := fsm.IsRedisCommand(argv[0]); known {
		if r := fsm.RedisCheck(argv); r != nil {
			return r
		}
	} else if adapterCmd(name) {
		if r := adapterCheck(name, argv); r != nil {
			return r
		}
	} else if !connectionCmd(name) {
		return nil // unknown: it is answered as such
	}
	r := errReply("NOAUTH Authentication required.")
	return &r
}

// connectionCmd reports whether a command is one of the connection's own,
// which the adapter runs itself (command) and neither the state machine
// nor adapterCmd knows.
func connectionCmd(name string) bool {
	switch name {
	case "quit", "multi", "exec", "discard", "watch", "reset", "hello",
		"subscribe", "psubscribe", "unsubscribe", "punsubscribe":
		return true
	}
	return false
}

// batchable reports whether a command is run by the state machine and never
// blocks: such commands can share one Raft entry.
func batchable(argv [][]byte) bool {
	if len(argv) == 0 || isInternal(argv[0]) {
		return false
	}
	name := strings.ToLower(string(argv[0]))
	if name == "blpop" || name == "brpop" {
		return false
	}
	known, _ := fsm.IsRedisCommand(argv[0])
	return known
}

func isInternal(name []byte) bool {
	return len(name) >= 7 && strings.EqualFold(string(name[:7]), "armada.")
}

// maxEntryBytes bounds the arguments of one RedisExec: a forwarded entry
// must fit the leader's 8 MiB request limit.
const maxEntryBytes = 4 << 20

func argvSize(argv [][]byte) int {
	n := 0
	for _, a := range argv {
		n += len(a) + 8
	}
	return n
}

// run executes data commands: from the local view if none writes, else as
// one RedisExec through Raft, waiting until this node has applied it.
func (s *Server) run(cmds [][][]byte) []fsm.RedisReply {
	out := make([]fsm.RedisReply, len(cmds))
	size := 0
	for _, argv := range cmds {
		size += argvSize(argv)
	}
	if size > maxEntryBytes || len(cmds) > fsm.MaxRedisCmds {
		msg := fmt.Sprintf("ERR armada: %d commands of %d bytes exceed one entry's limits (%d commands, %d bytes)",
			len(cmds), size, fsm.MaxRedisCmds, maxEntryBytes)
		if len(cmds) == 1 {
			msg = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
		}
		return fill(len(cmds), errReply(msg))
	}
	var valid [][][]byte
	var at []int
	writes := false
	for i, argv := range cmds {
		if r := fsm.RedisCheck(argv); r != nil {
			out[i] = *r
			continue
		}
		if _, w := fsm.IsRedisCommand(argv[0]); w {
			writes = true
		}
		valid = append(valid, argv)
		at = append(at, i)
	}
	if len(valid) == 0 {
		return out
	}
	var replies []fsm.RedisReply
	if writes {
		replies = s.write(valid)
	} else {
		replies = s.read(valid)
	}
	for k, i := range at {
		out[i] = replies[k]
	}
	return out
}

func errReply(msg string) fsm.RedisReply {
	return fsm.RedisReply{Kind: fsm.RedisErr, Str: []byte(msg)}
}

func (s *Server) read(cmds [][][]byte) []fsm.RedisReply {
	var out []fsm.RedisReply
	err := s.st.View(func(v *fsm.View) error {
		out = v.RedisRead(cmds, s.now(v))
		return nil
	})
	if err != nil {
		return fill(len(cmds), errReply("ERR armada: read the state: "+err.Error()))
	}
	return out
}

func fill(n int, r fsm.RedisReply) []fsm.RedisReply {
	out := make([]fsm.RedisReply, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// write applies commands as one RedisExec and waits for the local state to
// catch up with it.
func (s *Server) write(cmds [][][]byte) []fsm.RedisReply {
	// The arguments may point into the connection's read buffer.
	cp := make([][][]byte, len(cmds))
	for i, argv := range cmds {
		cp[i] = make([][]byte, len(argv))
		for j, a := range argv {
			cp[i][j] = append([]byte{}, a...)
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
	defer cancel()
	r, err := s.ap.Apply(ctx, &fsm.RedisExec{Cmds: cp})
	if err != nil {
		var fe *fsm.Error
		if errors.As(err, &fe) {
			return fill(len(cmds), errReply("ERR "+fe.Message))
		}
		return fill(len(cmds), errReply("ERR armada: "+err.Error()))
	}
	if r == nil || len(r.Redis) != len(cmds) {
		return fill(len(cmds), errReply("ERR armada: no reply from the state machine"))
	}
	if err := s.st.WaitIndex(ctx, r.Index); err != nil {
		s.log.Warn("wait for own write", "index", r.Index, "err", err)
	}
	return r.Redis
}

// outcome of one command for process.
type outcome int

const (
	outNext outcome = iota
	outClosed
	outSubscribed
)

// command runs one command that is not a plain data command: connection
// commands, transactions, blocking pops and pub/sub.
func (s *Server) command(w redcon.Conn, c *client, argv [][]byte, sub *subscriber) outcome {
	if len(argv) == 0 {
		return outNext
	}
	name := strings.ToLower(string(argv[0]))
	if isInternal(argv[0]) {
		// Another node's fan-out: ARMADA.PUBLISH TOKEN CHANNEL MESSAGE,
		// accepted only with the cluster's token. To anyone else it does
		// not exist.
		if name == "armada.publish" && len(argv) == 4 && !c.multi && s.peerAuthorised(argv[1]) {
			w.WriteInt(s.hub.publish(string(argv[2]), argv[3]))
			return outNext
		}
		c.dirty = c.dirty || c.multi
		w.WriteError(fsm.RedisErrUnknown(argv))
		return outNext
	}
	if c.multi {
		switch name {
		case "exec", "discard", "multi", "quit", "reset", "watch":
		default:
			// As Redis: everything else is queued once it passes the
			// checks Redis makes before queueing (known command, arity).
			r := fsm.RedisCheck(argv)
			if adapterCmd(name) {
				r = adapterCheck(name, argv)
			}
			if r != nil {
				c.dirty = true
				writeReply(w, *r)
				return outNext
			}
			c.queued = append(c.queued, copyArgv(argv))
			w.WriteString("QUEUED")
			return outNext
		}
	}
	if adapterCmd(name) {
		if r := adapterCheck(name, argv); r != nil {
			writeReply(w, *r)
		} else {
			writeReply(w, s.adapterRun(c, name, argv))
		}
		return outNext
	}
	switch name {
	case "quit":
		w.WriteString("OK")
		w.Close()
		return outClosed
	case "multi":
		if c.multi {
			w.WriteError("ERR MULTI calls can not be nested")
			return outNext
		}
		c.multi, c.dirty, c.queued = true, false, nil
		w.WriteString("OK")
	case "exec":
		if !c.multi {
			w.WriteError("ERR EXEC without MULTI")
			return outNext
		}
		queued, dirty := c.queued, c.dirty
		c.multi, c.dirty, c.queued = false, false, nil
		if dirty {
			w.WriteError("EXECABORT Transaction discarded because of previous errors.")
			return outNext
		}
		replies := s.exec(c, queued)
		w.WriteArray(len(replies))
		for _, r := range replies {
			writeReply(w, r)
		}
	case "discard":
		if !c.multi {
			w.WriteError("ERR DISCARD without MULTI")
			return outNext
		}
		c.multi, c.dirty, c.queued = false, false, nil
		w.WriteString("OK")
	case "watch":
		if c.multi {
			w.WriteError("ERR WATCH inside MULTI is not allowed")
			return outNext
		}
		w.WriteError("ERR armada: WATCH is not supported")
	case "reset":
		c.multi, c.dirty, c.queued, c.name = false, false, nil, ""
		c.setAuthed(s.cfg.Password == "") // as Redis: a reset connection authenticates again
		w.WriteString("RESET")
	case "hello":
		// Unsupported, so that RESP3 clients fall back to RESP2.
		w.WriteError(fsm.RedisErrUnknown(argv))
	case "subscribe", "psubscribe":
		if len(argv) < 2 {
			w.WriteError(fsm.RedisErrArity(name))
			return outNext
		}
		if sub != nil {
			s.hub.add(sub, name == "psubscribe", argv[1:])
			return outNext
		}
		return outSubscribed
	case "unsubscribe", "punsubscribe":
		if sub != nil {
			s.hub.remove(sub, name == "punsubscribe", argv[1:])
			return outNext
		}
		// Not subscribed to anything: Redis answers with a count of 0.
		kind := name
		if len(argv) == 1 {
			w.WriteArray(3)
			w.WriteBulkString(kind)
			w.WriteNull()
			w.WriteInt(0)
			return outNext
		}
		for _, ch := range argv[1:] {
			w.WriteArray(3)
			w.WriteBulkString(kind)
			w.WriteBulk(ch)
			w.WriteInt(0)
		}
	case "blpop", "brpop":
		if r := fsm.RedisCheck(argv); r != nil {
			writeReply(w, *r)
			return outNext
		}
		s.blockingPop(w, argv)
	default:
		if r := fsm.RedisCheck(argv); r != nil {
			writeReply(w, *r)
			return outNext
		}
		// A data command reached here only inside a subscriber context.
		for _, r := range s.run([][][]byte{argv}) {
			writeReply(w, r)
		}
	}
	return outNext
}

func copyArgv(argv [][]byte) [][]byte {
	out := make([][]byte, len(argv))
	for i, a := range argv {
		out[i] = append([]byte{}, a...)
	}
	return out
}

// adapterCmd reports whether the adapter itself runs a command (outside
// the state machine) that MULTI queues like any other.
func adapterCmd(name string) bool {
	switch name {
	case "auth", "select", "client", "info", "publish":
		return true
	}
	return false
}

// adapterCheck returns the error Redis gives an adapter command before
// running (or queueing) it: arity, CLIENT's unknown subcommands.
func adapterCheck(name string, argv [][]byte) *fsm.RedisReply {
	bad := false
	switch name {
	case "auth", "client":
		bad = len(argv) < 2
	case "select":
		bad = len(argv) != 2
	case "publish":
		bad = len(argv) != 3
	}
	if bad {
		r := errReply(fsm.RedisErrArity(name))
		return &r
	}
	if name != "client" {
		return nil
	}
	sub := strings.ToLower(string(argv[1]))
	want := map[string]int{"setname": 3, "getname": 2, "id": 2, "setinfo": 4}
	n, ok := want[sub]
	if !ok {
		r := errReply(fmt.Sprintf("ERR unknown subcommand '%.128s'. Try CLIENT HELP.", argv[1]))
		return &r
	}
	if len(argv) != n {
		r := errReply(fmt.Sprintf("ERR wrong number of arguments for 'client|%s' command", sub))
		return &r
	}
	return nil
}

// auth runs AUTH [username] password as Redis does for its default user,
// whose password is Config.Password (none: AUTH always fails).
func (s *Server) auth(c *client, argv [][]byte) fsm.RedisReply {
	if len(argv) > 3 {
		return errReply("ERR syntax error")
	}
	if s.cfg.Password == "" {
		if len(argv) == 2 {
			return errReply("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		}
		return errReply("WRONGPASS invalid username-password pair or user is disabled.")
	}
	pass := argv[len(argv)-1]
	userOK := len(argv) == 2 || string(argv[1]) == "default"
	if !userOK || subtle.ConstantTimeCompare(pass, []byte(s.cfg.Password)) != 1 {
		return errReply("WRONGPASS invalid username-password pair or user is disabled.")
	}
	c.setAuthed(true)
	return fsm.RedisReply{Kind: fsm.RedisStatus, Str: []byte("OK")}
}

// setAuthed records whether the connection has given the password, for the
// server and for its guard's pre-auth limits.
func (c *client) setAuthed(v bool) {
	c.authed = v
	if c.guard != nil {
		c.guard.authed.Store(v)
	}
}

// adapterRun runs an adapter command that passed adapterCheck.
func (s *Server) adapterRun(c *client, name string, argv [][]byte) fsm.RedisReply {
	switch name {
	case "auth":
		return s.auth(c, argv)
	case "select":
		n, err := strconv.ParseInt(string(argv[1]), 10, 64)
		switch {
		case err != nil:
			return errReply("ERR value is not an integer or out of range")
		case n != 0:
			return errReply("ERR DB index is out of range")
		}
		return fsm.RedisReply{Kind: fsm.RedisStatus, Str: []byte("OK")}
	case "info":
		return fsm.RedisReply{Kind: fsm.RedisBulk, Str: []byte(s.info())}
	case "publish":
		return fsm.RedisReply{Kind: fsm.RedisInt, Int: int64(s.publish(string(argv[1]), argv[2]))}
	}
	switch strings.ToLower(string(argv[1])) {
	case "setname":
		for _, b := range argv[2] {
			if b <= ' ' || b > '~' {
				return errReply("ERR Client names cannot contain spaces, newlines or special characters.")
			}
		}
		c.name = string(argv[2])
		return fsm.RedisReply{Kind: fsm.RedisStatus, Str: []byte("OK")}
	case "getname":
		if c.name == "" {
			return fsm.RedisReply{Kind: fsm.RedisNil}
		}
		return fsm.RedisReply{Kind: fsm.RedisBulk, Str: []byte(c.name)}
	case "id":
		return fsm.RedisReply{Kind: fsm.RedisInt, Int: c.id}
	}
	// setinfo, as Redis 7.2 takes it: lib-name or lib-ver, printable
	// without spaces. Nothing reads them back here (no CLIENT LIST).
	attr := string(argv[2])
	switch strings.ToLower(attr) {
	case "lib-name", "lib-ver":
	default:
		return errReply(fmt.Sprintf("ERR Unrecognized option '%s'", attr))
	}
	for _, b := range argv[3] {
		if b < '!' || b > '~' {
			return errReply(fmt.Sprintf("ERR %s cannot contain spaces, newlines or special characters.", attr))
		}
	}
	return fsm.RedisReply{Kind: fsm.RedisStatus, Str: []byte("OK")}
}

// exec runs a transaction's queued commands: the state machine's as one
// entry, then the adapter's in their order (they touch no keys, so this is
// the order Redis' clients can observe), each reply in its place.
func (s *Server) exec(c *client, queued [][][]byte) []fsm.RedisReply {
	out := make([]fsm.RedisReply, len(queued))
	var data [][][]byte
	var at []int
	for i, argv := range queued {
		if !adapterCmd(strings.ToLower(string(argv[0]))) {
			data = append(data, argv)
			at = append(at, i)
		}
	}
	if len(data) > 0 {
		for k, r := range s.run(data) {
			out[at[k]] = r
		}
	}
	for i, argv := range queued {
		if name := strings.ToLower(string(argv[0])); adapterCmd(name) {
			out[i] = s.adapterRun(c, name, argv)
		}
	}
	return out
}

func (s *Server) info() string {
	var b strings.Builder
	b.WriteString("# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\narmada_node:")
	b.WriteString(s.cfg.Node)
	b.WriteString("\r\n\r\n# Clients\r\nconnected_clients:")
	b.WriteString(strconv.FormatInt(s.conns.Load(), 10))
	b.WriteString("\r\npubsub_clients:")
	b.WriteString(strconv.Itoa(s.hub.count()))
	b.WriteString("\r\n\r\n# Replication\r\nrole:master\r\n\r\n# Keyspace\r\n")
	b.WriteString("armada_index:" + strconv.FormatUint(s.st.Index(), 10) + "\r\n")
	return b.String()
}

// connGone reports whether the client has closed its end of a connection,
// peeking at the socket without consuming what it may have sent.
func connGone(w redcon.Conn) bool {
	nc, ok := w.NetConn().(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := nc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = n == 0 && rerr == nil || rerr != nil && rerr != syscall.EAGAIN && rerr != syscall.EINTR
		return true
	})
	return gone || err != nil
}

// writeReply writes one reply in RESP2.
func writeReply(w redcon.Conn, r fsm.RedisReply) {
	switch r.Kind {
	case fsm.RedisStatus:
		w.WriteString(oneLine(r.Str))
	case fsm.RedisErr:
		w.WriteError(oneLine(r.Str))
	case fsm.RedisInt:
		w.WriteInt64(r.Int)
	case fsm.RedisBulk:
		w.WriteBulk(r.Str)
	case fsm.RedisNil:
		w.WriteNull()
	case fsm.RedisArray:
		w.WriteArray(len(r.Arr))
		for _, a := range r.Arr {
			writeReply(w, a)
		}
	case fsm.RedisNilArray:
		w.WriteRaw([]byte("*-1\r\n"))
	default:
		w.WriteError("ERR armada: bad reply")
	}
}

// oneLine replaces line breaks, which a status or error cannot carry.
func oneLine(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, string(b))
}
