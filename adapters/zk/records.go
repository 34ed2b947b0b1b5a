package zk

import "fmt"

// Stat is a node's metadata (org.apache.zookeeper.data.Stat), 68 bytes on
// the wire.
type Stat struct {
	Czxid          int64 // zxid of the create
	Mzxid          int64 // zxid of the last data change
	Ctime          int64 // create time, ms since the epoch
	Mtime          int64 // last modification time, ms since the epoch
	Version        int32 // data version
	Cversion       int32 // children version
	Aversion       int32 // ACL version
	EphemeralOwner int64 // owning session id if ephemeral, else 0
	DataLength     int32
	NumChildren    int32
	Pzxid          int64 // zxid of the last children change
}

// Encode implements Record.
func (s *Stat) Encode(e *Encoder) {
	e.WriteInt64(s.Czxid)
	e.WriteInt64(s.Mzxid)
	e.WriteInt64(s.Ctime)
	e.WriteInt64(s.Mtime)
	e.WriteInt32(s.Version)
	e.WriteInt32(s.Cversion)
	e.WriteInt32(s.Aversion)
	e.WriteInt64(s.EphemeralOwner)
	e.WriteInt32(s.DataLength)
	e.WriteInt32(s.NumChildren)
	e.WriteInt64(s.Pzxid)
}

// Decode implements Record.
func (s *Stat) Decode(d *Decoder) {
	s.Czxid = d.ReadInt64()
	s.Mzxid = d.ReadInt64()
	s.Ctime = d.ReadInt64()
	s.Mtime = d.ReadInt64()
	s.Version = d.ReadInt32()
	s.Cversion = d.ReadInt32()
	s.Aversion = d.ReadInt32()
	s.EphemeralOwner = d.ReadInt64()
	s.DataLength = d.ReadInt32()
	s.NumChildren = d.ReadInt32()
	s.Pzxid = d.ReadInt64()
}

// ID is an ACL identity (org.apache.zookeeper.data.Id), e.g. world:anyone.
type ID struct {
	Scheme string
	ID     string
}

// ACL is one access control entry (org.apache.zookeeper.data.ACL).
type ACL struct {
	Perms int32 // Perm* bits
	ID    ID
}

// WorldAnyone returns the ACL "world:anyone" with perms.
func WorldAnyone(perms int32) ACL {
	return ACL{Perms: perms, ID: ID{Scheme: "world", ID: "anyone"}}
}

// Encode implements Record.
func (a *ACL) Encode(e *Encoder) {
	e.WriteInt32(a.Perms)
	e.WriteString(a.ID.Scheme)
	e.WriteString(a.ID.ID)
}

// Decode implements Record.
func (a *ACL) Decode(d *Decoder) {
	a.Perms = d.ReadInt32()
	a.ID.Scheme = d.ReadString()
	a.ID.ID = d.ReadString()
}

func writeACLs(e *Encoder, acl []ACL) {
	e.WriteVectorLen(len(acl), acl == nil)
	for i := range acl {
		acl[i].Encode(e)
	}
}

func readACLs(d *Decoder) []ACL {
	n := d.ReadVectorLen(minSizeACL)
	if d.Err() != nil || n == nullLength {
		return nil
	}
	acl := make([]ACL, n)
	for i := range acl {
		acl[i].Decode(d)
	}
	if d.Err() != nil {
		return nil
	}
	return acl
}

// ConnectRequest opens or resumes a session; it is the first frame a client
// sends and has no RequestHeader.
type ConnectRequest struct {
	ProtocolVersion int32
	LastZxidSeen    int64
	TimeOut         int32 // requested session timeout, ms
	SessionID       int64 // 0 for a new session
	Passwd          []byte
	ReadOnly        bool
	// OmitReadOnly is true when the trailing readOnly byte is absent (clients
	// older than 3.4). Encode then leaves it out, and a server should leave
	// it out of its ConnectResponse too.
	OmitReadOnly bool
}

// Encode implements Record.
func (r *ConnectRequest) Encode(e *Encoder) {
	e.WriteInt32(r.ProtocolVersion)
	e.WriteInt64(r.LastZxidSeen)
	e.WriteInt32(r.TimeOut)
	e.WriteInt64(r.SessionID)
	e.WriteBuffer(r.Passwd)
	if !r.OmitReadOnly {
		e.WriteBool(r.ReadOnly)
	}
}

// Decode implements Record.
func (r *ConnectRequest) Decode(d *Decoder) {
	r.ProtocolVersion = d.ReadInt32()
	r.LastZxidSeen = d.ReadInt64()
	r.TimeOut = d.ReadInt32()
	r.SessionID = d.ReadInt64()
	r.Passwd = d.ReadBuffer()
	r.ReadOnly, r.OmitReadOnly = false, false
	if d.Err() != nil {
		return
	}
	if d.Remaining() == 0 {
		r.OmitReadOnly = true
		return
	}
	r.ReadOnly = d.ReadBool()
}

// ConnectResponse answers a ConnectRequest; it has no ReplyHeader. A
// TimeOut of 0 (and SessionID 0) tells the client its session expired.
type ConnectResponse struct {
	ProtocolVersion int32
	TimeOut         int32 // negotiated session timeout, ms
	SessionID       int64
	Passwd          []byte
	ReadOnly        bool
	// OmitReadOnly leaves out the readOnly byte, for old clients (see
	// ConnectRequest.OmitReadOnly).
	OmitReadOnly bool
}

