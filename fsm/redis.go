package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.etcd.io/bbolt"
)

// The Redis data model. Redis keys are keys of the one key space (/v1/kv,
// etcd, ...): a Redis string is a KV whose Type is KVString and whose value
// is the string's bytes, so SET foo bar and PUT /v1/kv/foo are the same
// write. A hash or a list is a KV of Type KVHash or KVList whose value is
// its encoding:
//
//	hash: uvarint n, then n pairs of (bytes field, bytes value), in the
//	      order the fields were first set
//	list: uvarint n, then n elements as bytes, head first
//
// where bytes is a uvarint length and the bytes. Revisions, versions and
// leases work as for any key; a Redis TTL is a lease made for that one key
// (Lease.Key) that ends when the key leaves it. A key whose lease has
// expired by the command's time (the leader's clock, stamped into the
// command) reads as absent, in Apply and in the adapter's local reads, even
// before the leader's Expire command has removed it, as in Redis.

// KVType is the kind of value a key holds.
type KVType string

// Key types.
const (
	KVString KVType = ""
	KVHash   KVType = "hash"
	KVList   KVType = "list"
)

func (t KVType) code() uint8 {
	switch t {
	case KVHash:
		return 1
	case KVList:
		return 2
	}
	return 0
}

func kvTypeOf(code uint64) (KVType, bool) {
	switch code {
	case 1:
		return KVHash, true
	case 2:
		return KVList, true
	}
	return "", false
}

// RedisName is the name Redis' TYPE command gives t.
func (t KVType) RedisName() string {
	if t == KVString {
		return "string"
	}
	return string(t)
}

// MaxRedisCmds bounds the commands of one RedisExec, and MaxRedisArgs the
// arguments of one command.
const (
	MaxRedisCmds = 4096
	MaxRedisArgs = 1 << 16
)

// RedisExec runs Redis commands (argv, command name first) in order,
// atomically, in one log entry: single commands, a connection's pipelined
// commands, and MULTI/EXEC transactions. Each command gets its own reply,
// exactly as Redis would give it; a command that fails with a Redis error
// (WRONGTYPE, not an integer, ...) changes nothing and the others still run,
// as inside Redis' EXEC. The entry is rejected as a whole, with no reply,
// when it is empty or holds a command the adapter should never have sent:
// an unknown one or one with the wrong number of arguments.
type RedisExec struct {
	Cmds [][][]byte
	Now  int64
}

func (*RedisExec) Type() CmdType     { return CmdRedisExec }
func (c *RedisExec) stamp(now int64) { c.Now = now }
func (c *RedisExec) encode(e *encoder) {
	e.uvarint(uint64(len(c.Cmds)))
	for _, argv := range c.Cmds {
		e.uvarint(uint64(len(argv)))
		for _, a := range argv {
			e.bytes(a)
		}
	}
	e.varint(c.Now)
}
func (c *RedisExec) decode(d *decoder) {
	n := d.length()
	if d.err != nil {
		return
	}
	if n > MaxRedisCmds {
		d.fail(errors.New("too many redis commands"))
		return
	}
	if n > 0 {
		c.Cmds = make([][][]byte, 0, n)
	}
	for range n {
		argc := d.length()
		if d.err != nil {
			return
		}
		if argc > MaxRedisArgs {
			d.fail(errors.New("too many redis arguments"))
			return
		}
		var argv [][]byte
		if argc > 0 {
			argv = make([][]byte, 0, argc)
		}
		for range argc {
			argv = append(argv, d.bytes())
		}
		c.Cmds = append(c.Cmds, argv)
	}
	c.Now = d.varint()
}

func (c *RedisExec) apply(t *txn) *Result {
	if len(c.Cmds) == 0 {
		return fail(errf(ErrInvalid, "cmds", "no commands"))
	}
	for i, argv := range c.Cmds {
		if r := RedisCheck(argv); r != nil {
			return fail(errf(ErrInvalid, fmt.Sprintf("cmds[%d]", i), "%s", r.Str))
		}
	}
	db := &redisDB{tx: t.tx, t: t, now: c.Now}
	if c.Now > getI64(t.b(bMeta).Get(kRedisClock)) {
		t.put(bMeta, kRedisClock, u64(uint64(c.Now)))
	}
	out := make([]RedisReply, len(c.Cmds))
	size := 0
	for i, argv := range c.Cmds {
		// Reads pipelined with writes run here, on every node: once the
		// entry's replies pass maxEntryReplies, further reads answer an
		// error instead of running (writes always run).
		if cmd, _ := lookupRedis(argv[0]); !cmd.write && size > maxEntryReplies {
			out[i] = rErr(fmt.Sprintf("ERR armada: the replies of one pipeline with writes exceed %d MiB; read in a separate pipeline", maxEntryReplies>>20))
			continue
		}
		out[i] = db.exec(argv)
		size += out[i].size()
	}
	return &Result{Redis: out}
}

// maxEntryReplies bounds the replies one RedisExec builds, on every node
// (and within what a forwarded answer may carry).
const maxEntryReplies = 8 << 20

// size is about how many bytes the reply takes.
func (r *RedisReply) size() int {
	n := 16 + len(r.Str)
	for i := range r.Arr {
		n += r.Arr[i].size()
	}
	return n
}

// RedisKind is the RESP type of a reply.
type RedisKind uint8

// Reply kinds.
const (
	RedisStatus   RedisKind = 1 // +OK
	RedisErr      RedisKind = 2 // -ERR ...
	RedisInt      RedisKind = 3 // :1
	RedisBulk     RedisKind = 4 // $3 foo
	RedisNil      RedisKind = 5 // $-1
	RedisArray    RedisKind = 6 // *n
	RedisNilArray RedisKind = 7 // *-1
)

// RedisReply is one Redis reply.
type RedisReply struct {
	Kind RedisKind    `json:"k"`
	Str  []byte       `json:"s,omitempty"`
	Int  int64        `json:"i,omitempty"`
	Arr  []RedisReply `json:"a,omitempty"`
}

