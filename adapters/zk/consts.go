package zk

import "strconv"

// OpCode is a request type (RequestHeader.Type, MultiHeader.Type).
type OpCode int32

// Op codes, as in ZooKeeper's ZooDefs.OpCode.
const (
	OpNotification         OpCode = 0
	OpCreate               OpCode = 1
	OpDelete               OpCode = 2
	OpExists               OpCode = 3
	OpGetData              OpCode = 4
	OpSetData              OpCode = 5
	OpGetACL               OpCode = 6
	OpSetACL               OpCode = 7
	OpGetChildren          OpCode = 8
	OpSync                 OpCode = 9
	OpPing                 OpCode = 11
	OpGetChildren2         OpCode = 12
	OpCheck                OpCode = 13
	OpMulti                OpCode = 14
	OpCreate2              OpCode = 15
	OpReconfig             OpCode = 16
	OpCheckWatches         OpCode = 17
	OpRemoveWatches        OpCode = 18
	OpCreateContainer      OpCode = 19
	OpDeleteContainer      OpCode = 20
	OpCreateTTL            OpCode = 21
	OpMultiRead            OpCode = 22
	OpAuth                 OpCode = 100
	OpSetWatches           OpCode = 101
	OpSASL                 OpCode = 102
	OpGetEphemerals        OpCode = 103
	OpGetAllChildrenNumber OpCode = 104
	OpSetWatches2          OpCode = 105
	OpAddWatch             OpCode = 106
	OpWhoAmI               OpCode = 107
	OpCreateSession        OpCode = -10
	OpCloseSession         OpCode = -11
	OpError                OpCode = -1
)

// String returns the op's name as in ZooDefs.OpCode, or "op(N)".
func (op OpCode) String() string {
	switch op {
	case OpNotification:
		return "notification"
	case OpCreate:
		return "create"
	case OpDelete:
		return "delete"
	case OpExists:
		return "exists"
	case OpGetData:
		return "getData"
	case OpSetData:
		return "setData"
	case OpGetACL:
		return "getACL"
	case OpSetACL:
		return "setACL"
	case OpGetChildren:
		return "getChildren"
	case OpSync:
		return "sync"
	case OpPing:
		return "ping"
	case OpGetChildren2:
		return "getChildren2"
	case OpCheck:
		return "check"
	case OpMulti:
		return "multi"
	case OpCreate2:
		return "create2"
	case OpReconfig:
		return "reconfig"
	case OpCheckWatches:
		return "checkWatches"
	case OpRemoveWatches:
		return "removeWatches"
	case OpCreateContainer:
		return "createContainer"
	case OpDeleteContainer:
		return "deleteContainer"
	case OpCreateTTL:
		return "createTTL"
	case OpMultiRead:
		return "multiRead"
	case OpAuth:
		return "auth"
	case OpSetWatches:
		return "setWatches"
	case OpSASL:
		return "sasl"
	case OpGetEphemerals:
		return "getEphemerals"
	case OpGetAllChildrenNumber:
		return "getAllChildrenNumber"
	case OpSetWatches2:
		return "setWatches2"
	case OpAddWatch:
		return "addWatch"
	case OpWhoAmI:
		return "whoAmI"
	case OpCreateSession:
		return "createSession"
	case OpCloseSession:
		return "closeSession"
	case OpError:
		return "error"
	}
	return "op(" + strconv.Itoa(int(op)) + ")"
}

// Special xids. Replies to these carry the same xid.
const (
	// XidWatchEvent is the xid of a server-sent WatcherEvent notification
	// (sent with zxid -1 and err 0).
	XidWatchEvent int32 = -1
	// XidPing is the xid clients use for ping requests.
	XidPing int32 = -2
	// XidAuth is the xid clients use for auth packets.
	XidAuth int32 = -4
	// XidSetWatches is the xid clients use for setWatches / setWatches2
	// after a reconnect.
	XidSetWatches int32 = -8
)

// ErrCode is a ZooKeeper error code (ReplyHeader.Err, ErrorResult.Err). It
// implements error; ErrOK is not meant to be returned as one.
type ErrCode int32

