package fsm

import (
	"bytes"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"go.etcd.io/bbolt"
)

// The ZooKeeper data model. Znodes live in their own buckets (they are a
// tree, not keys of the key space): zk_nodes maps a path to its record,
// zk_children indexes parent "\x00" child name, zk_sessions maps a session
// ID to its record and zk_ephemerals indexes session(8) path.
//
// zxids: every ZooKeeper command takes one ID from the allocator leases and
// queue items use (txn.newID): it is the entry's Raft index when the entry
// holds one command, and stays unique and increasing when the batcher groups
// several commands into one entry. A node's czxid, mzxid and pzxid, a
// session's ID and the zxid a reply carries are such IDs; View.ZKZxid is the
// highest one applied.
//
// Time (ctime, mtime, a session's last heartbeat) is the leader's clock
// stamped into the command. A session expires when the leader's ZKClose
// (Expire set) finds its last heartbeat older than its timeout; its
// ephemeral nodes are deleted in the same entry.
//
// /zookeeper and /armada are read-only views: /zookeeper holds "config" and
// "quota" as in ZooKeeper (which refuses to delete them with BADARGUMENTS,
// and so does the view), /armada shows the queues whose names are paths under /armada/
// (the scheduler queue and each worker's queue), one child per item named by
// its ID (10 digits) and holding its data. Writes to them fail with NOAUTH.

var (
	bZKNodes      = []byte("zk_nodes")
	bZKChildren   = []byte("zk_children")
	bZKSessions   = []byte("zk_sessions")
	bZKEphemerals = []byte("zk_ephemerals")
)

// ZooKeeper error codes (KeeperException.Code) a ZooKeeper command answers.
const (
	ZKOK                 int32 = 0
	ZKRuntimeInconsist   int32 = -2
	ZKBadArguments       int32 = -8
	ZKNoNode             int32 = -101
	ZKNoAuth             int32 = -102
	ZKBadVersion         int32 = -103
	ZKNoChildrenForEphem int32 = -108
	ZKNodeExists         int32 = -110
	ZKNotEmpty           int32 = -111
	ZKSessionExpired     int32 = -112
	ZKInvalidACL         int32 = -114
)

// ZooKeeper ACL permission bits.
const (
	ZKPermRead   int32 = 1
	ZKPermWrite  int32 = 2
	ZKPermCreate int32 = 4
	ZKPermDelete int32 = 8
	ZKPermAdmin  int32 = 16
	ZKPermAll    int32 = 31
)

// ZooKeeper operation kinds of a ZKMulti.
const (
	ZKOpCreate uint8 = 1
	ZKOpDelete uint8 = 2
	ZKOpSet    uint8 = 3
	ZKOpCheck  uint8 = 4
	ZKOpSetACL uint8 = 5
)

// Limits of ZooKeeper commands.
const (
	MaxZKOps     = 1000
	MaxZKData    = 1 << 20
	MaxZKPath    = 4096
	MaxZKACLs    = 64
	MaxZKAuth    = 16
	MaxZKTouch   = 100000
	MinZKTimeout = 1
)

// ZKStat is a znode's metadata, field for field ZooKeeper's Stat.
type ZKStat struct {
	Czxid          int64
	Mzxid          int64
	Ctime          int64
	Mtime          int64
	Version        int32
	Cversion       int32
	Aversion       int32
	EphemeralOwner int64
	DataLength     int32
	NumChildren    int32
	Pzxid          int64
}

// ZKACL is one access control entry: Scheme "world" (ID "anyone"),
// "digest" (ID "user:base64(sha1(user:password))"), "ip" (an address or
// CIDR), or, in a create or setACL only, "auth" (every identity the
// session authenticated).
type ZKACL struct {
	Perms  int32
	Scheme string
	ID     string
}

// ZKNode is one znode.
type ZKNode struct {
	Path string
	Data []byte
	ACL  []ZKACL
	Stat ZKStat
}

// ZKSession is a ZooKeeper session: its timeout, password and the leader's
// time of its last heartbeat.
type ZKSession struct {
	ID        int64  `json:"id"`
	TimeoutMs int64  `json:"timeout_ms"`
	Passwd    []byte `json:"-"`
	LastTouch int64  `json:"last_touch"`
}

// ZKOp is one operation of a ZKMulti.
type ZKOp struct {
	Kind    uint8
	Path    string
	Data    []byte
	ACL     []ZKACL
	Flags   int32 // create: ZooKeeper's CreateMode (0..3; containers are persistent)
	Version int32 // delete, set, check, setACL: -1 for any
}

// ZKOpResult answers one operation: Err, and for a success the path a
// create made and the node's stat after a create, set or setACL.
type ZKOpResult struct {
	Err  int32  `json:"err,omitempty"`
	Path string `json:"path,omitempty"`
	Stat ZKStat `json:"stat"`
}

