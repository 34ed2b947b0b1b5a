package zk

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/armada-orchestrator/armada/fsm"
)

// conn is one client connection. Requests are handled one at a time, in
// order; replies and watch events go out through one queue, so they reach
// the client in the order ZooKeeper promises.
type conn struct {
	s    *Server
	nc   net.Conn
	fr   *FrameReader
	out  chan []byte // nil: close after what came before
	done chan struct{}
	once sync.Once

	// closing is set once the client asked to close its session: the
	// dispatcher then leaves the connection to answer and end by itself.
	closing atomic.Bool

	// received and sent count this connection's packets (stat lists them).
	received, sent atomic.Int64
	// busy is set while a request is handled: the client's pings wait
	// unread meanwhile, yet it is alive (the session is heartbeat).
	busy atomic.Int32

	mu      sync.Mutex
	session int64
	timeout int32
	auth    []string // "scheme:id"
}

// outQueue bounds the frames waiting for a slow client; a client that
// falls that far behind is disconnected (it reconnects and sets its
// watches again).
const outQueue = 4096

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, fr: NewFrameReader(nc), out: make(chan []byte, outQueue), done: make(chan struct{})}
	if host, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
		c.auth = []string{"ip:" + host}
	}
	return c
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

func (c *conn) sessionID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

func (c *conn) authIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.auth...)
}

// notify queues a watch event; it never blocks the dispatcher.
func (c *conn) notify(ev EventType, path string) {
	frame, err := MarshalNotification(&WatcherEvent{Type: ev, State: StateSyncConnected, Path: path})
	if err != nil {
		return
	}
	select {
	case c.out <- frame:
		c.counted()
	default:
		c.close()
	}
}

// counted counts a packet queued for the client.
func (c *conn) counted() {
	c.sent.Add(1)
	c.s.stats.sent.Add(1)
}

// got counts a packet from the client.
func (c *conn) got() {
	c.received.Add(1)
	c.s.stats.received.Add(1)
}

func (c *conn) send(frame []byte) bool {
	select {
	case c.out <- frame:
		if frame != nil {
			c.counted()
		}
		return true
	case <-c.done:
		return false
	}
}

// finish closes the connection once everything queued is written.
func (c *conn) finish() {
	if c.send(nil) {
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
	}
	c.close()
}

func (c *conn) writer() {
	var buf []byte
	for {
		var f []byte
		select {
		case f = <-c.out:
		case <-c.done:
			return
		}
		last := f == nil
		buf = append(buf[:0], f...)
		for !last && len(buf) < 64<<10 {
			select {
			case f = <-c.out:
				last = f == nil
				buf = append(buf, f...)
				continue
			default:
			}
			break
		}
		c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.nc.Write(buf); err != nil || last {
			c.close()
			return
		}
	}
}

func (c *conn) serve() {
	defer c.s.w.drop(c)
	defer c.close()
	go c.writer()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := c.fr.Peek(4); err == nil {
		if w, ok := FourLetterWord(b); ok {
			c.got()
			c.send([]byte(c.s.fourLetter(w)))
			c.finish()
			return
		}
	}
	frame, err := c.fr.ReadFrame()
	if err != nil {
		return
	}
	c.got()
	req, err := ParseConnectRequest(frame)
	if err != nil {
		c.s.log.Debug("zookeeper handshake", "err", err)
		return
	}
	resp, ok := c.connect(req)
	if resp != nil {
		if f, err := MarshalConnectResponse(resp); err == nil {
			c.send(f)
		}
	}
	if !ok {
		c.finish()
		return
	}
	idle := time.Duration(c.timeout) * time.Millisecond
	for {
		c.nc.SetReadDeadline(time.Now().Add(idle))
		frame, err := c.fr.ReadFrame()
		if err != nil {
			return
		}
		c.got()
		var h RequestHeader
		n, err := unmarshal(frame, &h)
		if err != nil {
			c.s.log.Debug("zookeeper request header", "err", err)
			return
		}
		req, err := DecodeRequest(h.Type, frame[n:])
		switch {
		case errors.Is(err, ErrUnknownOp):
			// As ZooKeeper: an op it does not know is answered, then the
			// connection ends.
			c.s.log.Debug("zookeeper request", "err", err)
			c.reply(h.Xid, c.zxid(), ErrUnimplemented, nil, 0)
			c.finish()
			return
		case err != nil:
			// A body that does not decode is answered as ZooKeeper does;
			// the connection goes on.
			c.s.log.Debug("zookeeper request", "err", err)
			if !c.reply(h.Xid, c.zxid(), ErrMarshallingError, nil, 0) {
				return
			}
			continue
		}
		start := time.Now()
		c.s.stats.outstanding.Add(1)
		c.busy.Add(1)
		ok := c.handle(h, req)
		c.busy.Add(-1)
		c.s.stats.outstanding.Add(-1)
		c.s.stats.handled(time.Since(start))
		if !ok {
			c.finish()
			return
		}
	}
}