// Encode implements Record.
func (r *ConnectResponse) Encode(e *Encoder) {
	e.WriteInt32(r.ProtocolVersion)
	e.WriteInt32(r.TimeOut)
	e.WriteInt64(r.SessionID)
	e.WriteBuffer(r.Passwd)
	if !r.OmitReadOnly {
		e.WriteBool(r.ReadOnly)
	}
}

// Decode implements Record.
func (r *ConnectResponse) Decode(d *Decoder) {
	r.ProtocolVersion = d.ReadInt32()
	r.TimeOut = d.ReadInt32()
	r.SessionID = d.ReadInt64()
	r.Passwd = d.ReadBuffer()
	r.ReadOnly, r.OmitReadOnly = false, false
	if d.Err() != nil {
		return
	}
	if d.Remaining() == 0 {
		r.OmitReadOnly = true
		return
	}
	r.ReadOnly = d.ReadBool()
}

// RequestHeader starts every request frame after the handshake.
type RequestHeader struct {
	Xid  int32
	Type OpCode
}

// Encode implements Record.
func (h *RequestHeader) Encode(e *Encoder) {
	e.WriteInt32(h.Xid)
	e.WriteInt32(int32(h.Type))
}

// Decode implements Record.
func (h *RequestHeader) Decode(d *Decoder) {
	h.Xid = d.ReadInt32()
	h.Type = OpCode(d.ReadInt32())
}

// ReplyHeader starts every reply frame after the handshake. When Err is not
// ErrOK the reply has no body.
type ReplyHeader struct {
	Xid  int32
	Zxid int64
	Err  ErrCode
}

// Encode implements Record.
func (h *ReplyHeader) Encode(e *Encoder) {
	e.WriteInt32(h.Xid)
	e.WriteInt64(h.Zxid)
	e.WriteInt32(int32(h.Err))
}

// Decode implements Record.
func (h *ReplyHeader) Decode(d *Decoder) {
	h.Xid = d.ReadInt32()
	h.Zxid = d.ReadInt64()
	h.Err = ErrCode(d.ReadInt32())
}

// MultiHeader precedes each op of a multi request and each result of a
// multi response. The sequence ends with {Type: -1, Done: true, Err: -1}.
type MultiHeader struct {
	Type OpCode
	Done bool
	Err  ErrCode
}

// Encode implements Record.
func (h *MultiHeader) Encode(e *Encoder) {
	e.WriteInt32(int32(h.Type))
	e.WriteBool(h.Done)
	e.WriteInt32(int32(h.Err))
}

// Decode implements Record.
func (h *MultiHeader) Decode(d *Decoder) {
	h.Type = OpCode(d.ReadInt32())
	h.Done = d.ReadBool()
	h.Err = ErrCode(d.ReadInt32())
}

func writeMultiEnd(e *Encoder) {
	(&MultiHeader{Type: multiEndType, Done: true, Err: multiEndErr}).Encode(e)
}

// Request is a decoded request body. The set of implementations is closed:
// pointers to this package's *Request types, *AuthPacket, *SetWatches and
// *SetWatches2. Switch on the concrete type to handle one.
type Request interface {
	Record
	// Op is the op code the record is sent with.
	Op() OpCode
	isRequest()
}

// Response is a reply body. The set of implementations is closed:
// pointers to this package's *Response types, *ErrorResult and
// *WatcherEvent (the body of a notification, xid -1).
type Response interface {
	Record
	// Op is the op code of the result inside a multi response (MultiHeader
	// type); for other responses, the request op it usually answers.
	Op() OpCode
	isResponse()
}

// CreateRequest is the body of create, create2 and createContainer; see
// Create2Request and CreateContainerRequest for the latter two.
type CreateRequest struct {
	Path  string
	Data  []byte
	ACL   []ACL
	Flags CreateMode
}

// Encode implements Record.
func (r *CreateRequest) Encode(e *Encoder) {
	e.WriteString(r.Path)
	e.WriteBuffer(r.Data)
	writeACLs(e, r.ACL)
	e.WriteInt32(int32(r.Flags))
}

// Decode implements Record.
func (r *CreateRequest) Decode(d *Decoder) {
	r.Path = d.ReadString()
	r.Data = d.ReadBuffer()
	r.ACL = readACLs(d)
	r.Flags = CreateMode(d.ReadInt32())
}

// Op implements Request.
func (*CreateRequest) Op() OpCode { return OpCreate }
func (*CreateRequest) isRequest() {}

// Create2Request is a create whose response also carries the Stat.
type Create2Request CreateRequest

// Encode implements Record.
func (r *Create2Request) Encode(e *Encoder) { (*CreateRequest)(r).Encode(e) }

// Decode implements Record.
func (r *Create2Request) Decode(d *Decoder) { (*CreateRequest)(r).Decode(d) }

// Op implements Request.
func (*Create2Request) Op() OpCode { return OpCreate2 }
func (*Create2Request) isRequest() {}

// CreateContainerRequest creates a container node (Flags ModeContainer).
type CreateContainerRequest CreateRequest

// Encode implements Record.
func (r *CreateContainerRequest) Encode(e *Encoder) { (*CreateRequest)(r).Encode(e) }

// Decode implements Record.
func (r *CreateContainerRequest) Decode(d *Decoder) { (*CreateRequest)(r).Decode(d) }

// Op implements Request.
func (*CreateContainerRequest) Op() OpCode { return OpCreateContainer }
func (*CreateContainerRequest) isRequest() {}