// ZKResult is what a ZooKeeper command answered. Err is the code of the
// first failing operation of a multi (which then changed nothing) or
// ZKSessionExpired; Zxid is the zxid the command took.
type ZKResult struct {
	Session int64        `json:"session,omitempty"`
	Err     int32        `json:"err,omitempty"`
	Zxid    int64        `json:"zxid,omitempty"`
	Ops     []ZKOpResult `json:"ops,omitempty"`
	Closed  []int64      `json:"closed,omitempty"`
}

// ZKCreateSession opens a session; its ID is the zxid the command takes.
type ZKCreateSession struct {
	TimeoutMs int64
	Passwd    []byte
	Now       int64
}

func (*ZKCreateSession) Type() CmdType     { return CmdZKCreateSession }
func (c *ZKCreateSession) stamp(now int64) { c.Now = now }
func (c *ZKCreateSession) encode(e *encoder) {
	e.varint(c.TimeoutMs)
	e.bytes(c.Passwd)
	e.varint(c.Now)
}
func (c *ZKCreateSession) decode(d *decoder) {
	c.TimeoutMs, c.Passwd, c.Now = d.varint(), d.bytes(), d.varint()
}

func (c *ZKCreateSession) apply(t *txn) *Result {
	if c.TimeoutMs < MinZKTimeout || len(c.Passwd) > 64 {
		return fail(errf(ErrInvalid, "timeout", "session timeout must be positive and the password at most 64 bytes"))
	}
	id := int64(t.newID())
	t.putSession(&ZKSession{ID: id, TimeoutMs: c.TimeoutMs, Passwd: c.Passwd, LastTouch: c.Now})
	t.changed("zksession", strconv.FormatInt(id, 10), "put")
	return &Result{ZK: &ZKResult{Session: id, Zxid: id}}
}

// ZKTouch records a heartbeat (the leader's Now) of every session a node's
// clients are connected to. Unknown sessions are skipped; the answer's
// Closed lists them.
type ZKTouch struct {
	IDs []int64
	Now int64
}

func (*ZKTouch) Type() CmdType     { return CmdZKTouch }
func (c *ZKTouch) stamp(now int64) { c.Now = now }
func (c *ZKTouch) encode(e *encoder) {
	encodeIDs(e, c.IDs)
	e.varint(c.Now)
}
func (c *ZKTouch) decode(d *decoder) { c.IDs, c.Now = decodeIDs(d), d.varint() }

func encodeIDs(e *encoder, ids []int64) {
	e.uvarint(uint64(len(ids)))
	for _, id := range ids {
		e.varint(id)
	}
}

func decodeIDs(d *decoder) []int64 {
	n := d.length()
	if d.err != nil || n == 0 {
		return nil
	}
	ids := make([]int64, 0, min(n, 1024))
	for i := 0; i < n && d.err == nil; i++ {
		ids = append(ids, d.varint())
	}
	return ids
}

func (c *ZKTouch) apply(t *txn) *Result {
	if len(c.IDs) == 0 || len(c.IDs) > MaxZKTouch {
		return fail(errf(ErrInvalid, "sessions", "a touch names 1..%d sessions", MaxZKTouch))
	}
	r := &ZKResult{}
	for _, id := range c.IDs {
		s, ok := t.session(id)
		if !ok {
			r.Closed = append(r.Closed, id)
			continue
		}
		if c.Now > s.LastTouch {
			s.LastTouch = c.Now
			t.putSession(s)
		}
	}
	return &Result{ZK: r}
}

// ZKClose ends sessions and deletes their ephemeral nodes: all of IDs (a
// client's closeSession), or with Expire only those whose last heartbeat is
// at least their timeout before Now (the leader's expiry). The answer's
// Closed lists the sessions it ended.
type ZKClose struct {
	IDs    []int64
	Expire bool
	Now    int64
}

func (*ZKClose) Type() CmdType     { return CmdZKClose }
func (c *ZKClose) stamp(now int64) { c.Now = now }
func (c *ZKClose) encode(e *encoder) {
	encodeIDs(e, c.IDs)
	e.bool(c.Expire)
	e.varint(c.Now)
}
func (c *ZKClose) decode(d *decoder) { c.IDs, c.Expire, c.Now = decodeIDs(d), d.bool(), d.varint() }

func (c *ZKClose) apply(t *txn) *Result {
	if len(c.IDs) == 0 || len(c.IDs) > MaxZKTouch {
		return fail(errf(ErrInvalid, "sessions", "a close names 1..%d sessions", MaxZKTouch))
	}
	r := &ZKResult{}
	for _, id := range c.IDs {
		s, ok := t.session(id)
		if !ok || (c.Expire && s.LastTouch+s.TimeoutMs > c.Now) {
			continue
		}
		if r.Zxid == 0 {
			r.Zxid = int64(t.newID())
		}
		z := newZKTx(t, 0, nil, c.Now, r.Zxid)
		for _, k := range prefixKeys(t.b(bZKEphemerals), u64(uint64(id))) {
			path := string(k[8:])
			if n, ok := z.get(path); ok {
				z.remove(path, n)
			}
		}
		z.commit()
		t.del(bZKSessions, u64(uint64(id)))
		t.changed("zksession", strconv.FormatInt(id, 10), "delete")
		r.Closed = append(r.Closed, id)
	}
	return &Result{ZK: r}
}