// connect opens or resumes the session of a handshake. A nil response
// drops the connection without an answer (the client tries again).
func (c *conn) connect(req *ConnectRequest) (*ConnectResponse, bool) {
	ctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.WriteTimeout)
	defer cancel()
	timeout := c.s.negotiate(req.TimeOut)
	expired := &ConnectResponse{Passwd: make([]byte, 16), OmitReadOnly: req.OmitReadOnly}
	id, passwd := req.SessionID, req.Passwd
	if id == 0 {
		passwd = make([]byte, 16)
		rand.Read(passwd)
		r, err := c.s.apply(ctx, &fsm.ZKCreateSession{TimeoutMs: int64(timeout), Passwd: passwd})
		if err != nil {
			c.s.log.Debug("zookeeper create session", "err", err)
			return nil, false
		}
		id = r.ZK.Session
	} else {
		// Never answer from a state older than what the client has seen.
		for {
			var zxid int64
			c.s.st.View(func(v *fsm.View) error {
				zxid = v.ZKZxid()
				return nil
			})
			if zxid >= req.LastZxidSeen {
				break
			}
			if err := c.s.st.WaitIndex(ctx, c.s.st.Index()+1); err != nil {
				return nil, false
			}
		}
		// As ZooKeeper: a connect that names a session ends the session's
		// other connection here, whether or not its password is right.
		for _, other := range c.s.sessions()[id] {
			if other != c {
				other.close()
			}
		}
		var ss *fsm.ZKSession
		c.s.st.View(func(v *fsm.View) error {
			ss, _ = v.ZKSession(id)
			return nil
		})
		if ss == nil || !bytes.Equal(ss.Passwd, req.Passwd) {
			return expired, false
		}
		timeout = int32(ss.TimeoutMs)
		r, err := c.s.apply(ctx, &fsm.ZKTouch{IDs: []int64{id}})
		if err != nil {
			return nil, false
		}
		if len(r.ZK.Closed) > 0 {
			return expired, false
		}
	}
	c.mu.Lock()
	c.session, c.timeout = id, timeout
	c.mu.Unlock()
	return &ConnectResponse{TimeOut: timeout, SessionID: id, Passwd: passwd, OmitReadOnly: req.OmitReadOnly}, true
}

// reply sends a reply once the watch events up to index have gone out.
func (c *conn) reply(xid int32, zxid int64, code ErrCode, resp Response, index uint64) bool {
	if err := c.s.w.wait(c.s.ctx, index); err != nil {
		return false
	}
	if code != ErrOK {
		resp = nil
	}
	frame, err := MarshalReply(ReplyHeader{Xid: xid, Zxid: zxid, Err: code}, resp)
	if err != nil {
		c.s.log.Warn("zookeeper reply", "err", err)
		return false
	}
	return c.send(frame)
}

func toStat(s fsm.ZKStat) Stat { return Stat(s) }

func toACL(acl []fsm.ZKACL) []ACL {
	out := make([]ACL, len(acl))
	for i, a := range acl {
		out[i] = ACL{Perms: a.Perms, ID: ID{Scheme: a.Scheme, ID: a.ID}}
	}
	return out
}