// CreateTTLRequest creates a node with a TTL (ms).
type CreateTTLRequest struct {
	Path  string
	Data  []byte
	ACL   []ACL
	Flags CreateMode
	TTL   int64
}

// Encode implements Record.
func (r *CreateTTLRequest) Encode(e *Encoder) {
	e.WriteString(r.Path)
	e.WriteBuffer(r.Data)
	writeACLs(e, r.ACL)
	e.WriteInt32(int32(r.Flags))
	e.WriteInt64(r.TTL)
}

// Decode implements Record.
func (r *CreateTTLRequest) Decode(d *Decoder) {
	r.Path = d.ReadString()
	r.Data = d.ReadBuffer()
	r.ACL = readACLs(d)
	r.Flags = CreateMode(d.ReadInt32())
	r.TTL = d.ReadInt64()
}

// Op implements Request.
func (*CreateTTLRequest) Op() OpCode { return OpCreateTTL }
func (*CreateTTLRequest) isRequest() {}

// DeleteRequest deletes a node; Version -1 matches any version.
type DeleteRequest struct {
	Path    string
	Version int32
}

// Encode implements Record.
func (r *DeleteRequest) Encode(e *Encoder) {
	e.WriteString(r.Path)
	e.WriteInt32(r.Version)
}

// Decode implements Record.
func (r *DeleteRequest) Decode(d *Decoder) {
	r.Path = d.ReadString()
	r.Version = d.ReadInt32()
}

// Op implements Request.
func (*DeleteRequest) Op() OpCode { return OpDelete }
func (*DeleteRequest) isRequest() {}

// pathWatch is the layout shared by exists, getData and getChildren(2).
type pathWatch struct {
	Path  string
	Watch bool
}

func (r *pathWatch) encode(e *Encoder) {
	e.WriteString(r.Path)
	e.WriteBool(r.Watch)
}

func (r *pathWatch) decode(d *Decoder) {
	r.Path = d.ReadString()
	r.Watch = d.ReadBool()
}

// ExistsRequest asks for a node's Stat, optionally leaving an exists watch.
type ExistsRequest struct {
	Path  string
	Watch bool
}

// Encode implements Record.
func (r *ExistsRequest) Encode(e *Encoder) { (*pathWatch)(r).encode(e) }

// Decode implements Record.
func (r *ExistsRequest) Decode(d *Decoder) { (*pathWatch)(r).decode(d) }

// Op implements Request.
func (*ExistsRequest) Op() OpCode { return OpExists }
func (*ExistsRequest) isRequest() {}

// GetDataRequest asks for a node's data and Stat, optionally leaving a data
// watch.
type GetDataRequest struct {
	Path  string
	Watch bool
}

// Encode implements Record.
func (r *GetDataRequest) Encode(e *Encoder) { (*pathWatch)(r).encode(e) }

// Decode implements Record.
func (r *GetDataRequest) Decode(d *Decoder) { (*pathWatch)(r).decode(d) }

// Op implements Request.
func (*GetDataRequest) Op() OpCode { return OpGetData }
func (*GetDataRequest) isRequest() {}

// GetChildrenRequest lists a node's children, optionally leaving a child
// watch.
type GetChildrenRequest struct {
	Path  string
	Watch bool
}

// Encode implements Record.
func (r *GetChildrenRequest) Encode(e *Encoder) { (*pathWatch)(r).encode(e) }

// Decode implements Record.
func (r *GetChildrenRequest) Decode(d *Decoder) { (*pathWatch)(r).decode(d) }

// Op implements Request.
func (*GetChildrenRequest) Op() OpCode { return OpGetChildren }
func (*GetChildrenRequest) isRequest() {}

// GetChildren2Request is getChildren whose response also carries the Stat.
type GetChildren2Request struct {
	Path  string
	Watch bool
}

// Encode implements Record.
func (r *GetChildren2Request) Encode(e *Encoder) { (*pathWatch)(r).encode(e) }

// Decode implements Record.
func (r *GetChildren2Request) Decode(d *Decoder) { (*pathWatch)(r).decode(d) }

// Op implements Request.
func (*GetChildren2Request) Op() OpCode { return OpGetChildren2 }
func (*GetChildren2Request) isRequest() {}

// SetDataRequest replaces a node's data; Version -1 matches any version.
type SetDataRequest struct {
	Path    string
	Data    []byte
	Version int32
}

// Encode implements Record.
func (r *SetDataRequest) Encode(e *Encoder) {
	e.WriteString(r.Path)
	e.WriteBuffer(r.Data)
	e.WriteInt32(r.Version)
}

// Decode implements Record.
func (r *SetDataRequest) Decode(d *Decoder) {
	r.Path = d.ReadString()
	r.Data = d.ReadBuffer()
	r.Version = d.ReadInt32()
}

// Op implements Request.
func (*SetDataRequest) Op() OpCode { return OpSetData }
func (*SetDataRequest) isRequest() {}

// pathOnly is the layout of records holding just a path.
type pathOnly struct{ Path string }

func (r *pathOnly) encode(e *Encoder) { e.WriteString(r.Path) }
func (r *pathOnly) decode(d *Decoder) { r.Path = d.ReadString() }

// GetACLRequest asks for a node's ACL.
type GetACLRequest struct{ Path string }

// Encode implements Record.
func (r *GetACLRequest) Encode(e *Encoder) { (*pathOnly)(r).encode(e) }

