package broker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
