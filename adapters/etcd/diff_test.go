package etcd

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/armada-orchestrator/armada/internal/textdiff"
)

// recorder writes a normalised transcript: revisions and lease IDs differ
// legitimately between etcd and Armada (Armada's revision is the Raft
// index, which other entries advance too), so each distinct value is
// replaced by its order of first appearance.
type recorder struct {
	lines  []string
	revs   map[int64]int
	leases map[int64]int
}

func newRecorder() *recorder {
	return &recorder{revs: map[int64]int{}, leases: map[int64]int{}}
}

func (r *recorder) rev(v int64) string {
	if v == 0 {
		return "0"
	}
	if _, ok := r.revs[v]; !ok {
		r.revs[v] = len(r.revs) + 1
	}
	return fmt.Sprintf("r%d", r.revs[v])
}

func (r *recorder) lease(v int64) string {
	if v == 0 {
		return "0"
	}
	if _, ok := r.leases[v]; !ok {
		r.leases[v] = len(r.leases) + 1
	}
	return fmt.Sprintf("L%d", r.leases[v])
}

func (r *recorder) kv(kv *mvccpb.KeyValue) string {
	if kv == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s=%q(c=%s m=%s v=%d l=%s)", kv.Key, kv.Value, r.rev(kv.CreateRevision), r.rev(kv.ModRevision), kv.Version, r.lease(kv.Lease))
}

func (r *recorder) kvs(kvs []*mvccpb.KeyValue) string {
	var out []string
	for _, kv := range kvs {
		out = append(out, r.kv(kv))
	}
	return "[" + strings.Join(out, " ") + "]"
}

func (r *recorder) add(step string, format string, args ...any) {
	r.lines = append(r.lines, step+": "+fmt.Sprintf(format, args...))
}

func (r *recorder) err(step string, err error) {
	if err == nil {
		r.add(step, "ok")
		return
	}
	r.add(step, "error %v", err)
}

func (r *recorder) get(step string, resp *clientv3.GetResponse, err error) {
	if err != nil {
		r.err(step, err)
		return
	}
	r.add(step, "count=%d more=%v %s", resp.Count, resp.More, r.kvs(resp.Kvs))
}

func (r *recorder) txn(step string, resp *clientv3.TxnResponse, err error) {
	if err != nil {
		r.err(step, err)
		return
	}
	var parts []string
	for _, op := range resp.Responses {
		switch {
		case op.GetResponseRange() != nil:
			rr := op.GetResponseRange()
			parts = append(parts, fmt.Sprintf("range(count=%d more=%v %s)", rr.Count, rr.More, r.kvs(rr.Kvs)))
		case op.GetResponsePut() != nil:
			parts = append(parts, "put(prev="+r.kv(op.GetResponsePut().PrevKv)+")")
		case op.GetResponseDeleteRange() != nil:
			d := op.GetResponseDeleteRange()
			parts = append(parts, fmt.Sprintf("delete(%d %s)", d.Deleted, r.kvs(d.PrevKvs)))
		}
	}
	r.add(step, "succeeded=%v %s", resp.Succeeded, strings.Join(parts, " "))
}

