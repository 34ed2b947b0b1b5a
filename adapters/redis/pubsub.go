package redis

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/tidwall/redcon"

	"github.com/armada-orchestrator/armada/fsm"
)

// Pub/sub is not replicated (Redis does not persist it either). PUBLISH
// delivers to this node's subscribers and sends ARMADA.PUBLISH to every
// other alive node's adapter (their addresses are in the replicated state,
// recorded by each adapter at start, dropped when the node is removed),
// which delivers to its own; the reply is the total number of receivers,
// as one Redis would count them. A node that cannot be reached within a
// second misses the message. ARMADA.PUBLISH carries a token derived from
// the cluster's secret key: without it, it is an unknown command.
//
// Delivery never waits for a subscriber: messages go into its output
// queue, written by its own goroutine, and a subscriber with more than
// Config.PubSubLimit bytes waiting is disconnected, as Redis does past
// client-output-buffer-limit pubsub.

// subscriber is a connection in subscribe mode. Everything it is sent
// goes through its output queue, drained by its own writer goroutine, so
// that a PUBLISH never waits for a slow reader: a subscriber whose queue
// holds more than the limit is disconnected, as Redis does past its
// client-output-buffer-limit for pubsub clients.
type subscriber struct {
	mu    sync.Mutex // serialises writes to dc
	dc    redcon.DetachedConn
	chans map[string]bool // guarded by hub.mu
	pats  map[string]bool

	qmu    sync.Mutex
	idle   *sync.Cond // signalled when the queue empties or the subscriber dies
	q      [][]byte
	qbytes int // queued and being written
	limit  int
	dead   bool
	wake   chan struct{}
}

func newSubscriber(dc redcon.DetachedConn, limit int) *subscriber {
	sub := &subscriber{dc: dc, chans: map[string]bool{}, pats: map[string]bool{}, limit: limit, wake: make(chan struct{}, 1)}
	sub.idle = sync.NewCond(&sub.qmu)
	return sub
}

// enqueue queues one encoded reply without blocking. A subscriber that
// would hold more than its limit is cut off: its connection is closed.
func (sub *subscriber) enqueue(b []byte) {
	sub.qmu.Lock()
	if sub.dead {
		sub.qmu.Unlock()
		return
	}
	if sub.qbytes+len(b) > sub.limit {
		sub.dead = true
		sub.q = nil
		sub.idle.Broadcast()
		sub.qmu.Unlock()
		// The writer may be blocked on the socket: close it underneath.
		_ = sub.dc.NetConn().Close()
		return
	}
	sub.q = append(sub.q, b)
	sub.qbytes += len(b)
	sub.qmu.Unlock()
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// send queues a reply built by fn.
func (sub *subscriber) send(fn func(b []byte) []byte) { sub.enqueue(fn(nil)) }

// writeLoop writes the queue to the connection until done is closed or
// the connection fails.
func (sub *subscriber) writeLoop(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-sub.wake:
		}
		sub.qmu.Lock()
		batch := sub.q
		sub.q = nil
		sub.qmu.Unlock()
		n := 0
		sub.mu.Lock()
		for _, b := range batch {
			sub.dc.WriteRaw(b)
			n += len(b)
		}
		err := sub.dc.Flush()
		sub.mu.Unlock()
		sub.qmu.Lock()
		sub.qbytes -= n
		if err != nil {
			sub.dead = true
		}
		if sub.qbytes == 0 || sub.dead {
			sub.idle.Broadcast()
		}
		sub.qmu.Unlock()
		if err != nil {
			_ = sub.dc.NetConn().Close()
			return
		}
	}
}

// drain waits until everything queued is written (or the subscriber is
// dead) and reports whether it is still alive.
func (sub *subscriber) drain() bool {
	sub.qmu.Lock()
	defer sub.qmu.Unlock()
	for sub.qbytes > 0 && !sub.dead {
		sub.idle.Wait()
	}
	return !sub.dead
}

// hub holds this node's subscriptions.
type hub struct {
	mu    sync.RWMutex
	chans map[string]map[*subscriber]bool
	pats  map[string]map[*subscriber]bool
	subs  map[*subscriber]bool
}

func newHub() *hub {
	return &hub{chans: map[string]map[*subscriber]bool{}, pats: map[string]map[*subscriber]bool{}, subs: map[*subscriber]bool{}}
}

func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs)
}

func (h *hub) register(sub *subscriber) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		return false
	}
	h.subs[sub] = true
	return true
}

func (h *hub) drop(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range sub.chans {
		delete(h.chans[ch], sub)
		if len(h.chans[ch]) == 0 {
			delete(h.chans, ch)
		}
	}
	for p := range sub.pats {
		delete(h.pats[p], sub)
		if len(h.pats[p]) == 0 {
			delete(h.pats, p)
		}
	}
	sub.chans, sub.pats = map[string]bool{}, map[string]bool{}
	delete(h.subs, sub)
}

