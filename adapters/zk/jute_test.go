package zk

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// hx decodes hex written with spaces and "|" separators for readability.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func testStat() Stat {
	return Stat{Czxid: 1, Mzxid: 2, Ctime: 3, Mtime: 4, Version: 5, Cversion: 6,
		Aversion: 7, EphemeralOwner: 8, DataLength: 9, NumChildren: 2, Pzxid: 11}
}

// statHex is testStat() written by hand from the Stat layout.
const statHex = `0000000000000001 0000000000000002 0000000000000003 0000000000000004
	00000005 00000006 00000007 0000000000000008 00000009 00000002 000000000000000b`

func worldACL() []ACL { return []ACL{WorldAnyone(PermAll)} }

// allRequests has one non-trivial value of every request type.
func allRequests() []Request {
	st := []string{"/a", "/b/c"}
	return []Request{
		&CreateRequest{Path: "/a", Data: []byte("hi"), ACL: worldACL(), Flags: ModeEphemeral},
		&CreateRequest{Path: "/null", Data: nil, ACL: []ACL{}, Flags: ModePersistent},
		&Create2Request{Path: "/a", Data: []byte{}, ACL: worldACL(), Flags: ModePersistentSequential},
		&CreateContainerRequest{Path: "/c", Data: []byte("x"), ACL: worldACL(), Flags: ModeContainer},
		&CreateTTLRequest{Path: "/t", Data: []byte("y"), ACL: worldACL(), Flags: ModePersistentWithTTL, TTL: 5000},
		&DeleteRequest{Path: "/a", Version: -1},
		&ExistsRequest{Path: "/a", Watch: true},
		&GetDataRequest{Path: "/a", Watch: true},
		&SetDataRequest{Path: "/a", Data: []byte("v"), Version: 3},
		&GetACLRequest{Path: "/a"},
		&SetACLRequest{Path: "/a", ACL: []ACL{{Perms: PermRead, ID: ID{Scheme: "digest", ID: "u:h"}}}, Version: 2},
		&GetChildrenRequest{Path: "/", Watch: true},
		&GetChildren2Request{Path: "/", Watch: false},
		&SyncRequest{Path: "/a"},
		&PingRequest{},
		&CheckVersionRequest{Path: "/a", Version: 4},
		&MultiRequest{Ops: []Request{
			&CreateRequest{Path: "/m", Data: []byte("x"), ACL: worldACL()},
			&Create2Request{Path: "/m2", ACL: worldACL()},
			&CreateContainerRequest{Path: "/m3", ACL: worldACL(), Flags: ModeContainer},
			&CreateTTLRequest{Path: "/m4", ACL: worldACL(), Flags: ModePersistentWithTTL, TTL: 1},
			&DeleteRequest{Path: "/d", Version: 1},
			&SetDataRequest{Path: "/m", Data: []byte("y"), Version: 0},
			&CheckVersionRequest{Path: "/m", Version: 1},
		}},
		&MultiRequest{Ops: []Request{}},
		&MultiReadRequest{Ops: []Request{&GetChildrenRequest{Path: "/"}, &GetDataRequest{Path: "/a"}}},
		&ReconfigRequest{JoiningServers: "server.4=h:1:2", LeavingServers: "3", NewMembers: "", CurConfigID: -1},
		&CheckWatchesRequest{Path: "/a", Type: WatcherData},
		&RemoveWatchesRequest{Path: "/a", Type: WatcherAny},
		&AuthPacket{Type: AuthTypeDefault, Scheme: "digest", Auth: []byte("u:p")},
		&SetWatches{RelativeZxid: 42, DataWatches: st, ExistWatches: []string{}, ChildWatches: nil},
		&SetWatches2{RelativeZxid: 43, DataWatches: st, ExistWatches: []string{"/e"}, ChildWatches: []string{},
			PersistentWatches: []string{"/p"}, PersistentRecursiveWatches: nil},
		&SASLRequest{Token: []byte{1, 2, 3}},
		&GetEphemeralsRequest{PrefixPath: "/"},
		&GetAllChildrenNumberRequest{Path: "/a"},
		&AddWatchRequest{Path: "/a", Mode: AddWatchPersistentRecursive},
		&WhoAmIRequest{},
		&CloseSessionRequest{},
	}
}