// Error codes, as in ZooKeeper's KeeperException.Code.
const (
	ErrOK                           ErrCode = 0
	ErrSystemError                  ErrCode = -1
	ErrRuntimeInconsistency         ErrCode = -2
	ErrDataInconsistency            ErrCode = -3
	ErrConnectionLoss               ErrCode = -4
	ErrMarshallingError             ErrCode = -5
	ErrUnimplemented                ErrCode = -6
	ErrOperationTimeout             ErrCode = -7
	ErrBadArguments                 ErrCode = -8
	ErrUnknownSession               ErrCode = -12
	ErrNewConfigNoQuorum            ErrCode = -13
	ErrReconfigInProgress           ErrCode = -14
	ErrAPIError                     ErrCode = -100
	ErrNoNode                       ErrCode = -101
	ErrNoAuth                       ErrCode = -102
	ErrBadVersion                   ErrCode = -103
	ErrNoChildrenForEphemerals      ErrCode = -108
	ErrNodeExists                   ErrCode = -110
	ErrNotEmpty                     ErrCode = -111
	ErrSessionExpired               ErrCode = -112
	ErrInvalidCallback              ErrCode = -113
	ErrInvalidACL                   ErrCode = -114
	ErrAuthFailed                   ErrCode = -115
	ErrSessionMoved                 ErrCode = -118
	ErrNotReadOnly                  ErrCode = -119
	ErrEphemeralOnLocalSession      ErrCode = -120
	ErrNoWatcher                    ErrCode = -121
	ErrRequestTimeout               ErrCode = -122
	ErrReconfigDisabled             ErrCode = -123
	ErrSessionClosedRequireSaslAuth ErrCode = -124
	ErrQuotaExceeded                ErrCode = -125
	ErrThrottledOp                  ErrCode = -127
)

// Name returns the code's KeeperException.Code name (e.g. "NONODE"), or ""
// for a code ZooKeeper does not define.
func (c ErrCode) Name() string {
	switch c {
	case ErrOK:
		return "OK"
	case ErrSystemError:
		return "SYSTEMERROR"
	case ErrRuntimeInconsistency:
		return "RUNTIMEINCONSISTENCY"
	case ErrDataInconsistency:
		return "DATAINCONSISTENCY"
	case ErrConnectionLoss:
		return "CONNECTIONLOSS"
	case ErrMarshallingError:
		return "MARSHALLINGERROR"
	case ErrUnimplemented:
		return "UNIMPLEMENTED"
	case ErrOperationTimeout:
		return "OPERATIONTIMEOUT"
	case ErrBadArguments:
		return "BADARGUMENTS"
	case ErrUnknownSession:
		return "UNKNOWNSESSION"
	case ErrNewConfigNoQuorum:
		return "NEWCONFIGNOQUORUM"
	case ErrReconfigInProgress:
		return "RECONFIGINPROGRESS"
	case ErrAPIError:
		return "APIERROR"
	case ErrNoNode:
		return "NONODE"
	case ErrNoAuth:
		return "NOAUTH"
	case ErrBadVersion:
		return "BADVERSION"
	case ErrNoChildrenForEphemerals:
		return "NOCHILDRENFOREPHEMERALS"
	case ErrNodeExists:
		return "NODEEXISTS"
	case ErrNotEmpty:
		return "NOTEMPTY"
	case ErrSessionExpired:
		return "SESSIONEXPIRED"
	case ErrInvalidCallback:
		return "INVALIDCALLBACK"
	case ErrInvalidACL:
		return "INVALIDACL"
	case ErrAuthFailed:
		return "AUTHFAILED"
	case ErrSessionMoved:
		return "SESSIONMOVED"
	case ErrNotReadOnly:
		return "NOTREADONLY"
	case ErrEphemeralOnLocalSession:
		return "EPHEMERALONLOCALSESSION"
	case ErrNoWatcher:
		return "NOWATCHER"
	case ErrRequestTimeout:
		return "REQUESTTIMEOUT"
	case ErrReconfigDisabled:
		return "RECONFIGDISABLED"
	case ErrSessionClosedRequireSaslAuth:
		return "SESSIONCLOSEDREQUIRESASLAUTH"
	case ErrQuotaExceeded:
		return "QUOTAEXCEEDED"
	case ErrThrottledOp:
		return "THROTTLEDOP"
	}
	return ""
}