// ZKMulti runs ZooKeeper write operations (create, delete, setData, check,
// setACL) atomically in one entry for Session (0: none), with the session's
// authenticated identities Auth ("scheme:id") for the ACL checks. If one
// fails, nothing changes and Err is its code; each operation's result says
// ZKOK before it, its code, and ZKRuntimeInconsist after it.
type ZKMulti struct {
	Session int64
	Auth    []string
	Ops     []ZKOp
	Now     int64
	// EmptyData keeps the ops' empty data (non-nil) apart from null (nil);
	// without it both are null. It is logged as CmdZKMultiData, which only
	// FeatureZKEmptyData's servers know.
	EmptyData bool
}

func (c *ZKMulti) Type() CmdType {
	if c.EmptyData {
		return CmdZKMultiData
	}
	return CmdZKMulti
}

func (c *ZKMulti) stamp(now int64) { c.Now = now }
func (c *ZKMulti) encode(e *encoder) {
	e.varint(c.Session)
	e.strs(c.Auth)
	e.uvarint(uint64(len(c.Ops)))
	for i := range c.Ops {
		op := &c.Ops[i]
		e.uvarint(uint64(op.Kind))
		e.str(op.Path)
		if c.EmptyData {
			encodeNullable(e, op.Data)
		} else {
			e.bytes(op.Data)
		}
		encodeACLs(e, op.ACL)
		e.varint(int64(op.Flags))
		e.varint(int64(op.Version))
	}
	e.varint(c.Now)
}

// encodeNullable writes b with null (nil) apart from empty: its length
// plus one, or 0 for null.
func encodeNullable(e *encoder, b []byte) {
	if b == nil {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(len(b)) + 1)
	e.b = append(e.b, b...)
}

func decodeNullable(d *decoder) []byte {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil
	}
	if n-1 > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	b := append(make([]byte, 0, n-1), d.b[:n-1]...)
	d.b = d.b[n-1:]
	return b
}

func encodeACLs(e *encoder, acl []ZKACL) {
	e.uvarint(uint64(len(acl)))
	for _, a := range acl {
		e.varint(int64(a.Perms))
		e.str(a.Scheme)
		e.str(a.ID)
	}
}

func decodeACLs(d *decoder) []ZKACL {
	n := d.length()
	if d.err != nil || n == 0 {
		return nil
	}
	acl := make([]ZKACL, 0, min(n, 64))
	for i := 0; i < n && d.err == nil; i++ {
		acl = append(acl, ZKACL{Perms: int32(d.varint()), Scheme: d.str(), ID: d.str()})
	}
	return acl
}

func (c *ZKMulti) decode(d *decoder) {
	c.Session, c.Auth = d.varint(), d.strs()
	n := d.length()
	for i := 0; i < n && d.err == nil; i++ {
		op := ZKOp{Kind: small(d), Path: d.str()}
		if c.EmptyData {
			op.Data = decodeNullable(d)
		} else {
			op.Data = nbytes(d)
		}
		op.ACL = decodeACLs(d)
		op.Flags, op.Version = int32(d.varint()), int32(d.varint())
		c.Ops = append(c.Ops, op)
	}
	c.Now = d.varint()
}

func (c *ZKMulti) check() *Error {
	if len(c.Ops) == 0 || len(c.Ops) > MaxZKOps {
		return errf(ErrInvalid, "ops", "a multi holds 1..%d operations", MaxZKOps)
	}
	if len(c.Auth) > MaxZKAuth {
		return errf(ErrInvalid, "auth", "at most %d identities", MaxZKAuth)
	}
	for i := range c.Ops {
		op := &c.Ops[i]
		switch {
		case op.Kind < ZKOpCreate || op.Kind > ZKOpSetACL:
			return errf(ErrInvalid, elemField("ops", i)+".kind", "unknown operation %d", op.Kind)
		case len(op.Path) > MaxZKPath:
			return errf(ErrInvalid, elemField("ops", i)+".path", "path is %d bytes; the limit is %d", len(op.Path), MaxZKPath)
		case len(op.Data) > MaxZKData:
			return errf(ErrInvalid, elemField("ops", i)+".data", "data is %d bytes; the limit is %d", len(op.Data), MaxZKData)
		case len(op.ACL) > MaxZKACLs:
			return errf(ErrInvalid, elemField("ops", i)+".acl", "at most %d ACL entries", MaxZKACLs)
		}
	}
	return nil
}

