package fsm

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

var zkWorld = []ZKACL{{Perms: ZKPermAll, Scheme: "world", ID: "anyone"}}

func zkCreate(path, data string, flags int32) ZKOp {
	return ZKOp{Kind: ZKOpCreate, Path: path, Data: []byte(data), ACL: zkWorld, Flags: flags}
}

func zkMulti(session int64, ops ...ZKOp) *ZKMulti {
	return &ZKMulti{Session: session, Ops: ops, Now: 5000}
}

func zkNode(t *testing.T, h *harness, path string) (*ZKNode, bool) {
	t.Helper()
	var n *ZKNode
	var ok bool
	h.view(func(v *View) { n, ok = v.ZKNode(path) })
	return n, ok
}

func zkChildren(h *harness, path string) string {
	var kids []string
	h.view(func(v *View) { kids, _ = v.ZKChildren(path) })
	return strings.Join(kids, ",")
}

// session is the setup command that opens session 1 (its ID is the index
// of the entry, the first of a case).
var zkSession = &ZKCreateSession{TimeoutMs: 4000, Passwd: []byte("pw"), Now: 1000}

func zkCreateSessionCases() []cmdCase {
	return []cmdCase{
		{name: "a session's ID is its zxid", cmd: zkSession, check: func(t *testing.T, h *harness, r *Result) {
			var s *ZKSession
			h.view(func(v *View) { s, _ = v.ZKSession(r.ZK.Session) })
			if r.ZK.Session != int64(h.idx) || s == nil || s.TimeoutMs != 4000 || s.LastTouch != 1000 || string(s.Passwd) != "pw" {
				t.Fatalf("session %+v, result %+v", s, r.ZK)
			}
		}},
		{name: "no timeout", cmd: &ZKCreateSession{}, code: ErrInvalid, field: "timeout"},
	}
}

func zkTouchCases() []cmdCase {
	return []cmdCase{
		{name: "a touch moves the heartbeat; unknown sessions come back closed", setup: []Command{zkSession},
			cmd: &ZKTouch{IDs: []int64{1, 99}, Now: 3000}, check: func(t *testing.T, h *harness, r *Result) {
				var s *ZKSession
				h.view(func(v *View) { s, _ = v.ZKSession(1) })
				if s.LastTouch != 3000 || len(r.ZK.Closed) != 1 || r.ZK.Closed[0] != 99 {
					t.Fatalf("session %+v, result %+v", s, r.ZK)
				}
			}},
		{name: "no sessions", cmd: &ZKTouch{Now: 1}, code: ErrInvalid, field: "sessions"},
	}
}

func zkCloseCases() []cmdCase {
	return []cmdCase{
		{name: "expiry ends only sessions past their timeout, with their ephemeral nodes",
			setup: []Command{zkSession, zkSession, zkMulti(1, zkCreate("/e1", "x", 1), zkCreate("/p", "", 0)),
				zkMulti(2, zkCreate("/e2", "y", 1)), &ZKTouch{IDs: []int64{2}, Now: 4000}},
			cmd: &ZKClose{IDs: []int64{1, 2, 77}, Expire: true, Now: 5000},
			check: func(t *testing.T, h *harness, r *Result) {
				if len(r.ZK.Closed) != 1 || r.ZK.Closed[0] != 1 {
					t.Fatalf("closed %v", r.ZK.Closed)
				}
				if _, ok := zkNode(t, h, "/e1"); ok {
					t.Fatal("/e1 survived its session")
				}
				if _, ok := zkNode(t, h, "/e2"); !ok {
					t.Fatal("/e2 went with another session")
				}
				root, _ := zkNode(t, h, "/")
				if zkChildren(h, "/") != "armada,e2,p,zookeeper" || root.Stat.NumChildren != 4 || root.Stat.Cversion != 4 {
					t.Fatalf("root %+v children %s", root.Stat, zkChildren(h, "/"))
				}
				var eph []string
				h.view(func(v *View) { eph = v.ZKEphemerals(1, "") })
				if len(eph) != 0 {
					t.Fatalf("ephemerals of the closed session: %v", eph)
				}
			}},
		{name: "closeSession ends a live session", setup: []Command{zkSession},
			cmd: &ZKClose{IDs: []int64{1}, Now: 1001}, check: func(t *testing.T, h *harness, r *Result) {
				if len(r.ZK.Closed) != 1 {
					t.Fatalf("closed %v", r.ZK.Closed)
				}
			}},
		{name: "no sessions", cmd: &ZKClose{Now: 1}, code: ErrInvalid, field: "sessions"},
	}
}