// allResponses has one non-trivial value of every response type.
func allResponses() []Response {
	st := testStat()
	return []Response{
		&CreateResponse{Path: "/a"},
		&Create2Response{Path: "/a0000000001", Stat: st},
		&DeleteResponse{},
		&CheckVersionResponse{},
		&ExistsResponse{Stat: st},
		&SetDataResponse{Stat: st},
		&SetACLResponse{Stat: st},
		&GetDataResponse{Data: []byte("v"), Stat: st},
		&GetDataResponse{Data: nil, Stat: st},
		&GetACLResponse{ACL: worldACL(), Stat: st},
		&GetChildrenResponse{Children: []string{"a", "b"}},
		&GetChildrenResponse{Children: []string{}},
		&GetChildren2Response{Children: []string{"a", "bc"}, Stat: st},
		&SyncResponse{Path: "/a"},
		&GetAllChildrenNumberResponse{TotalNumber: 7},
		&GetEphemeralsResponse{Ephemerals: []string{"/e1", "/e2"}},
		&SetSASLResponse{Token: []byte("tok")},
		&WhoAmIResponse{ClientInfo: []ClientInfo{{AuthScheme: "ip", User: "127.0.0.1"}}},
		&WhoAmIResponse{ClientInfo: []ClientInfo{}},
		&ErrorResult{Err: ErrNoNode},
		&WatcherEvent{Type: EventNodeDataChanged, State: StateSyncConnected, Path: "/a"},
		&MultiResponse{Results: []Response{
			&CreateResponse{Path: "/m"}, &Create2Response{Path: "/m2", Stat: st}, &DeleteResponse{},
			&CheckVersionResponse{}, &SetDataResponse{Stat: st},
			&GetChildrenResponse{Children: []string{"x"}}, &GetDataResponse{Data: []byte("d"), Stat: st},
			&ErrorResult{Err: ErrBadVersion},
		}},
		&MultiResponse{Results: []Response{}},
	}
}

// otherRecords are the records that are neither Request nor Response.
func otherRecords() []Record {
	st := testStat()
	return []Record{
		&st,
		&ACL{Perms: PermAll, ID: ID{Scheme: "world", ID: "anyone"}},
		&ConnectRequest{ProtocolVersion: 0, LastZxidSeen: 9, TimeOut: 30000, SessionID: 77, Passwd: make([]byte, 16), ReadOnly: true},
		&ConnectRequest{TimeOut: 4000, Passwd: []byte{}, OmitReadOnly: true},
		&ConnectResponse{TimeOut: 30000, SessionID: 77, Passwd: bytes.Repeat([]byte{7}, 16)},
		&ConnectResponse{TimeOut: 30000, SessionID: 77, Passwd: nil, OmitReadOnly: true},
		&RequestHeader{Xid: 3, Type: OpGetData},
		&ReplyHeader{Xid: 3, Zxid: 1 << 40, Err: ErrNoNode},
		&MultiHeader{Type: OpCreate, Done: false, Err: -1},
	}
}

// fresh returns a new zero value of r's dynamic (pointer) type.
func fresh[T any](r T) T {
	return reflect.New(reflect.TypeOf(r).Elem()).Interface().(T)
}

// checkPrefixes asserts that every strict prefix of a record encoding fails
// to decode.
func checkPrefixes(t *testing.T, r Record, b []byte) {
	t.Helper()
	for i := range len(b) {
		if _, err := Unmarshal(b[:i], fresh(r)); err == nil {
			t.Errorf("%T: prefix of %d/%d bytes decoded without error", r, i, len(b))
			return
		} else if !errors.Is(err, ErrTruncated) {
			t.Errorf("%T: prefix %d: %v, want ErrTruncated", r, i, err)
			return
		}
	}
}

func TestRoundTripRequests(t *testing.T) {
	for i, req := range allRequests() {
		frame, err := MarshalRequest(int32(i+1), req)
		if err != nil {
			t.Fatalf("%T: marshal: %v", req, err)
		}
		fr := NewFrameReader(bytes.NewReader(frame))
		payload, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("%T: read frame: %v", req, err)
		}
		hdr, got, err := ParseRequest(payload)
		if err != nil {
			t.Fatalf("%T: parse: %v", req, err)
		}
		if hdr.Xid != int32(i+1) || hdr.Type != req.Op() {
			t.Errorf("%T: header %+v", req, hdr)
		}
		if !reflect.DeepEqual(got, req) {
			t.Errorf("%T: round trip\n got %#v\nwant %#v", req, got, req)
		}
		again, err := MarshalRequest(hdr.Xid, got)
		if err != nil || !bytes.Equal(again, frame) {
			t.Errorf("%T: re-encoding differs (%v)", req, err)
		}
		checkPrefixes(t, req, payload[8:])
	}
}

