package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCustomModulesCannotReachOut checks that a security-team module cannot
// call builtins that leave the decision (network, runtime environment).
func TestCustomModulesCannotReachOut(t *testing.T) {
	for name, call := range map[string]string{
		"http.send":          `http.send({"method": "GET", "url": "http://127.0.0.1:1/"}).status_code == 200`,
		"net.lookup_ip_addr": `count(net.lookup_ip_addr("localhost")) > 0`,
		"opa.runtime":        `opa.runtime().env.HOME != ""`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src := "package sluice.custom.reach\n\ndeny contains \"x\" if {\n\t" + call + "\n}\n"
			if err := os.WriteFile(filepath.Join(dir, "reach.rego"), []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(context.Background(), WithPolicyDir(dir))
			if err == nil {
				t.Fatalf("a module calling %s was accepted", name)
			}
			if !strings.Contains(err.Error(), "undefined function "+name) || !strings.Contains(err.Error(), "reach.rego") {
				t.Fatalf("error should name the file and the refused builtin: %v", err)
			}
		})
	}
}
