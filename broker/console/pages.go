package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
)

// maxForm bounds a form body; the largest is the login form.
const maxForm = 16 << 10

// pageData is what every template gets; the page's own part is in Page.
type pageData struct {
	T          map[string]string
	Lang       string
	LangEN     string
	LangZH     string
	Title      string // message key
	Principal  *sluice.Principal
	RoleName   string
	CSRF       string
	IsReviewer bool
	Message    string
	Page       any
}

var funcs = template.FuncMap{
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	},
	"pretty": func(v any) string {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		enc.Encode(v)
		return strings.TrimSpace(buf.String())
	},
	"join":  strings.Join,
	"list3": func(a, b, c string) []string { return []string{a, b, c} },
	"list4": func(a, b, c, d string) []string { return []string{a, b, c, d} },
}

// handler is a page's own work, after authentication, the role check, the
// CSRF check and the audit record.
type handler func(w http.ResponseWriter, r *http.Request, d *pageData) (status int, page string)

// page wraps a page: it resolves the session, checks the CSRF token of a
// POST, checks roles (nil: every signed-in user), records the view in the
// audit log before serving it, and renders.
func (c *Console) page(roles []sluice.Role, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := c.base(w, r)
		ck, _ := r.Cookie(sessionCookie)
		var ss *session
		if ck != nil {
			ss = c.sessions.get(ck.Value)
		}
		var p sluice.Principal
		ok := false
		if ss != nil {
			p, ok = c.state.Current().Users.Authenticate(ss.token)
			if !ok {
				// The token was revoked or expired: so is the session.
				c.sessions.remove(ck.Value)
			}
		}
		if !ok {
			if r.Method != http.MethodGet {
				c.render(w, r, http.StatusForbidden, "error", c.withMessage(d, "Forbidden", c.tr(d, "NoSession")))
				return
			}
			http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
			return
		}
		d.Principal = &p
		d.RoleName = c.tr(d, "role_"+string(p.Role))
		d.CSRF = ss.csrf
		d.IsReviewer = hasRole(reviewers, p.Role)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if !sameOrigin(r) || !equalToken(r.PostFormValue("csrf"), ss.csrf) {
				err := sluice.Errorf(sluice.EDenied, "console: the form's CSRF token is missing or wrong")
				c.audit(r, p, audit.KindMetadata, audit.DecisionDeny, err)
				c.render(w, r, http.StatusForbidden, "error", c.withMessage(d, "Forbidden", c.tr(d, "BadCSRF")))
				return
			}
		}
		if len(roles) > 0 && !hasRole(roles, p.Role) {
			err := sluice.Errorf(sluice.EDenied, "role %s may not open %s; roles that may: %s", p.Role, r.URL.Path, roleList(roles))
			c.audit(r, p, audit.KindMetadata, audit.DecisionDeny, err)
			names := make([]string, len(roles))
			for i, x := range roles {
				names[i] = c.tr(d, "role_"+string(x))
			}
			c.render(w, r, http.StatusForbidden, "error", c.withMessage(d, "Forbidden",
				fmt.Sprintf(c.tr(d, "RoleDenied"), d.RoleName, strings.Join(names, c.tr(d, "ListSep")))))
			return
		}
		// Fail closed: no record of the view, no page.
		if err := c.audit(r, p, audit.KindMetadata, audit.DecisionAllow, nil); err != nil {
			c.render(w, r, http.StatusServiceUnavailable, "error", c.withMessage(d, "Unavailable", c.tr(d, "AuditDown")))
			return
		}
		status, name := h(w, r, d)
		if name == "" {
			return // the handler answered (a redirect)
		}
		c.render(w, r, status, name, d)
	})
}

// base is the page data before authentication: the language and its
// switch links.
func (c *Console) base(w http.ResponseWriter, r *http.Request) *pageData {
	lang := c.language(w, r)
	d := &pageData{T: messages[lang], Lang: lang}
	d.LangEN, d.LangZH = langURL(r, "en"), langURL(r, "zh")
	return d
}

func (c *Console) withMessage(d *pageData, title, msg string) *pageData {
	d.Title, d.Message = title, msg
	return d
}

func (c *Console) tr(d *pageData, key string) string {
	if s, ok := d.T[key]; ok {
		return s
	}
	return key
}