func rStatus(s string) RedisReply { return RedisReply{Kind: RedisStatus, Str: []byte(s)} }
func rErr(s string) RedisReply    { return RedisReply{Kind: RedisErr, Str: []byte(s)} }
func rInt(i int64) RedisReply     { return RedisReply{Kind: RedisInt, Int: i} }
func rBulk(b []byte) RedisReply   { return RedisReply{Kind: RedisBulk, Str: b} }
func rNil() RedisReply            { return RedisReply{Kind: RedisNil} }
func rArr(a []RedisReply) RedisReply {
	if a == nil {
		a = []RedisReply{}
	}
	return RedisReply{Kind: RedisArray, Arr: a}
}

var rOK = rStatus("OK")

// Redis error texts, as Redis 7 words them.
const (
	errWrongType   = "WRONGTYPE Operation against a key holding the wrong kind of value"
	errNotInt      = "ERR value is not an integer or out of range"
	errOverflow    = "ERR increment or decrement would overflow"
	errSyntax      = "ERR syntax error"
	errHashNotInt  = "ERR hash value is not an integer"
	errTooLarge    = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
	errKeyTooLong  = "ERR key is too long"
	errNotPositive = "ERR value is out of range, must be positive"
)

// RedisErrArity is Redis' error for a wrong number of arguments.
func RedisErrArity(name string) string {
	return fmt.Sprintf("ERR wrong number of arguments for '%s' command", strings.ToLower(name))
}

// RedisErrUnknown is Redis' error for an unknown command.
func RedisErrUnknown(argv [][]byte) string {
	var b strings.Builder
	name := ""
	if len(argv) > 0 {
		name = string(argv[0])
	}
	fmt.Fprintf(&b, "ERR unknown command '%.128s', with args beginning with: ", name)
	for i, a := range argv {
		if i == 0 {
			continue
		}
		if b.Len() >= 128 {
			break
		}
		fmt.Fprintf(&b, "'%.*s' ", 128-b.Len(), a)
	}
	return b.String()
}

type redisCmd struct {
	arity int // Redis' arity: exact when positive, at least -arity when negative (the name counts)
	write bool
	fn    func(db *redisDB, argv [][]byte) RedisReply
}

// redisCmds are the data commands the state machine runs. Connection,
// pub/sub and blocking commands live in the adapter; BLPOP and BRPOP here
// are their non-blocking form (EXEC runs them so in Redis too). Like
// commandTable, it is never written after package initialisation.
var redisCmds = map[string]redisCmd{
	"ping":    {-1, false, cmdPing},
	"echo":    {2, false, func(_ *redisDB, a [][]byte) RedisReply { return rBulk(a[1]) }},
	"get":     {2, false, cmdGet},
	"mget":    {-2, false, cmdMget},
	"strlen":  {2, false, cmdStrlen},
	"exists":  {-2, false, cmdExists},
	"type":    {2, false, cmdType},
	"keys":    {2, false, cmdKeys},
	"scan":    {-2, false, cmdScan},
	"ttl":     {2, false, cmdTTL},
	"pttl":    {2, false, cmdTTL},
	"hget":    {3, false, cmdHget},
	"hmget":   {-3, false, cmdHmget},
	"hgetall": {2, false, cmdHgetall},
	"hlen":    {2, false, cmdHlen},
	"hexists": {3, false, cmdHexists},
	"llen":    {2, false, cmdLlen},
	"lrange":  {4, false, cmdLrange},
	"set":     {-3, true, cmdSet},
	"setnx":   {3, true, cmdSetnx},
	"getset":  {3, true, cmdGetset},
	"mset":    {-3, true, cmdMset},
	"append":  {3, true, cmdAppend},
	"incr":    {2, true, cmdIncr},
	"decr":    {2, true, cmdIncr},
	"incrby":  {3, true, cmdIncr},
	"decrby":  {3, true, cmdIncr},
	"del":     {-2, true, cmdDel},
	"expire":  {-3, true, cmdExpire},
	"pexpire": {-3, true, cmdExpire},
	"persist": {2, true, cmdPersist},
	"hset":    {-4, true, cmdHset},
	"hdel":    {-3, true, cmdHdel},
	"hincrby": {4, true, cmdHincrby},
	"lpush":   {-3, true, cmdPush},
	"rpush":   {-3, true, cmdPush},
	"lpop":    {-2, true, cmdPop},
	"rpop":    {-2, true, cmdPop},
	"blpop":   {-3, true, cmdBpop},
	"brpop":   {-3, true, cmdBpop},
	// armada.node NAME ADDR records where a node's Redis adapter listens,
	// for PUBLISH to reach the other nodes. The adapter sends it for
	// itself and never accepts it from a client.
	"armada.node": {3, true, cmdArmadaNode},
	// armada.pop ID BLPOP|BRPOP KEY... TIMEOUT is the adapter's blocking
	// pop, made safe to retry: see cmdArmadaPop.
	"armada.pop": {-5, true, cmdArmadaPop},
}

func lookupRedis(name []byte) (redisCmd, bool) {
	c, ok := redisCmds[strings.ToLower(string(name))]
	return c, ok && c.fn != nil
}

// IsRedisCommand reports whether the state machine runs the command, and
// whether it writes.
func IsRedisCommand(name []byte) (known, write bool) {
	c, ok := lookupRedis(name)
	return ok, ok && c.write
}

// RedisCheck returns the error reply for a command Redis would refuse
// before running it (unknown, wrong number of arguments), or nil.
func RedisCheck(argv [][]byte) *RedisReply {
	if len(argv) == 0 {
		r := rErr("ERR empty command")
		return &r
	}
	if len(argv) > MaxRedisArgs {
		// Refused before it reaches the log: an entry with more would not
		// decode, and would take the other writes batched with it down.
		r := rErr(fmt.Sprintf("ERR armada: %d arguments; the limit is %d", len(argv), MaxRedisArgs))
		return &r
	}
	c, ok := lookupRedis(argv[0])
	if !ok {
		r := rErr(RedisErrUnknown(argv))
		return &r
	}
	if c.arity > 0 && len(argv) != c.arity || c.arity < 0 && len(argv) < -c.arity {
		r := rErr(RedisErrArity(string(argv[0])))
		return &r
	}
	return nil
}

