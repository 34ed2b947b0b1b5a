package zk

import (
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/armada-orchestrator/armada/internal/textdiff"
)

// transcript records what a client session saw, with zxids numbered by
// first appearance and session IDs named, so that a real ZooKeeper and
// Armada give identical text when they behave the same.
type transcript struct {
	t        *testing.T
	lines    []string
	zxids    map[int64]string
	sessions map[int64]string
}

func newTranscript(t *testing.T) *transcript {
	return &transcript{t: t, zxids: map[int64]string{}, sessions: map[int64]string{}}
}

func (tr *transcript) logf(format string, args ...any) {
	tr.lines = append(tr.lines, fmt.Sprintf(format, args...))
}

func (tr *transcript) zxid(z int64) string {
	if z == 0 {
		return "0"
	}
	if s, ok := tr.zxids[z]; ok {
		return s
	}
	s := fmt.Sprintf("Z%d", len(tr.zxids)+1)
	tr.zxids[z] = s
	return s
}

func (tr *transcript) stat(s *gozk.Stat) string {
	if s == nil {
		return "nil"
	}
	owner := "0"
	if s.EphemeralOwner != 0 {
		owner = tr.sessions[s.EphemeralOwner]
		if owner == "" {
			owner = "unknown-session"
		}
	}
	// Zxids first in stat order so their numbering is the same on both.
	cz, mz, pz := tr.zxid(s.Czxid), tr.zxid(s.Mzxid), tr.zxid(s.Pzxid)
	return fmt.Sprintf("czxid=%s mzxid=%s pzxid=%s ctime=mtime:%v v=%d cv=%d av=%d owner=%s len=%d nc=%d",
		cz, mz, pz, s.Ctime == s.Mtime, s.Version, s.Cversion, s.Aversion, owner, s.DataLength, s.NumChildren)
}