func (c *ZKMulti) apply(t *txn) *Result {
	if e := c.check(); e != nil {
		return fail(e)
	}
	r := &ZKResult{Ops: make([]ZKOpResult, len(c.Ops))}
	if c.Session != 0 {
		if t.b(bZKSessions).Get(u64(uint64(c.Session))) == nil {
			r.Err = ZKSessionExpired
			for i := range r.Ops {
				r.Ops[i].Err = ZKSessionExpired
			}
			return &Result{ZK: r}
		}
	}
	zxid := int64(t.newID())
	z := newZKTx(t, c.Session, c.Auth, c.Now, zxid)
	for i := range c.Ops {
		res := z.run(&c.Ops[i])
		if res.Err != ZKOK {
			r.Err = res.Err
			for j := range r.Ops {
				switch {
				case j < i:
					r.Ops[j] = ZKOpResult{}
				case j == i:
					r.Ops[j] = ZKOpResult{Err: res.Err}
				default:
					r.Ops[j] = ZKOpResult{Err: ZKRuntimeInconsist}
				}
			}
			return &Result{ZK: r}
		}
		r.Ops[i] = res
	}
	z.commit()
	r.Zxid = zxid
	return &Result{ZK: r}
}

// zkTx applies operations to an overlay of the tree, so that a multi whose
// operation fails changes nothing; commit writes it out. Nodes it reads
// stay in the overlay too, so each is read from the state once.
type zkTx struct {
	t       *txn
	session int64
	auth    []string
	now     int64
	zxid    int64
	nodes   map[string]*zkSlot
	order   []string // the paths written, in order
	changes []Change
}

// zkSlot is one path in the overlay. Nodes are never changed in place: a
// change stores a changed copy.
type zkSlot struct {
	n       *ZKNode // as the transaction sees it; nil: absent
	stored  bool    // the path was in the state before the transaction
	owner   int64   // the stored node's ephemeral owner
	written bool
}

func newZKTx(t *txn, session int64, auth []string, now, zxid int64) *zkTx {
	return &zkTx{t: t, session: session, auth: auth, now: now, zxid: zxid, nodes: make(map[string]*zkSlot, 2)}
}

func (z *zkTx) get(path string) (*ZKNode, bool) {
	s := z.slot(path)
	return s.n, s.n != nil
}

// slot is path's place in the overlay, read from the state the first time.
func (z *zkTx) slot(path string) *zkSlot {
	if s, ok := z.nodes[path]; ok {
		return s
	}
	n, stored := readZKNode(z.t.b(bZKNodes), path)
	s := &zkSlot{n: n, stored: stored}
	if stored {
		s.owner = n.Stat.EphemeralOwner
	}
	z.nodes[path] = s
	return s
}

func (z *zkTx) set(path string, n *ZKNode, op string) {
	s := z.slot(path)
	if !s.written {
		s.written = true
		z.order = append(z.order, path)
	}
	acl := s.n // a delete's ACL is the node's before it
	if n != nil {
		acl = n
	}
	s.n = n
	if op != "" {
		c := Change{Index: z.t.index, Rev: z.t.current(), Topic: "zk", Key: path, Op: op}
		if acl != nil {
			c.ZKACL = acl.ACL
		}
		z.changes = append(z.changes, c)
	}
}