// RedisRead runs read-only commands on the view at nowMs (the local clock:
// it only decides which TTLs have run out) and returns their replies. A
// write command gets an error reply: writes go through RedisExec.
func (v *View) RedisRead(cmds [][][]byte, nowMs int64) []RedisReply {
	db := &redisDB{tx: v.tx, now: nowMs}
	out := make([]RedisReply, len(cmds))
	for i, argv := range cmds {
		if r := RedisCheck(argv); r != nil {
			out[i] = *r
			continue
		}
		if _, write := IsRedisCommand(argv[0]); write {
			out[i] = rErr("ERR write command on a read-only view")
			continue
		}
		out[i] = db.exec(argv)
	}
	return out
}

// RedisHasList reports whether any of keys holds a list (lists are never
// empty) or a value of another type: a blocking pop tries through Raft only
// then, and answers WRONGTYPE at once for the other type, as Redis does.
func (v *View) RedisHasList(keys []string, nowMs int64) bool {
	db := &redisDB{tx: v.tx, now: nowMs}
	for _, k := range keys {
		if kv := db.live(k); kv != nil {
			return true
		}
	}
	return false
}

// redisDB runs commands over a write transaction (t set) or a read-only
// view (t nil).
type redisDB struct {
	tx  *bbolt.Tx
	t   *txn
	now int64
}

func (db *redisDB) exec(argv [][]byte) RedisReply {
	if r := RedisCheck(argv); r != nil {
		return *r
	}
	c, _ := lookupRedis(argv[0])
	for _, k := range redisKeys(argv) {
		if len(k) > MaxKeyLen {
			return rErr(errKeyTooLong)
		}
	}
	return c.fn(db, argv)
}

// redisKeys returns the keys a command names, for the length check. The
// key space refuses the empty key, which Redis allows: such commands get
// an error reply from checkRedisKey instead.
func redisKeys(argv [][]byte) [][]byte {
	name := strings.ToLower(string(argv[0]))
	switch name {
	case "ping", "echo", "keys", "scan":
		return nil
	case "mget", "exists", "del":
		return argv[1:]
	case "mset":
		var out [][]byte
		for i := 1; i < len(argv); i += 2 {
			out = append(out, argv[i])
		}
		return out
	case "blpop", "brpop":
		return argv[1 : len(argv)-1]
	case "armada.pop":
		return argv[3 : len(argv)-1]
	}
	return argv[1:2]
}

func (db *redisDB) lease(id uint64) *Lease {
	l, _ := getJSON[Lease](db.tx.Bucket(bLeases), u64(id))
	return l
}

// live returns a key unless it is absent or its lease has run out by
// db.now. In a write transaction an expired key is deleted on the spot
// (db.now is the leader's stamped time, so every node does the same).
func (db *redisDB) live(key string) *KV {
	if key == "" {
		return nil
	}
	b := db.tx.Bucket(bKV).Get([]byte(key))
	if b == nil {
		return nil
	}
	kv := decodeKV(key, b)
	if kv == nil {
		return nil
	}
	if kv.Lease != 0 {
		if l := db.lease(kv.Lease); l != nil && l.Expiry <= db.now {
			if db.t != nil {
				db.remove(kv)
			}
			return nil
		}
	}
	return kv
}

// remove deletes a key (and its Redis lease, see detachLease).
func (db *redisDB) remove(kv *KV) { db.t.deleteKey(kv) }

// put stores key with the given type and value. lease is the lease it is
// on afterwards: prev's to keep a TTL, 0 for none, or a new one.
func (db *redisDB) put(key string, prev *KV, typ KVType, val []byte, lease uint64) *KV {
	t := db.t
	rev := t.revision()
	kv := &KV{Key: key, Value: val, CreateRev: rev, ModRev: rev, Version: 1, Lease: lease, Type: typ}
	if prev != nil {
		kv.CreateRev, kv.Version = prev.CreateRev, prev.Version+1
		if prev.Lease != 0 && prev.Lease != lease {
			t.detachLease(prev.Lease, key)
		}
	}
	if lease != 0 {
		t.put(bLeaseKeys, leaseKey(lease, key), nil)
	}
	t.put(bKV, []byte(key), encodeKV(kv))
	t.changedKV(kv, prev)
	return kv
}

// newLease makes a lease for key's TTL, ending at the absolute time atMs.
func (db *redisDB) newLease(key string, atMs int64) uint64 {
	ttl := max(atMs-db.now, 1)
	l := &Lease{ID: db.t.newID(), TTLms: ttl, Expiry: atMs, Key: key}
	db.t.grantLease(l)
	return l.ID
}

func leaseOf(kv *KV) uint64 {
	if kv == nil {
		return 0
	}
	return kv.Lease
}

