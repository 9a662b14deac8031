// Package console is the broker's web console (docs/console.md), served on
// the admin listener under /console/ beside the admin API: server-rendered
// pages from html/template with their assets embedded, no scripts, in
// English and Chinese.
//
// It authenticates with the admin API's bearer tokens: the login form takes
// a token once and opens a server-side session (session.go) whose random id
// is the only thing the cookie holds; each request re-authenticates the
// token against the users of the state in force, so a revoked or expired
// token ends its sessions. Every form that changes anything is a POST
// carrying the session's CSRF token; every response carries a strict
// Content-Security-Policy. Roles are the admin API's: the audit pages are
// for auditors and platform admins, the catalog for every user. Every page
// view and action is recorded in the audit log through the same recorder as
// the admin API's calls, before it is served (no entry, no page).
//
// The package depends on the domain types, the state and the audit log,
// never on the Flight SQL service or the admin API.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/state"
)

// Prefix is the path the console is served under.
const Prefix = "/console/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Recorder writes an entry to the audit log (the admin API's recorder:
// alerts.Recorder).
type Recorder interface {
	Record(ctx context.Context, e *audit.Entry) error
}

// Reader is what the audit pages read: the admin API's AuditReader.
type Reader interface {
	Search(ctx context.Context, f audit.Filter) ([]audit.Entry, error)
	Get(ctx context.Context, seq int64) (*audit.Entry, error)
	Verify(ctx context.Context, opts ...audit.VerifyOption) (*audit.VerifyReport, error)
}

// checkpointer is the part of *audit.Log the chain status page reads for
// the last signed checkpoint, when the reader has it.
type checkpointer interface {
	Checkpoints(ctx context.Context) ([]audit.Checkpoint, error)
}

// Config is what the console is assembled from.
type Config struct {
	// State gives the state in force: its users authenticate the sessions,
	// its catalog is the catalog page.
	State state.Source
	// Review is the audit log the audit pages read; Keys verify its
	// checkpoint signatures.
	Review Reader
	Keys   []audit.PublicKey
	// Recorder records every page view and action (required).
	Recorder Recorder
	// Log is the operational logger (default: discarded); Now replaces
	// time.Now (tests).
	Log *slog.Logger
	Now func() time.Time
	// IdleTimeout ends a session not used for that long (default 30
	// minutes); MaxAge ends any session that old (default 12 hours).
	IdleTimeout, MaxAge time.Duration
}

// Console is the web console.
type Console struct {
	state    state.Source
	review   Reader
	keys     []audit.PublicKey
	rec      Recorder
	log      *slog.Logger
	now      func() time.Time
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
}

// roles that may open the audit pages (the admin API's reviewers).
var reviewers = []sluice.Role{sluice.RoleAuditor, sluice.RolePlatformAdmin}

// New assembles the console.
func New(c Config) (*Console, error) {
	if c.State == nil || c.Review == nil || c.Recorder == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "console: the state, the audit log and the recorder are required")
	}
	con := &Console{state: c.State, review: c.Review, keys: c.Keys, rec: c.Recorder, log: c.Log, now: c.Now}
	if con.log == nil {
		con.log = slog.New(slog.DiscardHandler)
	}
	if con.now == nil {
		con.now = time.Now
	}
	idle, maxAge := c.IdleTimeout, c.MaxAge
	if idle <= 0 {
		idle = 30 * time.Minute
	}
	if maxAge <= 0 {
		maxAge = 12 * time.Hour
	}
	con.sessions = newSessions(idle, maxAge, con.now)
	if err := con.parseTemplates(); err != nil {
		return nil, err
	}
	con.routes()
	return con, nil
}

func (c *Console) parseTemplates() error {
	c.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).Option("missingkey=error").ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return err
		}
		c.pages[base] = t
	}
	return nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	assets, _ := fs.Sub(assetFS, "assets")
	files := http.StripPrefix("/console/assets/", http.FileServerFS(assets))
	m.HandleFunc("GET /console/assets/{file}", func(w http.ResponseWriter, r *http.Request) { files.ServeHTTP(w, r) })
	m.HandleFunc("GET /console/login", c.loginPage)
	m.HandleFunc("POST /console/login", c.login)
	m.Handle("POST /console/logout", c.page(nil, c.logout))
	m.Handle("GET /console/{$}", c.page(nil, c.home))
	m.Handle("GET /console/catalog", c.page(nil, c.catalogPage))
	m.Handle("GET /console/audit", c.page(reviewers, c.auditList))
	m.Handle("GET /console/audit/{seq}", c.page(reviewers, c.auditEntry))
	m.Handle("GET /console/chain", c.page(reviewers, c.chainPage))
	c.mux = m
}

// Handler serves the console's paths (/console and below); mount it on the
// admin listener.
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		if r.URL.Path == "/console" {
			http.Redirect(w, r, Prefix, http.StatusSeeOther)
			return
		}
		if _, pattern := c.mux.Handler(r); pattern == "" {
			c.render(w, r, http.StatusNotFound, "error", &pageData{Title: "NotFound", Message: c.msg(r, "NotFound")})
			return
		}
		c.mux.ServeHTTP(w, r)
	})
}

// csp is the Content-Security-Policy of every response: nothing but the
// console's own stylesheet (and scripts, of which there are none today).
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}
