package test

import (
	"database/sql"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/sluice-gov/sluice/cmd/sluice/demo"
)

// attached opens the first department's database with the second's
// attached as "o", to compute a cross-department answer directly.
func attached(t *testing.T, dept, other string) *sql.DB {
	t.Helper()
	db := direct(t, dept)
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("ATTACH DATABASE ? AS o", world.World.DatabaseFiles[other]); err != nil {
		t.Fatal(err)
	}
	return db
}

func rowsOf(t *testing.T, db *sql.DB, stmt string) [][]string {
	t.Helper()
	rows, err := db.Query(stmt)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			switch x := v.(type) {
			case float64:
				row[i] = fmt.Sprintf("%.4f", x)
			case []byte:
				row[i] = string(x)
			case time.Time:
				row[i] = x.UTC().Format("2006-01-02")
			default:
				row[i] = fmt.Sprint(x)
			}
		}
		out = append(out, row)
	}
	return out
}

func sorted(rows [][]string) string {
	lines := make([]string, len(rows))
	for i, r := range rows {
		lines[i] = fmt.Sprint(r)
	}
	sort.Strings(lines)
	return fmt.Sprint(lines)
}

// TestTourQuestions: the two cross-department questions of the README tour,
// answered through private joins, equal the same computation done directly
// on the demo's SQLite files.
func TestTourQuestions(t *testing.T) {
	t.Run("alice: low-income residents with chronic-disease claims per district", func(t *testing.T) {
		_, got, err := query(t, "alice", "subsidy-review", `SELECT r.district, COUNT(*) AS residents, AVG(i.annual_claims) AS avg_claims
			FROM civil.residents r JOIN health.insured i ON r.id_card = i.id_card
			WHERE r.low_income = 1 AND i.chronic_disease = 1 GROUP BY r.district`)
		if err != nil {
			t.Fatal(err)
		}
		want := rowsOf(t, attached(t, "civil", "health"), `SELECT r.district, COUNT(*), AVG(CAST(i.annual_claims AS REAL))
			FROM residents r JOIN o.insured i ON r.id_card = i.id_card
			WHERE r.low_income = 1 AND i.chronic_disease = 1 GROUP BY r.district HAVING COUNT(*) >= 10`)
		if len(want) == 0 {
			t.Fatal("the ground truth is empty; the demo data changed")
		}
		if sorted(got) != sorted(want) {
			t.Fatalf("broker and ground truth differ:\n got %v\nwant %v", sorted(got), sorted(want))
		}
	})
	t.Run("bob: enterprises whose legal representative is a registered migrant", func(t *testing.T) {
		_, got, err := query(t, "bob", "enterprise-credit", `SELECT e.name, e.credit_code, h.household_district
			FROM market.enterprises e JOIN police.household h ON e.legal_rep_id_card = h.id_card WHERE h.migrant = 1`)
		if err != nil {
			t.Fatal(err)
		}
		want := rowsOf(t, attached(t, "market", "police"), `SELECT e.name, e.credit_code, h.household_district
			FROM enterprises e JOIN o.household h ON e.legal_rep_id_card = h.id_card WHERE h.migrant = 1`)
		if len(want) < 100 {
			t.Fatalf("the ground truth has only %d rows; the demo data changed", len(want))
		}
		if sorted(got) != sorted(want) {
			t.Fatalf("broker (%d rows) and ground truth (%d rows) differ", len(got), len(want))
		}
		for _, r := range got {
			for _, v := range r {
				if demo.ValidIDCard(v) {
					t.Fatalf("a resident ID number left the sandbox: %q", v)
				}
			}
		}
	})
}
