package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CmdType is the first byte of every Raft log entry. The list only grows:
// a type, once released, keeps its number and its encoding forever.
type CmdType byte

// Command types.
const (
	CmdKVPut          CmdType = 1
	CmdKVDelete       CmdType = 2
	CmdLeaseGrant     CmdType = 3
	CmdLeaseKeepAlive CmdType = 4
	CmdLeaseRevoke    CmdType = 5
	CmdExpire         CmdType = 6
	CmdQueuePush      CmdType = 7
	CmdQueueClaim     CmdType = 8
	CmdQueueAck       CmdType = 9
	CmdQueueRelease   CmdType = 10
	CmdLockAcquire    CmdType = 11
	CmdLockRelease    CmdType = 12
	CmdNodeUpsert     CmdType = 13
	CmdNodeRemove     CmdType = 14
	CmdBlueprintPut   CmdType = 15
	CmdBlueprintDel   CmdType = 16
	CmdClusterInit    CmdType = 17
	CmdBatch          CmdType = 18
	CmdFleetPut       CmdType = 19
	CmdFleetDelete    CmdType = 20
	CmdFleetScale     CmdType = 21
	CmdShipCreate     CmdType = 22
	CmdShipPlace      CmdType = 23
	CmdShipStop       CmdType = 24
	CmdShipReport     CmdType = 25
	CmdShipLost       CmdType = 26
	CmdShipPurge      CmdType = 27
	CmdNodeDrain      CmdType = 28
	CmdNodeReport     CmdType = 29
	CmdRedisExec      CmdType = 30
	CmdEtcdTxn        CmdType = 31
	CmdShipAllocate   CmdType = 32
	CmdShipSDK        CmdType = 33
	CmdDeployUpdate   CmdType = 34
	CmdUsageReport    CmdType = 35
	CmdShipAllocate2  CmdType = 36 // ShipAllocate with request IDs; 32 is the older form
	CmdForwarded      CmdType = 37 // a command a follower forwarded, tagged with its sender (forward.go)
	CmdFeatureOn      CmdType = 38 // switches on a way of applying (feature.go)

	// ZooKeeper (fsm/zk.go): 40..49.
	CmdZKCreateSession CmdType = 40
	CmdZKTouch         CmdType = 41
	CmdZKClose         CmdType = 42
	CmdZKMulti         CmdType = 43
	CmdZKMultiData     CmdType = 44 // ZKMulti whose data tells null from empty (FeatureZKEmptyData)
)

// Command is one replicated state change. Only this package defines
// commands; each knows its type byte, its encoding and how to apply itself.
type Command interface {
	Type() CmdType
	encode(e *encoder)
	decode(d *decoder)
	apply(t *txn) *Result
}

// stamper is a command that carries the leader's clock. Apply never reads a
// clock: the leader stamps the time into the command before it is logged.
type stamper interface{ stamp(nowMs int64) }

