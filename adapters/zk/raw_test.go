package zk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/internal/textdiff"
)

// rawSession is a ZooKeeper session spoken in jute directly, for requests
// go-zookeeper checks or shapes before it sends them.
type rawSession struct {
	t   *testing.T
	nc  net.Conn
	fr  *FrameReader
	xid int32
}

func openRaw(t *testing.T, addr string) *rawSession {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	s := &rawSession{t: t, nc: nc, fr: NewFrameReader(nc)}
	s.write(AppendFrame(nil, &ConnectRequest{TimeOut: 10000, Passwd: make([]byte, 16)}))
	if _, err := s.fr.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *rawSession) write(frame []byte, err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.nc.Write(frame); err != nil {
		s.t.Fatal(err)
	}
}

// do sends req and returns its reply's error code and body, and the watch
// events that came before the reply.
func (s *rawSession) do(req Request) (ErrCode, Response, []string) {
	s.t.Helper()
	s.xid++
	xid := s.xid
	switch req.(type) { // the xids clients give these
	case *PingRequest:
		xid = -2
	case *AuthPacket:
		xid = -4
	}
	s.write(MarshalRequest(xid, req))
	var events []string
	for {
		frame, err := s.fr.ReadFrame()
		if err != nil {
			s.t.Fatalf("%T: %v", req, err)
		}
		hdr, body, err := DecodeReplyHeader(frame)
		if err != nil {
			s.t.Fatal(err)
		}
		if hdr.Xid == XidWatchEvent {
			ev, err := DecodeResponse(OpNotification, body)
			if err != nil {
				s.t.Fatal(err)
			}
			w := ev.(*WatcherEvent)
			events = append(events, fmt.Sprintf("%d %s", w.Type, w.Path))
			continue
		}
		if hdr.Xid != xid {
			s.t.Fatalf("reply to xid %d, want %d", hdr.Xid, xid)
		}
		if hdr.Err != ErrOK {
			return hdr.Err, nil, events
		}
		op := req.Op()
		resp, err := DecodeResponse(op, body)
		if err != nil {
			s.t.Fatal(err)
		}
		return hdr.Err, resp, events
	}
}

