package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOldV15Client: an analyst's program built with the Flight SQL
// database/sql driver of Apache Arrow v15 (test/v15client, its own module)
// works against the broker built on arrow-go v18: the same rows, masks and
// dates as the v18 driver sees, and a denial explained.
func TestOldV15Client(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "v15client")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "v15client"
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the v15 client: %v\n%s", err, out)
	}
	run := func(user, purpose, stmt string) (string, string, error) {
		cmd := exec.Command(bin, "-dsn", dsn(t, user, purpose), stmt)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	cases := []struct{ user, purpose, stmt string }{
		// masked rows
		{"bob", "enterprise-credit", "SELECT name, household_district FROM police.household WHERE migrant = 1 ORDER BY name LIMIT 5"},
		// a date column (Date64 on the wire: the v15 driver reads no Date32)
		{"bob", "enterprise-credit", "SELECT credit_code, established FROM market.enterprises ORDER BY credit_code LIMIT 5"},
		// an aggregate across departments, through the private join
		{"alice", "subsidy-review", "SELECT r.district, COUNT(*) AS n FROM civil.residents r JOIN health.insured h ON r.id_card = h.id_card WHERE h.chronic_disease = 1 GROUP BY r.district ORDER BY r.district"},
	}
	for _, c := range cases {
		out, stderr, err := run(c.user, c.purpose, c.stmt)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.stmt, err, stderr)
		}
		cols, rows, err := query(t, c.user, c.purpose, c.stmt)
		if err != nil {
			t.Fatalf("%s with the v18 driver: %v", c.stmt, err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if lines[0] != strings.Join(cols, "\t") {
			t.Fatalf("%s: v15 columns %q, v18 %q", c.stmt, lines[0], cols)
		}
		if len(lines)-1 != len(rows) || len(rows) == 0 {
			t.Fatalf("%s: v15 %d rows, v18 %d", c.stmt, len(lines)-1, len(rows))
		}
		for i, r := range rows {
			if got, want := lines[i+1], strings.Join(r, "\t"); got != want {
				t.Fatalf("%s row %d: v15 %q, v18 %q", c.stmt, i, got, want)
			}
		}
	}

	// A denial reaches the old client with its reasons.
	_, stderr, err := run("bob", "enterprise-credit", "SELECT offense FROM police.criminal_records")
	if err == nil || !strings.Contains(stderr, "PermissionDenied") || !strings.Contains(stderr, "share_class_none") {
		t.Fatalf("denied query: %v\n%s", err, stderr)
	}
}