// Integer parsing as Redis' string2ll: an optional minus, no plus, no
// leading zeros, no spaces, within int64.
func parseRedisInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	s := string(b)
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || (digits[0] == '0' && len(digits) > 1) || (digits == "0" && s != "0") {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

func key1(argv [][]byte) string { return string(argv[1]) }

// ---- connection commands that are also valid inside EXEC

func cmdPing(_ *redisDB, a [][]byte) RedisReply {
	switch len(a) {
	case 1:
		return rStatus("PONG")
	case 2:
		return rBulk(a[1])
	}
	return rErr(RedisErrArity("ping"))
}

// ---- strings

// str returns a live string key, or an error reply if it holds another type.
func (db *redisDB) str(key string) (*KV, *RedisReply) {
	kv := db.live(key)
	if kv != nil && kv.Type != KVString {
		r := rErr(errWrongType)
		return nil, &r
	}
	return kv, nil
}

func cmdGet(db *redisDB, a [][]byte) RedisReply {
	kv, e := db.str(key1(a))
	if e != nil {
		return *e
	}
	if kv == nil {
		return rNil()
	}
	return rBulk(kv.Value)
}

func cmdMget(db *redisDB, a [][]byte) RedisReply {
	out := make([]RedisReply, 0, len(a)-1)
	for _, k := range a[1:] {
		kv := db.live(string(k))
		if kv == nil || kv.Type != KVString {
			out = append(out, rNil())
		} else {
			out = append(out, rBulk(kv.Value))
		}
	}
	return rArr(out)
}

func cmdStrlen(db *redisDB, a [][]byte) RedisReply {
	kv, e := db.str(key1(a))
	if e != nil {
		return *e
	}
	if kv == nil {
		return rInt(0)
	}
	return rInt(int64(len(kv.Value)))
}

func checkRedisKey(key string) *RedisReply {
	if key == "" {
		r := rErr("ERR empty keys are not supported by Armada's key space")
		return &r
	}
	return nil
}

func checkValue(n int) *RedisReply {
	if n > MaxValueLen {
		r := rErr(errTooLarge)
		return &r
	}
	return nil
}

func cmdSet(db *redisDB, a [][]byte) RedisReply {
	key := key1(a)
	var nx, xx, get, keepTTL bool
	var expireAt int64 // absolute ms; 0: none
	unit := ""
	for i := 3; i < len(a); i++ {
		opt := strings.ToUpper(string(a[i]))
		switch {
		case opt == "NX" && !xx:
			nx = true
		case opt == "XX" && !nx:
			xx = true
		case opt == "GET":
			get = true
		case opt == "KEEPTTL" && unit == "":
			keepTTL = true
		case (opt == "EX" || opt == "PX" || opt == "EXAT" || opt == "PXAT") && unit == "" && !keepTTL && i+1 < len(a):
			unit = opt
			i++
			v, ok := parseRedisInt(a[i])
			if !ok {
				return rErr(errNotInt)
			}
			at, ok := expireTime(db.now, v, opt)
			if !ok {
				return rErr("ERR invalid expire time in 'set' command")
			}
			expireAt = at
		default:
			return rErr(errSyntax)
		}
	}
	if e := checkRedisKey(key); e != nil {
		return *e
	}
	if e := checkValue(len(a[2])); e != nil {
		return *e
	}
	prev := db.live(key)
	if get && prev != nil && prev.Type != KVString {
		return rErr(errWrongType)
	}
	reply := rOK
	if get {
		reply = rNil()
		if prev != nil {
			reply = rBulk(prev.Value)
		}
	}
	if nx && prev != nil || xx && prev == nil {
		if get {
			return reply
		}
		return rNil()
	}
	lease := uint64(0)
	switch {
	case keepTTL:
		lease = leaseOf(prev)
	case expireAt != 0:
		lease = db.newLease(key, expireAt)
	}
	db.put(key, prev, KVString, a[2], lease)
	return reply
}

// expireTime turns an EX/PX/EXAT/PXAT argument into an absolute time in
// ms, as Redis validates it: positive, and no overflow.
func expireTime(now, v int64, unit string) (int64, bool) {
	if v <= 0 {
		return 0, false
	}
	ms := v
	if unit == "EX" || unit == "EXAT" {
		if v > math.MaxInt64/1000 {
			return 0, false
		}
		ms = v * 1000
	}
	if unit == "EXAT" || unit == "PXAT" {
		return ms, true
	}
	if ms > math.MaxInt64-now {
		return 0, false
	}
	return now + ms, true
}

func cmdSetnx(db *redisDB, a [][]byte) RedisReply {
	key := key1(a)
	if e := checkRedisKey(key); e != nil {
		return *e
	}
	if e := checkValue(len(a[2])); e != nil {
		return *e
	}
	if db.live(key) != nil {
		return rInt(0)
	}
	db.put(key, nil, KVString, a[2], 0)
	return rInt(1)
}

func cmdGetset(db *redisDB, a [][]byte) RedisReply {
	key := key1(a)
	if e := checkRedisKey(key); e != nil {
		return *e
	}
	prev, e := db.str(key)
	if e != nil {
		return *e
	}
	if e := checkValue(len(a[2])); e != nil {
		return *e
	}
	db.put(key, prev, KVString, a[2], 0)
	if prev == nil {
		return rNil()
	}
	return rBulk(prev.Value)
}

func cmdMset(db *redisDB, a [][]byte) RedisReply {
	if len(a)%2 != 1 {
		return rErr(RedisErrArity(string(a[0])))
	}
	for i := 1; i < len(a); i += 2 {
		if e := checkRedisKey(string(a[i])); e != nil {
			return *e
		}
		if e := checkValue(len(a[i+1])); e != nil {
			return *e
		}
	}
	for i := 1; i < len(a); i += 2 {
		key := string(a[i])
		db.put(key, db.live(key), KVString, a[i+1], 0)
	}
	return rOK
}

func cmdAppend(db *redisDB, a [][]byte) RedisReply {
	key := key1(a)
	if e := checkRedisKey(key); e != nil {
		return *e
	}
	prev, e := db.str(key)
	if e != nil {
		return *e
	}
	var val []byte
	if prev != nil {
		val = append(val, prev.Value...)
	}
	val = append(val, a[2]...)
	if e := checkValue(len(val)); e != nil {
		return *e
	}
	db.put(key, prev, KVString, val, leaseOf(prev))
	return rInt(int64(len(val)))
}

func cmdIncr(db *redisDB, a [][]byte) RedisReply {
	key := key1(a)
	name := strings.ToLower(string(a[0]))
	by := int64(1)
	if len(a) == 3 {
		v, ok := parseRedisInt(a[2])
		if !ok {
			return rErr(errNotInt)
		}
		by = v
	}
	if name == "decr" || name == "decrby" {
		if by == math.MinInt64 {
			return rErr("ERR decrement would overflow")
		}
		by = -by
	}
	if e := checkRedisKey(key); e != nil {
		return *e
	}
	prev, e := db.str(key)
	if e != nil {
		return *e
	}
	var cur int64
	if prev != nil {
		v, ok := parseRedisInt(prev.Value)
		if !ok {
			return rErr(errNotInt)
		}
		cur = v
	}
	if by > 0 && cur > math.MaxInt64-by || by < 0 && cur < math.MinInt64-by {
		return rErr(errOverflow)
	}
	cur += by
	db.put(key, prev, KVString, []byte(strconv.FormatInt(cur, 10)), leaseOf(prev))
	return rInt(cur)
}

// ---- keys

func cmdDel(db *redisDB, a [][]byte) RedisReply {
	n := int64(0)
	for _, k := range a[1:] {
		if kv := db.live(string(k)); kv != nil {
			db.remove(kv)
			n++
		}
	}
	return rInt(n)
}

func cmdExists(db *redisDB, a [][]byte) RedisReply {
	n := int64(0)
	for _, k := range a[1:] {
		if db.live(string(k)) != nil {
			n++
		}
	}
	return rInt(n)
}

func cmdType(db *redisDB, a [][]byte) RedisReply {
	kv := db.live(key1(a))
	if kv == nil {
		return rStatus("none")
	}
	return rStatus(kv.Type.RedisName())
}

// liveKeys calls fn for every live key in key order from the first key at
// or after start; fn returns false to stop.
func (db *redisDB) forEachKey(fn func(kv *KV) bool) {
	c := db.tx.Bucket(bKV).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		kv := decodeKV(string(k), v)
		if kv == nil {
			continue
		}
		if kv.Lease != 0 {
			if l := db.lease(kv.Lease); l != nil && l.Expiry <= db.now {
				continue
			}
		}
		if !fn(kv) {
			return
		}
	}
}

