package redis

import (
	"context"
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
// recorded by each adapter at start), which delivers to its own; the reply
// is the total number of receivers, as one Redis would count them. A node
// that cannot be reached within a second misses the message.

// subscriber is a connection in subscribe mode.
type subscriber struct {
	mu    sync.Mutex // serialises writes to dc
	dc    redcon.DetachedConn
	chans map[string]bool // guarded by hub.mu
	pats  map[string]bool
}

func (sub *subscriber) send(fn func(w redcon.Conn)) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	fn(sub.dc)
	_ = sub.dc.Flush()
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
		sub.dc.Close()
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
		sub.send(func(w redcon.Conn) {
			w.WriteArray(3)
			w.WriteBulkString(kind)
			w.WriteBulkString(name)
			w.WriteInt(total)
		})
	}
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
		sub.send(func(w redcon.Conn) {
			w.WriteArray(3)
			w.WriteBulkString(kind)
			w.WriteNull()
			w.WriteInt(h.total(sub))
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
		sub.send(func(w redcon.Conn) {
			w.WriteArray(3)
			w.WriteBulkString(kind)
			w.WriteBulkString(name)
			w.WriteInt(total)
		})
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
	for _, t := range targets {
		t.sub.send(func(w redcon.Conn) {
			if t.pattern != "" {
				w.WriteArray(4)
				w.WriteBulkString("pmessage")
				w.WriteBulkString(t.pattern)
			} else {
				w.WriteArray(3)
				w.WriteBulkString("message")
			}
			w.WriteBulkString(channel)
			w.WriteBulk(msg)
		})
	}
	return len(targets)
}

// subscribe turns a connection into a subscriber: it leaves redcon's loop
// and is served by its own goroutine from then on.
func (s *Server) subscribe(w redcon.Conn, c *client, first [][]byte, rest [][][]byte) {
	cmds := [][][]byte{copyArgv(first)}
	for _, argv := range rest {
		cmds = append(cmds, copyArgv(argv))
	}
	sub := &subscriber{dc: w.Detach(), chans: map[string]bool{}, pats: map[string]bool{}}
	if !s.hub.register(sub) {
		sub.dc.Close()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer sub.dc.Close()
		defer s.hub.drop(sub)
		for _, argv := range cmds {
			if !s.subCommand(sub, c, argv) {
				return
			}
		}
		for {
			cmd, err := sub.dc.ReadCommand()
			if err != nil {
				return
			}
			if !s.subCommand(sub, c, copyArgv(cmd.Args)) {
				return
			}
		}
	}()
}

// subCommand runs one command of a subscriber connection; false ends it.
func (s *Server) subCommand(sub *subscriber, c *client, argv [][]byte) bool {
	if len(argv) == 0 {
		return true
	}
	name := strings.ToLower(string(argv[0]))
	switch name {
	case "subscribe", "psubscribe":
		if len(argv) < 2 {
			sub.send(func(w redcon.Conn) { w.WriteError(fsm.RedisErrArity(name)) })
			return true
		}
		s.hub.add(sub, name == "psubscribe", argv[1:])
		return true
	case "unsubscribe", "punsubscribe":
		s.hub.remove(sub, name == "punsubscribe", argv[1:])
		return true
	case "quit":
		sub.send(func(w redcon.Conn) { w.WriteString("OK") })
		return false
	case "ping":
		if s.hub.total(sub) > 0 {
			if len(argv) > 2 {
				sub.send(func(w redcon.Conn) { w.WriteError(fsm.RedisErrArity("ping")) })
				return true
			}
			msg := []byte{}
			if len(argv) == 2 {
				msg = argv[1]
			}
			sub.send(func(w redcon.Conn) {
				w.WriteArray(2)
				w.WriteBulkString("pong")
				w.WriteBulk(msg)
			})
			return true
		}
	}
	if s.hub.total(sub) > 0 && name != "reset" {
		sub.send(func(w redcon.Conn) {
			w.WriteError("ERR Can't execute '" + name + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
		})
		return true
	}
	if name == "reset" {
		s.hub.drop(sub)
		s.hub.register(sub)
	}
	// Subscribed to nothing: a normal connection again.
	closed := false
	sub.send(func(w redcon.Conn) {
		s.process(w, c, [][][]byte{argv}, sub)
		closed = name == "quit"
	})
	return !closed
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
			Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1,
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
			if n, ok := v.Node(name); ok && n.Status != fsm.NodeAlive {
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
	if len(addrs) == 0 {
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
			n, err := p.client(addr).Do(ctx, "armada.publish", channel, msg).Int64()
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