func (h *hub) closeAll() {
	h.mu.Lock()
	subs := h.subs
	h.subs = nil
	h.mu.Unlock()
	for sub := range subs {
		_ = sub.dc.NetConn().Close()
	}
}

// add subscribes to channels or patterns and answers for each.
func (h *hub) add(sub *subscriber, pattern bool, names [][]byte) {
	kind := "subscribe"
	if pattern {
		kind = "psubscribe"
	}
	for _, n := range names {
		name := string(n)
		h.mu.Lock()
		set, index := sub.chans, h.chans
		if pattern {
			set, index = sub.pats, h.pats
		}
		set[name] = true
		if index[name] == nil {
			index[name] = map[*subscriber]bool{}
		}
		index[name][sub] = true
		total := len(sub.chans) + len(sub.pats)
		h.mu.Unlock()
		sub.send(func(b []byte) []byte { return appendCount(b, kind, name, total) })
	}
}

// appendCount encodes a (un)subscribe answer.
func appendCount(b []byte, kind, name string, total int) []byte {
	b = redcon.AppendArray(b, 3)
	b = redcon.AppendBulkString(b, kind)
	b = redcon.AppendBulkString(b, name)
	return redcon.AppendInt(b, int64(total))
}

// remove unsubscribes from the named channels or patterns, or from all of
// them when names is empty, and answers for each.
func (h *hub) remove(sub *subscriber, pattern bool, names [][]byte) {
	kind := "unsubscribe"
	if pattern {
		kind = "punsubscribe"
	}
	h.mu.Lock()
	set, index := sub.chans, h.chans
	if pattern {
		set, index = sub.pats, h.pats
	}
	var list []string
	if len(names) == 0 {
		for n := range set {
			list = append(list, n)
		}
	} else {
		for _, n := range names {
			list = append(list, string(n))
		}
	}
	h.mu.Unlock()
	if len(list) == 0 {
		total := h.total(sub)
		sub.send(func(b []byte) []byte {
			b = redcon.AppendArray(b, 3)
			b = redcon.AppendBulkString(b, kind)
			b = redcon.AppendNull(b)
			return redcon.AppendInt(b, int64(total))
		})
		return
	}
	for _, name := range list {
		h.mu.Lock()
		delete(set, name)
		delete(index[name], sub)
		if len(index[name]) == 0 {
			delete(index, name)
		}
		total := len(sub.chans) + len(sub.pats)
		h.mu.Unlock()
		sub.send(func(b []byte) []byte { return appendCount(b, kind, name, total) })
	}
}

func (h *hub) total(sub *subscriber) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(sub.chans) + len(sub.pats)
}

// publish delivers a message to this node's subscribers and returns how
// many received it (a client subscribed to the channel and to a matching
// pattern counts twice, as in Redis).
func (h *hub) publish(channel string, msg []byte) int {
	type target struct {
		sub     *subscriber
		pattern string
	}
	var targets []target
	h.mu.RLock()
	for sub := range h.chans[channel] {
		targets = append(targets, target{sub: sub})
	}
	for p, subs := range h.pats {
		if fsm.RedisMatch([]byte(p), []byte(channel)) {
			for sub := range subs {
				targets = append(targets, target{sub: sub, pattern: p})
			}
		}
	}
	h.mu.RUnlock()
	var plain []byte // the same bytes for every channel subscriber
	for _, t := range targets {
		if t.pattern == "" {
			if plain == nil {
				plain = redcon.AppendArray(nil, 3)
				plain = redcon.AppendBulkString(plain, "message")
				plain = redcon.AppendBulkString(plain, channel)
				plain = redcon.AppendBulk(plain, msg)
			}
			t.sub.enqueue(plain)
			continue
		}
		b := redcon.AppendArray(nil, 4)
		b = redcon.AppendBulkString(b, "pmessage")
		b = redcon.AppendBulkString(b, t.pattern)
		b = redcon.AppendBulkString(b, channel)
		t.sub.enqueue(redcon.AppendBulk(b, msg))
	}
	return len(targets)
}

// subscribe turns a connection into a subscriber: it leaves redcon's loop
// and is served by its own goroutine (and its writer) from then on.
func (s *Server) subscribe(w redcon.Conn, c *client, first [][]byte, rest [][][]byte) {
	cmds := [][][]byte{copyArgv(first)}
	for _, argv := range rest {
		cmds = append(cmds, copyArgv(argv))
	}
	if c.guard != nil {
		c.guard.detached.Store(true) // its reader queues a refusal behind the replies
	}
	sub := newSubscriber(w.Detach(), s.cfg.PubSubLimit)
	if !s.hub.register(sub) {
		sub.dc.Close()
		return
	}
	done := make(chan struct{})
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		sub.writeLoop(done)
	}()
	go func() {
		defer s.wg.Done()
		quit := false
		defer func() {
			s.hub.drop(sub)
			if quit {
				sub.drain() // QUIT's +OK goes out first
			}
			close(done)
			_ = sub.dc.NetConn().Close()
			sub.mu.Lock()
			sub.dc.Close()
			sub.mu.Unlock()
		}()
		for _, argv := range cmds {
			if quit = !s.subCommand(sub, c, argv); quit {
				return
			}
		}
		for {
			cmd, err := sub.dc.ReadCommand()
			var pe protocolError
			if errors.As(err, &pe) {
				// The guard refused what followed: its error goes out after
				// the replies queued before it, then the connection closes.
				sub.send(appendError(pe.Error()))
				quit = true
				return
			}
			if err != nil {
				return
			}
			if quit = !s.subCommand(sub, c, copyArgv(cmd.Args)); quit {
				return
			}
		}
	}()
}