func TestRoundTripResponses(t *testing.T) {
	for _, resp := range allResponses() {
		b := Marshal(resp)
		got := fresh(resp)
		n, err := Unmarshal(b, got)
		if err != nil || n != len(b) {
			t.Fatalf("%T: unmarshal: n=%d err=%v", resp, n, err)
		}
		if !reflect.DeepEqual(got, resp) {
			t.Errorf("%T: round trip\n got %#v\nwant %#v", resp, got, resp)
		}
		if !bytes.Equal(Marshal(got), b) {
			t.Errorf("%T: re-encoding differs", resp)
		}
		checkPrefixes(t, resp, b)

		// And through a reply frame, for the ops that select this type.
		op := resp.Op()
		switch resp.(type) {
		case *CheckVersionResponse, *ErrorResult:
			continue // no standalone reply selects them by their own op
		}
		frame, err := MarshalReply(ReplyHeader{Xid: 9, Zxid: 10}, resp)
		if err != nil {
			t.Fatalf("%T: marshal reply: %v", resp, err)
		}
		hdr, body, err := DecodeReplyHeader(frame[4:])
		if err != nil || hdr != (ReplyHeader{Xid: 9, Zxid: 10}) {
			t.Fatalf("%T: reply header %+v %v", resp, hdr, err)
		}
		dec, err := DecodeResponse(op, body)
		if err != nil || !reflect.DeepEqual(dec, resp) {
			t.Errorf("%T: DecodeResponse(%s) = %#v, %v", resp, op, dec, err)
		}
	}
}

func TestRoundTripOtherRecords(t *testing.T) {
	for _, r := range otherRecords() {
		b := Marshal(r)
		got := fresh(r)
		if _, err := Unmarshal(b, got); err != nil {
			t.Fatalf("%T: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%T: round trip\n got %#v\nwant %#v", r, got, r)
		}
		if !bytes.Equal(Marshal(got), b) {
			t.Errorf("%T: re-encoding differs", r)
		}
		switch v := r.(type) {
		case *ConnectRequest, *ConnectResponse:
			// The readOnly byte is optional: every prefix up to the
			// passwd must fail.
			cut := len(b) - 1
			if reflect.ValueOf(v).Elem().FieldByName("OmitReadOnly").Bool() {
				cut = len(b)
			}
			for i := range cut {
				if _, err := Unmarshal(b[:i], fresh(r)); err == nil {
					t.Errorf("%T: prefix %d decoded", r, i)
				}
			}
		default:
			checkPrefixes(t, r, b)
		}
	}
}

func TestDecodeResponseDispatch(t *testing.T) {
	cases := map[OpCode]Response{
		OpCreate: &CreateResponse{}, OpCreate2: &Create2Response{}, OpCreateContainer: &Create2Response{},
		OpCreateTTL: &Create2Response{}, OpDelete: &DeleteResponse{}, OpExists: &ExistsResponse{},
		OpGetData: &GetDataResponse{}, OpReconfig: &GetDataResponse{}, OpSetData: &SetDataResponse{},
		OpCheck: &SetDataResponse{}, OpGetACL: &GetACLResponse{}, OpSetACL: &SetACLResponse{},
		OpGetChildren: &GetChildrenResponse{}, OpGetChildren2: &GetChildren2Response{},
		OpSync: &SyncResponse{}, OpMulti: &MultiResponse{}, OpMultiRead: &MultiResponse{},
		OpSASL: &SetSASLResponse{}, OpGetEphemerals: &GetEphemeralsResponse{},
		OpGetAllChildrenNumber: &GetAllChildrenNumberResponse{}, OpWhoAmI: &WhoAmIResponse{},
		OpAddWatch: &ErrorResult{}, OpNotification: &WatcherEvent{},
	}
	for op, want := range cases {
		b := Marshal(want)
		got, err := DecodeResponse(op, b)
		if err != nil || reflect.TypeOf(got) != reflect.TypeOf(want) {
			t.Errorf("DecodeResponse(%s) = %T, %v; want %T", op, got, err, want)
		}
	}
	for _, op := range []OpCode{OpPing, OpAuth, OpSetWatches, OpSetWatches2, OpCheckWatches, OpRemoveWatches, OpCloseSession} {
		if got, err := DecodeResponse(op, nil); got != nil || err != nil {
			t.Errorf("DecodeResponse(%s) = %v, %v; want nil, nil", op, got, err)
		}
	}
	for _, op := range []OpCode{OpCreateSession, OpDeleteContainer, OpError, 10, 99, 1000} {
		if _, err := DecodeResponse(op, nil); !errors.Is(err, ErrUnknownOp) {
			t.Errorf("DecodeResponse(%s) err = %v", op, err)
		}
	}
}

