package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/adminapi"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/console"
	"github.com/sluice-gov/sluice/broker/state"
)

// logRecorder records into the real audit log, as the broker's recorder
// does.
type logRecorder struct{ l *audit.Log }

func (r logRecorder) Record(ctx context.Context, e *audit.Entry) error { return r.l.Append(ctx, e) }

type world struct {
	t   testing.TB
	log *audit.Log
	srv *httptest.Server
}

var users = []struct {
	name string
	role sluice.Role
	dept string
}{
	{"bob", sluice.RoleAnalyst, "market"},
	{"carol", sluice.RoleAuditor, "audit"},
	{"dave", sluice.RolePlatformAdmin, "platform"},
}

func testCatalog(t testing.TB) *sluice.Catalog {
	t.Helper()
	cat, err := sluice.NewCatalog(
		&sluice.Department{ID: "police", Name: "Public Security Bureau", Datasets: []*sluice.Dataset{{
			Name: "household", Table: "household", Title: "Household register", ShareClass: sluice.ShareConditional,
			LegalBasis: "Household Registration Regulations, art. 7", UpdateFrequency: "daily",
			Columns: []*sluice.Column{
				{Name: "id_number", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseJoinKey, KeyDomain: "citizen"},
				{Name: "name", Type: sluice.TypeText, Grade: sluice.GradeL3, Release: sluice.ReleaseMasked, Mask: sluice.MaskRule("name")},
				{Name: "district", Type: sluice.TypeText, Grade: sluice.GradeL2, Release: sluice.ReleasePlain},
				{Name: "notes", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseHidden},
			},
		}}},
		&sluice.Department{ID: "market", Name: "Market Regulation Administration", Datasets: []*sluice.Dataset{{
			Name: "enterprises", Table: "enterprises", ShareClass: sluice.ShareUnconditional,
			Columns: []*sluice.Column{{Name: "name", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain}},
		}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// newWorld is the console mounted on the real admin API handler over TLS,
// over a real SQLite audit log with a signing key that is also the
// recorder, like the broker's.
func newWorld(t testing.TB, opts ...audit.Option) *world {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	ed, err := audit.LoadOrCreateEd25519(filepath.Join(dir, "ed.pem"))
	if err != nil {
		t.Fatal(err)
	}
	lg, err := audit.Open(ctx, filepath.Join(dir, "broker.db"), append([]audit.Option{audit.WithSigners(ed), audit.WithCheckpointEvery(5, time.Hour)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	var recs []state.UserRecord
	for _, u := range users {
		recs = append(recs, state.UserRecord{Name: u.name, Role: u.role, Department: u.dept, TokenSHA256: state.HashToken("tok-" + u.name)})
	}
	us, err := state.NewUsers(recs)
	if err != nil {
		t.Fatal(err)
	}
	src := state.Static(state.New(testCatalog(t), nil, nil, us, nil, nil))
	keys := []audit.PublicKey{{Algorithm: ed.Algorithm(), Key: ed.PublicKey()}}
	con, err := console.New(console.Config{State: src, Review: lg, Keys: keys, Recorder: logRecorder{lg}})
	if err != nil {
		t.Fatal(err)
	}
	api := adminapi.New(adminapi.Config{State: src, Review: lg, Keys: keys, Recorder: logRecorder{lg}, Console: con.Handler()})
	w := &world{t: t, log: lg, srv: httptest.NewTLSServer(api.Handler())}
	t.Cleanup(w.srv.Close)
	return w
}

// client is a browser: cookies kept, redirects not followed.
func (w *world) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := *w.srv.Client() // a copy: the server's client is shared
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (w *world) do(c *http.Client, method, path string, form url.Values) (*http.Response, string) {
	w.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, w.srv.URL+path, body)
	if err != nil {
		w.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in the page:\n%s", page)
	}
	return m[1]
}

// login signs in as user through the form and returns the browser and the
// login response.
func (w *world) login(user string) (*http.Client, *http.Response) {
	w.t.Helper()
	c := w.client()
	_, page := w.do(c, "GET", "/console/login", nil)
	resp, _ := w.do(c, "POST", "/console/login", url.Values{"csrf": {csrfOf(w.t, page)}, "token": {"tok-" + user}})
	if resp.StatusCode != http.StatusSeeOther {
		w.t.Fatalf("login as %s: status %d, want 303", user, resp.StatusCode)
	}
	return c, resp
}

func TestLoginSetsSecureSessionCookie(t *testing.T) {
	w := newWorld(t)
	_, resp := w.login("carol")
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-sluice-console" {
			sess = c
		}
	}
	if sess == nil {
		t.Fatalf("no session cookie; Set-Cookie: %v", resp.Header.Values("Set-Cookie"))
	}
	if !sess.HttpOnly || !sess.Secure || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/" || sess.Domain != "" {
		t.Errorf("session cookie attributes: %+v; want HttpOnly, Secure, SameSite=Strict, Path=/, no Domain", sess)
	}
	if len(sess.Value) < 40 || strings.Contains(sess.Value, "tok-carol") {
		t.Errorf("session id %q is not a long random id (or carries the token)", sess.Value)
	}
	if loc := resp.Header.Get("Location"); loc != "/console/" {
		t.Errorf("login redirects to %q", loc)
	}
	// The sign-in is audited, the token never.
	es, err := w.log.Search(context.Background(), audit.Filter{Principal: "carol"})
	if err != nil || len(es) == 0 {
		t.Fatalf("no audit entry for the sign-in: %v", err)
	}
	for _, e := range es {
		if strings.Contains(fmt.Sprint(e), "tok-carol") {
			t.Errorf("an audit entry carries the token: %+v", e)
		}
	}
}

func TestLoginRefusesBadTokenAndAudits(t *testing.T) {
	w := newWorld(t)
	c := w.client()
	_, page := w.do(c, "GET", "/console/login", nil)
	resp, body := w.do(c, "POST", "/console/login", url.Values{"csrf": {csrfOf(t, page)}, "token": {"tok-mallory"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
		t.Fatalf("bad token: status %d\n%s", resp.StatusCode, body)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-sluice-console" && ck.Value != "" {
			t.Fatal("a session cookie for a bad token")
		}
	}
	es, _ := w.log.Search(context.Background(), audit.Filter{Kind: audit.KindAuth, Decision: audit.DecisionDeny})
	if len(es) != 1 || es[0].Reasons[0] != "console POST /console/login" {
		t.Fatalf("refused sign-in audited as %+v", es)
	}
}

func TestSecurityHeadersOnEveryPage(t *testing.T) {
	w := newWorld(t)
	anon := w.client()
	carol, _ := w.login("carol")
	bob, _ := w.login("bob")
	seq := w.appendDenied(t)
	cases := []struct {
		c    *http.Client
		path string
		code int
	}{
		{anon, "/console/login", 200},
		{anon, "/console/catalog", 303},
		{anon, "/console/nope", 404},
		{anon, "/console/assets/console.css", 200},
		{anon, "/console/assets/", 404},
		{carol, "/console/audit", 200},
		{carol, fmt.Sprintf("/console/audit/%d", seq), 200},
		{carol, "/console/chain", 200},
		{carol, "/console/catalog", 200},
		{bob, "/console/catalog", 200},
		{bob, "/console/audit", 403},
	}
	for _, tc := range cases {
		resp, _ := w.do(tc.c, "GET", tc.path, nil)
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s: status %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("GET %s: CSP %q lacks %q", tc.path, csp, d)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q allows unsafe sources", tc.path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers %v", tc.path, resp.Header)
		}
	}
	// No inline script or style anywhere, nothing from another origin.
	for _, path := range []string{"/console/audit", "/console/chain", "/console/catalog", fmt.Sprintf("/console/audit/%d", seq)} {
		_, body := w.do(carol, "GET", path, nil)
		for _, bad := range []string{"<script", "style=", "<style", "http://", "https://"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s: the page contains %q", path, bad)
			}
		}
	}
}

func TestCSRF(t *testing.T) {
	w := newWorld(t)
	c, _ := w.login("carol")
	_, page := w.do(c, "GET", "/console/catalog", nil)
	good := csrfOf(t, page)
	for name, form := range map[string]url.Values{
		"missing": {},
		"wrong":   {"csrf": {strings.Repeat("A", len(good))}},
		"short":   {"csrf": {good[:10]}},
	} {
		resp, _ := w.do(c, "POST", "/console/logout", form)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("logout with a %s CSRF token: status %d, want 403", name, resp.StatusCode)
		}
	}
	// Still signed in after the refused posts.
	if resp, _ := w.do(c, "GET", "/console/catalog", nil); resp.StatusCode != 200 {
		t.Fatalf("session ended by a refused post: %d", resp.StatusCode)
	}
	// The login form is protected too: no login cookie, or a mismatch.
	anon := w.client()
	if resp, _ := w.do(anon, "POST", "/console/login", url.Values{"csrf": {good}, "token": {"tok-carol"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without the form's CSRF cookie: status %d, want 403", resp.StatusCode)
	}
	// A cross-site Origin is refused even with the right token.
	req, _ := http.NewRequest("POST", w.srv.URL+"/console/logout", strings.NewReader(url.Values{"csrf": {good}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin logout: status %d, want 403", resp.StatusCode)
	}
	// The right token signs out, and the session is gone server-side.
	resp, _ = w.do(c, "POST", "/console/logout", url.Values{"csrf": {good}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: status %d", resp.StatusCode)
	}
	if resp, _ := w.do(c, "GET", "/console/catalog", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout the catalog answers %d, want a redirect to sign in", resp.StatusCode)
	}
	denied, _ := w.log.Search(context.Background(), audit.Filter{Principal: "carol", Decision: audit.DecisionDeny})
	if len(denied) < 4 {
		t.Errorf("refused posts audited: %d entries, want at least 4", len(denied))
	}
}

func TestAnalystMayNotOpenAuditPages(t *testing.T) {
	w := newWorld(t)
	bob, _ := w.login("bob")
	for _, path := range []string{"/console/audit", "/console/audit/1", "/console/chain"} {
		resp, body := w.do(bob, "GET", path, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("analyst GET %s: status %d, want 403", path, resp.StatusCode)
		}
		if !strings.Contains(body, "security auditor") || !strings.Contains(body, "platform admin") || !strings.Contains(body, "(analyst)") {
			t.Errorf("the 403 page does not say which roles may:\n%s", body)
		}
	}
	es, _ := w.log.Search(context.Background(), audit.Filter{Principal: "bob", Decision: audit.DecisionDeny})
	if len(es) != 3 || !strings.Contains(es[0].Error, "roles that may: auditor, platform_admin") {
		t.Errorf("refusals audited as %+v", es)
	}
	// In Chinese too.
	_, body := w.do(bob, "GET", "/console/audit?lang=zh", nil)
	if !strings.Contains(body, "无权打开此页面") || !strings.Contains(body, "安全审计员") {
		t.Errorf("Chinese 403 page:\n%s", body)
	}
}

// appendDenied writes the decision entry the broker writes for a denied
// query, and some noise around it.
func (w *world) appendDenied(t testing.TB) int64 {
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := w.log.Append(ctx, &audit.Entry{Kind: audit.KindQuery, QueryID: fmt.Sprintf("q-ok-%d", i), Principal: "alice", Role: "analyst", Department: "civil",
			Purpose: "subsidy-review", Datasets: []string{"market.enterprises"}, Decision: audit.DecisionAllow, Reasons: []string{"allowed"}}); err != nil {
			t.Fatal(err)
		}
	}
	e := &audit.Entry{Kind: audit.KindQuery, QueryID: "q-denied", Principal: "bob", Role: "analyst", Department: "market", Purpose: "enterprise-credit",
		SQL: "SELECT id_number FROM police.household", Datasets: []string{"police.household"}, Decision: audit.DecisionDeny,
		Reasons:        []string{"column police.household.id_number (L4, join_key) may not appear in the output for market under purpose enterprise-credit <b>"},
		Obligations:    map[string]any{"min_group_size": 10},
		PolicyRevision: "rev-7", Plan: "Project[id_number] <- Scan[police.household]",
		Fragments: []audit.FragmentRecord{{Department: "police", Dataset: "household", Rows: 12, Bytes: 3456, Digest: "sha256:feedface"}},
		TraceID:   "4bf92f3577b34da6a3ce929d0e0e4736"}
	if err := w.log.Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	return e.Seq
}

func TestAuditorFindsDeniedQuery(t *testing.T) {
	w := newWorld(t)
	seq := w.appendDenied(t)
	carol, _ := w.login("carol")
	resp, body := w.do(carol, "GET", "/console/audit?decision=deny&principal=bob&kind=query&dataset=police.household&purpose=enterprise-credit&department=market&since=2000-01-01T00:00", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("audit browser: %d\n%s", resp.StatusCode, body)
	}
	link := fmt.Sprintf(`href="/console/audit/%d"`, seq)
	if !strings.Contains(body, link) || strings.Contains(body, "q-ok-") || strings.Count(body, `href="/console/audit/`) != 1 {
		t.Fatalf("the list does not show exactly the denied entry %d:\n%s", seq, body)
	}
	// A filter that excludes it.
	if _, body := w.do(carol, "GET", "/console/audit?decision=deny&principal=bob&until=2000-01-01T00:00", nil); strings.Contains(body, link) {
		t.Error("the until filter did not exclude the entry")
	}
	resp, body = w.do(carol, "GET", fmt.Sprintf("/console/audit/%d", seq), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("entry detail: %d", resp.StatusCode)
	}
	for _, want := range []string{
		"may not appear in the output for market under purpose enterprise-credit &lt;b&gt;", // escaped
		"<strong>deny</strong>", "rev-7", "Project[id_number] &lt;- Scan[police.household]", "min_group_size",
		"<td>3456</td>", "sha256:feedface", "4bf92f3577b34da6a3ce929d0e0e4736", "/console/audit?query_id=q-denied",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("entry detail lacks %q", want)
		}
	}
	if strings.Contains(body, "<b>") {
		t.Error("a reason's markup reached the page unescaped")
	}
	if resp, _ := w.do(carol, "GET", "/console/audit/999999", nil); resp.StatusCode != 404 {
		t.Errorf("unknown entry: %d", resp.StatusCode)
	}
	if resp, _ := w.do(carol, "GET", "/console/audit?since=yesterday", nil); resp.StatusCode != 400 {
		t.Errorf("bad time: %d", resp.StatusCode)
	}
}

func TestAuditBrowserPages(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for i := 0; i < 120; i++ {
		if err := w.log.Append(ctx, &audit.Entry{Kind: audit.KindQuery, QueryID: fmt.Sprintf("q%d", i), Principal: "alice", Decision: audit.DecisionAllow}); err != nil {
			t.Fatal(err)
		}
	}
	carol, _ := w.login("carol")
	seen := map[string]bool{}
	next := "/console/audit?principal=alice"
	pages := 0
	entryLink := regexp.MustCompile(`href="/console/audit/(\d+)"`)
	older := regexp.MustCompile(`rel="next" href="([^"]+)"`)
	for next != "" {
		_, body := w.do(carol, "GET", strings.ReplaceAll(next, "&amp;", "&"), nil)
		pages++
		for _, m := range entryLink.FindAllStringSubmatch(body, -1) {
			if seen[m[1]] {
				t.Fatalf("entry %s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		next = ""
		if m := older.FindStringSubmatch(body); m != nil {
			next = m[1]
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 120 || pages != 3 {
		t.Errorf("paged through %d entries in %d pages, want 120 in 3", len(seen), pages)
	}
}

func TestChainStatus(t *testing.T) {
	w := newWorld(t)
	w.appendDenied(t)
	carol, _ := w.login("carol")
	resp, body := w.do(carol, "GET", "/console/chain", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("chain: %d\n%s", resp.StatusCode, body)
	}
	// Entries: 4 appended, the sign-in, the chain page view itself; the
	// page reports through the newest entry at the time it verified.
	seq, _ := w.log.Head()
	want := fmt.Sprintf(`<dd id="verified-through">%d</dd>`, seq)
	if !strings.Contains(body, want) || !strings.Contains(body, "The chain verifies.") {
		t.Fatalf("chain page lacks %q:\n%s", want, body)
	}
	if !strings.Contains(body, "ed25519") {
		t.Errorf("no signed checkpoint shown:\n%s", body)
	}
	_, body = w.do(carol, "GET", "/console/chain?lang=zh", nil)
	if !strings.Contains(body, "审计链校验通过") {
		t.Errorf("Chinese chain page:\n%s", body)
	}
}

func TestCatalogShowsDescriptionsNeverHidden(t *testing.T) {
	w := newWorld(t)
	bob, _ := w.login("bob")
	resp, body := w.do(bob, "GET", "/console/catalog", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("catalog: %d", resp.StatusCode)
	}
	for _, want := range []string{"police.household", "Household register", "Household Registration Regulations, art. 7", "conditional (有条件共享)",
		"id_number", "join_key", "L4", "masked", "citizen", "market.enterprises"} {
		if !strings.Contains(body, want) {
			t.Errorf("catalog lacks %q", want)
		}
	}
	if strings.Contains(body, "notes") {
		t.Error("a hidden column of another department is listed")
	}
	if strings.Contains(body, `href="/console/audit"`) {
		t.Error("the analyst's navigation links to the audit browser")
	}
	_, body = w.do(bob, "GET", "/console/catalog?share_class=unconditional", nil)
	if strings.Contains(body, "police.household") || !strings.Contains(body, "market.enterprises") {
		t.Error("the share class filter does not filter")
	}
}

func TestBothLanguages(t *testing.T) {
	w := newWorld(t)
	carol, _ := w.login("carol")
	for _, tc := range []struct{ lang, want, html string }{
		{"en", "Data resource catalog", `lang="en"`},
		{"zh", "政务数据资源目录", `lang="zh-CN"`},
	} {
		_, body := w.do(carol, "GET", "/console/catalog?lang="+tc.lang, nil)
		if !strings.Contains(body, tc.want) || !strings.Contains(body, "<html "+tc.html) {
			t.Errorf("lang=%s: page lacks %q", tc.lang, tc.want)
		}
	}
	// The choice is remembered in a cookie.
	_, body := w.do(carol, "GET", "/console/audit", nil)
	if !strings.Contains(body, "审计日志") {
		t.Error("the language choice was not remembered")
	}
	// The login page follows Accept-Language.
	req, _ := http.NewRequest("GET", w.srv.URL+"/console/login", nil)
	req.Header.Set("Accept-Language", "zh-CN,zh;q=0.9")
	resp, err := w.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), "访问令牌") {
		t.Error("the login page ignores Accept-Language")
	}
}

func TestAuditDownNoPage(t *testing.T) {
	w := newWorld(t)
	carol, _ := w.login("carol")
	w.log.Close()
	resp, body := w.do(carol, "GET", "/console/catalog", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "police.household") {
		t.Fatalf("with the audit log closed: %d\n%s", resp.StatusCode, body)
	}
}