func zkMultiCases() []cmdCase {
	return []cmdCase{
		{name: "create, sequential, set, check, setACL and delete in one entry", setup: []Command{zkSession},
			cmd: zkMulti(1,
				zkCreate("/a", "1", 0),
				zkCreate("/a/s-", "", 2),
				zkCreate("/a/s-", "", 3),
				ZKOp{Kind: ZKOpSet, Path: "/a", Data: []byte("2"), Version: 0},
				ZKOp{Kind: ZKOpCheck, Path: "/a", Version: 1},
				ZKOp{Kind: ZKOpDelete, Path: "/a/s-0000000000", Version: -1},
				ZKOp{Kind: ZKOpSetACL, Path: "/a", ACL: []ZKACL{{Perms: ZKPermRead, Scheme: "world", ID: "anyone"}}, Version: -1},
			),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.ZK.Err != ZKOK || r.ZK.Ops[1].Path != "/a/s-0000000000" || r.ZK.Ops[2].Path != "/a/s-0000000001" {
					t.Fatalf("result %+v", r.ZK)
				}
				a, _ := zkNode(t, h, "/a")
				st := a.Stat
				if string(a.Data) != "2" || st.Version != 1 || st.Aversion != 1 || st.Cversion != 3 || st.NumChildren != 1 ||
					st.Czxid != int64(h.idx) || st.Mtime != 5000 {
					t.Fatalf("/a %+v", a)
				}
				e, _ := zkNode(t, h, "/a/s-0000000001")
				if e.Stat.EphemeralOwner != 1 {
					t.Fatalf("ephemeral %+v", e.Stat)
				}
				h.requireChanges(h.idx,
					Change{Topic: "zk", Key: "/a", Op: "create"}, Change{Topic: "zk", Key: "/a/s-0000000000", Op: "create"},
					Change{Topic: "zk", Key: "/a/s-0000000001", Op: "create"}, Change{Topic: "zk", Key: "/a", Op: "set"},
					Change{Topic: "zk", Key: "/a/s-0000000000", Op: "delete"}, Change{Topic: "zk", Key: "/a", Op: "acl"})
			}},
		{name: "a failing op changes nothing and names itself", setup: []Command{zkMulti(0, zkCreate("/a", "1", 0))},
			cmd: zkMulti(0, zkCreate("/b", "", 0), ZKOp{Kind: ZKOpCheck, Path: "/a", Version: 7}, zkCreate("/c", "", 0)),
			check: func(t *testing.T, h *harness, r *Result) {
				if r.ZK.Err != ZKBadVersion || r.ZK.Ops[0].Err != ZKOK || r.ZK.Ops[1].Err != ZKBadVersion || r.ZK.Ops[2].Err != ZKRuntimeInconsist {
					t.Fatalf("result %+v", r.ZK)
				}
				if zkChildren(h, "/") != "a,armada,zookeeper" {
					t.Fatalf("children %s", zkChildren(h, "/"))
				}
			}},
		{name: "ZooKeeper's errors", setup: []Command{zkSession, zkMulti(1, zkCreate("/a", "1", 0), zkCreate("/a/b", "", 0), zkCreate("/e", "", 1))},
			cmd: zkMulti(1, zkCreate("/a", "", 0)), check: func(t *testing.T, h *harness, r *Result) {
				if r.ZK.Err != ZKNodeExists {
					t.Fatalf("create of an existing node: %+v", r.ZK)
				}
				for _, tc := range []struct {
					op   ZKOp
					auth []string
					want int32
				}{
					{zkCreate("/a", "", 0), nil, ZKNodeExists},
					{zkCreate("/x/y", "", 0), nil, ZKNoNode},
					{zkCreate("/e/c", "", 0), nil, ZKNoChildrenForEphem},
					{zkCreate("bad", "", 0), nil, ZKBadArguments},
					{zkCreate("/a/", "", 0), nil, ZKBadArguments},
					{zkCreate("/armada/x", "", 0), nil, ZKNoAuth},
					{ZKOp{Kind: ZKOpCreate, Path: "/n"}, nil, ZKInvalidACL},
					{ZKOp{Kind: ZKOpCreate, Path: "/n", ACL: []ZKACL{{Perms: 31, Scheme: "auth"}}}, nil, ZKInvalidACL},
					{ZKOp{Kind: ZKOpDelete, Path: "/a", Version: -1}, nil, ZKNotEmpty},
					{ZKOp{Kind: ZKOpDelete, Path: "/a/b", Version: 3}, nil, ZKBadVersion},
					{ZKOp{Kind: ZKOpDelete, Path: "/", Version: -1}, nil, ZKBadArguments},
					{ZKOp{Kind: ZKOpSet, Path: "/q", Version: -1}, nil, ZKNoNode},
				} {
					r := h.ok(&ZKMulti{Session: 1, Auth: tc.auth, Ops: []ZKOp{tc.op}})
					if r.ZK.Err != tc.want {
						t.Errorf("%+v: err %d, want %d", tc.op, r.ZK.Err, tc.want)
					}
				}
				r = h.ok(&ZKMulti{Session: 42, Ops: []ZKOp{zkCreate("/z", "", 0)}})
				if r.ZK.Err != ZKSessionExpired {
					t.Errorf("unknown session: %+v", r.ZK)
				}
			}},
		{name: "digest ACLs", setup: []Command{
			&ZKMulti{Auth: []string{"digest:bob:h"}, Ops: []ZKOp{{Kind: ZKOpCreate, Path: "/s", ACL: []ZKACL{{Perms: ZKPermAll, Scheme: "auth"}}}}}},
			cmd: &ZKMulti{Ops: []ZKOp{{Kind: ZKOpSet, Path: "/s", Version: -1}}}, check: func(t *testing.T, h *harness, r *Result) {
				if r.ZK.Err != ZKNoAuth {
					t.Fatalf("anonymous set: %+v", r.ZK)
				}
				s, _ := zkNode(t, h, "/s")
				if len(s.ACL) != 1 || s.ACL[0] != (ZKACL{Perms: ZKPermAll, Scheme: "digest", ID: "bob:h"}) {
					t.Fatalf("acl %+v", s.ACL)
				}
				if r := h.ok(&ZKMulti{Auth: []string{"digest:bob:h"}, Ops: []ZKOp{{Kind: ZKOpSet, Path: "/s", Version: -1}}}); r.ZK.Err != ZKOK {
					t.Fatalf("owner set: %+v", r.ZK)
				}
			}},
		{name: "empty data apart from null", setup: []Command{zkMulti(0, zkCreate("/old", "", 0))},
			cmd: &ZKMulti{EmptyData: true, Now: 5000, Ops: []ZKOp{
				{Kind: ZKOpCreate, Path: "/null", ACL: zkWorld},
				{Kind: ZKOpCreate, Path: "/empty", Data: []byte{}, ACL: zkWorld},
				{Kind: ZKOpCreate, Path: "/full", Data: []byte("x"), ACL: zkWorld},
				{Kind: ZKOpSet, Path: "/full", Data: []byte{}, Version: -1},
				{Kind: ZKOpCreate, Path: "/unset", Data: []byte("y"), ACL: zkWorld},
				{Kind: ZKOpSet, Path: "/unset", Version: -1},
			}},
			check: func(t *testing.T, h *harness, r *Result) {
				if r.ZK.Err != ZKOK {
					t.Fatalf("result %+v", r.ZK)
				}
				for path, empty := range map[string]bool{"/old": false, "/null": false, "/empty": true, "/full": true, "/unset": false} {
					n, _ := zkNode(t, h, path)
					if len(n.Data) != 0 || (n.Data != nil) != empty || n.Stat.DataLength != 0 {
						t.Errorf("%s: data %#v (length %d), want empty %v", path, n.Data, n.Stat.DataLength, empty)
					}
				}
				root, _ := zkNode(t, h, "/")
				if root.Data == nil || len(root.Data) != 0 {
					t.Errorf("/ has data %#v, want empty", root.Data)
				}
			}},
		{name: "no ops", cmd: &ZKMulti{}, code: ErrInvalid, field: "ops"},
		{name: "no ops, empty data", cmd: &ZKMulti{EmptyData: true}, code: ErrInvalid, field: "ops"},
		{name: "unknown op", cmd: zkMulti(0, ZKOp{Kind: 9, Path: "/a"}), code: ErrInvalid, field: "ops[0].kind"},
		{name: "oversized data", cmd: zkMulti(0, ZKOp{Kind: ZKOpSet, Path: "/a", Data: make([]byte, MaxZKData+1)}), code: ErrInvalid, field: "ops[0].data"},
	}
}

