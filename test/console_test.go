package test

import (
	"crypto/tls"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// consoleBrowser is a browser on the demo broker's web console (issue 15),
// signed in as user through the login form.
type consoleBrowser struct {
	t *testing.T
	c *http.Client
}

func consoleLogin(t *testing.T, user string) *consoleBrowser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &consoleBrowser{t: t, c: &http.Client{Timeout: 30 * time.Second, Jar: jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	_, page := b.do("GET", "/console/login", nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field on the login page:\n%s", page)
	}
	if status, body := b.do("POST", "/console/login", url.Values{"csrf": {m[1]}, "token": {tokenFor(t, user)}}); status != http.StatusSeeOther {
		t.Fatalf("console login as %s: %d\n%s", user, status, body)
	}
	return b
}

func (b *consoleBrowser) do(method, path string, form url.Values) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, "https://"+world.AdminAddr+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// TestConsoleAuditorFindsDeniedQuery: bob's query of a dataset not shared
// is denied over Flight SQL; the auditor finds it in the console's audit
// browser and its detail shows the rule and the legal basis; bob may not
// open the audit browser; the chain verifies.
func TestConsoleAuditorFindsDeniedQuery(t *testing.T) {
	if _, _, err := query(t, "bob", "enterprise-credit", "SELECT offense FROM police.criminal_records"); err == nil || !strings.Contains(err.Error(), "share_class_none") {
		t.Fatalf("the query was not denied: %v", err)
	}
	carol := consoleLogin(t, "carol")
	status, list := carol.do("GET", "/console/audit?principal=bob&decision=deny&kind=query&dataset=police.criminal_records", nil)
	if status != http.StatusOK {
		t.Fatalf("audit browser: %d\n%s", status, list)
	}
	m := regexp.MustCompile(`href="(/console/audit/\d+)"`).FindStringSubmatch(list)
	if m == nil {
		t.Fatalf("the denied query is not listed:\n%s", list)
	}
	status, detail := carol.do("GET", m[1], nil)
	if status != http.StatusOK {
		t.Fatalf("entry detail: %d", status)
	}
	for _, want := range []string{"<strong>deny</strong>", "share_class_none", "SELECT offense FROM police.criminal_records"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the entry detail lacks %q:\n%s", want, detail)
		}
	}
	if basis := legalBasis(t, "police", "criminal_records"); !strings.Contains(detail, html.EscapeString(basis)) {
		t.Errorf("the entry detail does not cite the legal basis %q", basis)
	}
	status, chain := carol.do("GET", "/console/chain", nil)
	if status != http.StatusOK || !strings.Contains(chain, "The chain verifies.") || !regexp.MustCompile(`id="verified-through">[1-9]\d*<`).MatchString(chain) {
		t.Errorf("chain status: %d\n%s", status, chain)
	}
	bob := consoleLogin(t, "bob")
	if status, body := bob.do("GET", "/console/audit", nil); status != http.StatusForbidden || !strings.Contains(body, "security auditor") {
		t.Errorf("an analyst on the audit browser: %d\n%s", status, body)
	}
	if status, body := bob.do("GET", "/console/catalog", nil); status != http.StatusOK || !strings.Contains(body, "police.household") {
		t.Errorf("an analyst on the catalog: %d", status)
	}
}