// Decode implements Record.
func (r *GetACLRequest) Decode(d *Decoder) { (*pathOnly)(r).decode(d) }

// Op implements Request.
func (*GetACLRequest) Op() OpCode { return OpGetACL }
func (*GetACLRequest) isRequest() {}

// SetACLRequest replaces a node's ACL; Version is the ACL version (-1 any).
type SetACLRequest struct {
	Path    string
	ACL     []ACL
	Version int32
}

// Encode implements Record.
func (r *SetACLRequest) Encode(e *Encoder) {
	e.WriteString(r.Path)
	writeACLs(e, r.ACL)
	e.WriteInt32(r.Version)
}

// Decode implements Record.
func (r *SetACLRequest) Decode(d *Decoder) {
	r.Path = d.ReadString()
	r.ACL = readACLs(d)
	r.Version = d.ReadInt32()
}

// Op implements Request.
func (*SetACLRequest) Op() OpCode { return OpSetACL }
func (*SetACLRequest) isRequest() {}

// SyncRequest asks the server to catch up with the leader.
type SyncRequest struct{ Path string }

// Encode implements Record.
func (r *SyncRequest) Encode(e *Encoder) { (*pathOnly)(r).encode(e) }

// Decode implements Record.
func (r *SyncRequest) Decode(d *Decoder) { (*pathOnly)(r).decode(d) }

// Op implements Request.
func (*SyncRequest) Op() OpCode { return OpSync }
func (*SyncRequest) isRequest() {}

// CheckVersionRequest checks a node's version (inside a multi).
type CheckVersionRequest struct {
	Path    string
	Version int32
}

// Encode implements Record.
func (r *CheckVersionRequest) Encode(e *Encoder) {
	e.WriteString(r.Path)
	e.WriteInt32(r.Version)
}

// Decode implements Record.
func (r *CheckVersionRequest) Decode(d *Decoder) {
	r.Path = d.ReadString()
	r.Version = d.ReadInt32()
}

// Op implements Request.
func (*CheckVersionRequest) Op() OpCode { return OpCheck }
func (*CheckVersionRequest) isRequest() {}

// GetAllChildrenNumberRequest asks for the number of descendants of a node.
type GetAllChildrenNumberRequest struct{ Path string }

// Encode implements Record.
func (r *GetAllChildrenNumberRequest) Encode(e *Encoder) { (*pathOnly)(r).encode(e) }

// Decode implements Record.
func (r *GetAllChildrenNumberRequest) Decode(d *Decoder) { (*pathOnly)(r).decode(d) }

// Op implements Request.
func (*GetAllChildrenNumberRequest) Op() OpCode { return OpGetAllChildrenNumber }
func (*GetAllChildrenNumberRequest) isRequest() {}

// GetEphemeralsRequest lists the session's ephemeral nodes under a prefix.
type GetEphemeralsRequest struct{ PrefixPath string }

// Encode implements Record.
func (r *GetEphemeralsRequest) Encode(e *Encoder) { e.WriteString(r.PrefixPath) }

// Decode implements Record.
func (r *GetEphemeralsRequest) Decode(d *Decoder) { r.PrefixPath = d.ReadString() }

// Op implements Request.
func (*GetEphemeralsRequest) Op() OpCode { return OpGetEphemerals }
func (*GetEphemeralsRequest) isRequest() {}

// pathType is the layout of checkWatches and removeWatches.
type pathType struct {
	Path string
	Type int32
}

func (r *pathType) encode(e *Encoder) {
	e.WriteString(r.Path)
	e.WriteInt32(r.Type)
}

func (r *pathType) decode(d *Decoder) {
	r.Path = d.ReadString()
	r.Type = d.ReadInt32()
}

// CheckWatchesRequest checks that a watch exists; Type is a Watcher* value.
type CheckWatchesRequest struct {
	Path string
	Type int32
}

// Encode implements Record.
func (r *CheckWatchesRequest) Encode(e *Encoder) { (*pathType)(r).encode(e) }

// Decode implements Record.
func (r *CheckWatchesRequest) Decode(d *Decoder) { (*pathType)(r).decode(d) }

// Op implements Request.
func (*CheckWatchesRequest) Op() OpCode { return OpCheckWatches }
func (*CheckWatchesRequest) isRequest() {}

// RemoveWatchesRequest removes watches; Type is a Watcher* value.
type RemoveWatchesRequest struct {
	Path string
	Type int32
}

// Encode implements Record.
func (r *RemoveWatchesRequest) Encode(e *Encoder) { (*pathType)(r).encode(e) }

// Decode implements Record.
func (r *RemoveWatchesRequest) Decode(d *Decoder) { (*pathType)(r).decode(d) }

// Op implements Request.
func (*RemoveWatchesRequest) Op() OpCode { return OpRemoveWatches }
func (*RemoveWatchesRequest) isRequest() {}

// AddWatchRequest adds a persistent watch; Mode is an AddWatch* value.
type AddWatchRequest struct {
	Path string
	Mode int32
}

// Encode implements Record.
func (r *AddWatchRequest) Encode(e *Encoder) {
	e.WriteString(r.Path)
	e.WriteInt32(r.Mode)
}

// Decode implements Record.
func (r *AddWatchRequest) Decode(d *Decoder) {
	r.Path = d.ReadString()
	r.Mode = d.ReadInt32()
}

// Op implements Request.
func (*AddWatchRequest) Op() OpCode { return OpAddWatch }
func (*AddWatchRequest) isRequest() {}