func cmdKeys(db *redisDB, a [][]byte) RedisReply {
	out := []RedisReply{}
	db.forEachKey(func(kv *KV) bool {
		if RedisMatch(a[1], []byte(kv.Key)) {
			out = append(out, rBulk([]byte(kv.Key)))
		}
		return true
	})
	return rArr(out)
}

// parseScanCursor reads a cursor as Redis does (strtoul): an optional sign,
// then digits, within 64 bits; a minus wraps around, so -1 is the last
// cursor there is.
func parseScanCursor(s string) (uint64, bool) {
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// cmdScan walks the key space in key order; the cursor is the position of
// the next key. Keys that are added or removed during a scan can shift it
// by that many keys.
func cmdScan(db *redisDB, a [][]byte) RedisReply {
	cursor, ok := parseScanCursor(string(a[1]))
	if !ok {
		return rErr("ERR invalid cursor")
	}
	count := int64(10)
	var match []byte
	typ := ""
	for i := 2; i < len(a); i += 2 {
		if i+1 >= len(a) {
			return rErr(errSyntax)
		}
		switch strings.ToUpper(string(a[i])) {
		case "COUNT":
			v, ok := parseRedisInt(a[i+1])
			if !ok {
				return rErr(errNotInt)
			}
			if v < 1 {
				return rErr(errSyntax)
			}
			count = v
		case "MATCH":
			match = a[i+1]
		case "TYPE":
			typ = strings.ToLower(string(a[i+1]))
		default:
			return rErr(errSyntax)
		}
	}
	var keys []RedisReply
	pos, next := uint64(0), uint64(0)
	db.forEachKey(func(kv *KV) bool {
		if pos >= cursor {
			if pos-cursor >= uint64(count) {
				next = pos
				return false
			}
			if (match == nil || RedisMatch(match, []byte(kv.Key))) && (typ == "" || typ == kv.Type.RedisName()) {
				keys = append(keys, rBulk([]byte(kv.Key)))
			}
		}
		pos++
		return true
	})
	return rArr([]RedisReply{rBulk([]byte(strconv.FormatUint(next, 10))), rArr(keys)})
}

func cmdTTL(db *redisDB, a [][]byte) RedisReply {
	kv := db.live(key1(a))
	if kv == nil {
		return rInt(-2)
	}
	if kv.Lease == 0 {
		return rInt(-1)
	}
	l := db.lease(kv.Lease)
	if l == nil {
		return rInt(-1)
	}
	ttl := max(l.Expiry-db.now, 0)
	if strings.EqualFold(string(a[0]), "ttl") {
		return rInt((ttl + 500) / 1000)
	}
	return rInt(ttl)
}

func cmdExpire(db *redisDB, a [][]byte) RedisReply {
	name := strings.ToLower(string(a[0]))
	v, ok := parseRedisInt(a[2])
	if !ok {
		return rErr(errNotInt)
	}
	var nx, xx, gt, lt bool
	for _, o := range a[3:] {
		switch strings.ToUpper(string(o)) {
		case "NX":
			nx = true
		case "XX":
			xx = true
		case "GT":
			gt = true
		case "LT":
			lt = true
		default:
			return rErr("ERR Unsupported option " + string(o))
		}
	}
	if nx && (xx || gt || lt) {
		return rErr("ERR NX and XX, GT or LT options at the same time are not compatible")
	}
	if gt && lt {
		return rErr("ERR GT and LT options at the same time are not compatible")
	}
	ms := v
	if name == "expire" {
		if v > math.MaxInt64/1000 || v < math.MinInt64/1000 {
			return rErr("ERR invalid expire time in '" + name + "' command")
		}
		ms = v * 1000
	}
	if ms > 0 && ms > math.MaxInt64-db.now || ms < 0 && db.now < 0 && ms < math.MinInt64-db.now {
		return rErr("ERR invalid expire time in '" + name + "' command")
	}
	at := db.now + ms
	kv := db.live(key1(a))
	if kv == nil {
		return rInt(0)
	}
	var cur *Lease
	if kv.Lease != 0 {
		cur = db.lease(kv.Lease)
	}
	switch {
	case nx && cur != nil, xx && cur == nil:
		return rInt(0)
	case gt && (cur == nil || at <= cur.Expiry):
		return rInt(0)
	case lt && cur != nil && at >= cur.Expiry:
		return rInt(0)
	}
	if at <= db.now {
		db.remove(kv)
		return rInt(1)
	}
	db.put(kv.Key, kv, kv.Type, kv.Value, db.newLease(kv.Key, at))
	return rInt(1)
}

func cmdPersist(db *redisDB, a [][]byte) RedisReply {
	kv := db.live(key1(a))
	if kv == nil || kv.Lease == 0 {
		return rInt(0)
	}
	db.put(kv.Key, kv, kv.Type, kv.Value, 0)
	return rInt(1)
}

// ---- hashes

type hashPair struct{ field, value []byte }

func decodeHash(b []byte) []hashPair {
	d := decoder{b: b}
	n := d.length()
	var out []hashPair
	for range n {
		f := d.bytes()
		v := d.bytes()
		if d.err != nil {
			return nil
		}
		out = append(out, hashPair{f, v})
	}
	return out
}

// validRedisValue reports whether a hash or list value decodes exactly
// and is not empty, as every value Apply writes does.
func validRedisValue(typ KVType, b []byte) bool {
	d := decoder{b: b}
	n := d.length()
	if d.err != nil || n == 0 {
		return false
	}
	per := 1
	if typ == KVHash {
		per = 2
	}
	for range n * per {
		d.bytes()
	}
	return d.err == nil && len(d.b) == 0
}

func encodeHash(h []hashPair) []byte {
	e := encoder{}
	e.uvarint(uint64(len(h)))
	for _, p := range h {
		e.bytes(p.field)
		e.bytes(p.value)
	}
	return e.b
}

// hashIndex maps each field of h to its position, so that commands with
// many fields cost O(fields), not O(fields × hash size).
func hashIndex(h []hashPair) map[string]int {
	idx := make(map[string]int, len(h))
	for i, p := range h {
		idx[string(p.field)] = i
	}
	return idx
}

func hashFind(h []hashPair, field []byte) int {
	for i, p := range h {
		if string(p.field) == string(field) {
			return i
		}
	}
	return -1
}

// typed returns a live key of type typ, nil if it is absent, or a
// WRONGTYPE reply if it holds another type.
func (db *redisDB) typed(key string, typ KVType) (*KV, *RedisReply) {
	kv := db.live(key)
	if kv == nil || kv.Type == typ {
		return kv, nil
	}
	r := rErr(errWrongType)
	return nil, &r
}

// hash returns a live hash key and its fields, or an error reply if the
// key holds another type.
func (db *redisDB) hash(key string) (*KV, []hashPair, *RedisReply) {
	kv, e := db.typed(key, KVHash)
	if kv == nil {
		return nil, nil, e
	}
	h := decodeHash(kv.Value)
	if len(h) == 0 {
		return nil, nil, nil // Redis has no empty hashes (nor can a bad value be one)
	}
	return kv, h, nil
}

func cmdHget(db *redisDB, a [][]byte) RedisReply {
	_, h, e := db.hash(key1(a))
	if e != nil {
		return *e
	}
	if i := hashFind(h, a[2]); i >= 0 {
		return rBulk(h[i].value)
	}
	return rNil()
}

func cmdHmget(db *redisDB, a [][]byte) RedisReply {
	_, h, e := db.hash(key1(a))
	if e != nil {
		return *e
	}
	out := make([]RedisReply, 0, len(a)-2)
	idx := hashIndex(h)
	for _, f := range a[2:] {
		if i, ok := idx[string(f)]; ok {
			out = append(out, rBulk(h[i].value))
		} else {
			out = append(out, rNil())
		}
	}
	return rArr(out)
}

func cmdHgetall(db *redisDB, a [][]byte) RedisReply {
	_, h, e := db.hash(key1(a))
	if e != nil {
		return *e
	}
	out := make([]RedisReply, 0, 2*len(h))
	for _, p := range h {
		out = append(out, rBulk(p.field), rBulk(p.value))
	}
	return rArr(out)
}

func cmdHlen(db *redisDB, a [][]byte) RedisReply {
	_, h, e := db.hash(key1(a))
	if e != nil {
		return *e
	}
	return rInt(int64(len(h)))
}

func cmdHexists(db *redisDB, a [][]byte) RedisReply {
	_, h, e := db.hash(key1(a))
	if e != nil {
		return *e
	}
	if hashFind(h, a[2]) >= 0 {
		return rInt(1)
	}
	return rInt(0)
}

func cmdHset(db *redisDB, a [][]byte) RedisReply {
	if len(a)%2 != 0 {
		return rErr(RedisErrArity(string(a[0])))
	}
	key := key1(a)
	if e := checkRedisKey(key); e != nil {
		return *e
	}
	kv, h, e := db.hash(key)
	if e != nil {
		return *e
	}
	added := int64(0)
	idx := hashIndex(h)
	for i := 2; i < len(a); i += 2 {
		if j, ok := idx[string(a[i])]; ok {
			h[j].value = a[i+1]
		} else {
			idx[string(a[i])] = len(h)
			h = append(h, hashPair{a[i], a[i+1]})
			added++
		}
	}
	val := encodeHash(h)
	if e := checkValue(len(val)); e != nil {
		return *e
	}
	db.put(key, kv, KVHash, val, leaseOf(kv))
	return rInt(added)
}

func cmdHdel(db *redisDB, a [][]byte) RedisReply {
	kv, h, e := db.hash(key1(a))
	if e != nil {
		return *e
	}
	if kv == nil {
		return rInt(0)
	}
	del := make(map[string]bool, len(a)-2)
	for _, f := range a[2:] {
		del[string(f)] = true
	}
	kept := h[:0]
	for _, p := range h {
		if !del[string(p.field)] {
			kept = append(kept, p)
		}
	}
	n := int64(len(h) - len(kept))
	h = kept
	switch {
	case n == 0:
	case len(h) == 0:
		db.remove(kv)
	default:
		db.put(kv.Key, kv, KVHash, encodeHash(h), kv.Lease)
	}
	return rInt(n)
}

func cmdHincrby(db *redisDB, a [][]byte) RedisReply {
	by, ok := parseRedisInt(a[3])
	if !ok {
		return rErr(errNotInt)
	}
	key := key1(a)
	if e := checkRedisKey(key); e != nil {
		return *e
	}
	kv, h, e := db.hash(key)
	if e != nil {
		return *e
	}
	var cur int64
	i := hashFind(h, a[2])
	if i >= 0 {
		v, ok := parseRedisInt(h[i].value)
		if !ok {
			return rErr(errHashNotInt)
		}
		cur = v
	}
	if by > 0 && cur > math.MaxInt64-by || by < 0 && cur < math.MinInt64-by {
		return rErr(errOverflow)
	}
	cur += by
	v := []byte(strconv.FormatInt(cur, 10))
	if i >= 0 {
		h[i].value = v
	} else {
		h = append(h, hashPair{a[2], v})
	}
	val := encodeHash(h)
	if e := checkValue(len(val)); e != nil {
		return *e
	}
	db.put(key, kv, KVHash, val, leaseOf(kv))
	return rInt(cur)
}

// ---- lists

func decodeList(b []byte) [][]byte {
	d := decoder{b: b}
	n := d.length()
	out := make([][]byte, 0, n)
	for range n {
		el := d.bytes()
		if d.err != nil {
			return nil
		}
		out = append(out, el)
	}
	return out
}

func encodeList(l [][]byte) []byte {
	e := encoder{}
	e.uvarint(uint64(len(l)))
	for _, el := range l {
		e.bytes(el)
	}
	return e.b
}

func (db *redisDB) list(key string) (*KV, [][]byte, *RedisReply) {
	kv, e := db.typed(key, KVList)
	if kv == nil {
		return nil, nil, e
	}
	l := decodeList(kv.Value)
	if len(l) == 0 {
		return nil, nil, nil // Redis has no empty lists (nor can a bad value be one)
	}
	return kv, l, nil
}

func cmdLlen(db *redisDB, a [][]byte) RedisReply {
	_, l, e := db.list(key1(a))
	if e != nil {
		return *e
	}
	return rInt(int64(len(l)))
}

func cmdLrange(db *redisDB, a [][]byte) RedisReply {
	start, ok1 := parseRedisInt(a[2])
	stop, ok2 := parseRedisInt(a[3])
	if !ok1 || !ok2 {
		return rErr(errNotInt)
	}
	_, l, e := db.list(key1(a))
	if e != nil {
		return *e
	}
	n := int64(len(l))
	if start < 0 {
		start = max(n+start, 0)
	}
	if stop < 0 {
		stop = n + stop
	}
	stop = min(stop, n-1)
	out := []RedisReply{}
	for i := start; i <= stop; i++ {
		out = append(out, rBulk(l[i]))
	}
	return rArr(out)
}

func cmdPush(db *redisDB, a [][]byte) RedisReply {
	key := key1(a)
	if e := checkRedisKey(key); e != nil {
		return *e
	}
	kv, l, e := db.list(key)
	if e != nil {
		return *e
	}
	if strings.EqualFold(string(a[0]), "lpush") {
		head := make([][]byte, 0, len(a)-2+len(l))
		for i := len(a) - 1; i >= 2; i-- {
			head = append(head, a[i])
		}
		l = append(head, l...)
	} else {
		l = append(l, a[2:]...)
	}
	val := encodeList(l)
	if e := checkValue(len(val)); e != nil {
		return *e
	}
	db.put(key, kv, KVList, val, leaseOf(kv))
	return rInt(int64(len(l)))
}

// pop takes up to n elements from the head (left) or tail of a list and
// deletes the key once it is empty.
func (db *redisDB) pop(kv *KV, l [][]byte, left bool, n int) [][]byte {
	n = min(n, len(l))
	var got [][]byte
	if left {
		got, l = l[:n], l[n:]
	} else {
		got = make([][]byte, 0, n)
		for i := len(l) - 1; i >= len(l)-n; i-- {
			got = append(got, l[i])
		}
		l = l[:len(l)-n]
	}
	if len(l) == 0 {
		db.remove(kv)
	} else {
		db.put(kv.Key, kv, KVList, encodeList(l), kv.Lease)
	}
	return got
}

func cmdPop(db *redisDB, a [][]byte) RedisReply {
	if len(a) > 3 {
		return rErr(RedisErrArity(string(a[0])))
	}
	left := strings.EqualFold(string(a[0]), "lpop")
	count, hasCount := int64(1), len(a) == 3
	if hasCount {
		v, ok := parseRedisInt(a[2])
		if !ok || v < 0 {
			return rErr(errNotPositive)
		}
		count = v
	}
	kv, l, e := db.list(key1(a))
	if e != nil {
		return *e
	}
	if kv == nil {
		if hasCount {
			return RedisReply{Kind: RedisNilArray}
		}
		return rNil()
	}
	if hasCount && count == 0 {
		return rArr(nil)
	}
	got := db.pop(kv, l, left, int(min(count, int64(len(l)))))
	if !hasCount {
		return rBulk(got[0])
	}
	out := make([]RedisReply, len(got))
	for i, g := range got {
		out[i] = rBulk(g)
	}
	return rArr(out)
}

// ParseRedisTimeout parses a blocking command's timeout in seconds, as
// Redis does, returning it in ms or an error reply.
func ParseRedisTimeout(b []byte) (int64, *RedisReply) {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(string(b), " \t") {
		r := rErr("ERR timeout is not a float or out of range")
		return 0, &r
	}
	if f < 0 {
		r := rErr("ERR timeout is negative")
		return 0, &r
	}
	if f*1000 > math.MaxInt64/2 {
		r := rErr("ERR timeout is out of range")
		return 0, &r
	}
	return int64(math.Ceil(f * 1000)), nil // 0.0001 s is 1 ms, not "forever"
}

// cmdBpop is BLPOP/BRPOP without blocking: it pops from the first key
// that holds a non-empty list, or answers a nil array.
func cmdBpop(db *redisDB, a [][]byte) RedisReply {
	if _, e := ParseRedisTimeout(a[len(a)-1]); e != nil {
		return *e
	}
	left := strings.EqualFold(string(a[0]), "blpop")
	for _, k := range a[1 : len(a)-1] {
		kv, l, e := db.list(string(k))
		if e != nil {
			return *e
		}
		if kv == nil {
			continue
		}
		got := db.pop(kv, l, left, 1)
		return rArr([]RedisReply{rBulk(k), rBulk(got[0])})
	}
	return RedisReply{Kind: RedisNilArray}
}

// RedisMatch reports whether s matches the glob pattern p as Redis'
// stringmatchlen does: *, ?, [abc], [^a], [a-z] and \ escapes. It runs in
// O(len(p)·len(s)): only the last star is ever backtracked to.
func RedisMatch(p, s []byte) bool {
	toks := globTokens(p)
	ti, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case ti < len(toks) && toks[ti].star:
			star, mark = ti, si
			ti++
		case ti < len(toks) && toks[ti].match(s[si]):
			ti++
			si++
		case star >= 0:
			mark++
			ti, si = star+1, mark
		default:
			return false
		}
	}
	for ti < len(toks) && toks[ti].star {
		ti++
	}
	return ti == len(toks)
}