// ---- byte-exact vectors, written by hand from the jute layout ----

const connectReqHex = `0000002d | 00000000 | 0102030405060708 | 00007530 | 1122334455667788 |
	00000010 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf | 01`

func TestVectorConnectRequest(t *testing.T) {
	passwd := hx(t, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")
	want := ConnectRequest{ProtocolVersion: 0, LastZxidSeen: 0x0102030405060708, TimeOut: 30000,
		SessionID: 0x1122334455667788, Passwd: passwd, ReadOnly: true}
	wire := hx(t, connectReqHex)
	got, err := AppendFrame(nil, &want)
	if err != nil || !bytes.Equal(got, wire) {
		t.Fatalf("encode:\n got %x\nwant %x (%v)", got, wire, err)
	}
	dec, err := ParseConnectRequest(wire[4:])
	if err != nil || !reflect.DeepEqual(*dec, want) {
		t.Fatalf("decode: %#v %v", dec, err)
	}

	// An old client leaves out the readOnly byte.
	old := hx(t, `0000002c | 00000000 | 0102030405060708 | 00007530 | 1122334455667788 |
		00000010 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf`)
	dec, err = ParseConnectRequest(old[4:])
	if err != nil || !dec.OmitReadOnly || dec.ReadOnly {
		t.Fatalf("old client: %#v %v", dec, err)
	}
	want.ReadOnly, want.OmitReadOnly = false, true
	if !reflect.DeepEqual(*dec, want) {
		t.Fatalf("old client: %#v", dec)
	}
	if got, _ := AppendFrame(nil, dec); !bytes.Equal(got, old) {
		t.Fatalf("old client re-encode: %x", got)
	}

	// The response, with and without the readOnly byte.
	resp := ConnectResponse{ProtocolVersion: 0, TimeOut: 4000, SessionID: 0x1122334455667788, Passwd: passwd}
	wantResp := hx(t, `00000025 | 00000000 | 00000fa0 | 1122334455667788 |
		00000010 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf | 00`)
	if got, err := MarshalConnectResponse(&resp); err != nil || !bytes.Equal(got, wantResp) {
		t.Fatalf("response:\n got %x\nwant %x", got, wantResp)
	}
	resp.OmitReadOnly = true
	wantOld := hx(t, `00000024 | 00000000 | 00000fa0 | 1122334455667788 |
		00000010 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf`)
	if got, err := MarshalConnectResponse(&resp); err != nil || !bytes.Equal(got, wantOld) {
		t.Fatalf("old response:\n got %x\nwant %x", got, wantOld)
	}
}

const createReqHex = `00000033 | 00000001 00000001 |
	00000002 2f61 | 00000002 6869 | 00000001 | 0000001f 00000005 776f726c64 00000006 616e796f6e65 |
	00000001`

func TestVectorCreateRequest(t *testing.T) {
	req := &CreateRequest{Path: "/a", Data: []byte("hi"), ACL: []ACL{WorldAnyone(31)}, Flags: ModeEphemeral}
	wire := hx(t, createReqHex)
	got, err := MarshalRequest(1, req)
	if err != nil || !bytes.Equal(got, wire) {
		t.Fatalf("encode:\n got %x\nwant %x (%v)", got, wire, err)
	}
	hdr, dec, err := ParseRequest(wire[4:])
	if err != nil || hdr != (RequestHeader{Xid: 1, Type: OpCreate}) || !reflect.DeepEqual(dec, req) {
		t.Fatalf("decode: %+v %#v %v", hdr, dec, err)
	}
}

const getChildren2RespHex = `00000063 | 00000005 0000000000000010 00000000 |
	00000002 00000001 61 00000002 6263 | ` + statHex

func TestVectorGetChildren2Response(t *testing.T) {
	resp := &GetChildren2Response{Children: []string{"a", "bc"}, Stat: testStat()}
	hdr := ReplyHeader{Xid: 5, Zxid: 0x10, Err: ErrOK}
	wire := hx(t, getChildren2RespHex)
	got, err := MarshalReply(hdr, resp)
	if err != nil || !bytes.Equal(got, wire) {
		t.Fatalf("encode:\n got %x\nwant %x (%v)", got, wire, err)
	}
	h, body, err := DecodeReplyHeader(wire[4:])
	if err != nil || h != hdr {
		t.Fatalf("header: %+v %v", h, err)
	}
	dec, err := DecodeResponse(OpGetChildren2, body)
	if err != nil || !reflect.DeepEqual(dec, resp) {
		t.Fatalf("decode: %#v %v", dec, err)
	}
}

const multiReqHex = `0000006f | 00000007 0000000e |
	00000001 00 ffffffff | 00000002 2f6d 00000001 78 00000001 0000001f 00000005 776f726c64 00000006 616e796f6e65 00000000 |
	00000005 00 ffffffff | 00000002 2f6d 00000001 79 00000000 |
	0000000d 00 ffffffff | 00000002 2f6d 00000001 |
	ffffffff 01 ffffffff`

// A failed multi: the create would have succeeded (ok), the setData had a
// bad version, the check was not run (runtime inconsistency).
const multiRespErrHex = `00000040 | 00000007 0000000000000020 00000000 |
	ffffffff 00 00000000 | 00000000 |
	ffffffff 00 ffffff99 | ffffff99 |
	ffffffff 00 fffffffe | fffffffe |
	ffffffff 01 ffffffff`

const multiRespOKHex = `0000007e | 00000007 0000000000000021 00000000 |
	00000001 00 00000000 | 00000002 2f6d |
	00000005 00 00000000 | ` + statHex + ` |
	0000000d 00 00000000 |
	ffffffff 01 ffffffff`

func multiVectorRequest() *MultiRequest {
	return &MultiRequest{Ops: []Request{
		&CreateRequest{Path: "/m", Data: []byte("x"), ACL: []ACL{WorldAnyone(31)}, Flags: ModePersistent},
		&SetDataRequest{Path: "/m", Data: []byte("y"), Version: 0},
		&CheckVersionRequest{Path: "/m", Version: 1},
	}}
}

func TestVectorMulti(t *testing.T) {
	req := multiVectorRequest()
	wire := hx(t, multiReqHex)
	got, err := MarshalRequest(7, req)
	if err != nil || !bytes.Equal(got, wire) {
		t.Fatalf("request:\n got %x\nwant %x (%v)", got, wire, err)
	}
	hdr, dec, err := ParseRequest(wire[4:])
	if err != nil || hdr != (RequestHeader{Xid: 7, Type: OpMulti}) || !reflect.DeepEqual(dec, req) {
		t.Fatalf("request decode: %+v %#v %v", hdr, dec, err)
	}

	for _, tc := range []struct {
		name string
		zxid int64
		hex  string
		resp *MultiResponse
	}{
		{"one error", 0x20, multiRespErrHex, &MultiResponse{Results: []Response{
			&ErrorResult{Err: ErrOK}, &ErrorResult{Err: ErrBadVersion}, &ErrorResult{Err: ErrRuntimeInconsistency}}}},
		{"success", 0x21, multiRespOKHex, &MultiResponse{Results: []Response{
			&CreateResponse{Path: "/m"}, &SetDataResponse{Stat: testStat()}, &CheckVersionResponse{}}}},
	} {
		wire := hx(t, tc.hex)
		hdr := ReplyHeader{Xid: 7, Zxid: tc.zxid}
		got, err := MarshalReply(hdr, tc.resp)
		if err != nil || !bytes.Equal(got, wire) {
			t.Fatalf("%s:\n got %x\nwant %x (%v)", tc.name, got, wire, err)
		}
		h, body, err := DecodeReplyHeader(wire[4:])
		if err != nil || h != hdr {
			t.Fatalf("%s header: %+v %v", tc.name, h, err)
		}
		dec, err := DecodeResponse(OpMulti, body)
		if err != nil || !reflect.DeepEqual(dec, tc.resp) {
			t.Fatalf("%s decode: %#v %v", tc.name, dec, err)
		}
	}
}

func TestNotification(t *testing.T) {
	ev := &WatcherEvent{Type: EventNodeDeleted, State: StateSyncConnected, Path: "/a"}
	got, err := MarshalNotification(ev)
	want := hx(t, `0000001e | ffffffff ffffffffffffffff 00000000 | 00000002 00000003 00000002 2f61`)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %x want %x (%v)", got, want, err)
	}
}