func (z *zkTx) run(op *ZKOp) ZKOpResult {
	if op.Kind == ZKOpCreate {
		return z.create(op)
	}
	if op.Kind == ZKOpDelete {
		// As ZooKeeper: a delete's path only needs a slash and no NUL, and
		// not to be one of its own nodes; any other path names no node.
		if !strings.Contains(op.Path, "/") || strings.Contains(op.Path, "\x00") || op.Path == "/" || zkSystemNode(op.Path) {
			return ZKOpResult{Err: ZKBadArguments}
		}
	} else if code := ZKCheckPath(op.Path); code != ZKOK {
		return ZKOpResult{Err: code}
	}
	if zkReadOnly(op.Path) {
		return ZKOpResult{Err: ZKNoAuth}
	}
	switch op.Kind {
	case ZKOpDelete:
		parent, ok := z.get(zkParent(op.Path))
		if !ok {
			return ZKOpResult{Err: ZKNoNode}
		}
		if !ZKAllowed(parent.ACL, ZKPermDelete, z.auth) {
			return ZKOpResult{Err: ZKNoAuth}
		}
		n, ok := z.get(op.Path)
		switch {
		case !ok:
			return ZKOpResult{Err: ZKNoNode}
		case op.Version != -1 && op.Version != n.Stat.Version:
			return ZKOpResult{Err: ZKBadVersion}
		case n.Stat.NumChildren > 0:
			return ZKOpResult{Err: ZKNotEmpty}
		}
		z.remove(op.Path, n)
		return ZKOpResult{}
	case ZKOpSet, ZKOpCheck, ZKOpSetACL:
		n, ok := z.get(op.Path)
		if !ok {
			return ZKOpResult{Err: ZKNoNode}
		}
		perm := ZKPermWrite
		switch op.Kind {
		case ZKOpCheck:
			perm = ZKPermRead
		case ZKOpSetACL:
			perm = ZKPermAdmin
		}
		if !ZKAllowed(n.ACL, perm, z.auth) {
			return ZKOpResult{Err: ZKNoAuth}
		}
		cur := n.Stat.Version
		if op.Kind == ZKOpSetACL {
			cur = n.Stat.Aversion
		}
		if op.Version != -1 && op.Version != cur {
			return ZKOpResult{Err: ZKBadVersion}
		}
		switch op.Kind {
		case ZKOpCheck:
			return ZKOpResult{Stat: n.Stat}
		case ZKOpSet:
			c := *n
			c.Data = op.Data
			c.Stat.Version++
			c.Stat.Mzxid, c.Stat.Mtime = z.zxid, z.now
			c.Stat.DataLength = int32(len(op.Data))
			z.set(op.Path, &c, "set")
			return ZKOpResult{Stat: c.Stat}
		default:
			acl, code := z.fixACL(op.ACL)
			if code != ZKOK {
				return ZKOpResult{Err: code}
			}
			c := *n
			c.ACL = acl
			c.Stat.Aversion++
			z.set(op.Path, &c, "acl")
			return ZKOpResult{Stat: c.Stat}
		}
	}
	return ZKOpResult{Err: ZKBadArguments}
}

func (z *zkTx) create(op *ZKOp) ZKOpResult {
	mode := op.Flags
	if mode < 0 || mode > 4 {
		return ZKOpResult{Err: ZKBadArguments}
	}
	sequential, ephemeral := mode == 2 || mode == 3, mode == 1 || mode == 3
	check := op.Path
	if sequential {
		check += "1"
	}
	if code := ZKCheckPath(check); code != ZKOK {
		return ZKOpResult{Err: code}
	}
	if op.Path == "/" {
		return ZKOpResult{Err: ZKNodeExists}
	}
	if zkReadOnly(op.Path) {
		return ZKOpResult{Err: ZKNoAuth}
	}
	ppath := zkParent(op.Path)
	parent, ok := z.get(ppath)
	if !ok {
		return ZKOpResult{Err: ZKNoNode}
	}
	if !ZKAllowed(parent.ACL, ZKPermCreate, z.auth) {
		return ZKOpResult{Err: ZKNoAuth}
	}
	acl, code := z.fixACL(op.ACL)
	if code != ZKOK {
		return ZKOpResult{Err: code}
	}
	path := op.Path
	if sequential {
		// ZooKeeper numbers by the creates under the parent (its cversion
		// counts creates and deletes).
		path += fmt.Sprintf("%010d", (parent.Stat.Cversion+parent.Stat.NumChildren)/2)
	}
	if _, ok := z.get(path); ok {
		return ZKOpResult{Err: ZKNodeExists}
	}
	if parent.Stat.EphemeralOwner != 0 {
		return ZKOpResult{Err: ZKNoChildrenForEphem}
	}
	if ephemeral && z.session == 0 {
		return ZKOpResult{Err: ZKSessionExpired}
	}
	n := &ZKNode{Path: path, Data: op.Data, ACL: acl, Stat: ZKStat{
		Czxid: z.zxid, Mzxid: z.zxid, Pzxid: z.zxid, Ctime: z.now, Mtime: z.now, DataLength: int32(len(op.Data)),
	}}
	if ephemeral {
		n.Stat.EphemeralOwner = z.session
	}
	p := *parent
	p.Stat.Cversion++
	p.Stat.NumChildren++
	p.Stat.Pzxid = z.zxid
	z.set(ppath, &p, "")
	z.set(path, n, "create")
	return ZKOpResult{Path: path, Stat: n.Stat}
}

// remove deletes n (which has no children) from the overlay.
func (z *zkTx) remove(path string, n *ZKNode) {
	ppath := zkParent(path)
	if parent, ok := z.get(ppath); ok {
		p := *parent
		p.Stat.Cversion++
		p.Stat.NumChildren--
		p.Stat.Pzxid = z.zxid
		z.set(ppath, &p, "")
	}
	z.set(path, nil, "delete")
}

