package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustPair(t *testing.T, cn string, hosts []string) (tls.Certificate, string) {
	t.Helper()
	certPEM, keyPEM, err := GenerateSelfSigned(cn, hosts)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, Fingerprint(cert.Certificate[0])
}

func TestGenerateSelfSigned(t *testing.T) {
	tests := []struct {
		name  string
		hosts []string
		ips   []string
		dns   []string
	}{
		{"defaults", nil, []string{"127.0.0.1"}, []string{"localhost"}},
		{"mixed", []string{"10.0.0.7", "agent.civil.gov", " "}, []string{"10.0.0.7"}, []string{"agent.civil.gov"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, _, err := GenerateSelfSigned("agent-civil", tt.hosts)
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(certPEM)
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject.CommonName != "agent-civil" {
				t.Errorf("CN = %q", c.Subject.CommonName)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if strings.Join(ips, ",") != strings.Join(tt.ips, ",") || strings.Join(c.DNSNames, ",") != strings.Join(tt.dns, ",") {
				t.Errorf("SANs = %v %v, want %v %v", ips, c.DNSNames, tt.ips, tt.dns)
			}
			if !c.NotBefore.Before(time.Now()) || c.NotAfter.Before(time.Now().Add(360*24*time.Hour)) {
				t.Errorf("validity %v..%v", c.NotBefore, c.NotAfter)
			}
			var server, client bool
			for _, u := range c.ExtKeyUsage {
				server = server || u == x509.ExtKeyUsageServerAuth
				client = client || u == x509.ExtKeyUsageClientAuth
			}
			if !server || !client {
				t.Errorf("ext key usage %v lacks server or client auth", c.ExtKeyUsage)
			}
		})
	}
}

func TestWriteAndFingerprintFile(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "a", "cert.pem"), filepath.Join(dir, "a", "key.pem")
	if err := WriteSelfSigned(certPath, keyPath, "broker", nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", st.Mode().Perm())
	}
	fp1, err := FingerprintFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	fp2, _ := FingerprintFile(certPath)
	cert, err := LoadKeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fp1 != fp2 || fp1 != Fingerprint(cert.Certificate[0]) {
		t.Errorf("fingerprints differ: %s %s %s", fp1, fp2, Fingerprint(cert.Certificate[0]))
	}
	if !strings.HasPrefix(fp1, "sha256:") || len(fp1) != len("sha256:")+64 || strings.ToLower(fp1) != fp1 {
		t.Errorf("fingerprint %q is not sha256:<64 lowercase hex>", fp1)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cert, key, want string
	}{
		{"missing cert", filepath.Join(dir, "nope.pem"), garbage, "nope.pem"},
		{"missing key", garbage, filepath.Join(dir, "nokey.pem"), "nokey.pem"},
		{"bad pem", garbage, garbage, "garbage.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadKeyPair(tt.cert, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want mention of %s", err, tt.want)
			}
		})
	}
	if _, err := FingerprintFile(garbage); err == nil || !strings.Contains(err.Error(), "garbage.pem") {
		t.Errorf("FingerprintFile err = %v", err)
	}
}

// handshake runs a real TLS handshake over loopback and returns the client
// and server errors.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	done := make(chan error, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, srvCfg)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		err = tc.Handshake()
		if err == nil {
			// TLS 1.3 verifies the client certificate after the client
			// thinks the handshake is done; a write makes the verdict
			// reach the client.
			_, err = tc.Write([]byte("x"))
		}
		done <- err
	}()
	c, err := tls.Dial("tcp", lis.Addr().String(), cliCfg)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1)
		_, err = io.ReadFull(c, buf)
		c.Close()
	}
	return err, <-done
}

func TestPinnedHandshake(t *testing.T) {
	srvCert, srvPin := mustPair(t, "agent", nil)
	brokerCert, brokerPin := mustPair(t, "broker", nil)
	otherCert, otherPin := mustPair(t, "intruder", nil)
	tests := []struct {
		name       string
		clientPins []string
		serverPin  string
		clientCert *tls.Certificate
		wantOK     bool
	}{
		{"no client auth, right pin", nil, srvPin, nil, true},
		{"right pin upper case", nil, strings.ToUpper(srvPin), nil, true},
		{"wrong server pin", nil, otherPin, nil, false},
		{"empty server pin", nil, "", nil, false},
		{"pinned client", []string{otherPin, brokerPin}, srvPin, &brokerCert, true},
		{"client without cert", []string{brokerPin}, srvPin, nil, false},
		{"client with wrong cert", []string{brokerPin}, srvPin, &otherCert, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cerr, serr := handshake(t, ServerConfig(srvCert, tt.clientPins), PinnedClientConfig(tt.serverPin, tt.clientCert))
			if tt.wantOK && (cerr != nil || serr != nil) {
				t.Fatalf("want success, got client %v, server %v", cerr, serr)
			}
			if !tt.wantOK && cerr == nil && serr == nil {
				t.Fatal("want failure, handshake succeeded")
			}
		})
	}
}

func TestServerConfigIsTLS13(t *testing.T) {
	cert, _ := mustPair(t, "agent", nil)
	cfg := ServerConfig(cert, nil)
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("MinVersion %x ClientAuth %v", cfg.MinVersion, cfg.ClientAuth)
	}
}