// Message returns the text ZooKeeper's Java client puts after
// "KeeperErrorCode = " (KeeperException.getCodeMessage), e.g. "NoNode".
func (c ErrCode) Message() string {
	switch c {
	case ErrOK:
		return "ok"
	case ErrSystemError:
		return "SystemError"
	case ErrRuntimeInconsistency:
		return "RuntimeInconsistency"
	case ErrDataInconsistency:
		return "DataInconsistency"
	case ErrConnectionLoss:
		return "ConnectionLoss"
	case ErrMarshallingError:
		return "MarshallingError"
	case ErrNewConfigNoQuorum:
		return "NewConfigNoQuorum"
	case ErrReconfigInProgress:
		return "ReconfigInProgress"
	case ErrUnimplemented:
		return "Unimplemented"
	case ErrOperationTimeout:
		return "OperationTimeout"
	case ErrBadArguments:
		return "BadArguments"
	case ErrAPIError:
		return "APIError"
	case ErrNoNode:
		return "NoNode"
	case ErrNoAuth:
		return "NoAuth"
	case ErrBadVersion:
		return "BadVersion"
	case ErrNoChildrenForEphemerals:
		return "NoChildrenForEphemerals"
	case ErrNodeExists:
		return "NodeExists"
	case ErrInvalidACL:
		return "InvalidACL"
	case ErrAuthFailed:
		return "AuthFailed"
	case ErrNotEmpty:
		return "Directory not empty"
	case ErrSessionExpired:
		return "Session expired"
	case ErrInvalidCallback:
		return "Invalid callback"
	case ErrSessionMoved:
		return "Session moved"
	case ErrNotReadOnly:
		return "Not a read-only call"
	case ErrEphemeralOnLocalSession:
		return "Ephemeral node on local session"
	case ErrNoWatcher:
		return "No such watcher"
	case ErrReconfigDisabled:
		return "Reconfig is disabled"
	case ErrSessionClosedRequireSaslAuth:
		return "Session closed because client failed to authenticate"
	case ErrQuotaExceeded:
		return "Quota has exceeded"
	case ErrThrottledOp:
		return "Op throttled due to high load"
	}
	if n := c.Name(); n != "" {
		return "Unknown error " + n
	}
	return "Unknown error " + strconv.Itoa(int(c))
}

// String returns the code's name, or "ErrCode(N)" for an unknown code.
func (c ErrCode) String() string {
	if n := c.Name(); n != "" {
		return n
	}
	return "ErrCode(" + strconv.Itoa(int(c)) + ")"
}

// Error implements error: "zk: NONODE (-101)".
func (c ErrCode) Error() string {
	return "zk: " + c.String() + " (" + strconv.Itoa(int(c)) + ")"
}

// EventType is a WatcherEvent type.
type EventType int32

// Watch event types, as in Watcher.Event.EventType.
const (
	EventNone                   EventType = -1
	EventNodeCreated            EventType = 1
	EventNodeDeleted            EventType = 2
	EventNodeDataChanged        EventType = 3
	EventNodeChildrenChanged    EventType = 4
	EventDataWatchRemoved       EventType = 5
	EventChildWatchRemoved      EventType = 6
	EventPersistentWatchRemoved EventType = 7
)