// fixACL checks an ACL of a create or setACL and expands "auth" into the
// session's identities, as ZooKeeper does.
func (z *zkTx) fixACL(acl []ZKACL) ([]ZKACL, int32) {
	if len(acl) == 0 {
		return nil, ZKInvalidACL
	}
	var out []ZKACL
	add := func(a ZKACL) {
		for _, b := range out {
			if b == a {
				return
			}
		}
		out = append(out, a)
	}
	for _, a := range acl {
		switch a.Scheme {
		case "world":
			if a.ID != "anyone" {
				return nil, ZKInvalidACL
			}
			add(a)
		case "digest":
			if !strings.Contains(a.ID, ":") {
				return nil, ZKInvalidACL
			}
			add(a)
		case "ip":
			if net.ParseIP(a.ID) == nil {
				if _, _, err := net.ParseCIDR(a.ID); err != nil {
					return nil, ZKInvalidACL
				}
			}
			add(a)
		case "auth":
			found := false
			for _, id := range z.auth {
				scheme, val, _ := strings.Cut(id, ":")
				if scheme == "digest" {
					add(ZKACL{Perms: a.Perms, Scheme: scheme, ID: val})
					found = true
				}
			}
			if !found {
				return nil, ZKInvalidACL
			}
		default:
			return nil, ZKInvalidACL
		}
	}
	return out, ZKOK
}

// commit writes the overlay to the state.
func (z *zkTx) commit() {
	for _, path := range z.order {
		s := z.nodes[path]
		n, had := s.n, s.stored
		if had && s.owner != 0 && (n == nil || n.Stat.EphemeralOwner != s.owner) {
			z.t.del(bZKEphemerals, append(u64(uint64(s.owner)), path...))
		}
		if n == nil {
			if had {
				z.t.del(bZKNodes, []byte(path))
				z.t.del(bZKChildren, zkChildKey(path))
			}
			continue
		}
		z.t.put(bZKNodes, []byte(path), encodeZKNode(n))
		if !had && path != "/" {
			z.t.put(bZKChildren, zkChildKey(path), nil)
		}
		if n.Stat.EphemeralOwner != 0 {
			z.t.put(bZKEphemerals, append(u64(uint64(n.Stat.EphemeralOwner)), path...), nil)
		}
	}
	z.t.changes = append(z.t.changes, z.changes...)
}

// zkChildKey is path's key in the children index: parent, NUL, name.
func zkChildKey(path string) []byte {
	return append([]byte(zkParent(path)+"\x00"), zkBase(path)...)
}

// encodeZKNode writes a node's record: its data, ACL and stat, and a last
// byte 1 when the data is empty rather than null (only written since
// FeatureZKEmptyData, so older versions never read one).
func encodeZKNode(n *ZKNode) []byte {
	var e encoder
	e.bytes(n.Data)
	encodeACLs(&e, n.ACL)
	s := &n.Stat
	for _, v := range []int64{s.Czxid, s.Mzxid, s.Ctime, s.Mtime, int64(s.Version), int64(s.Cversion),
		int64(s.Aversion), s.EphemeralOwner, int64(s.NumChildren), s.Pzxid} {
		e.varint(v)
	}
	if n.Data != nil && len(n.Data) == 0 {
		e.b = append(e.b, 1)
	}
	return e.b
}

func decodeZKNode(path string, v []byte) (*ZKNode, bool) {
	d := decoder{b: v}
	n := &ZKNode{Path: path, Data: nbytes(&d), ACL: decodeACLs(&d)}
	s := &n.Stat
	s.Czxid, s.Mzxid, s.Ctime, s.Mtime = d.varint(), d.varint(), d.varint(), d.varint()
	s.Version, s.Cversion, s.Aversion = int32(d.varint()), int32(d.varint()), int32(d.varint())
	s.EphemeralOwner, s.NumChildren, s.Pzxid = d.varint(), int32(d.varint()), d.varint()
	s.DataLength = int32(len(n.Data))
	if len(d.b) == 1 && d.b[0] == 1 && n.Data == nil {
		n.Data, d.b = []byte{}, nil // empty, not null
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, false
	}
	return n, true
}

// zkRoot is "/" before anything was written under it.
func zkRoot() *ZKNode {
	return &ZKNode{Path: "/", ACL: []ZKACL{{Perms: ZKPermAll, Scheme: "world", ID: "anyone"}}}
}

// readZKNode reads a node, nil when there is none; "/" always exists.
// stored tells whether the node is in the state, not "/" by default.
func readZKNode(b *bbolt.Bucket, path string) (n *ZKNode, stored bool) {
	if v := b.Get([]byte(path)); v != nil {
		return decodeZKNode(path, v)
	}
	if path == "/" {
		return zkRoot(), false
	}
	return nil, false
}

func (t *txn) session(id int64) (*ZKSession, bool) {
	return decodeZKSession(id, t.b(bZKSessions).Get(u64(uint64(id))))
}

func (t *txn) putSession(s *ZKSession) {
	var e encoder
	e.varint(s.TimeoutMs)
	e.bytes(s.Passwd)
	e.varint(s.LastTouch)
	t.put(bZKSessions, u64(uint64(s.ID)), e.b)
}