// ---- malformed input ----

func TestMalformedLengths(t *testing.T) {
	cases := []struct {
		name string
		op   OpCode
		body string
		want error
	}{
		{"negative string", OpGetData, "fffffffe 00", ErrBadLength},
		{"min int string", OpGetData, "80000000 00", ErrBadLength},
		{"huge string", OpGetData, "7fffffff 00", ErrTooLarge},
		{"string past max", OpGetData, "00100000 00", ErrTooLarge},
		{"string past end", OpGetData, "000fffff 2f61", ErrTruncated},
		{"negative buffer", OpSetData, "00000001 2f fffffffb 00000000", ErrBadLength},
		{"buffer past end", OpSetData, "00000001 2f 00000010 0102", ErrTruncated},
		{"vector 2^31-1 strings", OpSetWatches, "0000000000000000 7fffffff", ErrTooLarge},
		{"vector 2^31 strings", OpSetWatches, "0000000000000000 80000000", ErrBadLength},
		{"vector max strings", OpSetWatches, "0000000000000000 000fffff 00000000", ErrTruncated},
		{"vector of acls past end", OpSetACL, "00000001 2f 00000100 00000001 00000000 00000000", ErrTruncated},
		{"multi without end", OpMulti, "00000002 00 ffffffff 00000002 2f61 00000000", ErrTruncated},
		{"multi read op", OpMulti, "00000004 00 ffffffff 00000002 2f61 00", ErrUnknownOp},
		{"multiRead write op", OpMultiRead, "00000002 00 ffffffff 00000002 2f61 00000000", ErrUnknownOp},
		{"nested multi", OpMulti, "0000000e 00 ffffffff ffffffff 01 ffffffff", ErrUnknownOp},
		{"unknown op", 10, "", ErrUnknownOp},
		{"createSession op", OpCreateSession, "", ErrUnknownOp},
		{"deleteContainer op", OpDeleteContainer, "00000001 2f", ErrUnknownOp},
	}
	for _, tc := range cases {
		_, err := DecodeRequest(tc.op, hx(t, tc.body))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, _, err := ParseRequest(hx(t, "000000")); !errors.Is(err, ErrTruncated) {
		t.Errorf("short header: %v", err)
	}
	if _, err := ParseConnectRequest(hx(t, "00000000 0000000000000000 00007530 0000000000000000 ffffffee")); !errors.Is(err, ErrBadLength) {
		t.Errorf("connect negative passwd: %v", err)
	}
	resp := hx(t, "00000001 00 00000000 00000002 2f")
	if _, err := DecodeResponse(OpMulti, resp); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated multi response: %v", err)
	}
	if _, err := DecodeResponse(OpMulti, hx(t, "00000003 00 00000000")); !errors.Is(err, ErrUnknownOp) {
		t.Errorf("exists in multi response: %v", err)
	}
}

