package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/armada-orchestrator/armada/internal/textdiff"
)

// authScript runs the same steps against an etcd with authentication on
// and root's password pass, at endpoints, and records what each answered.
func authScript(t *testing.T, pass string, endpoints ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	rec := func(step string, v any, err error) {
		if err != nil {
			out = append(out, fmt.Sprintf("%s: error %v", step, err))
			return
		}
		out = append(out, fmt.Sprintf("%s: %v", step, v))
	}
	login := func(user, password string) (*clientv3.Client, error) {
		return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
			Username: user, Password: password})
	}
	anon := newClient(t, endpoints...)
	_, err := anon.Put(ctx, "auth/k", "v")
	rec("put without credentials", nil, err)
	_, err = anon.Get(ctx, "auth/k")
	rec("get without credentials", nil, err)
	_, err = anon.Status(ctx, endpoints[0])
	rec("status without credentials", nil, err)
	ml, err := anon.MemberList(ctx)
	if err == nil {
		rec("member list without credentials", len(ml.Members) > 0, nil)
	} else {
		rec("member list without credentials", nil, err)
	}
	for _, c := range [][2]string{{"root", "wrong"}, {"nobody", pass}, {"", ""}} {
		cli, err := login(c[0], c[1])
		if err == nil {
			_, err = cli.Get(ctx, "auth/k")
			cli.Close()
		}
		rec(fmt.Sprintf("login %q", c[0]), nil, err)
	}
	root, err := login("root", pass)
	if err != nil {
		t.Fatalf("root login: %v", err)
	}
	defer root.Close()
	_, err = root.Put(ctx, "auth/k", "v")
	rec("root put", nil, err)
	g, err := root.Get(ctx, "auth/k")
	if err == nil {
		rec("root get", fmt.Sprintf("%d kvs, %s", len(g.Kvs), g.Kvs[0].Value), nil)
	} else {
		rec("root get", nil, err)
	}
	l, err := root.Grant(ctx, 30)
	if err == nil {
		_, err = root.KeepAliveOnce(ctx, l.ID)
	}
	rec("root lease", nil, err)
	w := root.Watch(ctx, "auth/w")
	_, err = root.Put(ctx, "auth/w", "x")
	if err == nil {
		select {
		case r := <-w:
			rec("root watch", fmt.Sprintf("%d events, %v", len(r.Events), r.Err()), nil)
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		rec("root watch", nil, err)
	}
	return out
}

func newAuthedClient(t *testing.T, pass string, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		Username: "root", Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// With a password (the cluster's --token) the adapter authenticates as an
// etcd with authentication on and root's password set: the same client
// steps get the same answers and refusals.
func TestAuthDifferential(t *testing.T) {
	const pass = "s3cret"
	ref := startEtcdServer(t)
	admin := newClient(t, ref)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := admin.UserAdd(ctx, "root", pass); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	want := authScript(t, pass, ref)
	nodes := startClusterWith(t, pass)
	got := authScript(t, pass, nodes[1].etcd.Addr())
	// etcd 3.4 has no AuthStatus (3.5 does, and so does the adapter).
	if st, err := newAuthedClient(t, pass, nodes[2].etcd.Addr()).AuthStatus(ctx); err != nil || !st.Enabled {
		t.Errorf("AuthStatus = %v, %v; want enabled", st, err)
	}
	if diff := textdiff.Lines(want, got, "etcd", "armada", 0); diff != "" {
		t.Errorf("Armada differs from etcd:\n%s", diff)
	}

	// The streams need the auth token too: a watch without one is
	// cancelled, a keep-alive refused.
	anon := newClient(t, nodes[0].etcd.Addr())
	wch := anon.Watch(ctx, "auth/w")
	select {
	case r := <-wch:
		if !errors.Is(r.Err(), rpctypes.ErrUserEmpty) {
			t.Errorf("watch without credentials: %v, canceled %v; want %v", r.Err(), r.Canceled, rpctypes.ErrUserEmpty)
		}
	case <-ctx.Done():
		t.Fatal("watch without credentials: no answer")
	}
	if _, err := anon.KeepAliveOnce(ctx, 1); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Errorf("keep-alive without credentials: %v, want %v", err, rpctypes.ErrUserEmpty)
	}

	// The auth token one node gives is good on the others.
	tokenOn := func(addr string) string {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		r, err := pb.NewAuthClient(conn).Authenticate(ctx, &pb.AuthenticateRequest{Name: "root", Password: pass})
		if err != nil {
			t.Fatal(err)
		}
		return r.Token
	}
	tok := tokenOn(nodes[0].etcd.Addr())
	for _, n := range nodes {
		conn, err := grpc.NewClient(n.etcd.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		kv := pb.NewKVClient(conn)
		_, err = kv.Range(metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, tok), &pb.RangeRequest{Key: []byte("auth/k")})
		if err != nil {
			t.Errorf("%s with %s's token: %v", n.name, nodes[0].name, err)
		}
		_, err = kv.Range(metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, tok+"x"), &pb.RangeRequest{Key: []byte("auth/k")})
		if !errors.Is(err, rpctypes.ErrGRPCInvalidAuthToken) && rpctypes.ErrorDesc(err) != rpctypes.ErrorDesc(rpctypes.ErrGRPCInvalidAuthToken) {
			t.Errorf("%s with a wrong token: %v", n.name, err)
		}
		conn.Close()
	}
}