// globTok is one element of a glob pattern: a star, or a matcher of one byte.
type globTok struct {
	star   bool
	any    bool
	not    bool
	chars  []byte
	ranges [][2]byte
}

func (g globTok) match(c byte) bool {
	if g.any {
		return true
	}
	ok := bytes.IndexByte(g.chars, c) >= 0
	for _, r := range g.ranges {
		if c >= r[0] && c <= r[1] {
			ok = true
		}
	}
	return ok != g.not
}

func globTokens(p []byte) []globTok {
	var out []globTok
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*':
			if len(out) == 0 || !out[len(out)-1].star {
				out = append(out, globTok{star: true})
			}
		case '?':
			out = append(out, globTok{any: true})
		case '[':
			t := globTok{}
			i++
			if i < len(p) && p[i] == '^' {
				t.not = true
				i++
			}
			for ; i < len(p) && p[i] != ']'; i++ {
				switch {
				case p[i] == '\\' && i+1 < len(p):
					i++
					t.chars = append(t.chars, p[i])
				case i+2 < len(p) && p[i+1] == '-':
					lo, hi := p[i], p[i+2]
					if lo > hi {
						lo, hi = hi, lo
					}
					t.ranges = append(t.ranges, [2]byte{lo, hi})
					i += 2
				default:
					t.chars = append(t.chars, p[i])
				}
			}
			out = append(out, t)
		case '\\':
			if i+1 < len(p) {
				i++
			}
			out = append(out, globTok{chars: []byte{p[i]}})
		default:
			out = append(out, globTok{chars: []byte{p[i]}})
		}
	}
	return out
}

