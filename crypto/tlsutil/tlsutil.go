// Package tlsutil makes and loads the certificates that secure the links
// between the broker and the department agents. Those links use self-signed
// certificates trusted by fingerprint pinning: there is no CA shared by all
// departments, and a pin is simpler to exchange and to audit than a chain.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fingerprintPrefix names the hash so that a later change of algorithm can
// be told apart from a typo.
const fingerprintPrefix = "sha256:"

// GenerateSelfSigned makes an ECDSA P-256 self-signed certificate for hosts
// (IP addresses and DNS names; 127.0.0.1 and localhost when hosts is empty),
// usable as server and as client certificate, valid for about one year.
func GenerateSelfSigned(commonName string, hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	// Backdated so that peers whose clocks run a little behind accept it.
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Sluice"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// WriteSelfSigned generates a certificate and writes it to certPath and its
// key to keyPath, readable by the owner only.
func WriteSelfSigned(certPath, keyPath, commonName string, hosts []string) error {
	certPEM, keyPEM, err := GenerateSelfSigned(commonName, hosts)
	if err != nil {
		return err
	}
	for _, p := range []string{certPath, keyPath} {
		if dir := filepath.Dir(p); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create folder for %s: %w", p, err)
			}
		}
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("write certificate %s: %w", certPath, err)
	}
	// WriteFile keeps the mode of an existing file, so a key file that was
	// once world-readable would stay so without the explicit Chmod.
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write key %s: %w", keyPath, err)
	}
	if err := os.Chmod(keyPath, 0o600); err != nil {
		return fmt.Errorf("restrict key %s: %w", keyPath, err)
	}
	return nil
}

// Fingerprint is "sha256:" followed by the lowercase hex SHA-256 of a DER
// certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return fingerprintPrefix + hex.EncodeToString(sum[:])
}

// FingerprintFile returns the fingerprint of the first certificate in a PEM
// file.
func FingerprintFile(certPath string) (string, error) {
	raw, err := os.ReadFile(certPath)
	if err != nil {
		return "", fmt.Errorf("read certificate %s: %w", certPath, err)
	}
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			return "", fmt.Errorf("certificate %s: no PEM CERTIFICATE block found", certPath)
		}
		if block.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				return "", fmt.Errorf("certificate %s: %w", certPath, err)
			}
			return Fingerprint(block.Bytes), nil
		}
	}
}

// LoadKeyPair loads a PEM certificate and key; errors name the file at fault.
func LoadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	if certPath == "" || keyPath == "" {
		return tls.Certificate{}, errors.New("TLS certificate and key paths are both required")
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read TLS certificate %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read TLS key %s: %w", keyPath, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("TLS certificate %s with key %s: %w", certPath, keyPath, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	return cert, nil
}

// normalizePin accepts pins with or without the prefix and in any hex case,
// since they are copied by hand between departments.
func normalizePin(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	if !strings.HasPrefix(p, fingerprintPrefix) {
		p = fingerprintPrefix + p
	}
	return p
}

// matchPin compares in constant time so that a peer cannot learn a pin byte
// by byte from timing; it checks every pin rather than stopping at a match.
func matchPin(got string, pins []string) bool {
	ok := 0
	for _, p := range pins {
		ok |= subtle.ConstantTimeCompare([]byte(got), []byte(normalizePin(p)))
	}
	return ok == 1
}

// ServerConfig is a TLS 1.3 server configuration. With clientPins it
// requires a client certificate whose leaf fingerprint is one of them;
// without, no client certificate is asked for.
func ServerConfig(cert tls.Certificate, clientPins []string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	}
	if len(clientPins) == 0 {
		return cfg
	}
	pins := append([]string(nil), clientPins...)
	// The certificates are self-signed, so chain verification would fail;
	// the pin check below replaces it.
	cfg.ClientAuth = tls.RequireAnyClientCert
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("tlsutil: a client certificate is required")
		}
		if !matchPin(Fingerprint(raw[0]), pins) {
			return errors.New("tlsutil: client certificate is not pinned by this server")
		}
		return nil
	}
	return cfg
}

// PinnedClientConfig is a TLS 1.3 client configuration that trusts the
// server only if its leaf certificate has fingerprint serverPin, and
// presents clientCert when not nil.
func PinnedClientConfig(serverPin string, clientCert *tls.Certificate) *tls.Config {
	pin := serverPin
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Self-signed certificates have no chain to verify; the pin check
		// in VerifyPeerCertificate is the whole of the server's
		// authentication, and it runs on every handshake.
		InsecureSkipVerify: true, //nolint:gosec // replaced by pinning
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if strings.TrimSpace(pin) == "" {
				return errors.New("tlsutil: no server fingerprint pinned; refusing an unauthenticated server")
			}
			if len(raw) == 0 {
				return errors.New("tlsutil: server sent no certificate")
			}
			if !matchPin(Fingerprint(raw[0]), []string{pin}) {
				return fmt.Errorf("tlsutil: server certificate fingerprint %s does not match the pinned %s", Fingerprint(raw[0]), normalizePin(pin))
			}
			return nil
		},
	}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	return cfg
}