func fromACL(acl []ACL) []fsm.ZKACL {
	out := make([]fsm.ZKACL, len(acl))
	for i, a := range acl {
		out[i] = fsm.ZKACL{Perms: a.Perms, Scheme: a.ID.Scheme, ID: a.ID.ID}
	}
	return out
}

// handle answers one request; false ends the connection.
func (c *conn) handle(h RequestHeader, req Request) bool {
	switch r := req.(type) {
	case *PingRequest:
		return c.reply(h.Xid, c.zxid(), ErrOK, nil, 0)
	case *AuthPacket:
		switch r.Scheme {
		case "ip": // every connection has its address as an ip identity already
			return c.reply(h.Xid, c.zxid(), ErrOK, nil, 0)
		case "digest":
		default:
			c.reply(h.Xid, c.zxid(), ErrAuthFailed, nil, 0)
			return false
		}
		// As ZooKeeper: the user is what comes before the first colon (all
		// of it without one), the digest is of the whole.
		user, _, _ := strings.Cut(string(r.Auth), ":")
		sum := sha1.Sum(r.Auth)
		id := "digest:" + user + ":" + base64.StdEncoding.EncodeToString(sum[:])
		c.mu.Lock()
		if !containsStr(c.auth, id) {
			c.auth = append(c.auth, id)
		}
		c.mu.Unlock()
		return c.reply(h.Xid, c.zxid(), ErrOK, nil, 0)
	case *SetWatches:
		return c.setWatches(h.Xid, r.RelativeZxid, r.DataWatches, r.ExistWatches, r.ChildWatches)
	case *SetWatches2:
		// The persistent watches come back as they were, with no events for
		// what they missed, as in ZooKeeper.
		for _, p := range r.PersistentWatches {
			c.s.w.addKept(c, p, false)
		}
		for _, p := range r.PersistentRecursiveWatches {
			c.s.w.addKept(c, p, true)
		}
		return c.setWatches(h.Xid, r.RelativeZxid, r.DataWatches, r.ExistWatches, r.ChildWatches)
	case *AddWatchRequest:
		if r.Mode != AddWatchPersistent && r.Mode != AddWatchPersistentRecursive {
			return c.reply(h.Xid, c.zxid(), ErrMarshallingError, nil, 0)
		}
		index := c.s.w.addKept(c, r.Path, r.Mode == AddWatchPersistentRecursive)
		return c.reply(h.Xid, c.zxid(), ErrOK, &ErrorResult{}, index)
	case *CloseSessionRequest:
		c.closing.Store(true)
		res, err := c.s.apply(c.s.ctx, &fsm.ZKClose{IDs: []int64{c.sessionID()}})
		if err != nil {
			return false
		}
		c.reply(h.Xid, res.ZK.Zxid, ErrOK, nil, res.Index)
		// Let the client close first, as ZooKeeper's clients expect: one
		// that sees the socket end before it handled the reply reports a
		// disconnection.
		c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		c.fr.ReadFrame()
		return false
	case *CreateRequest:
		return c.write(h.Xid, req, fsm.ZKOp{Kind: fsm.ZKOpCreate, Path: r.Path, Data: r.Data, ACL: fromACL(r.ACL), Flags: int32(r.Flags)})
	case *Create2Request:
		return c.write(h.Xid, req, fsm.ZKOp{Kind: fsm.ZKOpCreate, Path: r.Path, Data: r.Data, ACL: fromACL(r.ACL), Flags: int32(r.Flags)})
	case *CreateContainerRequest:
		return c.write(h.Xid, req, fsm.ZKOp{Kind: fsm.ZKOpCreate, Path: r.Path, Data: r.Data, ACL: fromACL(r.ACL), Flags: int32(ModePersistent)})
	case *DeleteRequest:
		return c.write(h.Xid, req, fsm.ZKOp{Kind: fsm.ZKOpDelete, Path: r.Path, Version: r.Version})
	case *SetDataRequest:
		return c.write(h.Xid, req, fsm.ZKOp{Kind: fsm.ZKOpSet, Path: r.Path, Data: r.Data, Version: r.Version})
	case *CheckVersionRequest:
		return c.write(h.Xid, req, fsm.ZKOp{Kind: fsm.ZKOpCheck, Path: r.Path, Version: r.Version})
	case *SetACLRequest:
		return c.write(h.Xid, req, fsm.ZKOp{Kind: fsm.ZKOpSetACL, Path: r.Path, ACL: fromACL(r.ACL), Version: r.Version})
	case *MultiRequest:
		return c.multi(h.Xid, r)
	case *SyncRequest:
		ctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.WriteTimeout)
		defer cancel()
		idx, err := c.s.raft.ReadIndex(ctx)
		if err != nil || c.s.st.WaitIndex(ctx, idx) != nil {
			return false
		}
		return c.reply(h.Xid, c.zxid(), ErrOK, &SyncResponse{Path: r.Path}, idx)
	case *RemoveWatchesRequest:
		code := ErrOK
		switch {
		case r.Type < WatcherChildren || r.Type > WatcherAny:
			// ZooKeeper 3.8 knows these three types only; Any removes
			// persistent watches too.
			code = ErrMarshallingError
		case !c.s.w.remove(c, r.Path, r.Type):
			code = ErrNoWatcher
		}
		return c.reply(h.Xid, c.zxid(), code, nil, 0)
	case *CheckWatchesRequest:
		code := ErrOK
		switch {
		case r.Type < WatcherChildren || r.Type > WatcherAny:
			code = ErrMarshallingError
		case !c.s.w.has(c, r.Path, r.Type):
			code = ErrNoWatcher
		}
		return c.reply(h.Xid, c.zxid(), code, nil, 0)
	case *WhoAmIRequest:
		var infos []ClientInfo
		for _, id := range c.authIDs() {
			scheme, val, _ := strings.Cut(id, ":")
			if scheme == "digest" {
				val, _, _ = strings.Cut(val, ":")
			}
			infos = append(infos, ClientInfo{AuthScheme: scheme, User: val})
		}
		return c.reply(h.Xid, c.zxid(), ErrOK, &WhoAmIResponse{ClientInfo: infos}, 0)
	case *ExistsRequest, *GetDataRequest, *GetChildrenRequest, *GetChildren2Request, *GetACLRequest,
		*MultiReadRequest, *GetAllChildrenNumberRequest, *GetEphemeralsRequest:
		return c.read(h.Xid, req)
	}
	// createTTL, sasl, reconfig.
	return c.reply(h.Xid, c.zxid(), ErrUnimplemented, nil, 0)
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *conn) zxid() int64 {
	var z int64
	c.s.st.View(func(v *fsm.View) error {
		z = v.ZKZxid()
		return nil
	})
	return z
}