// rawScript runs requests that go-zookeeper would refuse or cannot shape
// and returns what the server answered, one line each.
func rawScript(t *testing.T, addr string) []string {
	a, b := openRaw(t, addr), openRaw(t, addr)
	world := []ACL{{Perms: PermAll, ID: ID{Scheme: "world", ID: "anyone"}}}
	var out []string
	log := func(what string, code ErrCode, resp Response, events []string) {
		line := fmt.Sprintf("%s: %d", what, code)
		switch r := resp.(type) {
		case *GetDataResponse:
			line += fmt.Sprintf(" data %q", r.Data)
		case *GetChildrenResponse:
			sort.Strings(r.Children)
			line += fmt.Sprintf(" children %v", r.Children)
		case *GetACLResponse:
			line += fmt.Sprintf(" acl %v", r.ACL)
		}
		if len(events) > 0 {
			line += " events " + strings.Join(events, ", ")
		}
		out = append(out, line)
	}
	code, resp, ev := a.do(&CreateRequest{Path: "/raw", Data: []byte("r"), ACL: world})
	log("create /raw", code, resp, ev)

	// Reads do not check paths: a bad one names no node, and "" is "/".
	for _, p := range []string{"/raw/", "raw", "/raw//x", "/raw/./x", "/nope/"} {
		code, resp, ev = a.do(&GetDataRequest{Path: p})
		log("get "+p, code, resp, ev)
		code, resp, ev = a.do(&ExistsRequest{Path: p})
		log("exists "+p, code, resp, ev)
		code, resp, ev = a.do(&GetChildrenRequest{Path: p})
		log("ls "+p, code, resp, ev)
		code, resp, ev = a.do(&GetACLRequest{Path: p})
		log("getacl "+p, code, resp, ev)
	}
	code, resp, ev = a.do(&GetDataRequest{Path: ""})
	log(`get ""`, code, resp, ev)
	code, resp, ev = a.do(&GetACLRequest{Path: ""})
	log(`getacl ""`, code, resp, ev)
	// A delete's path needs a slash and no NUL, and not to be ZooKeeper's.
	for _, p := range []string{"/raw/", "/nope/", "/raw//x", "raw", "/", "/zookeeper", "/raw/\x00"} {
		code, resp, ev = a.do(&DeleteRequest{Path: p, Version: -1})
		log(fmt.Sprintf("delete %q", p), code, resp, ev)
	}

	// A digest identity without a colon is a user with no password; ip is
	// every connection's own.
	code, resp, ev = a.do(&AuthPacket{Scheme: "digest", Auth: []byte("justuser")})
	log("addauth digest justuser", code, resp, ev)
	code, resp, ev = a.do(&AuthPacket{Scheme: "ip", Auth: []byte("10.0.0.1")})
	log("addauth ip", code, resp, ev)
	code, resp, ev = a.do(&CreateRequest{Path: "/raw/mine", Data: []byte("m"), ACL: []ACL{{Perms: PermAll, ID: ID{Scheme: "auth"}}}})
	log("create with auth acl", code, resp, ev)
	code, resp, ev = a.do(&GetACLRequest{Path: "/raw/mine"})
	log("owner getacl", code, resp, ev)
	// Someone who may read but not administer sees the digest user, not
	// the digest.
	code, resp, ev = a.do(&SetACLRequest{Path: "/raw/mine", Version: -1, ACL: []ACL{
		{Perms: PermAll, ID: ID{Scheme: "auth"}}, {Perms: PermRead, ID: ID{Scheme: "world", ID: "anyone"}}}})
	log("setacl", code, resp, ev)
	code, resp, ev = b.do(&GetACLRequest{Path: "/raw/mine"})
	log("other getacl", code, resp, ev)

	// One delete fires one NodeDeleted on a connection with a data and a
	// child watch on the node.
	code, resp, ev = a.do(&CreateRequest{Path: "/raw/w", Data: []byte("w"), ACL: world})
	log("create /raw/w", code, resp, ev)
	code, resp, ev = a.do(&GetDataRequest{Path: "/raw/w", Watch: true})
	log("get /raw/w watch", code, resp, ev)
	code, resp, ev = a.do(&GetChildrenRequest{Path: "/raw/w", Watch: true})
	log("ls /raw/w watch", code, resp, ev)
	code, resp, ev = a.do(&DeleteRequest{Path: "/raw/w", Version: -1})
	log("delete /raw/w", code, resp, ev)
	code, resp, ev = a.do(&PingRequest{})
	log("ping", code, resp, ev)

	// Persistent and recursive watches (addWatch; Curator's CuratorCache):
	// they stay once they fire, and a connection hears each event once.
	for _, w := range []struct {
		path string
		mode int32
	}{{"/raw/p", AddWatchPersistent}, {"/raw/r", AddWatchPersistentRecursive}, {"/raw/p", 7}} {
		code, _, ev = b.do(&AddWatchRequest{Path: w.path, Mode: w.mode})
		log(fmt.Sprintf("addwatch %s mode %d", w.path, w.mode), code, nil, ev)
	}
	// (A one-shot watch beside a persistent one on the same node is left
	// out: ZooKeeper 3.8 drops the persistent one when the other fires,
	// ZOOKEEPER-4466; the adapter keeps it, as 3.9 does.)
	for _, req := range []Request{
		&CreateRequest{Path: "/raw/p", Data: []byte("1"), ACL: world},
		&SetDataRequest{Path: "/raw/p", Data: []byte("2"), Version: -1},
		&CreateRequest{Path: "/raw/p/c", Data: []byte("c"), ACL: world},
		&DeleteRequest{Path: "/raw/p/c", Version: -1},
		&DeleteRequest{Path: "/raw/p", Version: -1},
		&CreateRequest{Path: "/raw/r", Data: []byte("r"), ACL: world},
		&CreateRequest{Path: "/raw/r/a", Data: []byte("a"), ACL: world},
		&CreateRequest{Path: "/raw/r/a/b", Data: []byte("b"), ACL: world},
		&SetDataRequest{Path: "/raw/r/a/b", Data: []byte("b2"), Version: -1},
		&DeleteRequest{Path: "/raw/r/a/b", Version: -1},
		&CheckWatchesRequest{Path: "/raw/p", Type: WatcherPersistent},
		&CheckWatchesRequest{Path: "/raw/r", Type: WatcherPersistent},
		&CheckWatchesRequest{Path: "/raw/r", Type: WatcherPersistentRecursive},
		&RemoveWatchesRequest{Path: "/raw/r", Type: WatcherPersistentRecursive},
		&CreateRequest{Path: "/raw/r/a/d", Data: []byte("d"), ACL: world},
		&RemoveWatchesRequest{Path: "/raw/r", Type: WatcherAny},
		&RemoveWatchesRequest{Path: "/raw/r", Type: WatcherAny},
		&CreateRequest{Path: "/raw/r/a/e", Data: []byte("e"), ACL: world},
	} {
		// b hears what a's writes fire: its sync's reply comes after them.
		code, _, ev = a.do(req)
		log(fmt.Sprintf("%T %v", req, req), code, nil, ev)
		if _, ok := req.(*CheckWatchesRequest); ok {
			code, _, ev = b.do(req)
		} else if _, ok := req.(*RemoveWatchesRequest); ok {
			code, _, ev = b.do(req)
		} else {
			code, _, ev = b.do(&SyncRequest{Path: "/raw"})
		}
		log("  b", code, nil, ev)
	}
	return out
}

