package sluice

import (
	"errors"
	"strings"
	"testing"
)

// TestAgentTracing checks agent.tracing in a department file: off by
// default, a valid section kept, and every bad value refused naming the
// file and the field.
func TestAgentTracing(t *testing.T) {
	with := func(section string) []byte {
		return []byte(strings.Replace(validDept, "  address: 127.0.0.1:47471\n", "  address: 127.0.0.1:47471\n  tracing:\n"+section, 1))
	}
	d, err := ParseDepartment("civil.yaml", []byte(validDept))
	if err != nil {
		t.Fatal(err)
	}
	if d.Agent.Tracing.Enabled() || d.Agent.Tracing.Ratio() != 1 {
		t.Fatalf("tracing must be off by default with ratio 1: %+v", d.Agent.Tracing)
	}
	d, err = ParseDepartment("civil.yaml", with("    exporter: otlp\n    endpoint: collector.internal:4317\n    insecure: true\n    sample_ratio: 0.25\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr := d.Agent.Tracing
	if !tr.Enabled() || tr.Exporter != "otlp" || tr.Endpoint != "collector.internal:4317" || !tr.Insecure || tr.Ratio() != 0.25 {
		t.Fatalf("tracing section not kept: %+v", tr)
	}
	for _, ok := range []string{
		"    exporter: stdout\n",
		"    exporter: none\n",
		"    exporter: otlp\n",
		"    exporter: otlp\n    endpoint: \"[::1]:4317\"\n",
		"    exporter: none\n    endpoint: collector:4317\n    sample_ratio: 0\n", // off, settings kept
		"    exporter: stdout\n    sample_ratio: 1\n",
	} {
		if _, err := ParseDepartment("civil.yaml", with(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, tc := range []struct{ section, field, want string }{
		{"    exporter: jaeger\n", "agent.tracing.exporter", "must be none, stdout or otlp"},
		{"    exporter: OTLP\n", "agent.tracing.exporter", "must be none, stdout or otlp"},
		{"    exporter: otlp\n    endpoint: http://collector:4317\n", "agent.tracing.endpoint", "without a scheme"},
		{"    exporter: otlp\n    endpoint: collector\n", "agent.tracing.endpoint", "must be host:port"},
		{"    exporter: otlp\n    endpoint: \":4317\"\n", "agent.tracing.endpoint", "must be host:port"},
		{"    exporter: otlp\n    endpoint: collector:0\n", "agent.tracing.endpoint", "from 1 to 65535"},
		{"    exporter: otlp\n    endpoint: collector:grpc\n", "agent.tracing.endpoint", "from 1 to 65535"},
		{"    exporter: stdout\n    endpoint: collector:4317\n", "agent.tracing.endpoint", "no meaning with exporter stdout"},
		{"    exporter: stdout\n    insecure: true\n", "agent.tracing.insecure", "otlp only"},
		{"    exporter: otlp\n    sample_ratio: 1.5\n", "agent.tracing.sample_ratio", "from 0 to 1"},
		{"    exporter: otlp\n    sample_ratio: -0.1\n", "agent.tracing.sample_ratio", "from 0 to 1"},
		{"    exporter: otlp\n    sample_ratio: .nan\n", "agent.tracing.sample_ratio", "from 0 to 1"},
	} {
		_, err := ParseDepartment("civil.yaml", with(tc.section))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.File != "civil.yaml" || ce.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want a ConfigError on %s saying %q, got %v", tc.section, tc.field, tc.want, err)
		}
	}
	// An unknown key is refused like everywhere in the file.
	if _, err := ParseDepartment("civil.yaml", with("    exporter: otlp\n    endpiont: c:4317\n")); err == nil {
		t.Error("a misspelt tracing key was accepted")
	}
}