// commit applies ops as one ZKMulti for this connection's session. A nil
// result with a nil error is a request the state refused as malformed.
func (c *conn) commit(ops []fsm.ZKOp) (*fsm.Result, error) {
	r, err := c.s.apply(c.s.ctx, c.s.multi(c.sessionID(), c.authIDs(), ops))
	var fe *fsm.Error
	if errors.As(err, &fe) {
		return nil, nil
	}
	return r, err
}

// write answers a single write request.
func (c *conn) write(xid int32, req Request, op fsm.ZKOp) bool {
	r, err := c.commit([]fsm.ZKOp{op})
	if err != nil {
		c.s.log.Debug("zookeeper write", "err", err)
		return false
	}
	if r == nil {
		return c.reply(xid, c.zxid(), ErrBadArguments, nil, 0)
	}
	res := r.ZK.Ops[0]
	zxid := r.ZK.Zxid
	if zxid == 0 {
		zxid = c.zxid()
	}
	if res.Err != fsm.ZKOK {
		c.reply(xid, zxid, ErrCode(res.Err), nil, r.Index)
		return res.Err != fsm.ZKSessionExpired
	}
	return c.reply(xid, zxid, ErrOK, writeResponse(req, res), r.Index)
}

func writeResponse(req Request, res fsm.ZKOpResult) Response {
	switch req.(type) {
	case *CreateRequest:
		return &CreateResponse{Path: res.Path}
	case *Create2Request, *CreateContainerRequest:
		return &Create2Response{Path: res.Path, Stat: toStat(res.Stat)}
	case *DeleteRequest:
		return &DeleteResponse{}
	case *SetACLRequest:
		return &SetACLResponse{Stat: toStat(res.Stat)}
	}
	return &SetDataResponse{Stat: toStat(res.Stat)}
}

