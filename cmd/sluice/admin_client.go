package main

// The client side of the broker's HTTPS JSON admin API (docs/openapi.yaml):
// connection flags, the TLS set-up, calls and the mapping of API errors to
// the core's error codes. The commands are in admin.go and admin_*.go.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

// maxAdminAnswer bounds what the CLI reads of one answer (a catalog export
// is the largest).
const maxAdminAnswer = 256 << 20

// adminConn holds the connection flags shared by the admin commands.
// Defaults point at a demo started in the current folder.
type adminConn struct {
	admin, config, token, user, users, ca, cert, key string
	insecure                                         bool
	timeout                                          time.Duration
}

func (c *adminConn) register(fs *flag.FlagSet) {
	fs.StringVar(&c.admin, "admin", os.Getenv("SLUICE_ADMIN"), "host:port of the broker's admin API ($SLUICE_ADMIN; default: admin_listen of --config)")
	fs.StringVar(&c.config, "config", defaultBrokerConfig, "broker configuration to take admin_listen (and tls_cert) from when --admin (--ca) is not given")
	fs.StringVar(&c.token, "token", os.Getenv("SLUICE_TOKEN"), "bearer token ($SLUICE_TOKEN)")
	fs.StringVar(&c.user, "user", "", "take the token of this user from --users (demo convenience)")
	fs.StringVar(&c.users, "users", envOr("SLUICE_USERS", ".sluice-demo/users.json"), "users file with tokens, as written by 'sluice demo' ($SLUICE_USERS)")
	fs.StringVar(&c.ca, "ca", os.Getenv("SLUICE_CA"), "the broker's certificate (pinned) or its CA ($SLUICE_CA; default: tls_cert of --config, else .sluice-demo/tls/broker.crt)")
	fs.StringVar(&c.cert, "cert", "", "client certificate registered to a user (mutual TLS instead of a token), with --key")
	fs.StringVar(&c.key, "key", "", "the client certificate's key")
	fs.BoolVar(&c.insecure, "insecure-skip-verify", false, "do not verify the broker's certificate (testing only)")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "give up after this long")
}