func cmdArmadaNode(db *redisDB, a [][]byte) RedisReply {
	if len(a[1]) == 0 || len(a[1]) > MaxKeyLen || len(a[2]) > MaxKeyLen {
		return rErr("ERR bad node name or address")
	}
	if string(db.tx.Bucket(bRedisNodes).Get(a[1])) == string(a[2]) && len(a[2]) > 0 {
		return rOK
	}
	op := "put"
	if len(a[2]) == 0 {
		op = "delete"
		db.t.del(bRedisNodes, a[1])
	} else {
		db.t.put(bRedisNodes, a[1], a[2])
	}
	db.t.changed("redis_node", string(a[1]), op)
	return rOK
}

// kRedisClock holds the latest leader time (Unix ms) stamped on a
// RedisExec: local reads decide TTLs from it (see RedisClock).
var kRedisClock = []byte("redis_clock")

func getI64(b []byte) int64 { return int64(getU64(b)) }

// RedisClock is the leader's time stamped on the last RedisExec applied
// here (Unix ms), 0 before the first. Adapters extrapolate from it with
// their monotonic clock instead of trusting the node's wall clock.
func (v *View) RedisClock() int64 { return getI64(v.tx.Bucket(bMeta).Get(kRedisClock)) }

// Retried pops. The adapter names each blocking pop with an ID: 8 bytes
// of the (leader's) time in Unix ms, big-endian, and 8 random bytes. A pop
// that took an element records the answer under its ID, so that the same
// command applied again (the adapter retries when a leader change leaves
// the outcome unknown) answers the same element instead of taking
// another. Records older than PopRetention by the entry's stamped time
// are dropped when later pops apply.
var kRedisPopPrefix = []byte("redis_pop/")

