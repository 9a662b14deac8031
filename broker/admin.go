package broker

import (
	"crypto/tls"

	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
)

// AuditReader is what the review endpoints of the admin API read.
type AuditReader interface {
	Search(ctx context.Context, f audit.Filter) ([]audit.Entry, error)
	Get(ctx context.Context, seq int64) (*audit.Entry, error)
	Verify(ctx context.Context, opts ...audit.VerifyOption) (*audit.VerifyReport, error)
}

// httpStatus maps the core's error codes at the HTTP edge.
var httpStatus = map[string]int{
	sluice.EInvalid:         http.StatusBadRequest,
	sluice.EUnauthenticated: http.StatusUnauthorized,
	sluice.EDenied:          http.StatusForbidden,
	sluice.ENotFound:        http.StatusNotFound,
	sluice.ENotSupported:    http.StatusNotImplemented,
	sluice.EUnavailable:     http.StatusServiceUnavailable,
	sluice.EResource:        http.StatusTooManyRequests,
	sluice.EConflict:        http.StatusConflict,
	sluice.EInternal:        http.StatusInternalServerError,
}

// WithReview gives the admin API the audit log to read and the public keys
// to verify its checkpoints with.
func WithReview(r AuditReader, keys []audit.PublicKey) Option {
	return func(s *Server) { s.review, s.reviewKeys = r, keys }
}

// ServeAdmin serves the admin API over TLS on lis until ctx ends.
func (s *Server) ServeAdmin(ctx context.Context, lis net.Listener) error {
	if s.tls == nil {
		return sluice.Errorf(sluice.EInvalid, "broker: the admin API needs TLS; configure tls_cert and tls_key")
	}
	if s.review == nil {
		return sluice.Errorf(sluice.EInvalid, "broker: the admin API has no audit log to read")
	}
	hs := &http.Server{
		Handler:           s.AdminHandler(s.review, s.reviewKeys),
		TLSConfig:         acceptClientCerts(s.tls),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		ErrorLog:          nil,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(lis, "", "") }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	return nil
}

// AdminHandler serves the admin API: the review endpoints (audit log,
// alerts) and, when the broker has a workflow store, the data-sharing
// workflow. The routes are the table in adminapi.go, documented in
// docs/openapi.yaml (a test keeps the two equal). Every call is
// authenticated with the same bearer tokens as Flight SQL and recorded in
// the audit log; a call that changes state is recorded before it runs and
// its outcome after, like a query.
func (s *Server) AdminHandler(reader AuditReader, keys []audit.PublicKey) http.Handler {
	s.review, s.reviewKeys = reader, keys
	mux := http.NewServeMux()
	for _, rt := range s.adminRoutes() {
		mux.Handle(rt.Method+" "+rt.Path, s.adminCall(rt))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			if allowed := s.allowedMethods(r.URL.Path); allowed != "" {
				w.Header().Set("Allow", allowed)
				writeStatus(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path+"; use "+allowed)
				return
			}
			writeStatus(w, http.StatusNotFound, "no such endpoint; see docs/openapi.yaml")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) verifyAudit(r *http.Request, _ sluice.Principal) (any, error) {
	var opts []audit.VerifyOption
	if len(s.reviewKeys) > 0 {
		opts = append(opts, audit.WithTrustedKeys(s.reviewKeys...), audit.WithUnsignedGrace(audit.DefaultCheckpointInterval+time.Minute))
	}
	return s.review.Verify(r.Context(), opts...)
}

func filterFromQuery(r *http.Request, kind string) (audit.Filter, error) {
	q := r.URL.Query()
	known := map[string]bool{"principal": true, "department": true, "dataset": true, "column": true, "purpose": true,
		"decision": true, "kind": true, "query_id": true, "since": true, "until": true, "limit": true}
	for k := range q {
		if !known[k] {
			return audit.Filter{}, sluice.Errorf(sluice.EInvalid, "unknown query parameter %q", k)
		}
	}
	f := audit.Filter{Principal: q.Get("principal"), Department: q.Get("department"), Dataset: q.Get("dataset"),
		Column: q.Get("column"), Purpose: q.Get("purpose"), Decision: q.Get("decision"), Kind: q.Get("kind"), QueryID: q.Get("query_id")}
	if kind != "" {
		f.Kind = kind
	}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, sluice.Errorf(sluice.EInvalid, "%s must be an RFC 3339 time such as 2026-11-22T08:00:00+08:00", name)
			}
			*dst = t
		}
	}
	f.Limit = 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxReadLimit {
			return f, sluice.Errorf(sluice.EInvalid, "limit must be between 1 and %d", audit.MaxReadLimit)
		}
		f.Limit = n
	}
	return f, nil
}

func nonNil(es []audit.Entry) []audit.Entry {
	if es == nil {
		return []audit.Entry{}
	}
	return es
}

func writeError(w http.ResponseWriter, err error) {
	code, ok := httpStatus[sluice.ErrorCode(err)]
	if !ok || !errors.As(err, new(*sluice.Error)) {
		code = http.StatusInternalServerError
	}
	writeStatus(w, code, sluice.ErrorMessage(err))
}

func writeStatus(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
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