// SetWatches re-registers a client's watches after a reconnect (xid -8).
type SetWatches struct {
	RelativeZxid int64
	DataWatches  []string
	ExistWatches []string
	ChildWatches []string
}

// Encode implements Record.
func (r *SetWatches) Encode(e *Encoder) {
	e.WriteInt64(r.RelativeZxid)
	e.WriteStrings(r.DataWatches)
	e.WriteStrings(r.ExistWatches)
	e.WriteStrings(r.ChildWatches)
}

// Decode implements Record.
func (r *SetWatches) Decode(d *Decoder) {
	r.RelativeZxid = d.ReadInt64()
	r.DataWatches = d.ReadStrings()
	r.ExistWatches = d.ReadStrings()
	r.ChildWatches = d.ReadStrings()
}

// Op implements Request.
func (*SetWatches) Op() OpCode { return OpSetWatches }
func (*SetWatches) isRequest() {}

// SetWatches2 is SetWatches with persistent watches (ZooKeeper 3.6+).
type SetWatches2 struct {
	RelativeZxid               int64
	DataWatches                []string
	ExistWatches               []string
	ChildWatches               []string
	PersistentWatches          []string
	PersistentRecursiveWatches []string
}

// Encode implements Record.
func (r *SetWatches2) Encode(e *Encoder) {
	e.WriteInt64(r.RelativeZxid)
	e.WriteStrings(r.DataWatches)
	e.WriteStrings(r.ExistWatches)
	e.WriteStrings(r.ChildWatches)
	e.WriteStrings(r.PersistentWatches)
	e.WriteStrings(r.PersistentRecursiveWatches)
}

// Decode implements Record.
func (r *SetWatches2) Decode(d *Decoder) {
	r.RelativeZxid = d.ReadInt64()
	r.DataWatches = d.ReadStrings()
	r.ExistWatches = d.ReadStrings()
	r.ChildWatches = d.ReadStrings()
	r.PersistentWatches = d.ReadStrings()
	r.PersistentRecursiveWatches = d.ReadStrings()
}

// Op implements Request.
func (*SetWatches2) Op() OpCode { return OpSetWatches2 }
func (*SetWatches2) isRequest() {}

// AuthPacket adds credentials to the session (xid -4), e.g. digest
// "user:password".
type AuthPacket struct {
	Type   int32
	Scheme string
	Auth   []byte
}

// Encode implements Record.
func (r *AuthPacket) Encode(e *Encoder) {
	e.WriteInt32(r.Type)
	e.WriteString(r.Scheme)
	e.WriteBuffer(r.Auth)
}

// Decode implements Record.
func (r *AuthPacket) Decode(d *Decoder) {
	r.Type = d.ReadInt32()
	r.Scheme = d.ReadString()
	r.Auth = d.ReadBuffer()
}

// Op implements Request.
func (*AuthPacket) Op() OpCode { return OpAuth }
func (*AuthPacket) isRequest() {}

// SASLRequest carries a SASL token (GetSASLRequest).
type SASLRequest struct{ Token []byte }

// Encode implements Record.
func (r *SASLRequest) Encode(e *Encoder) { e.WriteBuffer(r.Token) }

// Decode implements Record.
func (r *SASLRequest) Decode(d *Decoder) { r.Token = d.ReadBuffer() }

// Op implements Request.
func (*SASLRequest) Op() OpCode { return OpSASL }
func (*SASLRequest) isRequest() {}

// ReconfigRequest changes the ensemble membership.
type ReconfigRequest struct {
	JoiningServers string
	LeavingServers string
	NewMembers     string
	CurConfigID    int64
}

// Encode implements Record.
func (r *ReconfigRequest) Encode(e *Encoder) {
	e.WriteString(r.JoiningServers)
	e.WriteString(r.LeavingServers)
	e.WriteString(r.NewMembers)
	e.WriteInt64(r.CurConfigID)
}

// Decode implements Record.
func (r *ReconfigRequest) Decode(d *Decoder) {
	r.JoiningServers = d.ReadString()
	r.LeavingServers = d.ReadString()
	r.NewMembers = d.ReadString()
	r.CurConfigID = d.ReadInt64()
}

// Op implements Request.
func (*ReconfigRequest) Op() OpCode { return OpReconfig }
func (*ReconfigRequest) isRequest() {}

// PingRequest is a keepalive (xid -2); it has no body.
type PingRequest struct{}

// Encode implements Record.
func (*PingRequest) Encode(*Encoder) {}

// Decode implements Record.
func (*PingRequest) Decode(*Decoder) {}

// Op implements Request.
func (*PingRequest) Op() OpCode { return OpPing }
func (*PingRequest) isRequest() {}

// CloseSessionRequest ends the session; it has no body.
type CloseSessionRequest struct{}

// Encode implements Record.
func (*CloseSessionRequest) Encode(*Encoder) {}

// Decode implements Record.
func (*CloseSessionRequest) Decode(*Decoder) {}

// Op implements Request.
func (*CloseSessionRequest) Op() OpCode { return OpCloseSession }
func (*CloseSessionRequest) isRequest() {}

// WhoAmIRequest asks for the session's identities; it has no body.
type WhoAmIRequest struct{}

// Encode implements Record.
func (*WhoAmIRequest) Encode(*Encoder) {}

// Decode implements Record.
func (*WhoAmIRequest) Decode(*Decoder) {}

