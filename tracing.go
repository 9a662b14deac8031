package sluice

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
)

// Tracing exporters (TracingConfig.Exporter).
const (
	TraceExporterNone   = "none"   // the default: a no-op tracer, nothing recorded
	TraceExporterStdout = "stdout" // spans as JSON on standard output (trying it out)
	TraceExporterOTLP   = "otlp"   // spans to an OpenTelemetry collector over OTLP/gRPC
)

// TracingConfig is the `tracing` section of the broker's configuration and
// of a department file's agent section (docs/operations.md, "Traces"). The
// zero value turns tracing off.
type TracingConfig struct {
	// Exporter is none (or empty), stdout or otlp.
	Exporter string `yaml:"exporter,omitempty" json:"exporter,omitempty"`
	// Endpoint is host:port of the OTLP/gRPC collector (exporter otlp);
	// empty means the OpenTelemetry default (OTEL_EXPORTER_OTLP_ENDPOINT,
	// else localhost:4317).
	Endpoint string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	// Insecure sends OTLP without TLS (a collector on loopback or a
	// sidecar); otherwise TLS with the system's roots.
	Insecure bool `yaml:"insecure,omitempty" json:"insecure,omitempty"`
	// SampleRatio is the share of queries traced, 0 to 1 (default 1). An
	// agent follows the broker's decision for the queries it is asked to
	// serve; the ratio applies to traces that start where it is set.
	SampleRatio *float64 `yaml:"sample_ratio,omitempty" json:"sample_ratio,omitempty"`
}

// Enabled reports whether spans are exported.
func (t TracingConfig) Enabled() bool {
	return t.Exporter != "" && t.Exporter != TraceExporterNone
}

// Ratio is the sampling ratio, 1 when unset.
func (t TracingConfig) Ratio() float64 {
	if t.SampleRatio == nil {
		return 1
	}
	return *t.SampleRatio
}

// Check reports the first bad value: the field (under tracing) and what is
// wrong with it; "" when the section is valid.
func (t TracingConfig) Check() (field, problem string) {
	switch t.Exporter {
	case "", TraceExporterNone, TraceExporterStdout, TraceExporterOTLP:
	default:
		return "exporter", fmt.Sprintf("must be none, stdout or otlp; got %q", t.Exporter)
	}
	if t.Exporter == TraceExporterStdout {
		if t.Endpoint != "" {
			return "endpoint", "is the OTLP collector's address: it has no meaning with exporter stdout (set exporter: otlp, or remove it)"
		}
		if t.Insecure {
			return "insecure", "applies to exporter otlp only, not stdout"
		}
	}
	if t.Endpoint != "" {
		if strings.Contains(t.Endpoint, "://") {
			return "endpoint", fmt.Sprintf("must be host:port of the OTLP/gRPC collector, without a scheme (e.g. collector.internal:4317), got %q", t.Endpoint)
		}
		host, port, err := net.SplitHostPort(t.Endpoint)
		if err != nil || host == "" {
			return "endpoint", fmt.Sprintf("must be host:port of the OTLP/gRPC collector (e.g. collector.internal:4317), got %q", t.Endpoint)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "endpoint", fmt.Sprintf("the port of %q must be a number from 1 to 65535", t.Endpoint)
		}
		if strings.ContainsAny(host, " /") {
			return "endpoint", fmt.Sprintf("the host of %q is not a host name or IP address", t.Endpoint)
		}
	}
	if r := t.SampleRatio; r != nil && (math.IsNaN(*r) || *r < 0 || *r > 1) {
		return "sample_ratio", fmt.Sprintf("must be a number from 0 to 1 (the share of queries traced), got %v", *r)
	}
	return "", ""
}
