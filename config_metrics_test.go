package sluice

import (
	"errors"
	"strings"
	"testing"
)

// TestAgentMetricsListen checks agent.metrics_listen: a host:port is kept,
// and a bad value is refused naming the file and the field.
func TestAgentMetricsListen(t *testing.T) {
	with := func(v string) []byte {
		return []byte(strings.Replace(validDept, "  address: 127.0.0.1:47471\n", "  address: 127.0.0.1:47471\n  metrics_listen: "+v+"\n", 1))
	}
	d, err := ParseDepartment("civil.yaml", with("127.0.0.1:9465"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Agent.MetricsListen != "127.0.0.1:9465" {
		t.Fatalf("metrics_listen = %q", d.Agent.MetricsListen)
	}
	if _, err := ParseDepartment("civil.yaml", with(`":9465"`)); err != nil {
		t.Fatalf("an empty host (every interface) is valid: %v", err)
	}
	for _, tc := range []struct{ value, want string }{
		{"9465", "must be host:port"},
		{"localhost", "must be host:port"},
		{"127.0.0.1:http", "must be a number from 1 to 65535"},
		{"127.0.0.1:0", "must be a number from 1 to 65535"},
		{"127.0.0.1:70000", "must be a number from 1 to 65535"},
		{"127.0.0.1:47471", "must differ from agent.address"},
	} {
		_, err := ParseDepartment("civil.yaml", with(tc.value))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.File != "civil.yaml" || ce.Field != "agent.metrics_listen" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("metrics_listen %q: want a ConfigError on agent.metrics_listen saying %q, got %v", tc.value, tc.want, err)
		}
	}
}

// TestAgentMaxConcurrent: agent.max_concurrent is kept; a negative value
// is refused naming the field.
func TestAgentMaxConcurrent(t *testing.T) {
	with := func(v string) []byte {
		return []byte(strings.Replace(validDept, "  address: 127.0.0.1:47471\n", "  address: 127.0.0.1:47471\n  max_concurrent: "+v+"\n", 1))
	}
	d, err := ParseDepartment("civil.yaml", with("6"))
	if err != nil || d.Agent.MaxConcurrent != 6 {
		t.Fatalf("max_concurrent 6: %+v %v", d, err)
	}
	_, err = ParseDepartment("civil.yaml", with("-1"))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "agent.max_concurrent" || !strings.Contains(err.Error(), "must not be negative") {
		t.Fatalf("max_concurrent -1: want a ConfigError on agent.max_concurrent, got %v", err)
	}
}