// script runs the client session whose transcript must be the same against
// etcd and Armada.
func script(t *testing.T, cli *clientv3.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRecorder()

	// Puts and gets.
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"p/x", "10"}, {"p/y", "30"}, {"p/z", "20"}, {"q", "0"}} {
		_, err := cli.Put(ctx, kv[0], kv[1])
		r.err("put "+kv[0], err)
	}
	resp, err := cli.Get(ctx, "a")
	r.get("get a", resp, err)
	resp, err = cli.Get(ctx, "missing")
	r.get("get missing", resp, err)
	resp, err = cli.Get(ctx, "p/", clientv3.WithPrefix())
	r.get("prefix", resp, err)
	resp, err = cli.Get(ctx, "p/", clientv3.WithPrefix(), clientv3.WithLimit(2))
	r.get("prefix limit", resp, err)
	resp, err = cli.Get(ctx, "p/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	r.get("prefix keys-only", resp, err)
	resp, err = cli.Get(ctx, "p/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	r.get("prefix count-only", resp, err)
	resp, err = cli.Get(ctx, "p/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortDescend))
	r.get("sort value desc", resp, err)
	resp, err = cli.Get(ctx, "p/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(1))
	r.get("sort mod desc limit", resp, err)
	resp, err = cli.Get(ctx, "p/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	r.get("sort key desc", resp, err)
	resp, err = cli.Get(ctx, "p/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByVersion, clientv3.SortNone))
	r.get("sort version none", resp, err)
	resp, err = cli.Get(ctx, "p/y", clientv3.WithFromKey())
	r.get("from key", resp, err)
	resp, err = cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	r.get("all keys", resp, err)
	resp, err = cli.Get(ctx, "b", clientv3.WithRange("p/z"))
	r.get("range", resp, err)
	resp, err = cli.Get(ctx, "p/", clientv3.WithPrefix(), clientv3.WithSerializable())
	r.get("serializable", resp, err)

	// Put with prev_kv, ignore_value and its errors.
	pr, err := cli.Put(ctx, "a", "11", clientv3.WithPrevKV())
	if err == nil {
		r.add("put prev", "%s", r.kv(pr.PrevKv))
	} else {
		r.err("put prev", err)
	}
	_, err = cli.Put(ctx, "a", "", clientv3.WithIgnoreValue())
	r.err("put ignore value", err)
	_, err = cli.Put(ctx, "nokey", "", clientv3.WithIgnoreValue())
	r.err("put ignore value missing", err)
	_, err = cli.Put(ctx, "a", "x", clientv3.WithIgnoreValue())
	r.err("put ignore value with value", err)
	_, err = cli.Put(ctx, "a", "x", clientv3.WithLease(clientv3.LeaseID(0x7fffffff)))
	r.err("put unknown lease", err)
	resp, err = cli.Get(ctx, "a")
	r.get("get a again", resp, err)

	// Deletes.
	dr, err := cli.Delete(ctx, "p/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	if err == nil {
		r.add("delete prefix", "%d %s", dr.Deleted, r.kvs(dr.PrevKvs))
	} else {
		r.err("delete prefix", err)
	}
	dr, err = cli.Delete(ctx, "missing")
	if err == nil {
		r.add("delete missing", "%d", dr.Deleted)
	} else {
		r.err("delete missing", err)
	}
	dr, err = cli.Delete(ctx, "a", clientv3.WithRange("c"))
	if err == nil {
		r.add("delete range", "%d", dr.Deleted)
	} else {
		r.err("delete range", err)
	}

	// Transactions: each compare target, both branches.
	_, err = cli.Put(ctx, "t", "v1")
	r.err("put t", err)
	_, err = cli.Put(ctx, "t", "v2")
	r.err("put t again", err)
	gt, err := cli.Get(ctx, "t")
	if err != nil || len(gt.Kvs) != 1 {
		t.Fatalf("get t: %v %v", gt, err)
	}
	mod, create := gt.Kvs[0].ModRevision, gt.Kvs[0].CreateRevision
	cmps := []struct {
		name string
		cmp  clientv3.Cmp
	}{
		{"value =", clientv3.Compare(clientv3.Value("t"), "=", "v2")},
		{"value = wrong", clientv3.Compare(clientv3.Value("t"), "=", "v1")},
		{"value >", clientv3.Compare(clientv3.Value("t"), ">", "v1")},
		{"value <", clientv3.Compare(clientv3.Value("t"), "<", "v1")},
		{"value !=", clientv3.Compare(clientv3.Value("t"), "!=", "v2")},
		{"version =", clientv3.Compare(clientv3.Version("t"), "=", 2)},
		{"version >", clientv3.Compare(clientv3.Version("t"), ">", 2)},
		{"create =", clientv3.Compare(clientv3.CreateRevision("t"), "=", create)},
		{"create <", clientv3.Compare(clientv3.CreateRevision("t"), "<", create)},
		{"mod =", clientv3.Compare(clientv3.ModRevision("t"), "=", mod)},
		{"mod !=", clientv3.Compare(clientv3.ModRevision("t"), "!=", mod)},
		{"mod >", clientv3.Compare(clientv3.ModRevision("t"), ">", create)},
		{"lease =", clientv3.Compare(clientv3.LeaseValue("t"), "=", 0)},
		{"lease !=", clientv3.Compare(clientv3.LeaseValue("t"), "!=", 0)},
		{"missing value", clientv3.Compare(clientv3.Value("nope"), "=", "")},
		{"missing create", clientv3.Compare(clientv3.CreateRevision("nope"), "=", 0)},
		{"missing version >", clientv3.Compare(clientv3.Version("nope"), ">", 0)},
	}
	for i, c := range cmps {
		tr, err := cli.Txn(ctx).If(c.cmp).
			Then(clientv3.OpPut(fmt.Sprintf("then%d", i), "y", clientv3.WithPrevKV()), clientv3.OpGet("t")).
			Else(clientv3.OpGet("t", clientv3.WithKeysOnly()), clientv3.OpDelete("zzz", clientv3.WithPrevKV())).Commit()
		r.txn("txn "+c.name, tr, err)
	}
	tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("t"), "=", "v2"), clientv3.Compare(clientv3.Version("t"), "=", 2)).
		Then(clientv3.OpPut("t", "v3"), clientv3.OpGet("t"), clientv3.OpDelete("then", clientv3.WithPrefix(), clientv3.WithPrevKV()),
			clientv3.OpGet("then", clientv3.WithPrefix())).Commit()
	r.txn("txn writes then reads", tr, err)
	tr, err = cli.Txn(ctx).Then(clientv3.OpPut("u", "1", clientv3.WithLease(clientv3.LeaseID(0x7ffffff0)))).Commit()
	r.txn("txn unknown lease", tr, err)
	resp, err = cli.Get(ctx, "u")
	r.get("get u", resp, err)
	tr, err = cli.Txn(ctx).Then(clientv3.OpPut("u", "1"), clientv3.OpPut("u", "2")).Commit()
	r.txn("txn duplicate put", tr, err)
	tr, err = cli.Txn(ctx).Then(clientv3.OpPut("u/a", "1"), clientv3.OpDelete("u/", clientv3.WithPrefix())).Commit()
	r.txn("txn put under a delete", tr, err)
	tr, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("u"), "=", "x")).Then(clientv3.OpPut("u", "1")).Else(clientv3.OpPut("u", "2"), clientv3.OpGet("u")).Commit()
	r.txn("txn else put", tr, err)

	// Leases.
	lg, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	r.add("grant", "%s ttl=%d", r.lease(int64(lg.ID)), lg.TTL)
	_, err = cli.Put(ctx, "leased", "1", clientv3.WithLease(lg.ID))
	r.err("put leased", err)
	resp, err = cli.Get(ctx, "leased")
	r.get("get leased", resp, err)
	ttl, err := cli.TimeToLive(ctx, lg.ID, clientv3.WithAttachedKeys())
	if err == nil {
		r.add("ttl", "%s granted=%d left>0=%v left<granted=%v keys=%q", r.lease(int64(ttl.ID)), ttl.GrantedTTL, ttl.TTL > 0, ttl.TTL < ttl.GrantedTTL, ttl.Keys)
	} else {
		r.err("ttl", err)
	}
	ka, err := cli.KeepAliveOnce(ctx, lg.ID)
	if err == nil {
		r.add("keepalive once", "%s ttl=%d", r.lease(int64(ka.ID)), ka.TTL)
	} else {
		r.err("keepalive once", err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	ch, err := cli.KeepAlive(kctx, lg.ID)
	if err != nil {
		t.Fatalf("keepalive: %v", err)
	}
	if k := <-ch; k != nil {
		r.add("keepalive stream", "%s ttl=%d", r.lease(int64(k.ID)), k.TTL)
	}
	kcancel()
	ls, err := cli.Leases(ctx)
	if err == nil {
		r.add("leases", "%d", len(ls.Leases))
	} else {
		r.err("leases", err)
	}
	_, err = cli.Revoke(ctx, lg.ID)
	r.err("revoke", err)
	resp, err = cli.Get(ctx, "leased")
	r.get("get leased after revoke", resp, err)
	_, err = cli.Revoke(ctx, lg.ID)
	r.err("revoke again", err)
	ttl, err = cli.TimeToLive(ctx, lg.ID)
	if err == nil {
		r.add("ttl revoked", "ttl=%d", ttl.TTL)
	} else {
		r.err("ttl revoked", err)
	}
	ka, err = cli.KeepAliveOnce(ctx, lg.ID)
	r.err("keepalive revoked", err)
	_ = ka
	_, err = cli.Grant(ctx, 9_000_000_001)
	r.err("grant too long", err)

	// Expiry: a short lease's keys vanish.
	short, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	r.add("grant short", "%s ttl=%d", r.lease(int64(short.ID)), short.TTL)
	_, err = cli.Put(ctx, "ephemeral", "1", clientv3.WithLease(short.ID))
	r.err("put ephemeral", err)
	waitFor(t, 15*time.Second, func() error {
		g, err := cli.Get(ctx, "ephemeral")
		if err != nil {
			return err
		}
		if len(g.Kvs) != 0 {
			return errors.New("ephemeral still there")
		}
		return nil
	})
	r.add("ephemeral", "gone")

	// Watches from the current revision: a prefix, one key with prev_kv
	// and without deletes, and one with prev_kv of a key written before
	// the watch began.
	_, err = cli.Put(ctx, "w/c", "0")
	r.err("put w/c", err)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wa := cli.Watch(wctx, "w/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	wb := cli.Watch(wctx, "w/a", clientv3.WithPrevKV(), clientv3.WithFilterDelete(), clientv3.WithCreatedNotify())
	wc := cli.Watch(wctx, "w/c", clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	for _, wch := range []clientv3.WatchChan{wa, wb, wc} {
		if c := <-wch; !c.Created {
			t.Fatalf("watch not created: %+v", c)
		}
	}
	for _, op := range []clientv3.Op{clientv3.OpPut("w/c", "1"), clientv3.OpPut("w/a", "1"), clientv3.OpPut("w/b", "2"), clientv3.OpPut("w/a", "3"),
		clientv3.OpDelete("w/a"), clientv3.OpPut("w/a", "4"), clientv3.OpDelete("w/", clientv3.WithPrefix())} {
		_, err := cli.Do(ctx, op)
		r.err("watched op", err)
	}
	collect := func(name string, wch clientv3.WatchChan, n int) {
		var evs []string
		for len(evs) < n {
			select {
			case resp := <-wch:
				if err := resp.Err(); err != nil {
					t.Fatalf("watch %s: %v", name, err)
				}
				for _, ev := range resp.Events {
					s := fmt.Sprintf("%s %s", ev.Type, r.kv(ev.Kv))
					if ev.PrevKv != nil {
						s += " prev " + r.kv(ev.PrevKv)
					}
					evs = append(evs, s)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("watch %s: %d events of %d: %v", name, len(evs), n, evs)
			}
		}
		r.add("watch "+name, "%s", strings.Join(evs, "; "))
	}
	collect("prefix", wa, 9)
	collect("key", wb, 3)
	collect("older key", wc, 2)
	wcancel()

	// Values of any size are watched, from the past and live, with their
	// prev_kv (Kubernetes objects are often over a few KiB).
	big := func(c byte) string { return strings.Repeat(string(c), 300<<10) }
	var from int64
	for i, v := range []string{big('a'), big('b'), big('c')} {
		pr, err := cli.Put(ctx, "big/k", v)
		r.err("put big", err)
		if i == 1 && err == nil {
			from = pr.Header.Revision
		}
	}
	_, err = cli.Delete(ctx, "big/k")
	r.err("delete big", err)
	brief := func(kv *mvccpb.KeyValue) string {
		if kv == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%s=%d×%q(m=%s v=%d)", kv.Key, len(kv.Value), kv.Value[:min(1, len(kv.Value))], r.rev(kv.ModRevision), kv.Version)
	}
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	var evs []string
	for wresp := range cli.Watch(bctx, "big/k", clientv3.WithRev(from), clientv3.WithPrevKV()) {
		for _, ev := range wresp.Events {
			evs = append(evs, fmt.Sprintf("%s %s prev %s", ev.Type, brief(ev.Kv), brief(ev.PrevKv)))
		}
		if len(evs) >= 3 || wresp.Err() != nil {
			break
		}
	}
	r.add("watch big from the past", "%s", strings.Join(evs, "; "))
	bcancel()

	// Reads at an older revision (Kubernetes' paginated lists, etcdctl get
	// --rev): after a lease renewal and a write elsewhere, the range reads
	// as it was; after writes to the range, too, from the change feed.
	for _, k := range []string{"page/a", "page/b", "page/c", "page/d"} {
		_, err := cli.Put(ctx, k, "v1-"+k)
		r.err("put "+k, err)
	}
	first, err := cli.Get(ctx, "page/", clientv3.WithPrefix(), clientv3.WithLimit(2))
	r.get("page 1", first, err)
	var at int64
	if err == nil {
		at = first.Header.Revision
	}
	pl, err := cli.Grant(ctx, 30)
	r.err("grant", err)
	if err == nil {
		_, err = cli.KeepAliveOnce(ctx, pl.ID)
		r.err("keepalive once", err)
	}
	_, err = cli.Put(ctx, "elsewhere", "x")
	r.err("put elsewhere", err)
	resp, err = cli.Get(ctx, "page/b\x00", clientv3.WithRange("page0"), clientv3.WithRev(at), clientv3.WithLimit(2))
	r.get("page 2 at page 1's revision, after unrelated writes", resp, err)
	_, err = cli.Put(ctx, "page/b", "v2")
	r.err("put page/b", err)
	_, err = cli.Delete(ctx, "page/c")
	r.err("delete page/c", err)
	_, err = cli.Put(ctx, "page/e", "new")
	r.err("put page/e", err)
	resp, err = cli.Get(ctx, "page/", clientv3.WithPrefix(), clientv3.WithRev(at))
	r.get("the range at page 1's revision, after writes to it", resp, err)
	resp, err = cli.Get(ctx, "page/", clientv3.WithPrefix(), clientv3.WithRev(at), clientv3.WithCountOnly())
	r.get("count at page 1's revision", resp, err)
	resp, err = cli.Get(ctx, "page/", clientv3.WithPrefix(), clientv3.WithRev(at), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(3))
	r.get("sorted by mod revision at page 1's revision", resp, err)
	tr, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("page/b"), "=", "v2")).
		Then(clientv3.OpGet("page/b", clientv3.WithRev(at)), clientv3.OpGet("page/c")).Commit()
	r.txn("read-only txn reading the past", tr, err)
	_, err = cli.Txn(ctx).Then(clientv3.OpPut("page/x", "1"), clientv3.OpGet("page/a", clientv3.WithRev(at))).Commit()
	r.err("write txn reading the past", err)
	tr, err = cli.Txn(ctx).Then(clientv3.OpDelete("page/y", clientv3.WithFromKey()), clientv3.OpPut("page/z", "z")).Commit()
	r.txn("delete from a key on, then put after it", tr, err)

	// Watches etcd refuses or reads specially, as a raw client sends them.
	wresp := <-cli.Watch(ctx, "b", clientv3.WithRange("a"))
	r.add("watch an empty range", "canceled=%v %v", wresp.Canceled, wresp.Err())
	ws, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []*pb.WatchCreateRequest{{Key: []byte("dup"), WatchId: 7}, {Key: []byte("dup"), WatchId: 7}, {WatchId: 8}} {
		if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}}); err != nil {
			t.Fatal(err)
		}
		wr, err := ws.Recv()
		if err != nil {
			t.Fatal(err)
		}
		r.add("raw watch create", "id=%d created=%v canceled=%v reason=%q", wr.WatchId, wr.Created, wr.Canceled, wr.CancelReason)
	}
	ws.CloseSend()

	// Software transactional memory at every isolation level.
	for _, iso := range []struct {
		name string
		opt  concurrency.Isolation
	}{{"serializable snapshot", concurrency.SerializableSnapshot}, {"serializable", concurrency.Serializable},
		{"repeatable reads", concurrency.RepeatableReads}, {"read committed", concurrency.ReadCommitted}} {
		_, err := cli.Put(ctx, "stm/a", "10")
		r.err("stm setup", err)
		_, err = concurrency.NewSTM(cli, func(stm concurrency.STM) error {
			stm.Put("stm/b", stm.Get("stm/a")+"+1")
			return nil
		}, concurrency.WithIsolation(iso.opt))
		r.err("stm "+iso.name, err)
		resp, err := cli.Get(ctx, "stm/b")
		r.get("stm "+iso.name+" wrote", resp, err)
	}

	// Mutex across two sessions.
	s1, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	s2, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	m1, m2 := concurrency.NewMutex(s1, "/lock/"), concurrency.NewMutex(s2, "/lock/")
	r.err("m1 lock", m1.Lock(ctx))
	r.err("m2 trylock held", m2.TryLock(ctx))
	resp, err = cli.Get(ctx, "/lock/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	r.get("lock keys", resp, err)
	r.err("m1 unlock", m1.Unlock(ctx))
	r.err("m2 lock", m2.Lock(ctx))
	r.add("m2 key is its own", "%v", m2.Key() != m1.Key())
	r.err("m2 unlock", m2.Unlock(ctx))

	// Election.
	e1 := concurrency.NewElection(s1, "/elect/")
	r.err("campaign", e1.Campaign(ctx, "v1"))
	lr, err := e1.Leader(ctx)
	if err == nil {
		kv := lr.Kvs[0]
		r.add("leader", "%q c=%s v=%d l=%s", kv.Value, r.rev(kv.CreateRevision), kv.Version, r.lease(kv.Lease))
	} else {
		r.err("leader", err)
	}
	r.err("proclaim", e1.Proclaim(ctx, "v2"))
	e2 := concurrency.NewElection(s2, "/elect/")
	lr, err = e2.Leader(ctx)
	if err == nil {
		r.add("leader seen by e2", "%s", lr.Kvs[0].Value)
	} else {
		r.err("leader seen by e2", err)
	}
	r.err("resign", e1.Resign(ctx))
	_, err = e2.Leader(ctx)
	r.err("leader after resign", err)
	r.err("close s1", s1.Close())
	r.err("close s2", s2.Close())
	resp, err = cli.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	r.get("after sessions", resp, err)
	return r.lines
}

// etcdctl runs etcdctl commands against an endpoint and returns their
// normalised output.
func etcdctl(t *testing.T, endpoint string) []string {
	t.Helper()
	var out []string
	took := regexp.MustCompile(`took = \S+`)
	for _, args := range [][]string{
		{"put", "ctl/a", "1"}, {"put", "ctl/b", "2"}, {"get", "ctl/a"}, {"get", "ctl/", "--prefix"},
		{"get", "ctl/", "--prefix", "--keys-only"}, {"del", "ctl/a"}, {"get", "ctl/", "--prefix"},
		{"del", "ctl/", "--prefix"}, {"endpoint", "health"}, {"user", "list"}, {"role", "list"},
		{"defrag"}, {"get", "ctl/", "--prefix", "--rev", "1"},
	} {
		cmd := exec.Command("etcdctl", append([]string{"--endpoints", endpoint, "--command-timeout", "10s"}, args...)...)
		cmd.Env = append(cmd.Environ(), "ETCDCTL_API=3")
		b, err := cmd.CombinedOutput()
		s := strings.ReplaceAll(string(b), endpoint, "ENDPOINT")
		s = took.ReplaceAllString(s, "took = T")
		out = append(out, fmt.Sprintf("etcdctl %s: %v %s", strings.Join(args, " "), err, strings.TrimSpace(s)))
	}
	return out
}

// TestDifferential runs the same clientv3 and etcdctl session against a
// real etcd and a 3-node Armada (the client spread over all three nodes)
// and requires the same normalised transcript.
func TestDifferential(t *testing.T) {
	requireEtcdTools(t)
	ref := startEtcdServer(t)
	nodes := startCluster(t)
	var eps []string
	for _, n := range nodes {
		eps = append(eps, n.etcd.Addr())
	}
	want := append(script(t, newClient(t, ref)), etcdctl(t, ref)...)
	got := append(script(t, newClient(t, eps...)), etcdctl(t, eps[1])...)
	if len(got) != len(want) {
		t.Errorf("%d lines from Armada, %d from etcd", len(got), len(want))
	}
	if diff := textdiff.Lines(want, got, "etcd", "armada", 0); diff != "" {
		t.Errorf("Armada differs from etcd:\n%s", diff)
	}
	if t.Failed() {
		t.Logf("etcd transcript:\n%s", strings.Join(want, "\n"))
	}
}
