package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/armada-orchestrator/armada/fsm"
)

// TestArmadaOnly covers what only Armada answers this way: reads at a
// past revision (from the change feed), the same key space as /v1/kv,
// MemberList and Status from the node records, Defragment and HashKV, and
// what is not supported.
func TestArmadaOnly(t *testing.T) {
	requireEtcdTools(t)
	nodes := startCluster(t)
	cli := newClient(t, nodes[0].etcd.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	pr, err := cli.Put(ctx, "k", "v")
	if err != nil {
		t.Fatal(err)
	}
	rev := pr.Header.Revision
	if _, err := cli.Put(ctx, "k", "w"); err != nil {
		t.Fatal(err)
	}
	// A past revision reads through the change feed.
	if old, err := cli.Get(ctx, "k", clientv3.WithRev(rev)); err != nil || len(old.Kvs) != 1 || string(old.Kvs[0].Value) != "v" {
		t.Fatalf("get at a past revision: %v %v", old, err)
	}
	g, err := cli.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "k", clientv3.WithRev(g.Header.Revision+1000)); err == nil || err.Error() != rpctypes.ErrFutureRev.Error() {
		t.Fatalf("get at a future revision: %v", err)
	}
	// The revision is the Raft index, and the key is the /v1/kv key.
	if g.Kvs[0].ModRevision <= rev || g.Kvs[0].CreateRevision != rev {
		t.Fatalf("k = %+v after a put at %d", g.Kvs[0], rev)
	}
	nodes[2].node.State().WaitIndex(ctx, uint64(g.Kvs[0].ModRevision))
	nodes[2].node.State().View(func(v *fsm.View) error {
		if kv, ok := v.KV("k"); !ok || string(kv.Value) != "w" || int64(kv.ModRev) != g.Kvs[0].ModRevision {
			t.Errorf("/v1/kv sees %+v", kv)
		}
		return nil
	})

	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ml.Members {
		names = append(names, fmt.Sprintf("%s %d %d", m.Name, len(m.PeerURLs), len(m.ClientURLs)))
		if m.ID != memberID(m.Name) {
			t.Errorf("member %s has ID %x", m.Name, m.ID)
		}
	}
	if strings.Join(names, ",") != "n1 1 1,n2 1 1,n3 1 1" {
		t.Fatalf("members %v", names)
	}
	st, err := cli.Status(ctx, nodes[1].etcd.Addr())
	if err != nil {
		t.Fatal(err)
	}
	var leader string
	for _, n := range nodes {
		if n.node.IsLeader() {
			leader = n.name
		}
	}
	if st.Version != Version || st.Leader != memberID(leader) || st.RaftIndex == 0 || st.DbSize == 0 || st.Header.MemberId != memberID("n2") {
		t.Fatalf("status %+v (leader %s)", st, leader)
	}
	al, err := cli.AlarmList(ctx)
	if err != nil || len(al.Alarms) != 0 {
		t.Fatalf("alarms %v %v", al, err)
	}

	// Not supported: client-chosen lease IDs.
	_, err = pb.NewLeaseClient(cli.ActiveConnection()).LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 5, TTL: 5})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("lease grant with an ID: %v", err)
	}
	if _, err = cli.Defragment(ctx, nodes[0].etcd.Addr()); err != nil {
		t.Fatalf("defragment: %v", err)
	}

	// HashKV: the three members agree at a revision, a write changes the
	// hash, and the older revision still hashes as before.
	hashes := func(rev int64) ([]uint32, error) {
		var out []uint32
		for _, n := range nodes {
			h, err := cli.HashKV(ctx, n.etcd.Addr(), rev)
			if err != nil {
				return nil, fmt.Errorf("hashkv at %d on %s: %w", rev, n.name, err)
			}
			out = append(out, h.Hash)
		}
		if out[0] != out[1] || out[1] != out[2] {
			return out, fmt.Errorf("hashes at revision %d differ: %x", rev, out)
		}
		return out, nil
	}
	at := g.Header.Revision
	var before, after []uint32
	waitFor(t, 10*time.Second, func() (err error) { before, err = hashes(at); return err })
	pr, err = cli.Put(ctx, "k", "changed")
	if err != nil {
		t.Fatal(err)
	}
	// A follower may not have applied the write yet (a future revision).
	waitFor(t, 10*time.Second, func() (err error) { after, err = hashes(pr.Header.Revision); return err })
	if after[0] == before[0] {
		t.Fatalf("the hash did not change with a write: %x", after)
	}
	if again, err := hashes(at); err != nil || again[0] != before[0] {
		t.Fatalf("hash at revision %d was %x, now %x (%v)", at, before[0], again, err)
	}

	// etcdctl endpoint status and member list against a follower.
	for _, args := range [][]string{{"endpoint", "status"}, {"member", "list"}, {"endpoint", "health"}} {
		cmd := exec.Command("etcdctl", append([]string{"--endpoints", nodes[1].etcd.Addr(), "--command-timeout", "10s"}, args...)...)
		cmd.Env = append(cmd.Environ(), "ETCDCTL_API=3")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("etcdctl %v: %v\n%s", args, err, out)
		}
		if args[0] == "member" && strings.Count(string(out), "started") != 3 {
			t.Fatalf("etcdctl member list:\n%s", out)
		}
	}
}