func appendError(msg string) func(b []byte) []byte {
	return func(b []byte) []byte { return redcon.AppendError(b, msg) }
}

// subCommand runs one command of a subscriber connection; false ends it.
func (s *Server) subCommand(sub *subscriber, c *client, argv [][]byte) bool {
	if len(argv) == 0 {
		return true
	}
	if r := s.authReply(c, argv); r != nil {
		// A RESET took the password back (authReply only returns errors).
		sub.send(appendError(string(r.Str)))
		return true
	}
	name := strings.ToLower(string(argv[0]))
	switch name {
	case "subscribe", "psubscribe":
		if len(argv) < 2 {
			sub.send(appendError(fsm.RedisErrArity(name)))
			return true
		}
		s.hub.add(sub, name == "psubscribe", argv[1:])
		return true
	case "unsubscribe", "punsubscribe":
		s.hub.remove(sub, name == "punsubscribe", argv[1:])
		return true
	case "quit":
		sub.send(redcon.AppendOK)
		return false
	case "ping":
		if s.hub.total(sub) > 0 {
			if len(argv) > 2 {
				sub.send(appendError(fsm.RedisErrArity("ping")))
				return true
			}
			msg := []byte{}
			if len(argv) == 2 {
				msg = argv[1]
			}
			sub.send(func(b []byte) []byte {
				b = redcon.AppendArray(b, 2)
				b = redcon.AppendBulkString(b, "pong")
				return redcon.AppendBulk(b, msg)
			})
			return true
		}
	}
	if s.hub.total(sub) > 0 && name != "reset" {
		sub.send(appendError("ERR Can't execute '" + name + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"))
		return true
	}
	if name == "reset" {
		s.hub.drop(sub)
		s.hub.register(sub)
	}
	// Subscribed to nothing: a normal connection again, answered directly
	// once what is queued has gone out.
	if !sub.drain() {
		return false
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	s.process(sub.dc, c, [][][]byte{argv}, sub)
	if err := sub.dc.Flush(); err != nil {
		return false
	}
	return name != "quit"
}

// peers sends PUBLISH to the other nodes' adapters.
type peers struct {
	s       *Server
	mu      sync.Mutex
	clients map[string]*goredis.Client
}

func newPeers(s *Server) *peers { return &peers{s: s, clients: map[string]*goredis.Client{}} }

func (p *peers) client(addr string) *goredis.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.clients[addr]
	if c == nil {
		c = goredis.NewClient(&goredis.Options{
			Addr: addr, Password: p.s.cfg.Password, Protocol: 2, DisableIdentity: true, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, PoolSize: 4,
		})
		p.clients[addr] = c
	}
	return c
}

func (p *peers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		c.Close()
	}
	p.clients = map[string]*goredis.Client{}
}

// targets lists the adapter addresses of the other nodes that are alive.
func (p *peers) targets() []string {
	var out []string
	p.s.st.View(func(v *fsm.View) error {
		for name, addr := range v.RedisNodes() {
			if name == p.s.cfg.Node {
				continue
			}
			// A node that is gone (removed, or never known) or not alive
			// is skipped.
			if n, ok := v.Node(name); !ok || n.Status != fsm.NodeAlive {
				continue
			}
			out = append(out, addr)
		}
		return nil
	})
	return out
}

func (p *peers) publish(channel string, msg []byte) int {
	addrs := p.targets()
	token := p.s.peerToken()
	if len(addrs) == 0 || token == "" {
		return 0
	}
	ctx, cancel := context.WithTimeout(p.s.ctx, 2*time.Second)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	total := 0
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := p.client(addr).Do(ctx, "armada.publish", token, channel, msg).Int64()
			if err != nil {
				p.s.log.Debug("publish to peer", "addr", addr, "err", err)
				return
			}
			mu.Lock()
			total += int(n)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return total
}

// publish delivers to this node's subscribers and the other nodes'.
func (s *Server) publish(channel string, msg []byte) int {
	msg = append([]byte{}, msg...)
	return s.hub.publish(channel, msg) + s.peers.publish(channel, msg)
}