func TestTrailingBytesIgnored(t *testing.T) {
	body := append(Marshal(&GetDataRequest{Path: "/a", Watch: true}), 1, 2, 3)
	req, err := DecodeRequest(OpGetData, body)
	if err != nil || !reflect.DeepEqual(req, &GetDataRequest{Path: "/a", Watch: true}) {
		t.Fatalf("%#v %v", req, err)
	}
	// Booleans: any non-zero byte is true, as in Java.
	req, err = DecodeRequest(OpExists, hx(t, "00000001 2f 02"))
	if err != nil || !req.(*ExistsRequest).Watch {
		t.Fatalf("bool: %#v %v", req, err)
	}
	// Null strings decode as "".
	req, err = DecodeRequest(OpSync, hx(t, "ffffffff"))
	if err != nil || req.(*SyncRequest).Path != "" {
		t.Fatalf("null string: %#v %v", req, err)
	}
}

func TestMarshalErrors(t *testing.T) {
	big := &SetDataRequest{Path: "/a", Data: make([]byte, MaxPacketSize)}
	if _, err := MarshalRequest(1, big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize request: %v", err)
	}
	// The largest payload that fits.
	fit := &SetDataRequest{Path: "/a", Data: make([]byte, MaxPacketSize-8-6-4-4)}
	frame, err := MarshalRequest(1, fit)
	if err != nil || len(frame) != MaxPacketSize+4 {
		t.Fatalf("max request: len %d, %v", len(frame), err)
	}
	got, err := NewFrameReader(bytes.NewReader(frame)).ReadFrame()
	if err != nil || len(got) != MaxPacketSize {
		t.Fatalf("read max frame: %d %v", len(got), err)
	}
	if _, err := MarshalRequest(1, &MultiRequest{Ops: []Request{&GetDataRequest{}}}); !errors.Is(err, ErrUnknownOp) {
		t.Errorf("bad multi: %v", err)
	}
	if _, err := MarshalRequest(1, &MultiReadRequest{Ops: []Request{&DeleteRequest{}}}); !errors.Is(err, ErrUnknownOp) {
		t.Errorf("bad multiRead: %v", err)
	}
	if _, err := MarshalRequest(1, &MultiRequest{Ops: []Request{nil}}); !errors.Is(err, ErrUnknownOp) {
		t.Errorf("nil multi op: %v", err)
	}
	if _, err := MarshalRequest(1, nil); !errors.Is(err, ErrUnknownOp) {
		t.Errorf("nil request: %v", err)
	}
	if _, err := MarshalReply(ReplyHeader{}, &MultiResponse{Results: []Response{&ExistsResponse{}}}); !errors.Is(err, ErrUnknownOp) {
		t.Errorf("bad multi response: %v", err)
	}
	dst := []byte("keep")
	out, err := AppendFrame(dst, &SetDataRequest{Data: make([]byte, MaxPacketSize)})
	if !errors.Is(err, ErrTooLarge) || string(out) != "keep" {
		t.Errorf("AppendFrame on error: %q %v", out, err)
	}
}