// TestResyncKeepsPersistentWatches: when the node's watch dispatcher falls
// behind the change feed and fires every watch from the state, persistent
// watches hear that their node may have changed, and stay.
func TestResyncKeepsPersistentWatches(t *testing.T) {
	nodes := startCluster(t)
	s := openRaw(t, nodes[0].zk.Addr())
	world := []ACL{{Perms: PermAll, ID: ID{Scheme: "world", ID: "anyone"}}}
	if code, _, _ := s.do(&CreateRequest{Path: "/kept", Data: []byte("k"), ACL: world}); code != ErrOK {
		t.Fatalf("create: %d", code)
	}
	for _, mode := range []int32{AddWatchPersistent, AddWatchPersistentRecursive} {
		if code, _, _ := s.do(&AddWatchRequest{Path: "/kept", Mode: mode}); code != ErrOK {
			t.Fatalf("addwatch %d: %d", mode, code)
		}
	}
	w := nodes[0].zk.w
	w.mu.Lock()
	w.resync()
	w.mu.Unlock()
	_, _, events := s.do(&SyncRequest{Path: "/kept"})
	if got := strings.Join(events, ", "); got != "3 /kept, 4 /kept, 3 /kept" {
		t.Fatalf("events after a resync: %q", got)
	}
	_, _, events = s.do(&SetDataRequest{Path: "/kept", Data: []byte("2"), Version: -1})
	if got := strings.Join(events, ", "); got != "3 /kept" {
		t.Fatalf("events of a write after the resync: %q (the watches should stay)", got)
	}
}

// TestRecursiveWatchesNeedRead: a recursive watch hears of a node under it
// only if its connection may read that node (ZooKeeper fixed this leak in
// 3.8.4, CVE-2024-23944; the Debian 3.8.0 the differential tests use
// still has it, so this runs against Armada alone).
func TestRecursiveWatchesNeedRead(t *testing.T) {
	nodes := startCluster(t)
	owner, other := openRaw(t, nodes[0].zk.Addr()), openRaw(t, nodes[0].zk.Addr())
	world := []ACL{{Perms: PermAll, ID: ID{Scheme: "world", ID: "anyone"}}}
	mine := []ACL{{Perms: PermAll, ID: ID{Scheme: "auth"}}}
	if code, _, _ := owner.do(&AuthPacket{Scheme: "digest", Auth: []byte("alice:secret")}); code != ErrOK {
		t.Fatalf("addauth: %d", code)
	}
	if code, _, _ := owner.do(&CreateRequest{Path: "/sec", ACL: world}); code != ErrOK {
		t.Fatalf("create /sec: %d", code)
	}
	if code, _, _ := other.do(&AddWatchRequest{Path: "/sec", Mode: AddWatchPersistentRecursive}); code != ErrOK {
		t.Fatalf("addwatch: %d", code)
	}
	for _, req := range []*CreateRequest{
		{Path: "/sec/private", Data: []byte("p"), ACL: mine},
		{Path: "/sec/public", Data: []byte("q"), ACL: world},
	} {
		if code, _, _ := owner.do(req); code != ErrOK {
			t.Fatalf("create %s: %d", req.Path, code)
		}
	}
	if code, _, _ := owner.do(&DeleteRequest{Path: "/sec/private", Version: -1}); code != ErrOK {
		t.Fatalf("delete: %d", code)
	}
	_, _, events := other.do(&SyncRequest{Path: "/sec"})
	if got := strings.Join(events, ", "); got != "1 /sec/public" {
		t.Fatalf("the recursive watch heard %q, want only the node it may read", got)
	}
}

