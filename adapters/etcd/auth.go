package etcd

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Authentication. On a node started with --token (Config.Password) the
// adapter runs as an etcd with authentication on and one user, root,
// whose password is the token: clientv3's Username and Password (etcdctl
// --user root:<token>) authenticate, and every other call must carry the
// auth token Authenticate gave. The auth token is derived from the
// password, so every node gives and takes the same one and a client that
// moves to another node keeps working; it does not expire, and changing
// --token is what revokes it. There are no other users, roles or
// permissions: root may do everything. As in etcd, Status and MemberList
// need no token. Without a password, Authenticate answers that
// authentication is not enabled, as etcd does.

// rootUser is the one user there is.
const rootUser = "root"

// openMethod reports whether a method needs no auth token, as in etcd.
func openMethod(method string) bool {
	switch method {
	case "/etcdserverpb.Auth/Authenticate", "/etcdserverpb.Maintenance/Status", "/etcdserverpb.Cluster/MemberList":
		return true
	}
	return false
}

type authServer struct {
	pb.UnimplementedAuthServer
	s *Server
}

// Authenticate implements pb.AuthServer.
func (a *authServer) Authenticate(_ context.Context, req *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	if a.s.cfg.Password == "" {
		return nil, rpctypes.ErrGRPCAuthNotEnabled
	}
	if req.Name != rootUser || subtle.ConstantTimeCompare([]byte(req.Password), []byte(a.s.cfg.Password)) != 1 {
		return nil, rpctypes.ErrGRPCAuthFailed
	}
	return &pb.AuthenticateResponse{Header: a.s.currentHeader(), Token: a.s.authTok}, nil
}

// AuthStatus implements pb.AuthServer.
func (a *authServer) AuthStatus(context.Context, *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return &pb.AuthStatusResponse{Header: a.s.currentHeader(), Enabled: a.s.cfg.Password != ""}, nil
}

// UserList lists the users: root, once auth is on (with a password), as
// etcd lists its users; none before, as an etcd without users.
func (a *authServer) UserList(context.Context, *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	resp := &pb.AuthUserListResponse{Header: a.s.currentHeader()}
	if a.s.cfg.Password != "" {
		resp.Users = []string{rootUser}
	}
	return resp, nil
}

// RoleList lists the roles: root's, once auth is on.
func (a *authServer) RoleList(context.Context, *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	resp := &pb.AuthRoleListResponse{Header: a.s.currentHeader()}
	if a.s.cfg.Password != "" {
		resp.Roles = []string{rootUser}
	}
	return resp, nil
}

// authToken is the auth token Authenticate gives root for password.
func authToken(password string) string {
	m := hmac.New(sha256.New, []byte(password))
	m.Write([]byte("armada etcd auth token"))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// checkToken refuses a call without root's auth token, with etcd's
// errors: none is "user name is empty", a wrong one "invalid auth token"
// (on which clientv3 authenticates again).
func (s *Server) checkToken(ctx context.Context, method string) error {
	if openMethod(method) {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	toks := md.Get(rpctypes.TokenFieldNameGRPC)
	if len(toks) == 0 || toks[0] == "" {
		return rpctypes.ErrGRPCUserEmpty
	}
	if subtle.ConstantTimeCompare([]byte(toks[0]), []byte(s.authTok)) != 1 {
		return rpctypes.ErrGRPCInvalidAuthToken
	}
	return nil
}

// authOptions are the server options that check tokens, when there is a
// password.
func (s *Server) authOptions() []grpc.ServerOption {
	if s.cfg.Password == "" {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := s.checkToken(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := s.checkToken(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}
