package test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// outcome is what a bypass attempt must come to.
type outcome int

const (
	denied  outcome = iota // PermissionDenied by the policy
	refused                // any error (not supported, invalid): no data either way
	allowed                // runs; check() proves nothing protected came out
)

var (
	anyIDCard  = regexp.MustCompile(`\d{17}[\dXx]`)
	plainHan   = regexp.MustCompile(`^\p{Han}{2,}$`)
	maskedHan  = regexp.MustCompile(`^\p{Han}\*\*$`)
	bypassUser = map[string]string{"alice": "subsidy-review", "bob": "enterprise-credit", "erin": "public-health-planning", "carol": "enterprise-credit", "dave": "enterprise-credit"}
)

// bypass is one attempt of the corpus.
type bypass struct {
	name, user, sql string
	want            outcome
	check           func(t *testing.T, rows [][]string)
	purpose         string // default: the user's grant purpose
}

// noIDCards fails if any value looks like a resident ID number.
func noIDCards(t *testing.T, rows [][]string) {
	t.Helper()
	for _, r := range rows {
		for _, v := range r {
			if anyIDCard.MatchString(v) {
				t.Fatalf("a resident ID number left: %q", v)
			}
		}
	}
}

// namesMasked fails unless column 0 holds only masked names.
func namesMasked(t *testing.T, rows [][]string) {
	t.Helper()
	noIDCards(t, rows)
	for _, r := range rows {
		if !maskedHan.MatchString(r[0]) {
			t.Fatalf("name %q is not masked", r[0])
		}
	}
}

// countsAtLeast fails if any count column (index i) is below k.
func countsAtLeast(i, k int) func(t *testing.T, rows [][]string) {
	return func(t *testing.T, rows [][]string) {
		t.Helper()
		for _, r := range rows {
			n, err := strconv.Atoi(r[i])
			if err != nil || n < k {
				t.Fatalf("a group of %s rows (< k = %d) was released: %v", r[i], k, r)
			}
		}
	}
}

func empty(t *testing.T, rows [][]string) {
	t.Helper()
	if len(rows) != 0 {
		t.Fatalf("want no rows (masked values never equal raw ones), got %v", rows)
	}
}