// String returns the Java enum name, or "EventType(N)".
func (t EventType) String() string {
	switch t {
	case EventNone:
		return "None"
	case EventNodeCreated:
		return "NodeCreated"
	case EventNodeDeleted:
		return "NodeDeleted"
	case EventNodeDataChanged:
		return "NodeDataChanged"
	case EventNodeChildrenChanged:
		return "NodeChildrenChanged"
	case EventDataWatchRemoved:
		return "DataWatchRemoved"
	case EventChildWatchRemoved:
		return "ChildWatchRemoved"
	case EventPersistentWatchRemoved:
		return "PersistentWatchRemoved"
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// State is a WatcherEvent keeper state.
type State int32

// Keeper states, as in Watcher.Event.KeeperState.
const (
	StateUnknown           State = -1 // deprecated in ZooKeeper
	StateDisconnected      State = 0
	StateNoSyncConnected   State = 1 // deprecated in ZooKeeper
	StateSyncConnected     State = 3
	StateAuthFailed        State = 4
	StateConnectedReadOnly State = 5
	StateSaslAuthenticated State = 6
	StateClosed            State = 7
	StateExpired           State = -112
)

// String returns the Java enum name, or "State(N)".
func (s State) String() string {
	switch s {
	case StateUnknown:
		return "Unknown"
	case StateDisconnected:
		return "Disconnected"
	case StateNoSyncConnected:
		return "NoSyncConnected"
	case StateSyncConnected:
		return "SyncConnected"
	case StateAuthFailed:
		return "AuthFailed"
	case StateConnectedReadOnly:
		return "ConnectedReadOnly"
	case StateSaslAuthenticated:
		return "SaslAuthenticated"
	case StateClosed:
		return "Closed"
	case StateExpired:
		return "Expired"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// CreateMode is CreateRequest.Flags.
type CreateMode int32

// Create modes, as in CreateMode.
const (
	ModePersistent                  CreateMode = 0
	ModeEphemeral                   CreateMode = 1
	ModePersistentSequential        CreateMode = 2
	ModeEphemeralSequential         CreateMode = 3
	ModeContainer                   CreateMode = 4
	ModePersistentWithTTL           CreateMode = 5
	ModePersistentSequentialWithTTL CreateMode = 6
)

// Valid reports whether m is a defined create mode.
func (m CreateMode) Valid() bool { return m >= ModePersistent && m <= ModePersistentSequentialWithTTL }

// Ephemeral reports whether nodes of this mode belong to the session.
func (m CreateMode) Ephemeral() bool { return m == ModeEphemeral || m == ModeEphemeralSequential }

// Sequential reports whether the server appends a sequence number.
func (m CreateMode) Sequential() bool {
	return m == ModePersistentSequential || m == ModeEphemeralSequential || m == ModePersistentSequentialWithTTL
}

// Container reports whether m is the container mode.
func (m CreateMode) Container() bool { return m == ModeContainer }

// TTL reports whether m needs a TTL (createTTL).
func (m CreateMode) TTL() bool {
	return m == ModePersistentWithTTL || m == ModePersistentSequentialWithTTL
}

// String returns the Java enum name, or "CreateMode(N)".
func (m CreateMode) String() string {
	switch m {
	case ModePersistent:
		return "PERSISTENT"
	case ModeEphemeral:
		return "EPHEMERAL"
	case ModePersistentSequential:
		return "PERSISTENT_SEQUENTIAL"
	case ModeEphemeralSequential:
		return "EPHEMERAL_SEQUENTIAL"
	case ModeContainer:
		return "CONTAINER"
	case ModePersistentWithTTL:
		return "PERSISTENT_WITH_TTL"
	case ModePersistentSequentialWithTTL:
		return "PERSISTENT_SEQUENTIAL_WITH_TTL"
	}
	return "CreateMode(" + strconv.Itoa(int(m)) + ")"
}

// ACL permission bits, as in ZooDefs.Perms.
const (
	PermRead   int32 = 1 << 0
	PermWrite  int32 = 1 << 1
	PermCreate int32 = 1 << 2
	PermDelete int32 = 1 << 3
	PermAdmin  int32 = 1 << 4
	PermAll    int32 = PermRead | PermWrite | PermCreate | PermDelete | PermAdmin
)

// AddWatch modes (AddWatchRequest.Mode), as in AddWatchMode.
const (
	AddWatchPersistent          int32 = 0
	AddWatchPersistentRecursive int32 = 1
)

// Watcher types for checkWatches / removeWatches, as in Watcher.WatcherType.
const (
	WatcherChildren            int32 = 1
	WatcherData                int32 = 2
	WatcherAny                 int32 = 3
	WatcherPersistent          int32 = 4
	WatcherPersistentRecursive int32 = 5
)

// Auth types (AuthPacket.Type) — ZooKeeper clients always send 0.
const AuthTypeDefault int32 = 0

// Multi terminator: the MultiHeader that ends a multi request or response.
const (
	multiEndType OpCode  = -1
	multiEndErr  ErrCode = -1
)