func decodeZKSession(id int64, v []byte) (*ZKSession, bool) {
	if v == nil {
		return nil, false
	}
	d := decoder{b: v}
	s := &ZKSession{ID: id, TimeoutMs: d.varint(), Passwd: d.bytes(), LastTouch: d.varint()}
	if d.err != nil {
		return nil, false
	}
	return s, true
}

// zkParent is the parent of a valid path other than "/".
func zkParent(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/"
	}
	return path[:i]
}

func zkBase(path string) string { return path[strings.LastIndexByte(path, '/')+1:] }

// ZKCheckPath validates a path as ZooKeeper's PathUtils does: absolute, no
// empty, "." or ".." components, no trailing slash, no control or
// reserved characters. It answers ZKOK or ZKBadArguments.
func ZKCheckPath(path string) int32 {
	if path == "/" {
		return ZKOK
	}
	if len(path) < 2 || path[0] != '/' || path[len(path)-1] == '/' || len(path) > MaxZKPath {
		return ZKBadArguments
	}
	for _, part := range strings.Split(path[1:], "/") {
		if part == "" || part == "." || part == ".." {
			return ZKBadArguments
		}
	}
	for _, r := range path {
		if r <= 0x1f || (r >= 0x7f && r <= 0x9f) || (r >= 0xd800 && r <= 0xf8ff) || (r >= 0xfff0 && r <= 0xffff) {
			return ZKBadArguments
		}
	}
	return ZKOK
}

// zkReadOnly reports paths of the read-only views.
// zkSystemNode reports whether path is one of ZooKeeper's own nodes, which
// it never deletes.
func zkSystemNode(path string) bool {
	return path == "/zookeeper" || path == "/zookeeper/quota" || path == "/zookeeper/config"
}

func zkReadOnly(path string) bool {
	for _, root := range []string{"/zookeeper", "/armada"} {
		if path == root || strings.HasPrefix(path, root+"/") {
			return true
		}
	}
	return false
}

// ZKAllowed reports whether an ACL grants perm to a session with the
// identities auth ("scheme:id").
func ZKAllowed(acl []ZKACL, perm int32, auth []string) bool {
	for _, a := range acl {
		if a.Perms&perm == 0 {
			continue
		}
		if a.Scheme == "world" && a.ID == "anyone" {
			return true
		}
		for _, id := range auth {
			scheme, val, _ := strings.Cut(id, ":")
			if scheme != a.Scheme {
				continue
			}
			if val == a.ID {
				return true
			}
			if scheme == "ip" {
				if _, cidr, err := net.ParseCIDR(a.ID); err == nil && cidr.Contains(net.ParseIP(val)) {
					return true
				}
			}
		}
	}
	return false
}

// ZKZxid is the highest zxid applied.
func (v *View) ZKZxid() int64 {
	return int64(max(v.index, lastGivenID(v.tx)))
}

// ZKSession returns a session.
func (v *View) ZKSession(id int64) (*ZKSession, bool) {
	return decodeZKSession(id, v.tx.Bucket(bZKSessions).Get(u64(uint64(id))))
}

// ZKSessions returns every session.
func (v *View) ZKSessions() []*ZKSession {
	var out []*ZKSession
	v.tx.Bucket(bZKSessions).ForEach(func(k, val []byte) error {
		if s, ok := decodeZKSession(int64(getU64(k)), val); ok {
			out = append(out, s)
		}
		return nil
	})
	return out
}

// ZKEphemerals lists a session's ephemeral nodes under prefix, in order.
func (v *View) ZKEphemerals(session int64, prefix string) []string {
	var out []string
	for _, k := range prefixKeys(v.tx.Bucket(bZKEphemerals), u64(uint64(session))) {
		if p := string(k[8:]); strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	return out
}

// ZKNode returns a znode, including those of the read-only views.
func (v *View) ZKNode(path string) (*ZKNode, bool) {
	if zkReadOnly(path) {
		return v.zkVirtual(path)
	}
	n, _ := readZKNode(v.tx.Bucket(bZKNodes), path)
	if n != nil && path == "/" {
		n.Stat.NumChildren += 2 // zookeeper, armada
		if n.Data == nil {
			n.Data = []byte{} // ZooKeeper's root holds empty data
		}
	}
	return n, n != nil
}

// ZKChildren lists a znode's children in order (false: no such node).
func (v *View) ZKChildren(path string) ([]string, bool) {
	if zkReadOnly(path) {
		if _, ok := v.zkVirtual(path); !ok {
			return nil, false
		}
		return v.zkVirtualChildren(path), true
	}
	if n, _ := readZKNode(v.tx.Bucket(bZKNodes), path); n == nil {
		return nil, false
	}
	prefix := []byte(path + "\x00")
	var out []string
	for _, k := range prefixKeys(v.tx.Bucket(bZKChildren), prefix) {
		out = append(out, string(k[len(prefix):]))
	}
	if path == "/" {
		out = append(out, "armada", "zookeeper")
		sort.Strings(out)
	}
	return out, true
}

// ZKDescendants counts the nodes under path (getAllChildrenNumber).
func (v *View) ZKDescendants(path string) int {
	prefix := path + "/"
	if path == "/" {
		prefix = "/"
	}
	n := 0
	c := v.tx.Bucket(bZKNodes).Cursor()
	for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
		if string(k) != "/" {
			n++
		}
	}
	return n
}