func (c *conn) multi(xid int32, m *MultiRequest) bool {
	if len(m.Ops) == 0 {
		return c.reply(xid, c.zxid(), ErrOK, &MultiResponse{Results: []Response{}}, 0)
	}
	ops := make([]fsm.ZKOp, len(m.Ops))
	for i, op := range m.Ops {
		switch r := op.(type) {
		case *CreateRequest:
			ops[i] = fsm.ZKOp{Kind: fsm.ZKOpCreate, Path: r.Path, Data: r.Data, ACL: fromACL(r.ACL), Flags: int32(r.Flags)}
		case *Create2Request:
			ops[i] = fsm.ZKOp{Kind: fsm.ZKOpCreate, Path: r.Path, Data: r.Data, ACL: fromACL(r.ACL), Flags: int32(r.Flags)}
		case *CreateContainerRequest:
			ops[i] = fsm.ZKOp{Kind: fsm.ZKOpCreate, Path: r.Path, Data: r.Data, ACL: fromACL(r.ACL)}
		case *DeleteRequest:
			ops[i] = fsm.ZKOp{Kind: fsm.ZKOpDelete, Path: r.Path, Version: r.Version}
		case *SetDataRequest:
			ops[i] = fsm.ZKOp{Kind: fsm.ZKOpSet, Path: r.Path, Data: r.Data, Version: r.Version}
		case *CheckVersionRequest:
			ops[i] = fsm.ZKOp{Kind: fsm.ZKOpCheck, Path: r.Path, Version: r.Version}
		default: // createTTL
			return c.reply(xid, c.zxid(), ErrUnimplemented, nil, 0)
		}
	}
	r, err := c.commit(ops)
	if err != nil {
		c.s.log.Debug("zookeeper multi", "err", err)
		return false
	}
	if r == nil {
		return c.reply(xid, c.zxid(), ErrBadArguments, nil, 0)
	}
	if r.ZK.Err == fsm.ZKSessionExpired {
		c.reply(xid, c.zxid(), ErrSessionExpired, nil, r.Index)
		return false
	}
	resp := &MultiResponse{Results: make([]Response, len(ops))}
	for i, res := range r.ZK.Ops {
		switch {
		case r.ZK.Err != fsm.ZKOK:
			resp.Results[i] = &ErrorResult{Err: ErrCode(res.Err)}
		case ops[i].Kind == fsm.ZKOpCheck:
			resp.Results[i] = &CheckVersionResponse{}
		default:
			resp.Results[i] = writeResponse(m.Ops[i], res)
		}
	}
	zxid := r.ZK.Zxid
	if zxid == 0 {
		zxid = c.zxid()
	}
	return c.reply(xid, zxid, ErrOK, resp, r.Index)
}

// read answers a read from the local state: a client sees its own writes
// (every write reply waits until this node applied it) and, after sync,
// everything committed before.
func (c *conn) read(xid int32, req Request) bool {
	auth := c.authIDs()
	var (
		resp  Response
		code  = ErrOK
		zxid  int64
		index uint64
	)
	c.s.w.read(c, func(v *fsm.View, reg func(child bool, path string)) error {
		zxid, index = v.ZKZxid(), v.Index()
		switch r := req.(type) {
		case *MultiReadRequest:
			out := &MultiResponse{Results: make([]Response, len(r.Ops))}
			for i, op := range r.Ops {
				res, code := c.readOne(v, reg, auth, op)
				if code != ErrOK {
					res = &ErrorResult{Err: code}
				}
				out.Results[i] = res
			}
			resp = out
		default:
			resp, code = c.readOne(v, reg, auth, req)
		}
		return nil
	})
	return c.reply(xid, zxid, code, resp, index)
}