func errName(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// event waits for one watch event.
func (tr *transcript) event(name string, ch <-chan gozk.Event) {
	select {
	case e := <-ch:
		tr.logf("%s: event %s %s err=%s", name, e.Type, e.Path, errName(e.Err))
	case <-time.After(10 * time.Second):
		tr.logf("%s: no event", name)
	}
}

// noEvent checks that a watch has not fired (yet): the read that follows
// would have been answered after it.
func (tr *transcript) noEvent(name string, ch <-chan gozk.Event) {
	select {
	case e := <-ch:
		tr.logf("%s: unexpected event %s %s", name, e.Type, e.Path)
	default:
		tr.logf("%s: quiet", name)
	}
}

// runScript runs the client session shared by both servers.
func runScript(t *testing.T, servers []string) []string {
	tr := newTranscript(t)
	a, _ := connect(t, servers, 10*time.Second)
	b, _ := connect(t, servers, 10*time.Second)
	tr.sessions[a.SessionID()] = "A"
	tr.sessions[b.SessionID()] = "B"
	acl := gozk.WorldACL(gozk.PermAll)
	const root = "/difftest"

	// ZooKeeper's own nodes.
	sys, _, err := a.Children("/zookeeper")
	sort.Strings(sys)
	tr.logf("ls /zookeeper: %v %s", sys, errName(err))
	cfg, _, err := a.Get("/zookeeper/config")
	tr.logf("get /zookeeper/config: %q %s", cfg, errName(err))
	zacl, _, err := a.GetACL("/zookeeper/config")
	tr.logf("getacl /zookeeper/config: %v %s", zacl, errName(err))
	for _, p := range []string{"/zookeeper", "/zookeeper/quota", "/zookeeper/config"} {
		tr.logf("delete %s: %s", p, errName(a.Delete(p, -1)))
	}
	_, err = a.Set("/zookeeper/config", []byte("x"), -1)
	tr.logf("set /zookeeper/config: %s", errName(err))

	// Plain znodes.
	p, err := a.Create(root, []byte("top"), 0, acl)
	tr.logf("create %s: %s %s", root, p, errName(err))
	_, err = a.Create(root, nil, 0, acl)
	tr.logf("create again: %s", errName(err))
	_, err = a.Create(root+"/missing/child", nil, 0, acl)
	tr.logf("create under missing: %s", errName(err))
	_, err = a.Create(root+"/bad", nil, 0, nil)
	tr.logf("create with no acl: %s", errName(err))
	for _, name := range []string{"a", "b"} {
		p, err := a.Create(root+"/"+name, []byte("data-"+name), 0, acl)
		tr.logf("create %s: %s", p, errName(err))
	}
	// Empty data is not null: created or set, and ZooKeeper's own nodes.
	for _, c := range []struct {
		name string
		data []byte
	}{{"nil", nil}, {"empty", []byte{}}} {
		path := root + "/data-" + c.name
		_, err := a.Create(path, c.data, 0, acl)
		got, _, gerr := a.Get(path)
		tr.logf("create %s with %s data: %s; get: %#v %s", path, c.name, errName(err), got, errName(gerr))
		_, err = a.Set(path, []byte("x"), -1)
		_, serr := a.Set(path, c.data, -1)
		got, _, gerr = a.Get(path)
		tr.logf("set %s to %s data: %s %s; get: %#v %s", path, c.name, errName(err), errName(serr), got, errName(gerr))
	}
	for _, path := range []string{"/", "/zookeeper", "/zookeeper/quota"} {
		got, _, err := a.Get(path)
		tr.logf("get %s: %#v %s", path, got, errName(err))
	}
	// B reads A's writes after a sync: ZooKeeper only orders each client's
	// own operations, and B may be on another server.
	b.Sync(root)
	data, st, err := b.Get(root + "/a")
	tr.logf("get a: %q %s %s", data, tr.stat(st), errName(err))
	st, err = a.Set(root+"/a", []byte("v2"), 0)
	tr.logf("set a v0: %s %s", tr.stat(st), errName(err))
	_, err = a.Set(root+"/a", []byte("v3"), 0)
	tr.logf("set a stale v0: %s", errName(err))
	st, err = a.Set(root+"/a", []byte("v3"), -1)
	tr.logf("set a any: %s %s", tr.stat(st), errName(err))
	_, _, err = a.Get(root + "/nope")
	tr.logf("get missing: %s", errName(err))
	_, err = a.Set(root+"/nope", nil, -1)
	tr.logf("set missing: %s", errName(err))
	b.Sync(root)
	ok, st, err := b.Exists(root + "/a")
	tr.logf("exists a: %v %s %s", ok, tr.stat(st), errName(err))
	ok, st, err = b.Exists(root + "/nope")
	tr.logf("exists missing: %v %s %s", ok, tr.stat(st), errName(err))
	kids, st, err := b.Children(root)
	sort.Strings(kids)
	tr.logf("children: %v %s %s", kids, tr.stat(st), errName(err))
	_, _, err = b.Children(root + "/nope")
	tr.logf("children missing: %s", errName(err))
	err = a.Delete(root, -1)
	tr.logf("delete non-empty: %s", errName(err))
	err = a.Delete(root+"/b", 5)
	tr.logf("delete bad version: %s", errName(err))
	err = a.Delete(root+"/b", 0)
	tr.logf("delete b: %s", errName(err))
	err = a.Delete(root+"/b", -1)
	tr.logf("delete b again: %s", errName(err))
	_, st, _ = a.Exists(root)
	tr.logf("root after: %s", tr.stat(st))

	// Sequential and ephemeral znodes.
	for i := 0; i < 3; i++ {
		p, err := a.Create(root+"/seq-", []byte{byte('0' + i)}, gozk.FlagSequence, acl)
		tr.logf("create sequential: %s %s", p, errName(err))
	}
	p, err = a.Create(root+"/eph", []byte("mine"), gozk.FlagEphemeral, acl)
	tr.logf("create ephemeral: %s %s", p, errName(err))
	p, err = a.Create(root+"/eseq-", nil, gozk.FlagEphemeral|gozk.FlagSequence, acl)
	tr.logf("create ephemeral sequential: %s %s", p, errName(err))
	_, err = a.Create(root+"/eph/child", nil, 0, acl)
	tr.logf("child of ephemeral: %s", errName(err))
	b.Sync(root)
	_, st, err = b.Get(root + "/eph")
	tr.logf("ephemeral as B sees it: %s %s", tr.stat(st), errName(err))

	// Watches: data, child, exists; one-shot.
	_, _, wData, err := b.GetW(root + "/a")
	tr.logf("getw a: %s", errName(err))
	_, _, wKids, err := b.ChildrenW(root)
	tr.logf("childrenw: %s", errName(err))
	_, _, wExists, err := b.ExistsW(root + "/c")
	tr.logf("existsw c: %s", errName(err))
	tr.noEvent("data watch", wData)
	_, err = a.Set(root+"/a", []byte("v4"), -1)
	tr.logf("set a: %s", errName(err))
	tr.event("data watch", wData)
	_, err = a.Create(root+"/c", []byte("c"), 0, acl)
	tr.logf("create c: %s", errName(err))
	tr.event("exists watch", wExists)
	tr.event("child watch", wKids)
	_, _, wDel, err := b.GetW(root + "/c")
	tr.logf("getw c: %s", errName(err))
	_, _, wKidsC, err := b.ChildrenW(root + "/c")
	tr.logf("childrenw c: %s", errName(err))
	err = a.Delete(root+"/c", -1)
	tr.logf("delete c: %s", errName(err))
	tr.event("delete data watch", wDel)
	tr.event("delete child watch", wKidsC)
	// The ephemeral of A goes when A closes; B watches it.
	_, _, wEph, err := b.ExistsW(root + "/eph")
	tr.logf("existsw eph: %s", errName(err))
	a.Close()
	tr.event("ephemeral watch", wEph)
	ok, _, err = b.Exists(root + "/eph")
	tr.logf("ephemeral after close: %v %s", ok, errName(err))
	kids, _, _ = b.Children(root)
	sort.Strings(kids)
	tr.logf("children after close: %v", kids)

	// Multi: all or nothing.
	res, err := b.Multi(
		&gozk.CreateRequest{Path: root + "/m1", Data: []byte("1"), Acl: acl},
		&gozk.SetDataRequest{Path: root + "/a", Data: []byte("m"), Version: -1},
		&gozk.CheckVersionRequest{Path: root + "/a", Version: 2},
		&gozk.DeleteRequest{Path: root + "/m1", Version: 0},
	)
	tr.logf("multi ok: %s", errName(err))
	for i, r := range res {
		tr.logf("  op %d: %q %s %s", i, r.String, tr.stat(r.Stat), errName(r.Error))
	}
	res, err = b.Multi(
		&gozk.CreateRequest{Path: root + "/m2", Data: []byte("2"), Acl: acl},
		&gozk.CheckVersionRequest{Path: root + "/a", Version: 99},
		&gozk.SetDataRequest{Path: root + "/a", Data: []byte("x"), Version: -1},
	)
	tr.logf("multi failing: %s", errName(err))
	for i, r := range res {
		tr.logf("  op %d: %q %s", i, r.String, errName(r.Error))
	}
	ok, _, _ = b.Exists(root + "/m2")
	data, st, _ = b.Get(root + "/a")
	tr.logf("after failed multi: m2=%v a=%q %s", ok, data, tr.stat(st))

	// ACLs: world, digest, auth.
	c, _ := connect(t, servers, 10*time.Second)
	tr.sessions[c.SessionID()] = "C"
	err = c.AddAuth("digest", []byte("alice:secret"))
	tr.logf("addauth: %s", errName(err))
	_, err = b.Create(root+"/auth-none", nil, 0, gozk.AuthACL(gozk.PermAll))
	tr.logf("auth acl without auth: %s", errName(err))
	p, err = c.Create(root+"/private", []byte("p"), 0, gozk.DigestACL(gozk.PermAll, "alice", "secret"))
	tr.logf("create digest: %s %s", p, errName(err))
	p, err = c.Create(root+"/mine", []byte("m"), 0, gozk.AuthACL(gozk.PermAll))
	tr.logf("create auth: %s %s", p, errName(err))
	p, err = c.Create(root+"/ro", []byte("r"), 0, gozk.WorldACL(gozk.PermRead))
	tr.logf("create read-only: %s %s", p, errName(err))
	b.Sync(root)
	data, _, err = c.Get(root + "/private")
	tr.logf("owner get: %q %s", data, errName(err))
	_, _, err = b.Get(root + "/private")
	tr.logf("other get: %s", errName(err))
	_, err = b.Set(root+"/private", nil, -1)
	tr.logf("other set: %s", errName(err))
	_, _, err = b.GetACL(root + "/private")
	tr.logf("other getacl: %s", errName(err))
	acls, st, err := c.GetACL(root + "/mine")
	tr.logf("owner getacl: %v %s %s", acls, tr.stat(st), errName(err))
	_, err = b.Set(root+"/ro", []byte("w"), -1)
	tr.logf("set read-only: %s", errName(err))
	data, _, err = b.Get(root + "/ro")
	tr.logf("get read-only: %q %s", data, errName(err))
	_, err = b.Create(root+"/ro/kid", nil, 0, acl)
	tr.logf("create under read-only: %s", errName(err))
	_, err = b.SetACL(root+"/private", acl, -1)
	tr.logf("other setacl: %s", errName(err))
	st, err = c.SetACL(root+"/private", gozk.WorldACL(gozk.PermRead|gozk.PermAdmin), 0)
	tr.logf("owner setacl: %s %s", tr.stat(st), errName(err))
	_, err = c.SetACL(root+"/private", acl, 0)
	tr.logf("setacl stale version: %s", errName(err))
	b.Sync(root)
	data, _, err = b.Get(root + "/private")
	tr.logf("other get after setacl: %q %s", data, errName(err))
	acls, _, err = b.GetACL(root + "/private")
	tr.logf("other getacl after setacl: %v %s", acls, errName(err))
	err = c.AddAuth("nonsense", []byte("x"))
	tr.logf("bad auth scheme: %v", err != nil)

	// Sync and the root's special child.
	p, err = b.Sync(root)
	tr.logf("sync: %s %s", p, errName(err))
	kids, _, err = b.Children("/zookeeper")
	tr.logf("zookeeper children contain quota: %v %s", contains(kids, "quota"), errName(err))
	return tr.lines
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestDifferential runs the same go-zookeeper session against a real
// ZooKeeper 3.8 and against the adapter on a 3-node Armada; the
// transcripts must be identical.
func TestDifferential(t *testing.T) {
	real := startZooKeeper(t)
	want := runScript(t, []string{real})
	nodes := startCluster(t)
	got := runScript(t, addrs(nodes))
	if len(want) < 50 {
		t.Fatalf("the script stopped early on ZooKeeper:\n%s", strings.Join(want, "\n"))
	}
	if diff := textdiff.Lines(want, got, "zookeeper", "armada", 0); diff != "" {
		t.Errorf("Armada differs from ZooKeeper:\n%s", diff)
		t.Logf("zookeeper transcript:\n%s", strings.Join(want, "\n"))
	}
}

// zkCliScript is one zkCli session, fed on standard input.
const zkCliScript = `create /cli one
get /cli
set /cli two
stat /cli
create -s /cli/q- x
create -s /cli/q- y
ls /cli
ls -s /cli
getAcl /cli
create /cli/nodata
get /cli/nodata
get /
create -e /cli/eph e
get -s /cli/eph
addauth digest bob:pw
create /cli/secret s digest:bob:ikIaKsbtGweaHnb/jKn7OHqbunM=:cdrwa
get /cli/secret
setAcl /cli/secret world:anyone:r
getAcl /cli/secret
set /cli/secret nope
delete /cli
deleteall /cli
get /cli
quit
`

// runZKCli runs the script through the Debian zkCli and keeps the lines
// that do not depend on the server: no logs, times, zxids or session IDs.
func runZKCli(t *testing.T, server string) []string {
	t.Helper()
	cmd := exec.Command("java", "-Xmx128m", "-cp", zkClassPath(t), "org.apache.zookeeper.ZooKeeperMain", "-server", server)
	cmd.Stdin = strings.NewReader(zkCliScript)
	out, _ := cmd.CombinedOutput()
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "", strings.Contains(l, "INFO"), strings.Contains(l, "WARN"), strings.Contains(l, "ERROR"),
			strings.HasPrefix(l, "SLF4J"), strings.HasPrefix(l, "Connecting to"), strings.Contains(l, "Exception"),
			strings.HasPrefix(l, "at "), strings.Contains(l, "ClientCnxn"), strings.HasPrefix(l, "WatchedEvent state:Closed"):
			continue
		case strings.HasPrefix(l, "cZxid"), strings.HasPrefix(l, "mZxid"), strings.HasPrefix(l, "pZxid"),
			strings.HasPrefix(l, "ctime"), strings.HasPrefix(l, "mtime"):
			l, _, _ = strings.Cut(l, " =")
		case strings.HasPrefix(l, "ephemeralOwner"):
			if !strings.HasSuffix(l, "= 0x0") {
				l = "ephemeralOwner = session"
			}
		}
		lines = append(lines, l)
	}
	return lines
}

// TestZKCliDifferential runs one zkCli session against a real ZooKeeper
// 3.8 and against the adapter on a 3-node Armada.
func TestZKCliDifferential(t *testing.T) {
	real := startZooKeeper(t)
	want := runZKCli(t, real)
	nodes := startCluster(t)
	got := runZKCli(t, nodes[1].zk.Addr())
	if !strings.Contains(strings.Join(want, "\n"), "Created /cli/q-0000000001") {
		t.Fatalf("zkCli did not run the script against ZooKeeper:\n%s", strings.Join(want, "\n"))
	}
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Errorf("zkCli output differs\n---- zookeeper ----\n%s\n---- armada ----\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}