// commandTable maps each type byte to a constructor. It is never written
// after package initialisation.
var commandTable = [256]func() Command{
	CmdKVPut:          func() Command { return new(KVPut) },
	CmdKVDelete:       func() Command { return new(KVDelete) },
	CmdLeaseGrant:     func() Command { return new(LeaseGrant) },
	CmdLeaseKeepAlive: func() Command { return new(LeaseKeepAlive) },
	CmdLeaseRevoke:    func() Command { return new(LeaseRevoke) },
	CmdExpire:         func() Command { return new(Expire) },
	CmdQueuePush:      func() Command { return new(QueuePush) },
	CmdQueueClaim:     func() Command { return new(QueueClaim) },
	CmdQueueAck:       func() Command { return new(QueueAck) },
	CmdQueueRelease:   func() Command { return new(QueueRelease) },
	CmdLockAcquire:    func() Command { return new(LockAcquire) },
	CmdLockRelease:    func() Command { return new(LockRelease) },
	CmdNodeUpsert:     func() Command { return new(NodeUpsert) },
	CmdNodeRemove:     func() Command { return new(NodeRemove) },
	CmdBlueprintPut:   func() Command { return new(BlueprintPut) },
	CmdBlueprintDel:   func() Command { return new(BlueprintDelete) },
	CmdClusterInit:    func() Command { return new(ClusterInit) },
	CmdBatch:          func() Command { return new(Batch) },
	CmdFleetPut:       func() Command { return new(FleetPut) },
	CmdFleetDelete:    func() Command { return new(FleetDelete) },
	CmdFleetScale:     func() Command { return new(FleetScale) },
	CmdShipCreate:     func() Command { return new(ShipCreate) },
	CmdShipPlace:      func() Command { return new(ShipPlace) },
	CmdShipStop:       func() Command { return new(ShipStop) },
	CmdShipReport:     func() Command { return new(ShipReport) },
	CmdShipLost:       func() Command { return new(ShipLost) },
	CmdShipPurge:      func() Command { return new(ShipPurge) },
	CmdNodeDrain:      func() Command { return new(NodeDrain) },
	CmdNodeReport:     func() Command { return new(NodeReport) },
	CmdRedisExec:      func() Command { return new(RedisExec) },
	CmdEtcdTxn:        func() Command { return new(EtcdTxn) },
	CmdShipAllocate:   func() Command { return new(shipAllocate1) },
	CmdShipAllocate2:  func() Command { return new(ShipAllocate) },
	CmdForwarded:      func() Command { return new(Forwarded) },
	CmdShipSDK:        func() Command { return new(ShipSDK) },
	CmdDeployUpdate:   func() Command { return new(DeployUpdate) },
	CmdUsageReport:    func() Command { return new(UsageReport) },
	CmdFeatureOn:      func() Command { return new(FeatureOn) },

	CmdZKCreateSession: func() Command { return new(ZKCreateSession) },
	CmdZKTouch:         func() Command { return new(ZKTouch) },
	CmdZKClose:         func() Command { return new(ZKClose) },
	CmdZKMulti:         func() Command { return new(ZKMulti) },
	CmdZKMultiData:     func() Command { return &ZKMulti{EmptyData: true} },
}

// Encode returns the log entry for c: its type byte and its body.
func Encode(c Command) []byte {
	e := encoder{b: make([]byte, 1, 64)}
	e.b[0] = byte(c.Type())
	c.encode(&e)
	return e.b
}