// Op implements Request.
func (*WhoAmIRequest) Op() OpCode { return OpWhoAmI }
func (*WhoAmIRequest) isRequest() {}

// MultiRequest is an atomic transaction (op multi). Ops holds only
// *CreateRequest, *Create2Request, *CreateContainerRequest,
// *CreateTTLRequest, *DeleteRequest, *SetDataRequest and
// *CheckVersionRequest.
type MultiRequest struct {
	Ops []Request
}

// Encode implements Record.
func (r *MultiRequest) Encode(e *Encoder) { encodeMultiOps(e, r.Ops) }

// Decode implements Record.
func (r *MultiRequest) Decode(d *Decoder) { r.Ops = decodeMultiOps(d, false) }

// Op implements Request.
func (*MultiRequest) Op() OpCode { return OpMulti }
func (*MultiRequest) isRequest() {}

// MultiReadRequest is a batch of reads (op multiRead). Ops holds only
// *GetChildrenRequest and *GetDataRequest.
type MultiReadRequest struct {
	Ops []Request
}

// Encode implements Record.
func (r *MultiReadRequest) Encode(e *Encoder) { encodeMultiOps(e, r.Ops) }

// Decode implements Record.
func (r *MultiReadRequest) Decode(d *Decoder) { r.Ops = decodeMultiOps(d, true) }

// Op implements Request.
func (*MultiReadRequest) Op() OpCode { return OpMultiRead }
func (*MultiReadRequest) isRequest() {}

func encodeMultiOps(e *Encoder, ops []Request) {
	for _, op := range ops {
		(&MultiHeader{Type: op.Op(), Done: false, Err: -1}).Encode(e)
		op.Encode(e)
	}
	writeMultiEnd(e)
}

// newMultiOp returns the record for an op inside a multi (read selects
// multiRead), or nil if the op is not allowed there.
func newMultiOp(op OpCode, read bool) Request {
	if read {
		switch op {
		case OpGetChildren:
			return &GetChildrenRequest{}
		case OpGetData:
			return &GetDataRequest{}
		}
		return nil
	}
	switch op {
	case OpCreate:
		return &CreateRequest{}
	case OpCreate2:
		return &Create2Request{}
	case OpCreateContainer:
		return &CreateContainerRequest{}
	case OpCreateTTL:
		return &CreateTTLRequest{}
	case OpDelete:
		return &DeleteRequest{}
	case OpSetData:
		return &SetDataRequest{}
	case OpCheck:
		return &CheckVersionRequest{}
	}
	return nil
}

func decodeMultiOps(d *Decoder, read bool) []Request {
	ops := []Request{}
	for d.Err() == nil {
		var h MultiHeader
		h.Decode(d)
		if d.Err() != nil || h.Done {
			break
		}
		op := newMultiOp(h.Type, read)
		if op == nil {
			d.Fail(fmt.Errorf("%s in multi: %w", h.Type, ErrUnknownOp))
			break
		}
		op.Decode(d)
		ops = append(ops, op)
	}
	if d.Err() != nil {
		return nil
	}
	return ops
}

// checkMultiOps reports an op a multi cannot carry.
func checkMultiOps(ops []Request, read bool) error {
	for i, op := range ops {
		if op == nil || newMultiOp(op.Op(), read) == nil {
			return fmt.Errorf("zk: multi op %d: %w", i, ErrUnknownOp)
		}
	}
	return nil
}

// CreateResponse answers create.
type CreateResponse struct{ Path string }

// Encode implements Record.
func (r *CreateResponse) Encode(e *Encoder) { (*pathOnly)(r).encode(e) }

// Decode implements Record.
func (r *CreateResponse) Decode(d *Decoder) { (*pathOnly)(r).decode(d) }

// Op implements Response.
func (*CreateResponse) Op() OpCode  { return OpCreate }
func (*CreateResponse) isResponse() {}

// Create2Response answers create2, createContainer and createTTL.
type Create2Response struct {
	Path string
	Stat Stat
}

// Encode implements Record.
func (r *Create2Response) Encode(e *Encoder) {
	e.WriteString(r.Path)
	r.Stat.Encode(e)
}

// Decode implements Record.
func (r *Create2Response) Decode(d *Decoder) {
	r.Path = d.ReadString()
	r.Stat.Decode(d)
}

// Op implements Response.
func (*Create2Response) Op() OpCode  { return OpCreate2 }
func (*Create2Response) isResponse() {}

// DeleteResponse is the (empty) result of a delete, also inside a multi.
type DeleteResponse struct{}

// Encode implements Record.
func (*DeleteResponse) Encode(*Encoder) {}

// Decode implements Record.
func (*DeleteResponse) Decode(*Decoder) {}

// Op implements Response.
func (*DeleteResponse) Op() OpCode  { return OpDelete }
func (*DeleteResponse) isResponse() {}

// CheckVersionResponse is the (empty) result of a check inside a multi. (A
// standalone check is answered with a SetDataResponse.)
type CheckVersionResponse struct{}

// Encode implements Record.
func (*CheckVersionResponse) Encode(*Encoder) {}

// Decode implements Record.
func (*CheckVersionResponse) Decode(*Decoder) {}

// Op implements Response.
func (*CheckVersionResponse) Op() OpCode  { return OpCheck }
func (*CheckVersionResponse) isResponse() {}

// statOnly is the layout of responses holding just a Stat.
type statOnly struct{ Stat Stat }

