package broker_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker"
)

// FuzzLoadConfig feeds arbitrary bytes to the broker configuration loader.
// Any answer is fine except a panic or an error that is not a ConfigError
// naming the file; an accepted configuration must load again the same way.
// The seed corpus (testdata/fuzz/FuzzLoadConfig) holds the broker.yaml
// 'sluice demo' writes; CI runs it briefly (.ci/run).
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:47470\ntls_cert: tls/broker.crt\ntls_key: tls/broker.key\nstore: broker.db\ndepartments: [civil/civil.yaml]\nusers: users.json\npurposes: purposes.yaml\n"))
	f.Add([]byte("listen: x:1\ntls_cert: a\ntls_key: b\nstore: s\nretention: 720h\n"))
	f.Add([]byte("listen: x:1\ntls_cert: a\ntls_key: b\nstore: postgres://u@h:5432/db\ndp_grades: [l4, L9]\ncalendar: {holidays: [2026-10-01]}\n"))
	f.Add([]byte("listen: [\n"))
	path := filepath.Join(f.TempDir(), "broker.yaml")
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := broker.LoadConfig(path)
		if err != nil {
			var ce *sluice.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *sluice.ConfigError, got %T: %v", err, err)
			}
			if ce.File != path {
				t.Fatalf("the error names file %q, want %q: %v", ce.File, path, err)
			}
			return
		}
		if cfg.Listen == "" || cfg.TLSCert == "" || cfg.TLSKey == "" || cfg.Store == "" {
			t.Fatalf("accepted a configuration without a required field: %+v", cfg)
		}
		if _, err := broker.LoadConfig(path); err != nil {
			t.Fatalf("an accepted configuration is refused the second time: %v", err)
		}
	})
}
