package sluice

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const flightDept = `
department: stats
name: Statistics Bureau
agent:
  address: 127.0.0.1:47471
sources:
  - name: warehouse
    driver: flightsql
%s
datasets:
  - name: census
    table: census
    share_class: unconditional
    columns:
      - {name: district, type: text, grade: L1, release: plain}
`

func flightYAML(src string) []byte {
	return []byte(strings.Replace(flightDept, "%s", src, 1))
}

func TestFlightSQLSourceValid(t *testing.T) {
	d, err := ParseDepartment("stats.yaml", flightYAML(`    flightsql:
      address: doris.stats.local:8070
      tls: {ca_file: certs/doris-ca.pem, server_name: doris.stats.local}
      username: sluice_agent
      password: pw
      headers: {x-tenant: stats, database: census_db}
      dialect: postgres
      schema: public`))
	if err != nil {
		t.Fatal(err)
	}
	f := d.Sources[0].FlightSQL
	if f == nil || f.Address != "doris.stats.local:8070" || f.TLS.CAFile != "certs/doris-ca.pem" || f.Headers["x-tenant"] != "stats" || f.Dialect != "postgres" || f.Schema != "public" {
		t.Fatalf("parsed %+v", f)
	}

	// LoadDepartment resolves the TLS files against the file's folder.
	dir := t.TempDir()
	path := filepath.Join(dir, "stats.yaml")
	if err := os.WriteFile(path, flightYAML("    flightsql: {address: 127.0.0.1:31337, tls: {ca_file: ca.pem}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err = LoadDepartment(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Sources[0].FlightSQL.TLS.CAFile; got != filepath.Join(dir, "ca.pem") {
		t.Errorf("ca_file resolved to %q", got)
	}
}

func TestFlightSQLSourceErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"", "sources[0].flightsql: is required for driver flightsql"},
		{"    flightsql: {plaintext: true}", "sources[0].flightsql.address: is required"},
		{"    flightsql: {address: nohost}", "sources[0].flightsql.address: must be host:port"},
		{"    flightsql: {address: 'h:99999'}", "must end in a port 1–65535"},
		{"    dsn: x.db\n    flightsql: {address: 'h:1'}", "sources[0].dsn: is not used by driver flightsql"},
		{"    flightsql: {address: 'h:1', plaintext: true, tls: {ca_file: a.pem}}", "flightsql.tls: cannot be set with plaintext"},
		{"    flightsql: {address: 'h:1', tls: {ca_file: a.pem, insecure_skip_verify: true}}", "flightsql.tls.insecure_skip_verify"},
		{"    flightsql: {address: 'h:1', tls: {cert_file: c.pem}}", "flightsql.tls.cert_file: and key_file go together"},
		{"    flightsql: {address: 'h:1', token: t, username: u, password: p}", "flightsql.token: and username/password are two ways"},
		{"    flightsql: {address: 'h:1', username: u}", "flightsql.username: and password go together"},
		{"    flightsql: {address: 'h:1', headers: {authorization: x}}", "carries credentials"},
		{"    flightsql: {address: 'h:1', headers: {'bad header': x}}", "must use only letters"},
		{"    flightsql: {address: 'h:1', headers: {grpc-timeout: x}}", "reserved by gRPC"},
		{"    flightsql: {address: 'h:1', headers: {x-a: \"caf\u00e9\"}}", "printable ASCII"},
		{"    flightsql: {address: 'h:1', dialect: mysql}", "flightsql.dialect: must be sqlite or postgres"},
		{"    flightsql: {address: 'h:1', adress: typo}", "adress"},
	} {
		_, err := ParseDepartment("stats.yaml", flightYAML(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.src, err, tc.want)
		}
	}
	// A flightsql block on another driver is refused.
	raw := strings.Replace(string(flightYAML("    flightsql: {address: 'h:1'}")), "driver: flightsql", "driver: sqlite\n    dsn: x.db", 1)
	if _, err := ParseDepartment("stats.yaml", []byte(raw)); err == nil || !strings.Contains(err.Error(), "flightsql: is only for driver flightsql") {
		t.Errorf("flightsql on sqlite: %v", err)
	}
}