// ZKTotals sums up the ZooKeeper tree for the mntr admin word.
type ZKTotals struct {
	// Nodes counts "/", what clients created under it, and ZooKeeper's own
	// /zookeeper, /zookeeper/quota and /zookeeper/config; not the /armada
	// views.
	Nodes int
	// Ephemerals counts the ephemeral nodes, Sessions the open sessions.
	Ephemerals, Sessions int
	// DataSize sums the lengths of those nodes' paths and data, as
	// ZooKeeper's approximate data size.
	DataSize int64
}

// ZKTotals reads the whole tree: it is for admin words, not the hot path.
func (v *View) ZKTotals() ZKTotals {
	t := ZKTotals{Nodes: 4, DataSize: int64(len("/") + len("/zookeeper") + len("/zookeeper/quota") + len("/zookeeper/config"))}
	v.tx.Bucket(bZKNodes).ForEach(func(k, val []byte) error {
		if string(k) != "/" {
			t.Nodes++
			t.DataSize += int64(len(k))
		}
		d := decoder{b: val}
		t.DataSize += int64(d.length())
		return nil
	})
	t.Ephemerals = v.tx.Bucket(bZKEphemerals).Stats().KeyN
	t.Sessions = v.tx.Bucket(bZKSessions).Stats().KeyN
	return t
}

// zkQueueViews maps each queue path of the /armada view to its queue name:
// the scheduler queue, every worker node's queue, and any other queue whose
// name is a path under /armada/.
func (v *View) zkQueueViews() map[string]bool {
	qs := map[string]bool{SchedulerQueue: true}
	for _, n := range v.Nodes() {
		if n.Worker {
			qs[WorkerQueue(n.Name)] = true
		}
	}
	for _, q := range v.Queues() {
		if strings.HasPrefix(q, "/armada/") && ZKCheckPath(q) == ZKOK {
			qs[q] = true
		}
	}
	return qs
}

var zkReadACL = []ZKACL{{Perms: ZKPermRead, Scheme: "world", ID: "anyone"}}

func (v *View) zkVirtual(path string) (*ZKNode, bool) {
	switch path {
	case "/zookeeper":
		return &ZKNode{Path: path, Data: []byte{}, ACL: zkReadACL, Stat: ZKStat{NumChildren: 2}}, true
	case "/zookeeper/quota", "/zookeeper/config":
		return &ZKNode{Path: path, Data: []byte{}, ACL: zkReadACL}, true
	}
	if !strings.HasPrefix(path, "/armada") {
		return nil, false
	}
	qs := v.zkQueueViews()
	if qs[zkParent(path)] {
		id, err := strconv.ParseUint(zkBase(path), 10, 64)
		if err != nil {
			return nil, false
		}
		for _, it := range v.Queue(zkParent(path)) {
			if it.ID == id {
				return &ZKNode{Path: path, Data: it.Data, ACL: zkReadACL, Stat: ZKStat{
					Czxid: int64(id), Mzxid: int64(id), Pzxid: int64(id), Ctime: it.Enqueued, Mtime: it.Enqueued,
					DataLength: int32(len(it.Data)),
				}}, true
			}
		}
		return nil, false
	}
	for q := range qs {
		if q == path || strings.HasPrefix(q, path+"/") {
			n := &ZKNode{Path: path, ACL: zkReadACL}
			n.Stat.NumChildren = int32(len(v.zkVirtualChildren(path)))
			return n, true
		}
	}
	return nil, false
}

func (v *View) zkVirtualChildren(path string) []string {
	switch path {
	case "/zookeeper":
		return []string{"config", "quota"}
	case "/zookeeper/quota", "/zookeeper/config":
		return nil
	}
	qs := v.zkQueueViews()
	var out []string
	if qs[path] {
		for _, it := range v.Queue(path) {
			out = append(out, fmt.Sprintf("%010d", it.ID))
		}
	}
	seen := map[string]bool{}
	for q := range qs {
		if rest, ok := strings.CutPrefix(q, path+"/"); ok {
			name, _, _ := strings.Cut(rest, "/")
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ChangesAt is Changes that also returns the index the feed has published
// up to: every change at or below it is in the answer or was before since.
func (s *State) ChangesAt(since uint64) ([]Change, uint64, <-chan struct{}, error) {
	s.feed.mu.Lock()
	published := s.feed.index
	s.feed.mu.Unlock()
	changes, ch, err := s.feed.since(since)
	return changes, published, ch, err
}