// PopRetention is how long a pop's answer can be asked for again.
const PopRetention = 2 * 60 * 1000

// PopIDLen is the length of a pop's ID.
const PopIDLen = 16

func cmdArmadaPop(db *redisDB, a [][]byte) RedisReply {
	id := a[1]
	pop := a[2:]
	name := strings.ToLower(string(pop[0]))
	if len(id) != PopIDLen || name != "blpop" && name != "brpop" {
		return rErr("ERR armada: bad pop")
	}
	key := append(append([]byte{}, kRedisPopPrefix...), id...)
	meta := db.tx.Bucket(bMeta)
	if rec := meta.Get(key); rec != nil {
		d := decoder{b: rec}
		k, v := d.bytes(), d.bytes()
		// rec lives in the database's pages: copy what the reply keeps.
		return rArr([]RedisReply{rBulk(bytes.Clone(k)), rBulk(bytes.Clone(v))})
	}
	// Forget the answers no retry can ask for any more.
	var old [][]byte
	cur := meta.Cursor()
	for k, _ := cur.Seek(kRedisPopPrefix); k != nil && bytes.HasPrefix(k, kRedisPopPrefix) && len(k) == len(kRedisPopPrefix)+PopIDLen; k, _ = cur.Next() {
		if int64(binary.BigEndian.Uint64(k[len(kRedisPopPrefix):])) >= db.now-PopRetention {
			break
		}
		old = append(old, append([]byte{}, k...))
	}
	for _, k := range old {
		db.t.del(bMeta, k)
	}
	r := cmdBpop(db, pop)
	if r.Kind == RedisArray {
		var e encoder
		e.bytes(r.Arr[0].Str)
		e.bytes(r.Arr[1].Str)
		db.t.put(bMeta, key, e.b)
	}
	return r
}

// RedisNodes returns the Redis adapter address of every node that runs
// one, by node name.
func (v *View) RedisNodes() map[string]string {
	out := map[string]string{}
	v.tx.Bucket(bRedisNodes).ForEach(func(k, val []byte) error {
		out[string(k)] = string(val)
		return nil
	})
	return out
}
