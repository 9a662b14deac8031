// Package adminapi is the broker's admin API over HTTPS: the review
// endpoints (audit log, alerts, usage), the data resource catalog and, when
// the broker has a workflow store, the data-sharing workflow
// (broker/workflow). The routes are the table in routes.go, documented in
// docs/openapi.yaml (a test keeps the two equal).
//
// Every call is authenticated with the same bearer tokens (or pinned client
// certificates) as Flight SQL, against the users of the state in force;
// the route's roles are checked; and the call is recorded in the audit log
// before it runs — a call that changes state is recorded before the change
// (no entry, no change) and its outcome after, like a query. Which
// principal may do what to which application, grant or dataset is the
// workflow's business.
//
// The package depends on the domain types, the state, the workflow, the
// audit log and the alerts recorder, never on the Flight SQL service.
package adminapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/broker/workflow"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

// maxAdminBody bounds request bodies; the largest legitimate one is a
// dataset classification.
const maxAdminBody = 1 << 20

// adminKind is the audit kind of a state-changing admin call, written
// before the change; its outcome follows as a result entry.
const adminKind = audit.KindAdmin

// Recorder writes an entry to the audit log (and lets the alert rules see
// it): alerts.Recorder.
type Recorder interface {
	Record(ctx context.Context, e *audit.Entry) error
}

// Config is what the admin API is assembled from.
type Config struct {
	// State gives the state in force: its users authenticate the calls,
	// its catalog answers the catalog endpoints. Default: Workflow.
	State state.Source
	// Workflow serves the workflow endpoints; without it they answer 501
	// Not Implemented (the broker's state comes from files).
	Workflow *workflow.Service
	// Review is the audit log the review endpoints read, and Keys the
	// public keys its checkpoints are verified with.
	Review AuditReader
	Keys   []audit.PublicKey
	// Recorder records every call (required).
	Recorder Recorder
	// TLS is the server's TLS configuration (required by Serve); client
	// certificates are asked for, not required.
	TLS *tls.Config
	// Log is the operational logger (default: discarded).
	Log *slog.Logger
	// Now replaces time.Now (tests).
	Now func() time.Time
	// Ops, when set, are the health, readiness and metrics endpoints
	// served beside the routes (ops.go).
	Ops *Ops
	// Console, when set, serves /console and below (broker/console).
	Console http.Handler
}

// API is the admin API.
type API struct {
	state      state.Source
	wf         *workflow.Service
	review     AuditReader
	reviewKeys []audit.PublicKey
	rec        Recorder
	tls        *tls.Config
	log        *slog.Logger
	now        func() time.Time
	ops        *Ops
	console    http.Handler
}

