package zk

import "fmt"

// newRequest returns an empty record for a request op, or nil if the op has
// no client request record (notification, createSession — the handshake is
// a bare ConnectRequest —, deleteContainer, error, unknown codes).
func newRequest(op OpCode) Request {
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
	case OpExists:
		return &ExistsRequest{}
	case OpGetData:
		return &GetDataRequest{}
	case OpSetData:
		return &SetDataRequest{}
	case OpGetACL:
		return &GetACLRequest{}
	case OpSetACL:
		return &SetACLRequest{}
	case OpGetChildren:
		return &GetChildrenRequest{}
	case OpGetChildren2:
		return &GetChildren2Request{}
	case OpSync:
		return &SyncRequest{}
	case OpPing:
		return &PingRequest{}
	case OpCheck:
		return &CheckVersionRequest{}
	case OpMulti:
		return &MultiRequest{}
	case OpMultiRead:
		return &MultiReadRequest{}
	case OpReconfig:
		return &ReconfigRequest{}
	case OpCheckWatches:
		return &CheckWatchesRequest{}
	case OpRemoveWatches:
		return &RemoveWatchesRequest{}
	case OpAuth:
		return &AuthPacket{}
	case OpSetWatches:
		return &SetWatches{}
	case OpSetWatches2:
		return &SetWatches2{}
	case OpSASL:
		return &SASLRequest{}
	case OpGetEphemerals:
		return &GetEphemeralsRequest{}
	case OpGetAllChildrenNumber:
		return &GetAllChildrenNumberRequest{}
	case OpAddWatch:
		return &AddWatchRequest{}
	case OpWhoAmI:
		return &WhoAmIRequest{}
	case OpCloseSession:
		return &CloseSessionRequest{}
	}
	return nil
}

// DecodeRequest decodes the body of a request whose header has type op.
// Bytes after the record are ignored, as ZooKeeper does. An op with no
// request record gives an error wrapping ErrUnknownOp; a server answers
// that, like ZooKeeper, by closing the connection (or with
// ErrUnimplemented if it prefers to keep it).
func DecodeRequest(op OpCode, body []byte) (Request, error) {
	req := newRequest(op)
	if req == nil {
		return nil, fmt.Errorf("zk: request %s: %w", op, ErrUnknownOp)
	}
	d := NewDecoder(body)
	req.Decode(d)
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("zk: decode %s request: %w", op, err)
	}
	return req, nil
}

// ParseRequest decodes a request frame payload (as returned by
// FrameReader.ReadFrame after the handshake): the header, then the body
// its op selects. On a body error the header is still returned, so the
// server can answer the xid.
func ParseRequest(frame []byte) (RequestHeader, Request, error) {
	var h RequestHeader
	n, err := unmarshal(frame, &h)
	if err != nil {
		return h, nil, fmt.Errorf("zk: request header: %w", err)
	}
	req, err := DecodeRequest(h.Type, frame[n:])
	return h, req, err
}

// ParseConnectRequest decodes the first frame of a connection.
func ParseConnectRequest(frame []byte) (*ConnectRequest, error) {
	var r ConnectRequest
	if _, err := unmarshal(frame, &r); err != nil {
		return nil, fmt.Errorf("zk: connect request: %w", err)
	}
	return &r, nil
}

// validate reports a record that cannot be encoded into a valid frame:
// multis holding ops or results that they cannot carry.
func validate(r Record) error {
	switch v := r.(type) {
	case *MultiRequest:
		return checkMultiOps(v.Ops, false)
	case *MultiReadRequest:
		return checkMultiOps(v.Ops, true)
	case *MultiResponse:
		for i, res := range v.Results {
			if res == nil || newMultiResult(res.Op()) == nil {
				return fmt.Errorf("zk: multi result %d: %w", i, ErrUnknownOp)
			}
		}
	}
	return nil
}

