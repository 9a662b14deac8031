package broker

import (
	"context"
	"crypto/tls"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

type principalKey struct{}

// principalFrom returns the authenticated caller the interceptors stored.
func principalFrom(ctx context.Context) (sluice.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(sluice.Principal)
	return p, ok
}

// authenticate checks the bearer token of every call before any handler
// runs; a failed attempt is audited (without the token).
func (s *Server) authenticate(ctx context.Context, method string) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	// Strict headers: a credential sent twice is refused, never resolved
	// by picking one (which one a proxy or driver put first is not the
	// caller's declared intent).
	if n := len(md.Get("authorization")); n > 1 {
		err := sluice.Errorf(sluice.EUnauthenticated, "the request carries %d authorization headers; send exactly one 'authorization: Bearer <token>' (check that the token is not set both in the DSN and by a proxy or interceptor)", n)
		s.auditAuthFailure(ctx, method, err)
		return nil, toStatus(err)
	}
	var token string
	if vals := md.Get("authorization"); len(vals) > 0 {
		scheme, rest, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
		if ok && strings.EqualFold(scheme, "bearer") {
			token = strings.TrimSpace(rest)
		}
	}
	if token == "" {
		// A client certificate registered to a user is the alternative
		// to a token (mutual TLS).
		if fp := peerCertFingerprint(ctx); fp != "" {
			if p, ok := s.snap().Users.AuthenticateCert(fp); ok {
				return s.authenticated(ctx, method, p)
			}
		}
		err := sluice.Errorf(sluice.EUnauthenticated, "no bearer token: send 'authorization: Bearer <token>' (Flight SQL driver: token=<token> in the DSN; sluice query: --token)")
		s.auditAuthFailure(ctx, method, err)
		return nil, toStatus(err)
	}
	p, ok := s.snap().Users.Authenticate(token)
	if !ok {
		err := sluice.Errorf(sluice.EUnauthenticated, "the token is not valid: it is unknown, expired, revoked or mistyped; ask your platform admin for a new one")
		s.auditAuthFailure(ctx, method, err)
		return nil, toStatus(err)
	}
	return s.authenticated(ctx, method, p)
}

// authenticated admits an authenticated caller once its other headers are
// unambiguous: a purpose declared twice is refused (InvalidArgument), as
// is a credential sent twice (above), and the refusal is audited under the
// caller's name.
func (s *Server) authenticated(ctx context.Context, method string, p sluice.Principal) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if vals := md.Get(PurposeHeader); len(vals) > 1 {
		err := sluice.Errorf(sluice.EInvalid, "the request declares %d purposes (%d %s headers); send exactly one '%s: <purpose>' (Flight SQL driver: %s=<purpose> once in the DSN; sluice query: --purpose once)", len(vals), len(vals), PurposeHeader, PurposeHeader, PurposeHeader)
		e := &audit.Entry{
			Kind:       "auth",
			QueryID:    uuid.NewString(),
			Principal:  p.Name,
			Role:       string(p.Role),
			Department: p.Department,
			ClientAddr: clientAddr(ctx),
			Decision:   "deny",
			Reasons:    []string{method},
			Error:      sluice.ErrorMessage(err),
		}
		if aerr := s.record(context.WithoutCancel(ctx), e); aerr != nil {
			s.log.Error("audit append failed for a request with duplicate purpose headers", "err", aerr)
		}
		return nil, toStatus(err)
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

func (s *Server) auditAuthFailure(ctx context.Context, method string, cause error) {
	e := &audit.Entry{
		Kind:       "auth",
		QueryID:    uuid.NewString(),
		Principal:  "(unauthenticated)",
		Purpose:    purposeHeader(ctx),
		ClientAddr: clientAddr(ctx),
		Decision:   "deny",
		Reasons:    []string{method},
		Error:      sluice.ErrorMessage(cause),
	}
	if err := s.record(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("audit append failed for a refused authentication", "err", err)
	}
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a *authedStream) Context() context.Context { return a.ctx }

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &authedStream{ServerStream: ss, ctx: ctx})
}

// purposeHeader reads the declared purpose; empty when absent or declared
// more than once (which the interceptor refuses).
func purposeHeader(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(PurposeHeader); len(v) == 1 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

func clientAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// peerCertFingerprint is the fingerprint of the client's certificate, when
// it sent one ("" otherwise). The TLS handshake has proved the client holds
// its key; whether it belongs to a user is the lookup's business.
func peerCertFingerprint(ctx context.Context) string {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return ""
	}
	return tlsutil.Fingerprint(ti.State.PeerCertificates[0].Raw)
}

// acceptClientCerts asks clients for a certificate without requiring one:
// a certificate pinned to a user is an alternative to a bearer token.
func acceptClientCerts(c *tls.Config) *tls.Config {
	c = c.Clone()
	if c.ClientAuth == tls.NoClientCert {
		c.ClientAuth = tls.RequestClientCert
	}
	return c
}
