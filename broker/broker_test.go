package broker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
)

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, body, want string }{
		{"missing listen", "tls_cert: a\ntls_key: b\nstore: s\nusers: u\npurposes: p\ndepartments: [d]\n", "listen: is required"},
		{"unknown field", "listen: x:1\nlisten_addr: y\n", "not valid broker YAML"},
		{"negative k", "listen: x:1\ntls_cert: a\ntls_key: b\nstore: s\nusers: u\npurposes: p\ndepartments: [d]\ndefault_k: -1\n", "default_k"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			os.WriteFile(p, []byte(tc.body), 0o600)
			_, err := LoadConfig(p)
			var ce *sluice.ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) || ce.File != p {
				t.Fatalf("want a ConfigError naming %s and saying %q, got %v", p, tc.want, err)
			}
		})
	}
	good := filepath.Join(dir, "sub", "broker.yaml")
	os.MkdirAll(filepath.Dir(good), 0o755)
	os.WriteFile(good, []byte("listen: x:1\ntls_cert: a.crt\ntls_key: b\nstore: s.db\nusers: u\npurposes: p\ndepartments: [d.yaml]\n"), 0o600)
	c, err := LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != filepath.Join(dir, "sub", "s.db") || c.Departments[0] != filepath.Join(dir, "sub", "d.yaml") {
		t.Fatalf("relative paths not resolved against the file: %+v", c)
	}
}

func TestUsers(t *testing.T) {
	token := "slc_secret"
	u, err := NewUsers([]UserRecord{{Name: "bob", Role: sluice.RoleAnalyst, Department: "market", TokenSHA256: HashToken(token)}})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := u.Authenticate(token); !ok || p.Name != "bob" {
		t.Fatal("valid token refused")
	}
	if _, ok := u.Authenticate("slc_other"); ok {
		t.Fatal("invalid token accepted")
	}
	bad := []struct {
		name string
		recs []UserRecord
		want string
	}{
		{"no name", []UserRecord{{Role: sluice.RoleAnalyst, TokenSHA256: HashToken("a")}}, "name is required"},
		{"bad role", []UserRecord{{Name: "x", Role: "root", TokenSHA256: HashToken("a")}}, "role must be"},
		{"plain token", []UserRecord{{Name: "x", Role: sluice.RoleAnalyst, TokenSHA256: "secret"}}, "64 hex"},
		{"duplicate", []UserRecord{{Name: "x", Role: sluice.RoleAnalyst, TokenSHA256: HashToken("a")}, {Name: "x", Role: sluice.RoleAnalyst, TokenSHA256: HashToken("b")}}, "twice"},
	}
	for _, tc := range bad {
		if _, err := NewUsers(tc.recs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: want %q, got %v", tc.name, tc.want, err)
		}
	}
}

func TestToStatus(t *testing.T) {
	cases := []struct {
		err  error
		code codes.Code
	}{
		{sluice.Errorf(sluice.EInvalid, "x"), codes.InvalidArgument},
		{sluice.Errorf(sluice.EDenied, "x"), codes.PermissionDenied},
		{sluice.Errorf(sluice.EUnauthenticated, "x"), codes.Unauthenticated},
		{sluice.Errorf(sluice.ENotSupported, "x"), codes.Unimplemented},
		{sluice.Errorf(sluice.EUnavailable, "x"), codes.Unavailable},
		{sluice.Errorf(sluice.EResource, "x"), codes.ResourceExhausted},
		{errors.New("boom"), codes.Internal},
	}
	for _, tc := range cases {
		if got := status.Code(toStatus(tc.err)); got != tc.code {
			t.Fatalf("%v: got %v want %v", tc.err, got, tc.code)
		}
	}
}

func TestLikeMatcher(t *testing.T) {
	p := func(s string) *string { return &s }
	cases := []struct {
		pattern *string
		in      string
		want    bool
	}{
		{nil, "civil", true},
		{p("civ%"), "civil", true},
		{p("c_vil"), "civil", true},
		{p("health"), "civil", false},
		{p("CIVIL"), "civil", true},
		{p("a.b"), "axb", false},
	}
	for _, tc := range cases {
		if got := likeMatcher(tc.pattern)(tc.in); got != tc.want {
			t.Fatalf("%v %q: got %v", tc.pattern, tc.in, got)
		}
	}
}

func TestTokenExpiry(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	users := []sluice.User{{Name: "gina", Role: sluice.RoleAnalyst, Department: "civil"}, {Name: "off", Role: sluice.RoleAnalyst, Department: "civil", Disabled: true}}
	revoked := now.Add(-time.Minute)
	tokens := []sluice.Token{
		{ID: "a", User: "gina", SHA256: HashToken("valid"), ExpiresAt: now.Add(time.Hour)},
		{ID: "b", User: "gina", SHA256: HashToken("expired"), ExpiresAt: now.Add(-time.Second)},
		{ID: "c", User: "gina", SHA256: HashToken("revoked"), ExpiresAt: now.Add(time.Hour), RevokedAt: &revoked},
		{ID: "d", User: "off", SHA256: HashToken("disabled"), ExpiresAt: now.Add(time.Hour)},
		{ID: "e", User: "gina", SHA256: HashToken("seeded")}, // from a users file: no expiry
	}
	clock := now
	u := usersFromStore(users, tokens, func() time.Time { return clock })
	for tok, want := range map[string]bool{"valid": true, "expired": false, "revoked": false, "disabled": false, "seeded": true, "unknown": false} {
		if _, ok := u.Authenticate(tok); ok != want {
			t.Errorf("Authenticate(%s) = %v, want %v", tok, ok, want)
		}
	}
	clock = now.Add(time.Hour)
	if _, ok := u.Authenticate("valid"); ok {
		t.Errorf("a token is accepted at its expiry instant")
	}
}