// MarshalRequest returns the frame (length prefix included) of a request
// with the given xid; the header's type is req.Op().
func MarshalRequest(xid int32, req Request) ([]byte, error) {
	if req == nil {
		return nil, fmt.Errorf("zk: nil request: %w", ErrUnknownOp)
	}
	if err := validate(req); err != nil {
		return nil, err
	}
	return AppendFrame(nil, &RequestHeader{Xid: xid, Type: req.Op()}, req)
}

// MarshalReply returns the frame (length prefix included) of a reply. resp
// may be nil for replies without a body (errors, ping, delete, setWatches,
// auth, closeSession...); pass nil whenever hdr.Err is not ErrOK, since
// clients do not read a body then.
func MarshalReply(hdr ReplyHeader, resp Response) ([]byte, error) {
	if resp == nil {
		return AppendFrame(nil, &hdr)
	}
	if err := validate(resp); err != nil {
		return nil, err
	}
	return AppendFrame(nil, &hdr, resp)
}

// MarshalNotification returns the frame of a watch notification: reply
// header {xid -1, zxid -1, err 0} and the event.
func MarshalNotification(ev *WatcherEvent) ([]byte, error) {
	return MarshalReply(ReplyHeader{Xid: XidWatchEvent, Zxid: -1}, ev)
}

// MarshalConnectResponse returns the frame answering a ConnectRequest.
func MarshalConnectResponse(r *ConnectResponse) ([]byte, error) {
	return AppendFrame(nil, r)
}

// newResponse returns an empty record for the body answering op, nil for
// ops answered with a bare header, and ok false for ops with no reply.
func newResponse(op OpCode) (resp Response, ok bool) {
	switch op {
	case OpCreate:
		return &CreateResponse{}, true
	case OpCreate2, OpCreateContainer, OpCreateTTL:
		return &Create2Response{}, true
	case OpDelete:
		return &DeleteResponse{}, true
	case OpExists:
		return &ExistsResponse{}, true
	case OpGetData, OpReconfig:
		return &GetDataResponse{}, true
	case OpSetData, OpCheck:
		return &SetDataResponse{}, true
	case OpGetACL:
		return &GetACLResponse{}, true
	case OpSetACL:
		return &SetACLResponse{}, true
	case OpGetChildren:
		return &GetChildrenResponse{}, true
	case OpGetChildren2:
		return &GetChildren2Response{}, true
	case OpSync:
		return &SyncResponse{}, true
	case OpMulti, OpMultiRead:
		return &MultiResponse{}, true
	case OpSASL:
		return &SetSASLResponse{}, true
	case OpGetEphemerals:
		return &GetEphemeralsResponse{}, true
	case OpGetAllChildrenNumber:
		return &GetAllChildrenNumberResponse{}, true
	case OpWhoAmI:
		return &WhoAmIResponse{}, true
	case OpAddWatch:
		return &ErrorResult{}, true
	case OpNotification:
		return &WatcherEvent{}, true
	case OpPing, OpAuth, OpSetWatches, OpSetWatches2, OpCheckWatches,
		OpRemoveWatches, OpCloseSession:
		return nil, true
	}
	return nil, false
}

// DecodeReplyHeader decodes a reply frame payload's header and returns the
// body that follows it.
func DecodeReplyHeader(frame []byte) (ReplyHeader, []byte, error) {
	var h ReplyHeader
	n, err := unmarshal(frame, &h)
	if err != nil {
		return h, nil, fmt.Errorf("zk: reply header: %w", err)
	}
	return h, frame[n:], nil
}

// DecodeResponse decodes a successful reply body for a request of type op
// (OpNotification for xid -1). Ops answered with a bare header give nil.
func DecodeResponse(op OpCode, body []byte) (Response, error) {
	resp, ok := newResponse(op)
	if !ok {
		return nil, fmt.Errorf("zk: response %s: %w", op, ErrUnknownOp)
	}
	if resp == nil {
		return nil, nil
	}
	d := NewDecoder(body)
	resp.Decode(d)
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("zk: decode %s response: %w", op, err)
	}
	return resp, nil
}
