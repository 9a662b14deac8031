package broker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

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
	sluice.EInternal:        http.StatusInternalServerError,
}

// reviewRoles may read the audit log and alerts through the admin API; no
// role reads data here.
var reviewRoles = map[sluice.Role]bool{sluice.RoleAuditor: true, sluice.RolePlatformAdmin: true}

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
		Handler:           http.MaxBytesHandler(s.AdminHandler(s.review, s.reviewKeys), 1<<20),
		TLSConfig:         s.tls.Clone(),
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

// AdminHandler serves the admin API's review endpoints (read-only):
//
//	GET /v1/alerts              alerts raised by the review rules
//	GET /v1/audit/entries       audit search (principal, department, dataset, column, purpose, decision, kind, query_id, since, until, limit)
//	GET /v1/audit/entries/{seq} one entry
//	GET /v1/audit/verify        verify the chain (and signatures with the broker's keys)
//
// Every call is authenticated with the same bearer tokens as Flight SQL and
// recorded in the audit log.
func (s *Server) AdminHandler(reader AuditReader, keys []audit.PublicKey) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		f, err := filterFromQuery(r, audit.KindAlert)
		if err != nil {
			writeError(w, err)
			return
		}
		entries, err := reader.Search(r.Context(), f)
		writeJSON(w, map[string]any{"alerts": nonNil(entries)}, err)
	})
	mux.HandleFunc("GET /v1/audit/entries", func(w http.ResponseWriter, r *http.Request) {
		f, err := filterFromQuery(r, "")
		if err != nil {
			writeError(w, err)
			return
		}
		entries, err := reader.Search(r.Context(), f)
		writeJSON(w, map[string]any{"entries": nonNil(entries)}, err)
	})
	mux.HandleFunc("GET /v1/audit/entries/{seq}", func(w http.ResponseWriter, r *http.Request) {
		seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
		if err != nil || seq < 1 {
			writeError(w, sluice.Errorf(sluice.EInvalid, "entry number %q is not a positive integer", r.PathValue("seq")))
			return
		}
		e, err := reader.Get(r.Context(), seq)
		writeJSON(w, e, err)
	})
	mux.HandleFunc("GET /v1/audit/verify", func(w http.ResponseWriter, r *http.Request) {
		var opts []audit.VerifyOption
		if len(keys) > 0 {
			opts = append(opts, audit.WithTrustedKeys(keys...), audit.WithUnsignedGrace(audit.DefaultCheckpointInterval+time.Minute))
		}
		rep, err := reader.Verify(r.Context(), opts...)
		writeJSON(w, rep, err)
	})
	return s.adminAuth(mux)
}

// adminAuth authenticates, checks the role, records the call, and answers
// anything else with a JSON error.
func (s *Server) adminAuth(next *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := next.Handler(r); pattern == "" {
			if r.Method != http.MethodGet {
				w.Header().Set("Allow", "GET")
				writeStatus(w, http.StatusMethodNotAllowed, "the review endpoints are read-only: use GET")
				return
			}
			writeStatus(w, http.StatusNotFound, "no such endpoint; see docs/admin-api.md")
			return
		}
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		p, ok := s.users.Authenticate(strings.TrimSpace(token))
		if !strings.EqualFold(scheme, "bearer") || token == "" || !ok {
			s.auditAdmin(r, sluice.Principal{Name: "(unauthenticated)"}, "auth", audit.DecisionDeny)
			writeError(w, sluice.Errorf(sluice.EUnauthenticated, "send 'Authorization: Bearer <token>' with a valid token"))
			return
		}
		if !reviewRoles[p.Role] {
			s.auditAdmin(r, p, audit.KindMetadata, audit.DecisionDeny)
			writeError(w, sluice.Errorf(sluice.EDenied, "role %s may not read the audit log; the auditor and platform admin roles may", p.Role))
			return
		}
		if err := s.auditAdmin(r, p, audit.KindMetadata, audit.DecisionAllow); err != nil {
			writeError(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) auditAdmin(r *http.Request, p sluice.Principal, kind, decision string) error {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return s.record(context.WithoutCancel(r.Context()), &audit.Entry{
		Kind: kind, QueryID: uuid.NewString(), Principal: p.Name, Role: string(p.Role), Department: p.Department,
		ClientAddr: host, Decision: decision, Reasons: []string{"admin " + r.Method + " " + r.URL.Path},
	})
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

func writeJSON(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
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