// New assembles the admin API.
func New(c Config) *API {
	a := &API{state: c.State, wf: c.Workflow, review: c.Review, reviewKeys: c.Keys, rec: c.Recorder, tls: c.TLS, log: c.Log, now: c.Now, ops: c.Ops, console: c.Console}
	if a.state == nil && a.wf != nil {
		a.state = a.wf
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
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

// Serve serves the admin API over TLS on lis until ctx ends.
func (a *API) Serve(ctx context.Context, lis net.Listener) error {
	if a.tls == nil {
		return sluice.Errorf(sluice.EInvalid, "broker: the admin API needs TLS; configure tls_cert and tls_key")
	}
	if a.review == nil {
		return sluice.Errorf(sluice.EInvalid, "broker: the admin API has no audit log to read")
	}
	hs := &http.Server{
		Handler:           a.Handler(),
		TLSConfig:         acceptClientCerts(a.tls),
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

// Handler serves the routes of Routes: unknown paths answer 404, known
// paths with another method 405 with the methods they take.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.Routes() {
		mux.Handle(rt.Method+" "+rt.Path, a.call(rt))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.console != nil && (r.URL.Path == "/console" || strings.HasPrefix(r.URL.Path, "/console/")) {
			a.console.ServeHTTP(w, r)
			return
		}
		if h := a.opsHandler(r); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			if allowed := a.allowedMethods(r.URL.Path); allowed != "" {
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

// call authenticates, checks the route's roles, records the call,
// runs it and writes the JSON answer or a JSON error.
func (a *API) call(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
		p, err := a.authenticate(r)
		if err != nil {
			a.auditCall(r, sluice.Principal{Name: "(unauthenticated)"}, audit.KindAuth, audit.DecisionDeny, "", err)
			writeError(w, err)
			return
		}
		kind := audit.KindMetadata
		if rt.Mutates {
			kind = adminKind
		}
		if len(rt.Roles) > 0 && !hasRole(rt.Roles, p.Role) {
			err := denied("role %s may not call %s %s; roles that may: %s", p.Role, rt.Method, rt.Path, roleList(rt.Roles))
			a.auditCall(r, p, kind, audit.DecisionDeny, "", err)
			writeError(w, err)
			return
		}
		if rt.Workflow && a.wf == nil {
			writeError(w, sluice.Errorf(sluice.ENotSupported, "this broker runs without a workflow store; its catalog, users and grants come from files"))
			return
		}
		callID := uuid.NewString()
		// Fail closed: no record of the call, no call.
		if err := a.auditCall(r, p, kind, audit.DecisionAllow, callID, nil); err != nil {
			writeError(w, err)
			return
		}
		out, err := rt.handle(r, p)
		if err != nil {
			out = nil // handlers return typed nil pointers with their errors
		}
		if rt.Mutates {
			a.auditOutcome(r, p, callID, out, err)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		switch v := out.(type) {
		case rawBody:
			w.Header().Set("Content-Type", v.contentType)
			w.Write(v.body)
		default:
			w.Header().Set("Content-Type", "application/json")
			if rt.Created {
				w.WriteHeader(http.StatusCreated)
			}
			json.NewEncoder(w).Encode(v)
		}
	})
}

type rawBody struct {
	contentType string
	body        []byte
}

func hasRole(roles []sluice.Role, r sluice.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

func roleList(roles []sluice.Role) string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return strings.Join(out, ", ")
}

// authenticate authenticates a bearer token, or a client certificate
// pinned to a user.
func (a *API) authenticate(r *http.Request) (sluice.Principal, error) {
	users := a.state.Current().Users
	// Strict headers: two credentials are refused, never resolved by
	// picking the first.
	if n := len(r.Header.Values("Authorization")); n > 1 {
		return sluice.Principal{}, sluice.Errorf(sluice.EUnauthenticated, "the request carries %d Authorization headers; send exactly one 'Authorization: Bearer <token>' (check that a proxy or client library does not add a second one)", n)
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, _ := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "bearer") || token == "" {
			return sluice.Principal{}, sluice.Errorf(sluice.EUnauthenticated, "send 'Authorization: Bearer <token>'")
		}
		p, ok := users.Authenticate(token)
		if !ok {
			return sluice.Principal{}, sluice.Errorf(sluice.EUnauthenticated, "the token is not valid: unknown, expired or revoked; ask the platform admin for a new one")
		}
		return p, nil
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if p, ok := users.AuthenticateCert(tlsutil.Fingerprint(r.TLS.PeerCertificates[0].Raw)); ok {
			return p, nil
		}
		return sluice.Principal{}, sluice.Errorf(sluice.EUnauthenticated, "the client certificate is not registered to any user; send a bearer token or ask the platform admin to register it")
	}
	return sluice.Principal{}, sluice.Errorf(sluice.EUnauthenticated, "send 'Authorization: Bearer <token>' with a valid token")
}

// auditCall records an admin call: kind metadata for reads, admin for
// changes (before the change), auth for failed authentication.
func (a *API) auditCall(r *http.Request, p sluice.Principal, kind, decision, callID string, cause error) error {
	if callID == "" {
		callID = uuid.NewString()
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	e := &audit.Entry{
		Kind: kind, QueryID: callID, Principal: p.Name, Role: string(p.Role), Department: p.Department,
		ClientAddr: host, Decision: decision, Reasons: []string{"admin " + r.Method + " " + r.URL.Path},
	}
	if r.URL.RawQuery != "" {
		e.SQL = truncate("?"+r.URL.RawQuery, 4096)
	}
	if cause != nil {
		e.Error = sluice.ErrorMessage(cause)
	}
	return a.rec.Record(context.WithoutCancel(r.Context()), e)
}

// auditOutcome records how a state change ended, with the ids it touched.
func (a *API) auditOutcome(r *http.Request, p sluice.Principal, callID string, out any, cause error) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	e := &audit.Entry{
		Kind: audit.KindResult, QueryID: callID, Principal: p.Name, Role: string(p.Role), Department: p.Department,
		ClientAddr: host, Decision: audit.DecisionAllow, Reasons: []string{"admin " + r.Method + " " + r.URL.Path},
		Obligations: outcomeDetails(out),
	}
	if ds := outcomeDatasets(out); len(ds) > 0 {
		e.Datasets = ds
	}
	if cause != nil {
		e.Decision = audit.DecisionError
		if sluice.ErrorCode(cause) == sluice.EDenied {
			e.Decision = audit.DecisionDeny
		}
		e.Error = sluice.ErrorMessage(cause)
	}
	if err := a.rec.Record(context.WithoutCancel(r.Context()), e); err != nil {
		a.log.Error("audit append of an admin outcome failed", "call", callID, "err", err)
	}
}

// outcomeDetails keeps what identifies a change in its audit entry; never
// a token secret.
func outcomeDetails(out any) map[string]any {
	switch v := out.(type) {
	case *sluice.Application:
		return map[string]any{"application": v.ID, "status": string(v.Status), "grants": v.GrantIDs, "refusal_basis": v.RefusalBasis}
	case *sluice.Grant:
		return map[string]any{"grant": v.ID, "revoked": v.Revoked}
	case *sluice.CatalogChange:
		return map[string]any{"catalog_change": v.Version, "action": v.Action, "catalog_version": v.CatalogVersion, "summary": v.Summary}
	case *workflow.IssuedToken:
		return map[string]any{"token_id": v.ID, "user": v.User, "expires_at": v.ExpiresAt}
	case *sluice.User:
		return map[string]any{"user": v.Name, "role": string(v.Role), "department": v.Department, "disabled": v.Disabled}
	case *sluice.Purpose:
		return map[string]any{"purpose": v.Code}
	case *sluice.ErrorReport:
		return map[string]any{"report": v.ID, "status": string(v.Status)}
	case map[string]any:
		return v
	}
	return nil
}

func outcomeDatasets(out any) []string {
	switch v := out.(type) {
	case *sluice.Application:
		ds := make([]string, len(v.Items))
		for i, it := range v.Items {
			ds[i] = it.Dataset
		}
		return ds
	case *sluice.Grant:
		return []string{v.Dataset}
	case *sluice.CatalogChange:
		if v.Dataset != "" {
			return []string{v.Dataset}
		}
	case *sluice.ErrorReport:
		return []string{v.Dataset}
	}
	return nil
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

func denied(format string, args ...any) error {
	return sluice.Errorf(sluice.EDenied, format, args...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(truncated)"
}