func TestFrameReader(t *testing.T) {
	var stream []byte
	stream = append(stream, hx(t, connectReqHex)...)
	stream = append(stream, hx(t, createReqHex)...)
	stream = append(stream, hx(t, "00000000")...) // empty frame
	stream = append(stream, hx(t, multiReqHex)...)
	fr := NewFrameReader(bytes.NewReader(stream))
	var lens []int
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		lens = append(lens, len(f))
	}
	if !reflect.DeepEqual(lens, []int{0x2d, 0x33, 0, 0x6f}) {
		t.Fatalf("frame lengths %v", lens)
	}

	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"above max", "00100000 00", ErrTooLarge},
		{"int max", "7fffffff", ErrTooLarge},
		{"negative", "ffffffff", ErrBadLength},
		{"truncated length", "0000", io.ErrUnexpectedEOF},
		{"truncated payload", "00000010 0102", io.ErrUnexpectedEOF},
		{"truncated large payload", "000fffff" + strings.Repeat("00", 5000), io.ErrUnexpectedEOF},
	} {
		_, err := NewFrameReader(bytes.NewReader(hx(t, tc.in))).ReadFrame()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// Four-letter words arrive in place of a frame length.
	fr = NewFrameReader(strings.NewReader("ruok"))
	p, err := fr.Peek(4)
	if w, ok := FourLetterWord(p); err != nil || !ok || w != "ruok" {
		t.Errorf("4lw: %q %v %v", w, ok, err)
	}
	if _, ok := FourLetterWord(hx(t, connectReqHex)); ok {
		t.Error("connect request taken for a 4lw")
	}
	if _, err := fr.ReadFrame(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ruok as frame: %v", err)
	}
}