func (c *conn) readOne(v *fsm.View, reg func(child bool, path string), auth []string, req Request) (Response, ErrCode) {
	var path string
	var watch bool
	switch r := req.(type) {
	case *ExistsRequest:
		path, watch = r.Path, r.Watch
	case *GetDataRequest:
		path, watch = r.Path, r.Watch
	case *GetChildrenRequest:
		path, watch = r.Path, r.Watch
	case *GetChildren2Request:
		path, watch = r.Path, r.Watch
	case *GetACLRequest:
		path = r.Path
	case *GetAllChildrenNumberRequest:
		path = r.Path
	case *GetEphemeralsRequest:
		prefix := r.PrefixPath
		if prefix == "/" {
			prefix = ""
		}
		return &GetEphemeralsResponse{Ephemerals: v.ZKEphemerals(c.sessionID(), prefix)}, ErrOK
	}
	// ZooKeeper does not check a read's path: one that is not a valid
	// path names no node (NONODE), and "" is the root.
	if path == "" {
		path = "/"
	}
	n, ok := v.ZKNode(path)
	if !ok {
		if _, isExists := req.(*ExistsRequest); isExists && watch {
			reg(false, path)
		}
		return nil, ErrNoNode
	}
	switch req.(type) {
	case *ExistsRequest:
		if watch {
			reg(false, path)
		}
		return &ExistsResponse{Stat: toStat(n.Stat)}, ErrOK
	case *GetACLRequest:
		if !fsm.ZKAllowed(n.ACL, fsm.ZKPermRead|fsm.ZKPermAdmin, auth) {
			return nil, ErrNoAuth
		}
		acl := toACL(n.ACL)
		if !fsm.ZKAllowed(n.ACL, fsm.ZKPermAdmin, auth) {
			for i := range acl {
				if acl[i].ID.Scheme == "digest" { // as ZooKeeper: the user stays, the digest goes
					user, _, _ := strings.Cut(acl[i].ID.ID, ":")
					acl[i].ID.ID = user + ":x"
				}
			}
		}
		return &GetACLResponse{ACL: acl, Stat: toStat(n.Stat)}, ErrOK
	}
	if !fsm.ZKAllowed(n.ACL, fsm.ZKPermRead, auth) {
		return nil, ErrNoAuth
	}
	switch req.(type) {
	case *GetDataRequest:
		if watch {
			reg(false, path)
		}
		return &GetDataResponse{Data: n.Data, Stat: toStat(n.Stat)}, ErrOK
	case *GetAllChildrenNumberRequest:
		return &GetAllChildrenNumberResponse{TotalNumber: int32(v.ZKDescendants(path))}, ErrOK
	}
	children, _ := v.ZKChildren(path)
	if children == nil {
		children = []string{}
	}
	if watch {
		reg(true, path)
	}
	if _, ok := req.(*GetChildren2Request); ok {
		return &GetChildren2Response{Children: children, Stat: toStat(n.Stat)}, ErrOK
	}
	return &GetChildrenResponse{Children: children}, ErrOK
}

// setWatches re-registers a reconnected client's watches, firing at once
// those whose node changed after the zxid the client last saw.
func (c *conn) setWatches(xid int32, rel int64, data, exist, child []string) bool {
	var index uint64
	c.s.w.read(c, func(v *fsm.View, reg func(child bool, path string)) error {
		index = v.Index()
		for _, w := range []struct {
			paths   []string
			child   bool
			changed EventType
		}{{data, false, EventNodeDataChanged}, {child, true, EventNodeChildrenChanged}} {
			for _, p := range w.paths {
				n, ok := v.ZKNode(p)
				switch {
				case !ok:
					c.notify(EventNodeDeleted, p)
				case (!w.child && n.Stat.Mzxid > rel) || (w.child && n.Stat.Pzxid > rel):
					c.notify(w.changed, p)
				default:
					reg(w.child, p)
				}
			}
		}
		for _, p := range exist {
			if _, ok := v.ZKNode(p); ok {
				c.notify(EventNodeCreated, p)
			} else {
				reg(false, p)
			}
		}
		return nil
	})
	return c.reply(xid, -1, ErrOK, nil, index)
}