func (r *statOnly) encode(e *Encoder) { r.Stat.Encode(e) }
func (r *statOnly) decode(d *Decoder) { r.Stat.Decode(d) }

// ExistsResponse answers exists for a node that exists.
type ExistsResponse struct{ Stat Stat }

// Encode implements Record.
func (r *ExistsResponse) Encode(e *Encoder) { (*statOnly)(r).encode(e) }

// Decode implements Record.
func (r *ExistsResponse) Decode(d *Decoder) { (*statOnly)(r).decode(d) }

// Op implements Response.
func (*ExistsResponse) Op() OpCode  { return OpExists }
func (*ExistsResponse) isResponse() {}

// SetDataResponse answers setData (and a standalone check).
type SetDataResponse struct{ Stat Stat }

// Encode implements Record.
func (r *SetDataResponse) Encode(e *Encoder) { (*statOnly)(r).encode(e) }

// Decode implements Record.
func (r *SetDataResponse) Decode(d *Decoder) { (*statOnly)(r).decode(d) }

// Op implements Response.
func (*SetDataResponse) Op() OpCode  { return OpSetData }
func (*SetDataResponse) isResponse() {}

// SetACLResponse answers setACL.
type SetACLResponse struct{ Stat Stat }

// Encode implements Record.
func (r *SetACLResponse) Encode(e *Encoder) { (*statOnly)(r).encode(e) }

// Decode implements Record.
func (r *SetACLResponse) Decode(d *Decoder) { (*statOnly)(r).decode(d) }

// Op implements Response.
func (*SetACLResponse) Op() OpCode  { return OpSetACL }
func (*SetACLResponse) isResponse() {}

// GetDataResponse answers getData (and reconfig). Nil Data is sent as null.
type GetDataResponse struct {
	Data []byte
	Stat Stat
}

// Encode implements Record.
func (r *GetDataResponse) Encode(e *Encoder) {
	e.WriteBuffer(r.Data)
	r.Stat.Encode(e)
}

// Decode implements Record.
func (r *GetDataResponse) Decode(d *Decoder) {
	r.Data = d.ReadBuffer()
	r.Stat.Decode(d)
}

// Op implements Response.
func (*GetDataResponse) Op() OpCode  { return OpGetData }
func (*GetDataResponse) isResponse() {}

// GetACLResponse answers getACL.
type GetACLResponse struct {
	ACL  []ACL
	Stat Stat
}

// Encode implements Record.
func (r *GetACLResponse) Encode(e *Encoder) {
	writeACLs(e, r.ACL)
	r.Stat.Encode(e)
}

// Decode implements Record.
func (r *GetACLResponse) Decode(d *Decoder) {
	r.ACL = readACLs(d)
	r.Stat.Decode(d)
}

// Op implements Response.
func (*GetACLResponse) Op() OpCode  { return OpGetACL }
func (*GetACLResponse) isResponse() {}

// GetChildrenResponse answers getChildren.
type GetChildrenResponse struct{ Children []string }

// Encode implements Record.
func (r *GetChildrenResponse) Encode(e *Encoder) { e.WriteStrings(r.Children) }

// Decode implements Record.
func (r *GetChildrenResponse) Decode(d *Decoder) { r.Children = d.ReadStrings() }

// Op implements Response.
func (*GetChildrenResponse) Op() OpCode  { return OpGetChildren }
func (*GetChildrenResponse) isResponse() {}

// GetChildren2Response answers getChildren2.
type GetChildren2Response struct {
	Children []string
	Stat     Stat
}

// Encode implements Record.
func (r *GetChildren2Response) Encode(e *Encoder) {
	e.WriteStrings(r.Children)
	r.Stat.Encode(e)
}

// Decode implements Record.
func (r *GetChildren2Response) Decode(d *Decoder) {
	r.Children = d.ReadStrings()
	r.Stat.Decode(d)
}

// Op implements Response.
func (*GetChildren2Response) Op() OpCode  { return OpGetChildren2 }
func (*GetChildren2Response) isResponse() {}

// SyncResponse answers sync with the request's path.
type SyncResponse struct{ Path string }

// Encode implements Record.
func (r *SyncResponse) Encode(e *Encoder) { (*pathOnly)(r).encode(e) }

// Decode implements Record.
func (r *SyncResponse) Decode(d *Decoder) { (*pathOnly)(r).decode(d) }

// Op implements Response.
func (*SyncResponse) Op() OpCode  { return OpSync }
func (*SyncResponse) isResponse() {}

// GetAllChildrenNumberResponse answers getAllChildrenNumber.
type GetAllChildrenNumberResponse struct{ TotalNumber int32 }

// Encode implements Record.
func (r *GetAllChildrenNumberResponse) Encode(e *Encoder) { e.WriteInt32(r.TotalNumber) }

// Decode implements Record.
func (r *GetAllChildrenNumberResponse) Decode(d *Decoder) { r.TotalNumber = d.ReadInt32() }

// Op implements Response.
func (*GetAllChildrenNumberResponse) Op() OpCode  { return OpGetAllChildrenNumber }
func (*GetAllChildrenNumberResponse) isResponse() {}

// GetEphemeralsResponse answers getEphemerals.
type GetEphemeralsResponse struct{ Ephemerals []string }

// Encode implements Record.
func (r *GetEphemeralsResponse) Encode(e *Encoder) { e.WriteStrings(r.Ephemerals) }

// Decode implements Record.
func (r *GetEphemeralsResponse) Decode(d *Decoder) { r.Ephemerals = d.ReadStrings() }