// connectRaw opens a connection with a connect request for session id
// (0: a new one) and returns it and the server's answer.
func connectRaw(t *testing.T, addr string, id int64, passwd []byte) (*rawSession, *ConnectResponse) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	s := &rawSession{t: t, nc: nc, fr: NewFrameReader(nc)}
	s.write(AppendFrame(nil, &ConnectRequest{TimeOut: 10000, SessionID: id, Passwd: passwd}))
	frame, err := s.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	resp := &ConnectResponse{}
	d := NewDecoder(frame)
	resp.Decode(d)
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	return s, resp
}

// sessionTakeover: a second connect for a session, with its password or a
// wrong one, and whether the session's first connection was ended.
func sessionTakeover(t *testing.T, addr string) []string {
	var out []string
	for _, right := range []bool{true, false} {
		first, resp := connectRaw(t, addr, 0, make([]byte, 16))
		passwd := resp.Passwd
		if !right {
			passwd = make([]byte, 16)
		}
		_, again := connectRaw(t, addr, resp.SessionID, passwd)
		first.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := first.fr.ReadFrame()
		out = append(out, fmt.Sprintf("right password %v: resumed %v, first connection ended %v",
			right, again.SessionID == resp.SessionID, err != nil && !errors.Is(err, os.ErrDeadlineExceeded)))
	}
	return out
}

// malformedScript sends requests whose bodies do not decode, then an op
// the server does not know, and records each answer and whether the
// connection goes on.
func malformedScript(t *testing.T, addr string) []string {
	s := openRaw(t, addr)
	var out []string
	send := func(what string, op OpCode, body []byte) {
		s.xid++
		payload := append(Marshal(&RequestHeader{Xid: s.xid, Type: op}), body...)
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
		s.write(append(frame, payload...), nil)
		reply, err := s.fr.ReadFrame()
		if err != nil {
			out = append(out, fmt.Sprintf("%s: connection ended (%v)", what, errors.Is(err, io.EOF)))
			return
		}
		hdr, _, err := DecodeReplyHeader(reply)
		out = append(out, fmt.Sprintf("%s: xid ok %v, code %d %v", what, hdr.Xid == s.xid, hdr.Err, err))
	}
	send("getData, its path cut short", OpGetData, []byte{0, 0, 0, 10, '/', 'r'})
	send("setData, two bytes", OpSetData, []byte{0, 1})
	send("create, nothing", OpCreate, nil)
	code, _, _ := s.do(&PingRequest{})
	out = append(out, fmt.Sprintf("ping after them: %d", code))
	send("op 999", OpCode(999), nil)
	_, err := s.fr.ReadFrame()
	out = append(out, fmt.Sprintf("then: ended %v", err != nil))
	return out
}

// TestRawDifferential sends the same raw jute sessions to a real ZooKeeper
// 3.8 and to the adapter on a 3-node Armada (one of each for all of them):
// the answers, the watch events and which connections end must be the
// same. The sessions: rawScript's requests (bad paths, addauth, getACL,
// watches), sessionTakeover's second connects for a session (with its
// password or not), malformedScript's undecodable bodies and unknown op.
func TestRawDifferential(t *testing.T) {
	real := startZooKeeper(t)
	nodes := startCluster(t)
	for _, sc := range []struct {
		name   string
		script func(*testing.T, string) []string
	}{{"requests", rawScript}, {"session takeover", sessionTakeover}, {"malformed requests", malformedScript}} {
		want, got := sc.script(t, real), sc.script(t, nodes[0].zk.Addr())
		if diff := textdiff.Lines(want, got, "zookeeper", "armada", 0); diff != "" {
			t.Errorf("%s: Armada differs from ZooKeeper:\n%s", sc.name, diff)
			t.Logf("zookeeper:\n%s", strings.Join(want, "\n"))
		}
	}
}