func TestApplyZKCreateSession(t *testing.T) { runCmdCases(t, zkCreateSessionCases()) }
func TestApplyZKTouch(t *testing.T)         { runCmdCases(t, zkTouchCases()) }
func TestApplyZKClose(t *testing.T)         { runCmdCases(t, zkCloseCases()) }
func TestApplyZKMulti(t *testing.T)         { runCmdCases(t, zkMultiCases()) }

// TestZKQueueView shows the queues under /armada, read-only.
func TestZKQueueView(t *testing.T) {
	h := newHarness(t)
	h.ok(&NodeUpsert{Node: testNode("w1", NodeAlive), Now: 1})
	h.ok(&QueuePush{Queue: SchedulerQueue, Data: []byte("ship-1"), Now: 7})
	push := h.idx
	h.ok(&QueuePush{Queue: "plain", Data: []byte("x")})
	if got := zkChildren(h, "/armada"); got != "scheduler,worker" {
		t.Fatalf("/armada: %s", got)
	}
	if got := zkChildren(h, "/armada/worker"); got != "w1" {
		t.Fatalf("/armada/worker: %s", got)
	}
	if got := zkChildren(h, "/armada/worker/w1/queue"); got != "" {
		t.Fatalf("worker queue: %q", got)
	}
	item := fmt.Sprintf("/armada/scheduler/queue/%010d", push)
	if got := zkChildren(h, SchedulerQueue); got != zkBase(item) {
		t.Fatalf("scheduler queue: %s", got)
	}
	n, ok := zkNode(t, h, item)
	if !ok || string(n.Data) != "ship-1" || n.Stat.Ctime != 7 || n.Stat.Czxid != int64(push) {
		t.Fatalf("item %+v", n)
	}
	if ZKAllowed(n.ACL, ZKPermWrite, nil) || !ZKAllowed(n.ACL, ZKPermRead, nil) {
		t.Fatalf("item acl %+v", n.ACL)
	}
	for _, op := range []ZKOp{{Kind: ZKOpSet, Path: item, Version: -1}, {Kind: ZKOpDelete, Path: item, Version: -1},
		zkCreate(SchedulerQueue+"/x", "", 0), zkCreate("/armada", "", 0)} {
		if r := h.ok(zkMulti(0, op)); r.ZK.Err != ZKNoAuth {
			t.Errorf("%+v: %+v", op, r.ZK)
		}
	}
	if _, ok := zkNode(t, h, "/armada/nothing"); ok {
		t.Fatal("/armada/nothing exists")
	}
}

