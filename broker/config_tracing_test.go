package broker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

// TestTracingConfig checks the broker's tracing section: off by default,
// kept when valid, refused with the field named when not.
func TestTracingConfig(t *testing.T) {
	dir := t.TempDir()
	base := "listen: x:1\ntls_cert: a\ntls_key: b\nstore: s\n"
	load := func(name, body string) (*Config, error) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(base+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return LoadConfig(p)
	}
	c, err := load("off.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Tracing.Enabled() {
		t.Fatalf("tracing on without configuration: %+v", c.Tracing)
	}
	c, err = load("on.yaml", "tracing:\n  exporter: otlp\n  endpoint: otel.internal:4317\n  sample_ratio: 0.1\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Tracing.Exporter != sluice.TraceExporterOTLP || c.Tracing.Endpoint != "otel.internal:4317" || c.Tracing.Insecure || c.Tracing.Ratio() != 0.1 {
		t.Fatalf("tracing section not kept: %+v", c.Tracing)
	}
	for i, tc := range []struct{ body, field, want string }{
		{"tracing:\n  exporter: zipkin\n", "tracing.exporter", `must be none, stdout or otlp; got "zipkin"`},
		{"tracing:\n  exporter: otlp\n  endpoint: https://otel:4317\n", "tracing.endpoint", "without a scheme"},
		{"tracing:\n  exporter: otlp\n  endpoint: otel\n", "tracing.endpoint", "host:port"},
		{"tracing:\n  exporter: stdout\n  endpoint: otel:4317\n", "tracing.endpoint", "exporter stdout"},
		{"tracing:\n  exporter: stdout\n  insecure: true\n", "tracing.insecure", "otlp only"},
		{"tracing:\n  exporter: otlp\n  sample_ratio: 2\n", "tracing.sample_ratio", "from 0 to 1"},
	} {
		_, err := load("bad"+string(rune('a'+i))+".yaml", tc.body)
		var ce *sluice.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want a ConfigError on %s saying %q, got %v", tc.body, tc.field, tc.want, err)
		}
	}
	if _, err := load("typo.yaml", "tracing:\n  exportr: otlp\n"); err == nil {
		t.Error("a misspelt tracing key was accepted")
	}
}