// Op implements Response.
func (*GetEphemeralsResponse) Op() OpCode  { return OpGetEphemerals }
func (*GetEphemeralsResponse) isResponse() {}

// SetSASLResponse answers sasl with the server's token.
type SetSASLResponse struct{ Token []byte }

// Encode implements Record.
func (r *SetSASLResponse) Encode(e *Encoder) { e.WriteBuffer(r.Token) }

// Decode implements Record.
func (r *SetSASLResponse) Decode(d *Decoder) { r.Token = d.ReadBuffer() }

// Op implements Response.
func (*SetSASLResponse) Op() OpCode  { return OpSASL }
func (*SetSASLResponse) isResponse() {}

// ClientInfo is one identity of a session (whoAmI).
type ClientInfo struct {
	AuthScheme string
	User       string
}

// WhoAmIResponse answers whoAmI.
type WhoAmIResponse struct{ ClientInfo []ClientInfo }

// Encode implements Record.
func (r *WhoAmIResponse) Encode(e *Encoder) {
	e.WriteVectorLen(len(r.ClientInfo), r.ClientInfo == nil)
	for _, c := range r.ClientInfo {
		e.WriteString(c.AuthScheme)
		e.WriteString(c.User)
	}
}

// Decode implements Record.
func (r *WhoAmIResponse) Decode(d *Decoder) {
	r.ClientInfo = nil
	n := d.ReadVectorLen(minSizeClient)
	if d.Err() != nil || n == nullLength {
		return
	}
	v := make([]ClientInfo, n)
	for i := range v {
		v[i].AuthScheme = d.ReadString()
		v[i].User = d.ReadString()
	}
	if d.Err() == nil {
		r.ClientInfo = v
	}
}

// Op implements Response.
func (*WhoAmIResponse) Op() OpCode  { return OpWhoAmI }
func (*WhoAmIResponse) isResponse() {}

// ErrorResult is a failed op inside a multi response (OpResult.ErrorResult)
// and the body of an addWatch reply (ErrorResponse, Err 0). When a multi
// fails, every op gets one: ErrOK for those before the failing op, its code
// for that op, ErrRuntimeInconsistency for those after.
type ErrorResult struct{ Err ErrCode }

// Encode implements Record.
func (r *ErrorResult) Encode(e *Encoder) { e.WriteInt32(int32(r.Err)) }

// Decode implements Record.
func (r *ErrorResult) Decode(d *Decoder) { r.Err = ErrCode(d.ReadInt32()) }

// Op implements Response.
func (*ErrorResult) Op() OpCode  { return OpError }
func (*ErrorResult) isResponse() {}

// WatcherEvent is the body of a notification (ReplyHeader xid -1, zxid -1).
type WatcherEvent struct {
	Type  EventType
	State State
	Path  string
}

// Encode implements Record.
func (r *WatcherEvent) Encode(e *Encoder) {
	e.WriteInt32(int32(r.Type))
	e.WriteInt32(int32(r.State))
	e.WriteString(r.Path)
}

// Decode implements Record.
func (r *WatcherEvent) Decode(d *Decoder) {
	r.Type = EventType(d.ReadInt32())
	r.State = State(d.ReadInt32())
	r.Path = d.ReadString()
}

// Op implements Response.
func (*WatcherEvent) Op() OpCode  { return OpNotification }
func (*WatcherEvent) isResponse() {}

// MultiResponse answers multi and multiRead. Results holds, per op, one of
// *CreateResponse, *Create2Response, *DeleteResponse,
// *CheckVersionResponse, *SetDataResponse (multi), *GetChildrenResponse,
// *GetDataResponse (multiRead) or *ErrorResult. The ReplyHeader of a multi
// whose ops failed still carries ErrOK: the errors are in the results.
type MultiResponse struct {
	Results []Response
}

// Encode implements Record.
func (r *MultiResponse) Encode(e *Encoder) {
	for _, res := range r.Results {
		h := MultiHeader{Type: res.Op()}
		if er, ok := res.(*ErrorResult); ok {
			h.Err = er.Err
		}
		h.Encode(e)
		res.Encode(e)
	}
	writeMultiEnd(e)
}

// Decode implements Record.
func (r *MultiResponse) Decode(d *Decoder) {
	res := []Response{}
	for d.Err() == nil {
		var h MultiHeader
		h.Decode(d)
		if d.Err() != nil || h.Done {
			break
		}
		x := newMultiResult(h.Type)
		if x == nil {
			d.Fail(fmt.Errorf("%s in multi response: %w", h.Type, ErrUnknownOp))
			break
		}
		x.Decode(d)
		res = append(res, x)
	}
	r.Results = nil
	if d.Err() == nil {
		r.Results = res
	}
}

// Op implements Response.
func (*MultiResponse) Op() OpCode  { return OpMulti }
func (*MultiResponse) isResponse() {}

func newMultiResult(op OpCode) Response {
	switch op {
	case OpCreate:
		return &CreateResponse{}
	case OpCreate2:
		return &Create2Response{}
	case OpDelete:
		return &DeleteResponse{}
	case OpCheck:
		return &CheckVersionResponse{}
	case OpSetData:
		return &SetDataResponse{}
	case OpGetChildren:
		return &GetChildrenResponse{}
	case OpGetData:
		return &GetDataResponse{}
	case OpError:
		return &ErrorResult{}
	}
	return nil
}
