package sluice

import (
	"net"
	"strconv"
	"strings"
)

// DriverFlightSQL is a source read over Arrow Flight SQL: a department
// engine (Apache Doris, StarRocks, Dremio, any server built on the Flight
// SQL libraries) that the agent queries remotely. Its connection is
// Source.FlightSQL; it has no DSN.
const DriverFlightSQL Driver = "flightsql"

// FlightSQLSource is the connection of a source with driver flightsql.
type FlightSQLSource struct {
	// Address is host:port of the Flight SQL server.
	Address string `yaml:"address"`
	// Plaintext connects without TLS; say so explicitly (TLS is the
	// default).
	Plaintext bool `yaml:"plaintext,omitempty"`
	// TLS verifies the server (system roots unless CAFile is set).
	TLS FlightSQLTLS `yaml:"tls,omitempty"`
	// Token is sent as "authorization: Bearer <token>" on every call.
	Token string `yaml:"token,omitempty"`
	// Username and Password authenticate through Flight's basic-auth
	// handshake; the bearer token the server answers with is sent on every
	// later call.
	Username string `yaml:"username,omitempty"`
	Password string `yaml:"password,omitempty"`
	// Headers are extra gRPC metadata sent on every call (e.g. a tenant or
	// a database the server selects by header).
	Headers map[string]string `yaml:"headers,omitempty"`
	// Dialect forces the SQL dialect fragments are rendered in (sqlite or
	// postgres); empty means the dialect the server declares (GetSqlInfo).
	Dialect string `yaml:"dialect,omitempty"`
	// Catalog and Schema narrow table listing and description to one
	// catalog and one database schema of the server.
	Catalog string `yaml:"catalog,omitempty"`
	Schema  string `yaml:"schema,omitempty"`
}

// FlightSQLTLS is how the agent verifies a Flight SQL server.
type FlightSQLTLS struct {
	// CAFile is a PEM file of the certificates that may sign the server's
	// certificate (relative to the department file); empty means the
	// system's roots.
	CAFile string `yaml:"ca_file,omitempty"`
	// ServerName is the name the server's certificate must carry when it
	// differs from the address's host.
	ServerName string `yaml:"server_name,omitempty"`
	// CertFile and KeyFile are the agent's client certificate, for servers
	// that require mutual TLS.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// InsecureSkipVerify accepts any server certificate: for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty"`
}

// checkFlightSQL validates the flightsql part of a source: required for
// driver flightsql, refused for every other driver. It returns the field
// (relative to the source) and the problem, or "" when all is well.
func (s *Source) checkFlightSQL() (field, problem string) {
	if s.Driver != DriverFlightSQL {
		if s.FlightSQL != nil {
			return "flightsql", "is only for driver flightsql (this source's driver is " + strconv.Quote(string(s.Driver)) + ")"
		}
		return "", ""
	}
	if s.DSN != "" {
		return "dsn", "is not used by driver flightsql; give the server under flightsql.address"
	}
	f := s.FlightSQL
	if f == nil {
		return "flightsql", "is required for driver flightsql (at least flightsql.address: host:port of the Flight SQL server)"
	}
	if strings.TrimSpace(f.Address) == "" {
		return "flightsql.address", "is required: host:port of the Flight SQL server"
	}
	host, port, err := net.SplitHostPort(f.Address)
	if err != nil || host == "" {
		return "flightsql.address", "must be host:port, got " + strconv.Quote(f.Address)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "flightsql.address", "must end in a port 1–65535, got " + strconv.Quote(f.Address)
	}
	t := f.TLS
	if f.Plaintext && (t != FlightSQLTLS{}) {
		return "flightsql.tls", "cannot be set with plaintext: true (plaintext connects without TLS)"
	}
	if t.InsecureSkipVerify && (t.CAFile != "" || t.ServerName != "") {
		return "flightsql.tls.insecure_skip_verify", "checks nothing, so ca_file and server_name would be ignored; use one or the other"
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return "flightsql.tls.cert_file", "and key_file go together (the agent's client certificate and its key)"
	}
	if f.Token != "" && (f.Username != "" || f.Password != "") {
		return "flightsql.token", "and username/password are two ways to authenticate; give one"
	}
	if (f.Username == "") != (f.Password == "") {
		return "flightsql.username", "and password go together (Flight basic-auth handshake)"
	}
	if strings.ContainsAny(f.Token, "\r\n") {
		return "flightsql.token", "must be one line"
	}
	for k, v := range f.Headers {
		lk := strings.ToLower(k)
		switch {
		case k == "" || strings.Trim(lk, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "":
			return "flightsql.headers", "header name " + strconv.Quote(k) + " must use only letters, digits, '-', '_' and '.'"
		case strings.HasPrefix(lk, "grpc-") || strings.HasSuffix(lk, "-bin"):
			return "flightsql.headers", "header " + strconv.Quote(k) + " is reserved by gRPC (grpc-…) or binary (…-bin)"
		case lk == "authorization" || lk == "cookie":
			return "flightsql.headers", "header " + strconv.Quote(k) + " carries credentials: use flightsql.token or username/password"
		case lk == "content-type" || lk == "te" || lk == "user-agent":
			return "flightsql.headers", "header " + strconv.Quote(k) + " is set by gRPC itself"
		}
		for _, c := range v {
			if c < 0x20 || c > 0x7e {
				return "flightsql.headers", "the value of header " + strconv.Quote(k) + " must be printable ASCII"
			}
		}
	}
	switch f.Dialect {
	case "", string(DriverSQLite), string(DriverPostgres):
	default:
		return "flightsql.dialect", "must be sqlite or postgres (or empty: the dialect the server declares), got " + strconv.Quote(f.Dialect)
	}
	return "", ""
}