// Decode parses a log entry written by Encode.
func Decode(b []byte) (Command, error) {
	if len(b) == 0 {
		return nil, errors.New("decode command: empty entry")
	}
	mk := commandTable[b[0]]
	if mk == nil {
		return nil, fmt.Errorf("decode command: unknown type %d", b[0])
	}
	c := mk()
	d := decoder{b: b[1:]}
	c.decode(&d)
	if d.err != nil {
		return nil, fmt.Errorf("decode command type %d: %w", b[0], d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("decode command type %d: %d trailing bytes", b[0], len(d.b))
	}
	return c, nil
}

// Stamp sets the leader's time on a command that carries one, and reports
// whether c does.
func Stamp(c Command, now time.Time) bool {
	if s, ok := c.(stamper); ok {
		s.stamp(now.UnixMilli())
		return true
	}
	return false
}

// Result is what applying a command produced. Err is a deterministic
// rejection: the command changed nothing.
type Result struct {
	Index uint64 `json:"index"`
	// Rev is the state's revision once the command applied (View.Revision
	// at that point): the command's own revision when it wrote keys.
	Rev       uint64     `json:"rev,omitempty"`
	Err       *Error     `json:"error,omitempty"`
	KV        *KV        `json:"kv,omitempty"`
	Prev      *KV        `json:"prev,omitempty"`
	Deleted   int        `json:"deleted,omitempty"`
	Lease     *Lease     `json:"lease,omitempty"`
	Lock      *Lock      `json:"lock,omitempty"`
	Item      *QueueItem `json:"item,omitempty"`
	Blueprint *Blueprint `json:"blueprint,omitempty"`
	Node      *Node      `json:"node,omitempty"`
	Fleet     *Fleet     `json:"fleet,omitempty"`
	// Deployment is the deployment a FleetPut started or a DeployUpdate
	// changed.
	Deployment *Deployment `json:"deployment,omitempty"`
	Ships      []*Ship     `json:"ships,omitempty"`
	Count      int         `json:"count,omitempty"`
	Batch      []*Result   `json:"batch,omitempty"`
	// Redis holds one reply per command of a RedisExec.
	Redis []RedisReply `json:"redis,omitempty"`
	// Etcd is the answer to an EtcdTxn.
	Etcd *EtcdTxnResult `json:"etcd,omitempty"`
	// ZK is the answer to a ZooKeeper command.
	ZK *ZKResult `json:"zk,omitempty"`
	// Origin and Seq are a Forwarded command's tag, so that the node that
	// sent it can pick its result out of its own apply.
	Origin uint64 `json:"-"`
	Seq    uint64 `json:"-"`
}

func fail(e *Error) *Result { return &Result{Err: e} }

// KVPut writes one key. With HasCAS it only succeeds when the key's
// modify index equals CAS (0: the key must not exist). TTLms > 0 attaches
// a new lease of that length; Lease attaches an existing one.
type KVPut struct {
	Key    string
	Value  []byte
	Lease  uint64
	TTLms  int64
	HasCAS bool
	CAS    uint64
	Now    int64
}

func (*KVPut) Type() CmdType     { return CmdKVPut }
func (c *KVPut) stamp(now int64) { c.Now = now }
func (c *KVPut) encode(e *encoder) {
	e.str(c.Key)
	e.bytes(c.Value)
	e.uvarint(c.Lease)
	e.varint(c.TTLms)
	e.bool(c.HasCAS)
	e.uvarint(c.CAS)
	e.varint(c.Now)
}
func (c *KVPut) decode(d *decoder) {
	c.Key, c.Value, c.Lease, c.TTLms = d.str(), d.bytes(), d.uvarint(), d.varint()
	c.HasCAS, c.CAS, c.Now = d.bool(), d.uvarint(), d.varint()
}

// KVDelete removes a key, or every key under a prefix.
type KVDelete struct {
	Key    string
	Prefix bool
	HasCAS bool
	CAS    uint64
}

func (*KVDelete) Type() CmdType { return CmdKVDelete }
func (c *KVDelete) encode(e *encoder) {
	e.str(c.Key)
	e.bool(c.Prefix)
	e.bool(c.HasCAS)
	e.uvarint(c.CAS)
}
func (c *KVDelete) decode(d *decoder) {
	c.Key, c.Prefix, c.HasCAS, c.CAS = d.str(), d.bool(), d.bool(), d.uvarint()
}

// LeaseGrant creates a lease; its ID is the index of this entry.
type LeaseGrant struct {
	TTLms int64
	Now   int64
}

func (*LeaseGrant) Type() CmdType       { return CmdLeaseGrant }
func (c *LeaseGrant) stamp(now int64)   { c.Now = now }
func (c *LeaseGrant) encode(e *encoder) { e.varint(c.TTLms); e.varint(c.Now) }
func (c *LeaseGrant) decode(d *decoder) { c.TTLms, c.Now = d.varint(), d.varint() }

// LeaseKeepAlive pushes a lease's expiry to Now + its TTL.
type LeaseKeepAlive struct {
	ID  uint64
	Now int64
}

func (*LeaseKeepAlive) Type() CmdType       { return CmdLeaseKeepAlive }
func (c *LeaseKeepAlive) stamp(now int64)   { c.Now = now }
func (c *LeaseKeepAlive) encode(e *encoder) { e.uvarint(c.ID); e.varint(c.Now) }
func (c *LeaseKeepAlive) decode(d *decoder) { c.ID, c.Now = d.uvarint(), d.varint() }

// LeaseRevoke ends a lease and deletes its keys.
type LeaseRevoke struct{ ID uint64 }

func (*LeaseRevoke) Type() CmdType       { return CmdLeaseRevoke }
func (c *LeaseRevoke) encode(e *encoder) { e.uvarint(c.ID) }
func (c *LeaseRevoke) decode(d *decoder) { c.ID = d.uvarint() }

// Expire is issued by the leader's clock: it ends every lease and lock
// whose expiry is at or before Now.
type Expire struct{ Now int64 }

func (*Expire) Type() CmdType       { return CmdExpire }
func (c *Expire) stamp(now int64)   { c.Now = now }
func (c *Expire) encode(e *encoder) { e.varint(c.Now) }
func (c *Expire) decode(d *decoder) { c.Now = d.varint() }

// QueuePush appends an item to a FIFO queue; its ID is the entry's index.
type QueuePush struct {
	Queue string
	Data  []byte
	Now   int64
}

func (*QueuePush) Type() CmdType       { return CmdQueuePush }
func (c *QueuePush) stamp(now int64)   { c.Now = now }
func (c *QueuePush) encode(e *encoder) { e.str(c.Queue); e.bytes(c.Data); e.varint(c.Now) }
func (c *QueuePush) decode(d *decoder) { c.Queue, c.Data, c.Now = d.str(), d.bytes(), d.varint() }

// QueueClaim hands the oldest unclaimed item to Consumer for VisibilityMs.
// The item stays queued: if the consumer dies before acking, the claim
// lapses and the next claim gets the item again.
type QueueClaim struct {
	Queue        string
	Consumer     string
	VisibilityMs int64
	Now          int64
}

func (*QueueClaim) Type() CmdType     { return CmdQueueClaim }
func (c *QueueClaim) stamp(now int64) { c.Now = now }
func (c *QueueClaim) encode(e *encoder) {
	e.str(c.Queue)
	e.str(c.Consumer)
	e.varint(c.VisibilityMs)
	e.varint(c.Now)
}
func (c *QueueClaim) decode(d *decoder) {
	c.Queue, c.Consumer, c.VisibilityMs, c.Now = d.str(), d.str(), d.varint(), d.varint()
}

// QueueAck removes a claimed item for good.
type QueueAck struct {
	Queue    string
	ID       uint64
	Consumer string
}

func (*QueueAck) Type() CmdType       { return CmdQueueAck }
func (c *QueueAck) encode(e *encoder) { e.str(c.Queue); e.uvarint(c.ID); e.str(c.Consumer) }
func (c *QueueAck) decode(d *decoder) { c.Queue, c.ID, c.Consumer = d.str(), d.uvarint(), d.str() }

// QueueRelease gives a claimed item back to the queue at once.
type QueueRelease struct {
	Queue    string
	ID       uint64
	Consumer string
}

func (*QueueRelease) Type() CmdType       { return CmdQueueRelease }
func (c *QueueRelease) encode(e *encoder) { e.str(c.Queue); e.uvarint(c.ID); e.str(c.Consumer) }
func (c *QueueRelease) decode(d *decoder) {
	c.Queue, c.ID, c.Consumer = d.str(), d.uvarint(), d.str()
}

// LockAcquire takes a named lock for Owner, or renews it if Owner holds it.
type LockAcquire struct {
	Name  string
	Owner string
	TTLms int64
	Now   int64
}

func (*LockAcquire) Type() CmdType     { return CmdLockAcquire }
func (c *LockAcquire) stamp(now int64) { c.Now = now }
func (c *LockAcquire) encode(e *encoder) {
	e.str(c.Name)
	e.str(c.Owner)
	e.varint(c.TTLms)
	e.varint(c.Now)
}
func (c *LockAcquire) decode(d *decoder) {
	c.Name, c.Owner, c.TTLms, c.Now = d.str(), d.str(), d.varint(), d.varint()
}

// LockRelease frees a lock held by Owner.
type LockRelease struct {
	Name  string
	Owner string
}

func (*LockRelease) Type() CmdType       { return CmdLockRelease }
func (c *LockRelease) encode(e *encoder) { e.str(c.Name); e.str(c.Owner) }
func (c *LockRelease) decode(d *decoder) { c.Name, c.Owner = d.str(), d.str() }

// NodeUpsert records a node as the leader sees it through gossip and Raft.
type NodeUpsert struct {
	Node Node
	Now  int64
}

func (*NodeUpsert) Type() CmdType     { return CmdNodeUpsert }
func (c *NodeUpsert) stamp(now int64) { c.Now = now }
func (c *NodeUpsert) encode(e *encoder) {
	n := &c.Node
	e.str(n.Name)
	e.str(n.Address)
	e.str(n.GossipAddr)
	e.str(n.RaftAddr)
	e.str(n.HTTPAddr)
	e.str(n.Role)
	e.bool(n.Server)
	e.bool(n.Worker)
	e.str(n.Status)
	e.bool(n.Drain)
	e.strmap(n.Labels)
	e.varint(n.Capacity.CPUMHz)
	e.varint(n.Capacity.MemoryMB)
	e.str(n.Version)
	e.varint(c.Now)
}
func (c *NodeUpsert) decode(d *decoder) {
	n := &c.Node
	n.Name, n.Address, n.GossipAddr, n.RaftAddr, n.HTTPAddr = d.str(), d.str(), d.str(), d.str(), d.str()
	n.Role, n.Server, n.Worker, n.Status, n.Drain = d.str(), d.bool(), d.bool(), d.str(), d.bool()
	n.Labels = d.strmap()
	n.Capacity.CPUMHz, n.Capacity.MemoryMB = d.varint(), d.varint()
	n.Version, c.Now = d.str(), d.varint()
}

// NodeRemove forgets a node.
type NodeRemove struct{ Name string }

func (*NodeRemove) Type() CmdType       { return CmdNodeRemove }
func (c *NodeRemove) encode(e *encoder) { e.str(c.Name) }
func (c *NodeRemove) decode(d *decoder) { c.Name = d.str() }

// BlueprintPut stores a validated blueprint as its next version, unless it
// equals the latest version, in which case nothing changes.
type BlueprintPut struct {
	Spec        Blueprint // without plaintext secrets
	Sealed      []byte
	SecretsHash []byte
	Now         int64
}

func (*BlueprintPut) Type() CmdType     { return CmdBlueprintPut }
func (c *BlueprintPut) stamp(now int64) { c.Now = now }
func (c *BlueprintPut) encode(e *encoder) {
	spec, _ := json.Marshal(c.Spec) // a Blueprint always marshals
	e.bytes(spec)
	e.bytes(c.Sealed)
	e.bytes(c.SecretsHash)
	e.varint(c.Now)
}
func (c *BlueprintPut) decode(d *decoder) {
	spec := d.bytes()
	c.Sealed, c.SecretsHash, c.Now = d.bytes(), d.bytes(), d.varint()
	if d.err == nil {
		if err := json.Unmarshal(spec, &c.Spec); err != nil {
			d.fail(fmt.Errorf("blueprint spec: %w", err))
		}
	}
}

// BlueprintDelete removes a blueprint and all its versions.
type BlueprintDelete struct{ Name string }

func (*BlueprintDelete) Type() CmdType       { return CmdBlueprintDel }
func (c *BlueprintDelete) encode(e *encoder) { e.str(c.Name) }
func (c *BlueprintDelete) decode(d *decoder) { c.Name = d.str() }

// ClusterInit sets the cluster's identity and secret-sealing key once; the
// leader proposes random values and later proposals change nothing.
type ClusterInit struct {
	ClusterID string
	Key       []byte
}

func (*ClusterInit) Type() CmdType       { return CmdClusterInit }
func (c *ClusterInit) encode(e *encoder) { e.str(c.ClusterID); e.bytes(c.Key) }
func (c *ClusterInit) decode(d *decoder) { c.ClusterID, c.Key = d.str(), d.bytes() }