// zkCommand makes a ZooKeeper command for the determinism test: sessions,
// heartbeats, expiry and multis over a few paths, mostly valid.
func (g *logGen) zkCommand() Command {
	var sessions []int64
	g.h.view(func(v *View) {
		for _, s := range v.ZKSessions() {
			sessions = append(sessions, s.ID)
		}
	})
	session := func() int64 {
		if len(sessions) == 0 || g.rng.IntN(6) == 0 {
			return int64(g.rng.IntN(int(g.h.idx) + 2))
		}
		return sessions[g.rng.IntN(len(sessions))]
	}
	switch g.rng.IntN(8) {
	case 0:
		return &ZKCreateSession{TimeoutMs: int64(g.rng.IntN(3000)), Passwd: []byte("p"), Now: g.now}
	case 1:
		return &ZKTouch{IDs: []int64{session()}, Now: g.now}
	case 2:
		return &ZKClose{IDs: []int64{session(), session()}, Expire: g.rng.IntN(3) > 0, Now: g.now}
	}
	paths := []string{"/a", "/a/b", "/a/b/c", "/d", "/a/s-"}
	c := &ZKMulti{Session: session(), Now: g.now, EmptyData: g.rng.IntN(2) == 0}
	if g.rng.IntN(4) == 0 {
		c.Auth = []string{"digest:u:h"}
	}
	for range 1 + g.rng.IntN(3) {
		op := ZKOp{Kind: uint8(1 + g.rng.IntN(5)), Path: g.pick(paths), Version: int32(g.rng.IntN(3) - 1),
			Data: []byte(fmt.Sprint(g.rng.IntN(9))), Flags: int32(g.rng.IntN(4))}
		switch g.rng.IntN(4) {
		case 0:
			op.Data = nil
		case 1:
			op.Data = []byte{}
		}
		if g.rng.IntN(3) > 0 {
			op.ACL = zkWorld
		} else {
			op.ACL = []ZKACL{{Perms: ZKPermRead | ZKPermAdmin, Scheme: g.pick([]string{"auth", "digest", "world"}), ID: "u:h"}}
		}
		c.Ops = append(c.Ops, op)
	}
	if g.rng.IntN(12) == 0 {
		c.Ops = nil
	}
	return c
}