// TestBypassCorpus runs attempts to reveal protected values — through
// expressions, predicates, ordering, aggregates, aliasing, set operations,
// other purposes and roles — against the running demo. Each names its
// expected outcome; an allowed one is checked for what came out.
func TestBypassCorpus(t *testing.T) {
	corpus := []bypass{
		// Join keys (police.household.id_card; market.enterprises.legal_rep_id_card for
		// alice, who is not in the market department) never leave.
		{"join key output", "bob", "SELECT id_card FROM police.household", denied, nil, ""},
		{"join key via substr", "bob", "SELECT substr(id_card, 1, 6) FROM police.household", denied, nil, ""},
		{"join key via LIKE", "bob", "SELECT name FROM police.household WHERE id_card LIKE '6301%'", denied, nil, ""},
		{"join key equality probe", "bob", "SELECT COUNT(*) FROM police.household WHERE id_card = '630102194001277890'", denied, nil, ""},
		{"join key via length", "bob", "SELECT length(id_card) FROM police.household", denied, nil, ""},
		{"join key via CASE", "bob", "SELECT CASE WHEN id_card > '6' THEN 1 ELSE 0 END AS x FROM police.household", denied, nil, ""},
		{"join key ordering with LIMIT 1", "bob", "SELECT household_district FROM police.household ORDER BY id_card LIMIT 1", denied, nil, ""},
		{"COUNT DISTINCT join key", "bob", "SELECT COUNT(DISTINCT id_card) FROM police.household", denied, nil, ""},
		{"MIN of join key", "bob", "SELECT MIN(id_card) FROM police.household", denied, nil, ""},
		{"join key aliased", "bob", "SELECT id_card AS x FROM police.household", denied, nil, ""},
		{"join key qualified", "bob", "SELECT h.id_card FROM police.household h", denied, nil, ""},
		{"star includes join key", "bob", "SELECT * FROM police.household LIMIT 1", denied, nil, ""},
		{"join key arithmetic", "bob", "SELECT id_card + 0 AS x FROM police.household", refused, nil, ""},
		{"join key IS NULL", "bob", "SELECT household_district FROM police.household WHERE id_card IS NULL", denied, nil, ""},
		{"group by join key", "bob", "SELECT household_district FROM police.household GROUP BY id_card, household_district", denied, nil, ""},
		{"HAVING on join key", "bob", "SELECT household_district, COUNT(*) AS n FROM police.household GROUP BY household_district HAVING MIN(id_card) > '6'", denied, nil, ""},
		{"unconditional join key output", "alice", "SELECT legal_rep_id_card FROM market.enterprises", denied, nil, ""},
		{"unconditional join key LIKE", "alice", "SELECT name FROM market.enterprises WHERE legal_rep_id_card LIKE '6301%'", denied, nil, ""},
		{"unconditional join key grouped by expression", "alice", "SELECT COUNT(*) AS n FROM market.enterprises GROUP BY substr(legal_rep_id_card, 7, 4)", denied, nil, ""},
		// Masked columns: only the masked value exists, whatever the query does to it.
		{"predicate on a raw name", "bob", "SELECT name FROM police.household WHERE name = '张伟'", allowed, empty, ""},
		{"LIKE on the raw given name", "bob", "SELECT name FROM police.household WHERE name LIKE '%伟'", allowed, empty, ""},
		{"group by masked name", "bob", "SELECT name, COUNT(*) AS n FROM police.household GROUP BY name", allowed, namesMasked, ""},
		{"function over masked name", "bob", "SELECT upper(name) AS n FROM police.household LIMIT 20", allowed, namesMasked, ""},
		{"case-insensitive names do not skip masks", "bob", "select NAME from POLICE.HOUSEHOLD limit 20", allowed, namesMasked, ""},
		{"masked name ordered", "bob", "SELECT name FROM police.household ORDER BY name DESC LIMIT 20", allowed, namesMasked, ""},
		// Share class none and missing grants.
		{"criminal records rows", "bob", "SELECT offense FROM police.criminal_records", denied, nil, ""},
		{"criminal records count", "bob", "SELECT COUNT(*) FROM police.criminal_records", denied, nil, ""},
		{"criminal records counted in a scalar subquery", "bob", "SELECT district, (SELECT COUNT(*) FROM police.criminal_records) AS c FROM market.enterprises GROUP BY district", denied, nil, ""},
		{"criminal records intersected", "bob", "SELECT district FROM market.enterprises INTERSECT SELECT offense FROM police.criminal_records", denied, nil, ""},
		{"no grant for civil, counted in a scalar subquery", "bob", "SELECT industry, COUNT(*) * 1.0 / (SELECT COUNT(*) FROM civil.residents) AS r FROM market.enterprises GROUP BY industry", denied, nil, ""},
		{"no grant for civil", "bob", "SELECT district FROM civil.residents", denied, nil, ""},
		{"other purpose for a grant", "bob", "SELECT household_district FROM police.household", denied, nil, "subsidy-review"},
		{"expired grant", "erin", "SELECT COUNT(*) FROM civil.residents", denied, nil, ""},
		{"auditor reads data", "carol", "SELECT name FROM market.enterprises LIMIT 1", denied, nil, ""},
		{"platform admin reads data", "dave", "SELECT name FROM market.enterprises LIMIT 1", denied, nil, ""},
		// Set operations, subqueries, stacked statements, unknown functions.
		{"UNION of allowed and denied", "bob", "SELECT name FROM market.enterprises UNION SELECT offense FROM police.criminal_records", refused, nil, ""},
		{"IN subquery over a join key", "bob", "SELECT name FROM market.enterprises WHERE legal_rep_id_card IN (SELECT id_card FROM police.criminal_records)", refused, nil, ""},
		{"stacked statement", "bob", "SELECT household_district FROM police.household; DROP TABLE household", refused, nil, ""},
		{"unknown function", "bob", "SELECT sleep(10) FROM police.household", refused, nil, ""},
		{"derived table around a join key", "bob", "SELECT x FROM (SELECT id_card AS x FROM police.household) AS t", refused, nil, ""},
		// Aggregate-only release (alice on health.insured, k = 10).
		{"aggregate column as rows", "alice", "SELECT annual_claims FROM health.insured LIMIT 5", denied, nil, ""},
		{"aggregate column through arithmetic", "alice", "SELECT annual_claims * 1 AS c FROM health.insured", denied, nil, ""},
		{"group by an aggregate column", "alice", "SELECT annual_claims, COUNT(*) AS n FROM health.insured GROUP BY annual_claims", denied, nil, ""},
		{"group by a CASE over an aggregate column", "alice", "SELECT CASE WHEN annual_claims > 5000 THEN 'high' ELSE 'low' END AS band, COUNT(*) AS n FROM health.insured GROUP BY band", denied, nil, ""},
		{"order by an aggregate column with LIMIT 1", "alice", "SELECT insurance_type, COUNT(*) AS n FROM health.insured GROUP BY insurance_type ORDER BY annual_claims LIMIT 1", refused, nil, ""},
		{"rows under an aggregate-only grant", "alice", "SELECT insurance_type FROM health.insured LIMIT 5", denied, nil, ""},
		{"predicate on a join key under aggregation", "alice", "SELECT insurance_type, COUNT(*) AS n FROM health.insured WHERE id_card LIKE '630102%' GROUP BY insurance_type", denied, nil, ""},
		{"narrowing a group below k", "alice", "SELECT insurance_type, COUNT(*) AS n FROM health.insured WHERE annual_claims > 30000 GROUP BY insurance_type", allowed, countsAtLeast(1, 10), ""},
		{"single-value probe", "alice", "SELECT COUNT(*) AS n FROM health.insured WHERE hospital_visits = 37", allowed, countsAtLeast(0, 10), ""},
		{"MAX narrowed to one person", "alice", "SELECT insurance_type, MAX(annual_claims) AS m, COUNT(*) AS n FROM health.insured WHERE annual_claims > 40000 GROUP BY insurance_type", denied, nil, ""},
		{"wrong purpose for the aggregate grant", "alice", "SELECT COUNT(*) AS n FROM health.insured", denied, nil, "enterprise-credit"},
	}
	if len(corpus) < 40 {
		t.Fatalf("the corpus must keep at least 40 attempts, has %d", len(corpus))
	}
	for i, c := range corpus {
		t.Run(fmt.Sprintf("%02d %s", i+1, c.name), func(t *testing.T) {
			purpose := c.purpose
			if purpose == "" {
				purpose = bypassUser[c.user]
			}
			_, rows, err := query(t, c.user, purpose, c.sql)
			switch c.want {
			case denied:
				if err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
					t.Fatalf("want PermissionDenied, got %v (%d rows)", err, len(rows))
				}
			case refused:
				if err == nil {
					t.Fatalf("want a refusal, got %d rows", len(rows))
				}
			case allowed:
				if err != nil {
					t.Fatalf("want the query to run (safely), got %v", err)
				}
				c.check(t, rows)
			}
		})
	}
}