// msg is a message in r's language, outside a page.
func (c *Console) msg(r *http.Request, key string) string {
	return messages[requestLang(r)][key]
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, d *pageData) {
	if d.T == nil {
		lang := requestLang(r)
		d.T, d.Lang = messages[lang], lang
		d.LangEN, d.LangZH = langURL(r, "en"), langURL(r, "zh")
	}
	t := c.pages[name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", d); err != nil {
		c.log.Error("console page failed to render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// audit records a console request like an admin API call: kind metadata
// for views and actions, auth for a failed sign-in.
func (c *Console) audit(r *http.Request, p sluice.Principal, kind, decision string, cause error) error {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	e := &audit.Entry{
		Kind: kind, QueryID: uuid.NewString(), Principal: p.Name, Role: string(p.Role), Department: p.Department,
		ClientAddr: host, Decision: decision, Reasons: []string{"console " + r.Method + " " + r.URL.Path},
	}
	if r.URL.RawQuery != "" {
		e.SQL = truncate("?"+r.URL.RawQuery, 4096)
	}
	if cause != nil {
		e.Error = sluice.ErrorMessage(cause)
	}
	err := c.rec.Record(context.WithoutCancel(r.Context()), e)
	if err != nil {
		c.log.Error("audit append of a console request failed", "path", r.URL.Path, "err", err)
	}
	return err
}

// sameOrigin refuses a POST whose Origin (when the browser sends one)
// is another site: a second line behind the CSRF token.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(truncated)"
}

// loginPage shows the sign-in form with a fresh login CSRF token.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	d := c.base(w, r)
	c.showLogin(w, r, d, http.StatusOK, "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, d *pageData, status int, msg string) {
	tok := randomToken()
	http.SetCookie(w, secureCookie(loginCookie, tok, "/", 600))
	d.Title, d.CSRF, d.Message = "SignIn", tok, msg
	c.render(w, r, status, "login", d)
}

// login exchanges a bearer token for a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	d := c.base(w, r)
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	ck, _ := r.Cookie(loginCookie)
	if ck == nil || !sameOrigin(r) || !equalToken(r.PostFormValue("csrf"), ck.Value) {
		err := sluice.Errorf(sluice.EDenied, "console: the sign-in form's CSRF token is missing or wrong")
		c.audit(r, sluice.Principal{Name: "(unauthenticated)"}, audit.KindAuth, audit.DecisionDeny, err)
		c.render(w, r, http.StatusForbidden, "error", c.withMessage(d, "Forbidden", c.tr(d, "BadCSRF")))
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	p, ok := c.state.Current().Users.Authenticate(token)
	if token == "" || !ok {
		err := sluice.Errorf(sluice.EUnauthenticated, "console sign-in: the token is not valid: unknown, expired or revoked")
		c.audit(r, sluice.Principal{Name: "(unauthenticated)"}, audit.KindAuth, audit.DecisionDeny, err)
		c.showLogin(w, r, d, http.StatusUnauthorized, c.tr(d, "BadToken"))
		return
	}
	// Fail closed: the sign-in is recorded before the session exists.
	if err := c.audit(r, p, audit.KindMetadata, audit.DecisionAllow, nil); err != nil {
		c.render(w, r, http.StatusServiceUnavailable, "error", c.withMessage(d, "Unavailable", c.tr(d, "AuditDown")))
		return
	}
	id, _ := c.sessions.create(token)
	if id == "" {
		c.render(w, r, http.StatusServiceUnavailable, "error", c.withMessage(d, "Unavailable", c.tr(d, "TooManySessions")))
		return
	}
	http.SetCookie(w, secureCookie(sessionCookie, id, "/", 0))
	http.SetCookie(w, secureCookie(loginCookie, "", "/", -1))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, d *pageData) (int, string) {
	if ck, _ := r.Cookie(sessionCookie); ck != nil {
		c.sessions.remove(ck.Value)
	}
	http.SetCookie(w, secureCookie(sessionCookie, "", "/", -1))
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
	return 0, ""
}

func (c *Console) home(w http.ResponseWriter, r *http.Request, d *pageData) (int, string) {
	to := Prefix + "catalog"
	if d.IsReviewer {
		to = Prefix + "audit"
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return 0, ""
}