// allocBytes returns the average heap bytes allocated by f.
func allocBytes(f func()) uint64 {
	const runs = 50
	f()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

func TestMalformedAllocationBounded(t *testing.T) {
	cases := []struct {
		name  string
		op    OpCode
		body  []byte
		limit uint64
	}{
		{"strings 2^31-1", OpSetWatches, hx(t, "0000000000000000 7fffffff 00000000"), 1024},
		{"strings max count", OpSetWatches, hx(t, "0000000000000000 000fffff 00000000"), 1024},
		{"acls max count", OpSetACL, hx(t, "00000001 2f 000fffff 00000000"), 1024},
		{"buffer max", OpSetData, hx(t, "00000001 2f 000fffff 00"), 1024},
		{"string max", OpSync, hx(t, "000fffff 2f"), 1024},
	}
	for _, tc := range cases {
		n := allocBytes(func() { _, _ = DecodeRequest(tc.op, tc.body) })
		if n > tc.limit {
			t.Errorf("%s: %d bytes allocated for %d input bytes", tc.name, n, len(tc.body))
		}
	}
	resp := hx(t, "000fffff 00000000")
	if n := allocBytes(func() { _, _ = DecodeResponse(OpWhoAmI, resp) }); n > 1024 {
		t.Errorf("whoAmI response: %d bytes", n)
	}
	if n := allocBytes(func() { _, _ = DecodeResponse(OpGetChildren, resp) }); n > 1024 {
		t.Errorf("children response: %d bytes", n)
	}

	// A frame that announces 1 MiB and carries 10 bytes.
	short := hx(t, "000fffff 00000001 00000004 0000")
	n := allocBytes(func() { _, _ = NewFrameReader(bytes.NewReader(short)).ReadFrame() })
	if n > 16<<10 {
		t.Errorf("short frame: %d bytes allocated", n)
	}
}

// ---- names ----

func TestNames(t *testing.T) {
	if ErrNoNode.Name() != "NONODE" || ErrNoNode.Message() != "NoNode" || ErrNotEmpty.Message() != "Directory not empty" {
		t.Error("NoNode/NotEmpty names")
	}
	if ErrUnknownSession.Message() != "Unknown error UNKNOWNSESSION" || ErrCode(-999).Name() != "" {
		t.Error("unknown messages")
	}
	var err error = ErrBadVersion
	if err.Error() != "zk: BADVERSION (-103)" {
		t.Errorf("Error() = %q", err.Error())
	}
	for c := ErrCode(-130); c <= 0; c++ {
		if c.Name() != "" && c.String() != c.Name() {
			t.Errorf("%d: %q", c, c.String())
		}
	}
	if OpGetChildren2.String() != "getChildren2" || OpCode(10).String() != "op(10)" {
		t.Error("op names")
	}
	for op := OpCode(-12); op <= 110; op++ {
		if newRequest(op) != nil && strings.HasPrefix(op.String(), "op(") {
			t.Errorf("op %d has a record but no name", op)
		}
	}
	if EventNodeChildrenChanged.String() != "NodeChildrenChanged" || StateExpired.String() != "Expired" {
		t.Error("event names")
	}
	if !ModeEphemeralSequential.Ephemeral() || !ModeEphemeralSequential.Sequential() ||
		ModeContainer.Ephemeral() || !ModePersistentSequentialWithTTL.TTL() || CreateMode(7).Valid() {
		t.Error("create modes")
	}
}

// ---- fuzzing ----

func FuzzDecodeRequest(f *testing.F) {
	for _, h := range []string{connectReqHex, createReqHex, multiReqHex, getChildren2RespHex,
		multiRespErrHex, multiRespOKHex} {
		f.Add(hx(f, h))
	}
	// A whole session: connect, then every request.
	session := hx(f, connectReqHex)
	for i, req := range allRequests() {
		frame, err := MarshalRequest(int32(i), req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
		session = append(session, frame...)
	}
	f.Add(session)
	f.Add([]byte("ruok"))

	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bytes.NewReader(data))
		for range 64 {
			frame, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if len(frame) > MaxPacketSize || len(frame) > len(data) {
				t.Fatalf("frame of %d bytes from %d input bytes", len(frame), len(data))
			}
			fuzzConnect(t, frame)
			hdr, req, err := ParseRequest(frame)
			if err == nil {
				out, err := MarshalRequest(hdr.Xid, req)
				if err != nil {
					t.Fatalf("re-encode %T: %v", req, err)
				}
				hdr2, req2, err := ParseRequest(out[4:])
				if err != nil || hdr2 != hdr || !reflect.DeepEqual(req, req2) {
					t.Fatalf("%s: re-decode differs: %#v vs %#v (%v)", hdr.Type, req, req2, err)
				}
				if again, _ := MarshalRequest(hdr.Xid, req2); !bytes.Equal(again, out) {
					t.Fatalf("%s: encoding not canonical", hdr.Type)
				}
			}
			if len(frame) >= 8 {
				// The same bytes as a reply body for the header's op.
				fuzzResponse(t, hdr.Type, frame[8:])
			}
		}
	})
}

func fuzzConnect(t *testing.T, frame []byte) {
	cr, err := ParseConnectRequest(frame)
	if err != nil {
		return
	}
	out, err := AppendFrame(nil, cr)
	if err != nil {
		t.Fatalf("connect re-encode: %v", err)
	}
	cr2, err := ParseConnectRequest(out[4:])
	if err != nil || !reflect.DeepEqual(cr, cr2) {
		t.Fatalf("connect re-decode: %#v vs %#v (%v)", cr, cr2, err)
	}
}

func fuzzResponse(t *testing.T, op OpCode, body []byte) {
	resp, err := DecodeResponse(op, body)
	if err != nil || resp == nil {
		return
	}
	out, err := MarshalReply(ReplyHeader{}, resp)
	if err != nil {
		t.Fatalf("%s response re-encode: %v", op, err)
	}
	resp2, err := DecodeResponse(op, out[4+16:])
	if err != nil || !reflect.DeepEqual(resp, resp2) {
		t.Fatalf("%s response re-decode: %#v vs %#v (%v)", op, resp, resp2, err)
	}
}