// compactingStore drops the changes up to revision floor from the feed, as
// a feed that has rolled over would.
type compactingStore struct {
	Store
	floor uint64
}

func (c compactingStore) ChangesAfterRev(rev uint64) ([]fsm.Change, uint64, <-chan struct{}, error) {
	if rev < c.floor {
		return nil, 0, nil, fsm.ErrCompacted
	}
	return c.Store.ChangesAfterRev(rev)
}

// TestWatchHistory covers watches from a past revision (replayed from the
// feed, or "compacted" once the feed has lost it) and progress requests.
func TestWatchHistory(t *testing.T) {
	nodes := startCluster(t)
	cli := newClient(t, nodes[1].etcd.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p1, err := cli.Put(ctx, "h", "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "h", "2", clientv3.WithLease(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "h"); err != nil {
		t.Fatal(err)
	}
	wch := cli.Watch(ctx, "h", clientv3.WithRev(p1.Header.Revision), clientv3.WithPrevKV())
	var evs []string
	for len(evs) < 3 {
		select {
		case resp := <-wch:
			if resp.Err() != nil {
				t.Fatal(resp.Err())
			}
			for _, ev := range resp.Events {
				s := fmt.Sprintf("%s %s=%s", ev.Type, ev.Kv.Key, ev.Kv.Value)
				if ev.PrevKv != nil {
					s += " prev " + string(ev.PrevKv.Value)
				}
				evs = append(evs, s)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("replayed events: %v", evs)
		}
	}
	if got := strings.Join(evs, "; "); got != "PUT h=1; PUT h=2 prev 1; DELETE h= prev 2" {
		t.Fatalf("replayed events: %s", got)
	}

	// A progress request answers with the current revision.
	pw := cli.Watch(ctx, "nothing", clientv3.WithCreatedNotify())
	<-pw
	if err := cli.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-pw:
		if !resp.IsProgressNotify() || resp.Header.Revision < p1.Header.Revision {
			t.Fatalf("progress %+v", resp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no progress notification")
	}

	// A revision the feed no longer holds is compacted.
	n := nodes[0]
	var floor uint64
	n.node.State().View(func(v *fsm.View) error {
		floor = v.Revision()
		return nil
	})
	es := New(compactingStore{n.node.State(), floor}, n.node, Config{Addr: "127.0.0.1:0"})
	if err := es.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	old := newClient(t, es.Addr())
	cw := old.Watch(ctx, "h", clientv3.WithRev(p1.Header.Revision))
	select {
	case resp := <-cw:
		if resp.CompactRevision == 0 || !errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			t.Fatalf("compacted watch: %+v %v", resp, resp.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no compacted answer")
	}

	// A watcher that reaches a change whose values the feed let go (past
	// its byte budget) is told it is compacted, not given a part.
	ss := New(strippingStore{n.node.State()}, n.node, Config{Addr: "127.0.0.1:0"})
	if err := ss.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	sw := newClient(t, ss.Addr()).Watch(ctx, "s", clientv3.WithCreatedNotify())
	if c := <-sw; !c.Created {
		t.Fatalf("watch not created: %+v", c)
	}
	if _, err := cli.Put(ctx, "s", "gone"); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-sw:
		if len(resp.Events) != 0 || !errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			t.Fatalf("watch of a stripped change: %+v %v", resp, resp.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no compacted answer for a stripped change")
	}
}

// strippingStore hands out every kv change as the feed does once it has
// let the change's values go.
type strippingStore struct{ Store }

func (s strippingStore) Changes(since uint64) ([]fsm.Change, <-chan struct{}, error) {
	changes, wake, err := s.Store.Changes(since)
	for i := range changes {
		if changes[i].Topic == "kv" {
			changes[i].KV, changes[i].Prev, changes[i].Stripped = nil, nil, true
		}
	}
	return changes, wake, err
}

// TestRequireLeader: a call with clientv3.WithRequireLeader (Kubernetes
// sets it on its watches) fails with etcd's "no leader" on a node that has
// lost its leader, and a require-leader watch open there is ended with it;
// without the option, the node still answers serializable reads.
func TestRequireLeader(t *testing.T) {
	nodes := startCluster(t)
	var survivor *testNode
	for _, n := range nodes {
		if survivor == nil && !n.node.IsLeader() {
			survivor = n
		}
	}
	cli := newClient(t, survivor.etcd.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "rl", "v"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	wch := cli.Watch(wctx, "rl", clientv3.WithCreatedNotify())
	if c := <-wch; !c.Created {
		t.Fatalf("watch not created: %+v", c)
	}
	for _, n := range nodes {
		if n != survivor {
			n.stop()
		}
	}
	// The watch ends with "no leader" a few seconds after the leader is gone.
	lost := time.Now()
	select {
	case resp, ok := <-wch:
		if ok && !errors.Is(resp.Err(), rpctypes.ErrNoLeader) {
			t.Fatalf("require-leader watch: %+v (%v), want no leader", resp, resp.Err())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the require-leader watch is still open 20s after its node lost the leader")
	}
	t.Logf("watch ended %s after the other nodes stopped", time.Since(lost).Round(time.Millisecond))
	_, err := cli.Get(clientv3.WithRequireLeader(ctx), "rl", clientv3.WithSerializable())
	if !errors.Is(err, rpctypes.ErrNoLeader) {
		t.Fatalf("require-leader get without a leader: %v", err)
	}
	if g, err := cli.Get(ctx, "rl", clientv3.WithSerializable()); err != nil || len(g.Kvs) != 1 {
		t.Fatalf("serializable get without a leader: %v %v", g, err)
	}
}

// TestHTTPOnTheClientPort: like etcd, the client port answers plain HTTP
// besides gRPC: GET /health (what load balancers and probes ask) and GET
// /version, with etcd's bodies, on the same address clientv3 uses.
func TestHTTPOnTheClientPort(t *testing.T) {
	real := startEtcdServer(t)
	nodes := startCluster(t)
	get := func(addr, path string) string {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s%s: %v", addr, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	want := get(real, "/health")
	if want != `200 {"health":"true"}` {
		t.Fatalf("the reference's /health: %s", want)
	}
	// A new cluster's first linearizable read may take longer than the
	// second /health allows it.
	waitFor(t, 10*time.Second, func() error {
		if got := get(nodes[1].etcd.Addr(), "/health"); got != want {
			return fmt.Errorf("/health: etcd %q, Armada %q", want, got)
		}
		return nil
	})
	var v struct{ Etcdserver, Etcdcluster string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(get(nodes[1].etcd.Addr(), "/version"), "200 ")), &v); err != nil ||
		!strings.HasPrefix(v.Etcdserver, "3.4.") || v.Etcdcluster != "3.4.0" {
		t.Errorf("/version: %+v %v", v, err)
	}
	// gRPC still works on the same port.
	cli := newClient(t, nodes[1].etcd.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "http", "ok"); err != nil {
		t.Fatal(err)
	}
	// Without a leader, /health is 503, as etcd's.
	for _, n := range nodes {
		if n != nodes[1] {
			n.stop()
		}
	}
	waitFor(t, 20*time.Second, func() error {
		if got := get(nodes[1].etcd.Addr(), "/health"); got != `503 {"health":"false"}` {
			return fmt.Errorf("/health without a leader: %s", got)
		}
		return nil
	})
}

// failingListener fails its first Accepts as a process out of file
// descriptors does.
type failingListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptErrorsPass: an Accept that fails for want of file descriptors
// does not close the port; the next connections are served.
func TestAcceptErrorsPass(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: ln}
	fl.fails.Store(3)
	split := newSplitListener(fl)
	defer ln.Close()
	go http.Serve(split.http, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("after failed accepts: %v", err)
	}
	resp.Body.Close()
	if fl.fails.Load() >= 0 {
		t.Fatalf("the failures were not all seen: %d left", fl.fails.Load())
	}
}

// TestUserTimeoutOnGRPCConnections: the gRPC side of the split listener
// gets TCP_USER_TIMEOUT set to the keepalive timeout, as gRPC sets it on
// the connections it accepts itself.
func TestUserTimeoutOnGRPCConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	split := newSplitListener(ln)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	sc, err := split.grpc.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	raw, err := sc.(*peekedConn).Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ms int
	raw.Control(func(fd uintptr) { ms, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) })
	if err != nil || ms != int(keepaliveTimeout/time.Millisecond) {
		t.Fatalf("TCP_USER_TIMEOUT %d ms (%v), want %s", ms, err, keepaliveTimeout)
	}
}