// FuzzZKMulti decodes arbitrary ZKMulti entries and applies what decodes
// to a small tree: nothing may panic, a decoded entry round-trips, and the
// tree stays consistent.
func FuzzZKMulti(f *testing.F) {
	f.Add(Encode(zkMulti(1, zkCreate("/a", "1", 3), ZKOp{Kind: ZKOpDelete, Path: "/b", Version: -1})))
	f.Add(Encode(&ZKMulti{Auth: []string{"digest:u:h"}, Ops: []ZKOp{{Kind: ZKOpSetACL, Path: "/b", ACL: []ZKACL{{Perms: 1, Scheme: "auth"}}}}}))
	f.Add([]byte{byte(CmdZKMulti), 0, 0, 0xff, 0xff, 0x0f})
	f.Add(Encode(&ZKMulti{EmptyData: true, Ops: []ZKOp{zkCreate("/e", "", 0), {Kind: ZKOpSet, Path: "/e", Data: []byte{}, Version: -1}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || (data[0] != byte(CmdZKMulti) && data[0] != byte(CmdZKMultiData)) {
			data = append([]byte{byte(CmdZKMulti)}, data...)
		}
		c, err := Decode(data)
		if err != nil {
			return
		}
		b := Encode(c)
		if !bytes.Equal(b, data) {
			c2, err := Decode(b)
			if err != nil || !bytes.Equal(Encode(c2), b) {
				t.Fatalf("re-encoding is not canonical: %v", err)
			}
		}
		h := newHarness(t)
		h.ok(zkSession)
		h.ok(zkMulti(1, zkCreate("/b", "", 0), zkCreate("/b/c", "x", 1)))
		r := h.apply(c)
		if r.Err == nil && r.ZK == nil {
			t.Fatal("no zk result")
		}
		checkInvariants(t, h.s)
		checkZKTree(t, h)
	})
}

// checkZKTree checks that every node's parent exists and counts it, and
// that the children and ephemeral indexes match the nodes.
func checkZKTree(t *testing.T, h *harness) {
	t.Helper()
	h.view(func(v *View) {
		kids := map[string]int32{}
		v.tx.Bucket(bZKNodes).ForEach(func(k, val []byte) error {
			n, ok := decodeZKNode(string(k), val)
			if !ok {
				t.Fatalf("bad node %q", k)
			}
			if string(k) != "/" {
				kids[zkParent(string(k))]++
				if v.tx.Bucket(bZKChildren).Get([]byte(zkParent(string(k))+"\x00"+zkBase(string(k)))) == nil {
					t.Fatalf("%q is not indexed under its parent", k)
				}
				if n, _ := readZKNode(v.tx.Bucket(bZKNodes), zkParent(string(k))); n == nil {
					t.Fatalf("%q has no parent", k)
				}
			}
			if o := n.Stat.EphemeralOwner; o != 0 && v.tx.Bucket(bZKEphemerals).Get(append(u64(uint64(o)), k...)) == nil {
				t.Fatalf("ephemeral %q is not indexed", k)
			}
			return nil
		})
		v.tx.Bucket(bZKNodes).ForEach(func(k, val []byte) error {
			n, _ := decodeZKNode(string(k), val)
			if n.Stat.NumChildren != kids[string(k)] {
				t.Fatalf("%q counts %d children, has %d", k, n.Stat.NumChildren, kids[string(k)])
			}
			return nil
		})
	})
}