// brokerConfigHints reads what a client needs from a broker configuration:
// the admin API's address and the broker's certificate. A missing file
// gives empty hints.
func brokerConfigHints(path string) (admin, cert string, err error) {
	if path == "" {
		return "", "", nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", "", nil
		}
		return "", "", err
	}
	var c struct {
		AdminListen string `yaml:"admin_listen"`
		TLSCert     string `yaml:"tls_cert"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return "", "", fmt.Errorf("not valid broker YAML: %v", err)
	}
	if c.TLSCert != "" && !filepath.IsAbs(c.TLSCert) {
		c.TLSCert = filepath.Join(filepath.Dir(path), c.TLSCert)
	}
	return dialable(c.AdminListen), c.TLSCert, nil
}

// dialable turns a listen address into one to dial: an empty or
// unspecified host means this machine.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// resolve fills the address and the certificate from the environment and
// the broker configuration.
func (c *adminConn) resolve() (addr, ca string, err error) {
	addr, ca = c.admin, c.ca
	if addr == "" || ca == "" {
		a, crt, err := brokerConfigHints(c.config)
		if err != nil && addr == "" {
			return "", "", usageErr("--config %s: %v (pass --admin host:port and --ca FILE instead)", c.config, err)
		}
		if addr == "" && a == "" {
			if _, statErr := os.Stat(c.config); statErr == nil {
				return "", "", usageErr("%s has no admin_listen: that broker serves no admin API; set admin_listen, or pass --admin host:port", c.config)
			}
			return "", "", usageErr("no admin API address: pass --admin host:port (or set SLUICE_ADMIN), or run 'sluice demo' in this folder")
		}
		if addr == "" {
			addr = a
		}
		if ca == "" {
			ca = crt
		}
	}
	if ca == "" {
		ca = ".sluice-demo/tls/broker.crt"
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", usageErr("--admin %q is not host:port", addr)
	}
	return addr, ca, nil
}

func (c *adminConn) resolveToken() (string, error) {
	if c.token == "" && c.user == "" && c.cert != "" {
		return "", nil // the client certificate authenticates
	}
	cf := clientFlags{token: c.token, user: c.user, users: c.users}
	tok, err := cf.resolveToken()
	if err != nil && c.user == "" {
		return "", usageErr("no credentials: pass --token (or set SLUICE_TOKEN), --user NAME with a demo users file, or --cert and --key")
	}
	return tok, err
}

// tlsConfig trusts the broker when its certificate is one of those in the
// --ca file (pinned by fingerprint, as the Flight client does), or when it
// chains to one of them as a CA for the address's host. TLS 1.3 only.
func (c *adminConn) tlsConfig(addr, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if c.cert != "" || c.key != "" {
		if c.cert == "" || c.key == "" {
			return nil, usageErr("--cert and --key go together")
		}
		kp, err := tlsutil.LoadKeyPair(c.cert, c.key)
		if err != nil {
			return nil, usageErr("--cert: %v", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	if c.insecure {
		cfg.InsecureSkipVerify = true //nolint:gosec // asked for, testing only
		return cfg, nil
	}
	raw, err := os.ReadFile(caFile)
	if err != nil {
		return nil, usageErr("--ca %s: %v (pass the broker's certificate, or run 'sluice demo' in this folder)", caFile, err)
	}
	pool := x509.NewCertPool()
	pins := map[string]bool{}
	for rest := raw; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		crt, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, usageErr("--ca %s: %v", caFile, err)
		}
		pool.AddCert(crt)
		pins[tlsutil.Fingerprint(block.Bytes)] = true
	}
	if len(pins) == 0 {
		return nil, usageErr("--ca %s: no PEM certificate in it", caFile)
	}
	host, _, _ := net.SplitHostPort(addr)
	// The broker's certificate is usually self-signed and pinned; chain
	// verification is the fallback for a certificate issued by a CA.
	cfg.InsecureSkipVerify = true //nolint:gosec // replaced by VerifyPeerCertificate
	cfg.VerifyPeerCertificate = func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if len(rawCerts) == 0 {
			return errors.New("the broker sent no certificate")
		}
		if pins[tlsutil.Fingerprint(rawCerts[0])] {
			return nil
		}
		leaf, err := x509.ParseCertificate(rawCerts[0])
		if err != nil {
			return err
		}
		inter := x509.NewCertPool()
		for _, r := range rawCerts[1:] {
			if crt, err := x509.ParseCertificate(r); err == nil {
				inter.AddCert(crt)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: host}); err != nil {
			return fmt.Errorf("the broker's certificate (%s) is neither in %s nor issued by a CA in it: %v", tlsutil.Fingerprint(rawCerts[0]), caFile, err)
		}
		return nil
	}
	return cfg, nil
}

// adminClient is a connection to the admin API.
type adminClient struct {
	base  string // https://host:port
	token string
	hc    *http.Client
}

func (c *adminConn) dial() (*adminClient, error) {
	addr, ca, err := c.resolve()
	if err != nil {
		return nil, err
	}
	token, err := c.resolveToken()
	if err != nil {
		return nil, err
	}
	tc, err := c.tlsConfig(addr, ca)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 15 * time.Second}
	return &adminClient{
		base:  "https://" + addr,
		token: token,
		hc: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // never resend the token elsewhere
		}},
	}, nil
}

// apiError is an error answer of the admin API. It unwraps to the core's
// typed error, so sluice.ErrorCode tells its class; the CLI exits with 1
// as for every error that is not a usage error.
type apiError struct {
	Status int
	err    *sluice.Error
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

// statusCode maps an HTTP status to the core's error code.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return sluice.EInvalid
	case http.StatusUnauthorized:
		return sluice.EUnauthenticated
	case http.StatusForbidden:
		return sluice.EDenied
	case http.StatusNotFound:
		return sluice.ENotFound
	case http.StatusConflict:
		return sluice.EConflict
	case http.StatusTooManyRequests:
		return sluice.EResource
	case http.StatusNotImplemented:
		return sluice.ENotSupported
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return sluice.EUnavailable
	}
	return sluice.EInternal
}

// answerError turns a non-2xx answer into an *apiError with the API's
// message, or the start of the body when it is not the API's JSON error.
func answerError(method, path string, status int, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	msg := ""
	if json.Unmarshal(body, &e) == nil && strings.TrimSpace(e.Error) != "" {
		msg = strings.TrimSpace(e.Error)
	} else {
		first := strings.TrimSpace(string(body))
		if i := strings.IndexByte(first, '\n'); i >= 0 {
			first = first[:i]
		}
		if len(first) > 200 {
			first = first[:200] + "…"
		}
		msg = fmt.Sprintf("%s %s: HTTP %d %s", method, path, status, http.StatusText(status))
		if first != "" {
			msg += ": " + first
		}
	}
	return &apiError{Status: status, err: &sluice.Error{Code: statusCode(status), Message: msg}}
}

// do sends one call: body (when not nil) as JSON, and returns the answer's
// body. Query values that are empty are left out.
func (ac *adminClient) do(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	u := ac.base + path
	if q := nonEmpty(query).Encode(); q != "" {
		u += "?" + q
	}
	var rd io.Reader
	if body != nil {
		var raw []byte
		switch b := body.(type) {
		case json.RawMessage:
			raw = b
		default:
			var err error
			if raw, err = json.Marshal(body); err != nil {
				return nil, fmt.Errorf("encode the request: %v", err)
			}
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, usageErr("bad request %s %s: %v", method, u, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "sluice-cli")
	if ac.token != "" {
		req.Header.Set("Authorization", "Bearer "+ac.token)
	}
	resp, err := ac.hc.Do(req)
	if err != nil {
		return nil, transportError(ctx, ac.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminAnswer))
	if err != nil {
		return nil, transportError(ctx, ac.base, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, answerError(method, path, resp.StatusCode, raw)
	}
	return raw, nil
}

// transportError explains a call that got no answer.
func transportError(ctx context.Context, base string, err error) error {
	if ctx.Err() != nil {
		return sluice.Errorf(sluice.EUnavailable, "no answer from the admin API at %s in time (raise --timeout): %v", base, context.Cause(ctx))
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) || strings.Contains(err.Error(), "certificate") {
		return sluice.Errorf(sluice.EUnauthenticated, "cannot trust the admin API at %s: %v (pass the broker's certificate with --ca)", base, unwrapURLError(err))
	}
	return sluice.Errorf(sluice.EUnavailable, "cannot reach the admin API at %s: %v. Check that the broker is running — 'sluice demo' in another terminal, or 'sluice broker --config broker.yaml' with admin_listen — and that --admin (or $SLUICE_ADMIN) names its admin address", base, unwrapURLError(err))
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func nonEmpty(q url.Values) url.Values {
	out := url.Values{}
	for k, vs := range q {
		for _, v := range vs {
			if v != "" {
				out.Add(k, v)
			}
		}
	}
	return out
}

// pathOf joins escaped path segments after /v1.
func pathOf(segments ...string) string {
	var b strings.Builder
	b.WriteString("/v1")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
