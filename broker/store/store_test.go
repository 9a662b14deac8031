package store

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/sqlstore"
)

var ctx = context.Background()

// schemaOf describes the store's tables and columns, to show that opening
// again changes nothing.
func schemaOf(t *testing.T, s *Store) []string {
	t.Helper()
	q := `SELECT name || ': ' || sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name`
	if s.Dialect() == Postgres {
		q = `SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || coalesce(collation_name, '')
			FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`
	}
	rows, err := s.db.QueryContext(ctx, q)
	must(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var l string
		must(t, rows.Scan(&l))
		out = append(out, l)
	}
	must(t, rows.Err())
	return out
}

func migrationsOf(t *testing.T, s *Store) []string {
	t.Helper()
	rec, err := sqlstore.Recorded(ctx, s.db, s.d, schema().Store)
	must(t, err)
	var out []string
	for _, a := range rec {
		if _, err := time.Parse(time.RFC3339Nano, a.At); err != nil {
			t.Fatalf("applied_at %q: %v", a.At, err)
		}
		out = append(out, fmt.Sprintf("%d@%s", a.Version, a.At))
	}
	return out
}

func TestOpenMigratesOnceAndReopens(t *testing.T) {
	forEach(t, func(t *testing.T, target string) {
		s := open(t, target)
		if s.Dialect() != t.Name()[strings.LastIndex(t.Name(), "/")+1:] {
			t.Fatalf("dialect %s in %s", s.Dialect(), t.Name())
		}
		migs := migrationsOf(t, s)
		if len(migs) != len(migrations) || !strings.HasPrefix(migs[0], "1@") {
			t.Fatalf("migrations %v, want %d", migs, len(migrations))
		}
		schema := schemaOf(t, s)
		if !slices.ContainsFunc(schema, func(l string) bool { return strings.Contains(l, "wf_applications") }) {
			t.Fatalf("no wf_applications in %v", schema)
		}
		for _, l := range schema {
			if !strings.HasPrefix(l, "wf_") && !strings.HasPrefix(l, "schema_migrations") && !strings.HasPrefix(l, "sqlite_autoindex_wf_") &&
				!strings.HasPrefix(l, "sqlite_autoindex_schema_migrations") {
				t.Fatalf("object %q is outside the store's wf_ prefix", l)
			}
		}
		must(t, s.SetMeta(ctx, "imported", "grants.yaml"))
		must(t, s.Close())

		// Opening again, and a third time, finds nothing to do.
		for range 2 {
			s2 := open(t, target)
			if got := migrationsOf(t, s2); !reflect.DeepEqual(got, migs) {
				t.Fatalf("migrations after reopening %v, want %v", got, migs)
			}
			if got := schemaOf(t, s2); !reflect.DeepEqual(got, schema) {
				t.Fatalf("schema after reopening\n%v\nwant\n%v", got, schema)
			}
			if v, ok, err := s2.Meta(ctx, "imported"); err != nil || !ok || v != "grants.yaml" {
				t.Fatalf("meta after reopening %q %v %v", v, ok, err)
			}
			must(t, s2.Close())
		}
	})
}

func TestOpenConcurrentlyMigratesOnce(t *testing.T) {
	forEach(t, func(t *testing.T, target string) {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				s, err := Open(ctx, target)
				if err == nil {
					s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			must(t, err)
		}
		if got := migrationsOf(t, open(t, target)); len(got) != len(migrations) {
			t.Fatalf("migrations %v", got)
		}
	})
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	forEach(t, func(t *testing.T, target string) {
		s := open(t, target)
		_, err := s.db.ExecContext(ctx, s.d.Rebind(`INSERT INTO schema_migrations(store, version, applied_at) VALUES (?, ?, ?)`),
			schema().Store, schemaVersion()+1, time.Now().UTC().Format(time.RFC3339Nano))
		must(t, err)
		must(t, s.Close())
		_, err = Open(ctx, target)
		wantCode(t, err, sluice.EInvalid, fmt.Sprintf("is at schema version %d, but this broker knows only up to version %d; upgrade the broker",
			schemaVersion()+1, schemaVersion()))
	})
}

// withMigrations runs f with extra migrations appended, as a newer broker
// would have them.
func withMigrations(t *testing.T, extra ...[]string) {
	orig := migrations
	migrations = orig[:len(orig):len(orig)]
	for _, stmts := range extra {
		migrations = append(migrations, sqlstore.Statements(stmts...))
	}
	t.Cleanup(func() { migrations = orig })
}

func TestMigrationsApplyInOrderInOneTransaction(t *testing.T) {
	forEach(t, func(t *testing.T, target string) {
		s := open(t, target)
		must(t, s.Close())
		base := int64(len(migrations))

		// A migration that fails leaves no trace, not even its first
		// statement, and the store refuses to open.
		t.Run("failing", func(t *testing.T) {
			withMigrations(t, []string{`CREATE TABLE wf_tmp_a (x BIGINT)`}, []string{`CREATE TABLE wf_tmp_b (x BIGINT)`, `NOT SQL AT ALL`})
			_, err := Open(ctx, target)
			wantCode(t, err, sluice.EUnavailable, fmt.Sprintf("the broker store (%s) is unavailable: %s cannot be set up: migration %d failed", s.Dialect(), s.where, base+2))
		})
		s = open(t, target)
		if got := migrationsOf(t, s); int64(len(got)) != base {
			t.Fatalf("after a failed migration: %v", got)
		}
		for _, l := range schemaOf(t, s) {
			if strings.Contains(l, "wf_tmp_") {
				t.Fatalf("a failed migration left %q", l)
			}
		}
		must(t, s.Close())

		t.Run("succeeding", func(t *testing.T) {
			withMigrations(t, []string{`CREATE TABLE wf_tmp_a (x BIGINT)`}, []string{`INSERT INTO wf_tmp_a(x) VALUES (7)`})
			s := open(t, target)
			if got := migrationsOf(t, s); int64(len(got)) != base+2 || !strings.HasPrefix(got[base+1], fmt.Sprint(base+2, "@")) {
				t.Fatalf("after new migrations: %v", got)
			}
			var x int
			must(t, s.db.QueryRowContext(ctx, `SELECT x FROM wf_tmp_a`).Scan(&x))
			if x != 7 {
				t.Fatalf("x = %d", x)
			}
		})
	})
}

func TestOpenRejectsBadTargets(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ target, code, msg string }{
		{"", sluice.EInvalid, "the broker store is not set"},
		{":memory:", sluice.EInvalid, "must be a SQLite file path or a postgres:// URL"},
		{"file:x.db?mode=memory", sluice.EInvalid, "must be a SQLite file path"},
		{dir, sluice.EInvalid, "is a directory"},
		{filepath.Join(dir, "missing", "x.db"), sluice.EUnavailable, "the broker store (sqlite) is unavailable: " + filepath.Join(dir, "missing", "x.db") + " cannot be set up: "},
	} {
		_, err := Open(ctx, c.target)
		wantCode(t, err, c.code, c.msg)
	}
}

func TestPostgresPasswordsNeverShown(t *testing.T) {
	const secret = "s3cret-Pa55word"
	for _, c := range []struct{ target, code, msg string }{
		// Nothing listens on port 1: the connection is refused at once.
		{"postgres://sluice:" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", sluice.EUnavailable,
			"the broker store (postgres) is unavailable: cannot connect to postgres://sluice:xxxxx@127.0.0.1:1/db"},
		{"postgresql://sluice@127.0.0.1:1/db?sslmode=disable&password=" + secret, sluice.EUnavailable,
			"password=xxxxx"},
		{"postgres://sluice:" + secret + "@127.0.0.1:notaport/db", sluice.EInvalid, "the broker store URL"},
		{"postgres://sluice:" + secret + "@127.0.0.1:5432/db?sslmode=bogus", sluice.EInvalid, "the broker store URL"},
	} {
		_, err := Open(ctx, c.target)
		wantCode(t, err, c.code, c.msg)
		if strings.Contains(err.Error(), secret) || strings.Contains(sluice.ErrorMessage(err), secret) {
			t.Fatalf("the password leaked: %v", err)
		}
	}
	for in, want := range map[string]string{
		"postgres://u:pw@h/db":             "postgres://u:xxxxx@h/db",
		"postgres://u@h/db?password=pw":    "postgres://u@h/db?password=xxxxx",
		"postgres://u:p%zz@h:notaport/db":  "postgres://u:xxxxx@h:notaport/db",
		"postgresql://u@h/db?sslmode=none": "postgresql://u@h/db?sslmode=none",
	} {
		if got := sqlstore.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		must(t, s.Close())
		want := "the broker store (" + s.Dialect() + ") is unavailable: "
		_, err := s.Grants(ctx)
		wantCode(t, err, sluice.EUnavailable, want)
		wantCode(t, s.PutGrant(ctx, grant("g")), sluice.EUnavailable, want)
		_, _, err = s.Meta(ctx, "k")
		wantCode(t, err, sluice.EUnavailable, want)
		_, err = s.Application(ctx, "a")
		wantCode(t, err, sluice.EUnavailable, want)
	})
}

func TestMeta(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		if v, ok, err := s.Meta(ctx, "catalog.imported"); err != nil || ok || v != "" {
			t.Fatalf("unset meta: %q %v %v", v, ok, err)
		}
		must(t, s.SetMeta(ctx, "catalog.imported", "sha256:1"))
		must(t, s.SetMeta(ctx, "catalog.imported", "sha256:2"))
		must(t, s.SetMeta(ctx, "empty", ""))
		if v, ok, err := s.Meta(ctx, "catalog.imported"); err != nil || !ok || v != "sha256:2" {
			t.Fatalf("meta: %q %v %v", v, ok, err)
		}
		if v, ok, err := s.Meta(ctx, "empty"); err != nil || !ok || v != "" {
			t.Fatalf("empty meta: %q %v %v", v, ok, err)
		}
		wantCode(t, s.SetMeta(ctx, "", "x"), sluice.EInvalid, "the meta key is required")
	})
}

func TestDepartmentsAndCatalogChanges(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		civil := department("civil")
		allSet(t, civil)
		ds, err := s.Departments(ctx)
		if err != nil || len(ds) != 0 {
			t.Fatalf("empty catalog: %v %v", ds, err)
		}
		_, err = s.Department(ctx, "civil")
		wantCode(t, err, sluice.ENotFound, "department civil is not in the catalog")

		before := time.Now()
		ch, err := s.PutDepartment(ctx, civil, sluice.CatalogChange{Actor: "dave", Action: "register-agent", Summary: "agent at civil.agent:7443", CatalogVersion: "sha256:aa"})
		must(t, err)
		if ch.Version != 1 || ch.Department != "civil" || ch.Time.Before(before.Add(-time.Second)) || ch.Time.After(time.Now()) || ch.Time.Location() != time.UTC {
			t.Fatalf("first change %+v", ch)
		}
		got, err := s.Department(ctx, "civil")
		must(t, err)
		wantEqual(t, "department", got, jsonRT(t, civil))
		if got.Sources != nil || got.Agent.TLSCert != "" || got.Agent.TLSKey != "" || got.Datasets[0].Table != "" {
			t.Fatalf("the store kept what only the agent needs: %+v", got)
		}

		// Versions keep counting across departments; a given time is kept,
		// a given version is not.
		ch2 := sluice.CatalogChange{Version: 99, Time: at(1), Actor: "eve", Department: "health", Dataset: "insured", Action: "register-dataset", Summary: "insured", CatalogVersion: "sha256:bb"}
		allSet(t, ch2)
		stored2, err := s.PutDepartment(ctx, department("health"), ch2)
		must(t, err)
		ch2.Version = 2
		wantEqual(t, "second change", stored2, ch2)

		civil.Name = "Civil Affairs Bureau"
		civil.Datasets = append(civil.Datasets, &sluice.Dataset{Department: "civil", Name: "marriages", ShareClass: sluice.ShareUnconditional})
		ch3, err := s.PutDepartment(ctx, civil, sluice.CatalogChange{Time: at(2), Actor: "dave", Dataset: "marriages", Action: "register-dataset", Summary: "marriages"})
		must(t, err)
		if ch3.Version != 3 {
			t.Fatalf("third change %+v", ch3)
		}
		got, err = s.Department(ctx, "civil")
		must(t, err)
		wantEqual(t, "updated department", got, jsonRT(t, civil))

		ds, err = s.Departments(ctx)
		must(t, err)
		if len(ds) != 2 || ds[0].ID != "civil" || ds[1].ID != "health" {
			t.Fatalf("departments %v", ds)
		}
		wantEqual(t, "listed department", ds[0], jsonRT(t, civil))

		all, err := s.CatalogChanges(ctx, "", 0)
		must(t, err)
		wantEqual(t, "all changes", all, []sluice.CatalogChange{jsonRT(t, ch3), jsonRT(t, ch2), jsonRT(t, ch)})
		mine, err := s.CatalogChanges(ctx, "civil", 0)
		must(t, err)
		wantEqual(t, "civil's changes", mine, []sluice.CatalogChange{jsonRT(t, ch3), jsonRT(t, ch)})
		last, err := s.CatalogChanges(ctx, "", 1)
		must(t, err)
		wantEqual(t, "latest change", last, []sluice.CatalogChange{jsonRT(t, ch3)})
		none, err := s.CatalogChanges(ctx, "police", 5)
		if err != nil || len(none) != 0 {
			t.Fatalf("changes of an unknown department: %v %v", none, err)
		}
		_, err = s.CatalogChanges(ctx, "", -1)
		wantCode(t, err, sluice.EInvalid, "the limit must be 0")

		_, err = s.PutDepartment(ctx, department("civil"), sluice.CatalogChange{Department: "health"})
		wantCode(t, err, sluice.EInvalid, "the change names department health but the department stored is civil")
		_, err = s.PutDepartment(ctx, &sluice.Department{}, sluice.CatalogChange{})
		wantCode(t, err, sluice.EInvalid, "the department id is required")
		_, err = s.PutDepartment(ctx, nil, sluice.CatalogChange{})
		wantCode(t, err, sluice.EInvalid, "no department given")
		// A refused change took no version.
		next, err := s.PutDepartment(ctx, department("police"), sluice.CatalogChange{})
		must(t, err)
		if next.Version != 4 {
			t.Fatalf("version after refusals %d", next.Version)
		}
	})
}

// Sorting is by bytes on both dialects, whatever PostgreSQL's locale.
func TestSortedByByteOrder(t *testing.T) {
	ids := []string{"b", "B", "a", "Z", "é", "10", "9", "a-b", "a_b", "ab"}
	want := slices.Sorted(slices.Values(ids))
	each(t, func(t *testing.T, s *Store) {
		for _, id := range ids {
			_, err := s.PutDepartment(ctx, &sluice.Department{ID: id}, sluice.CatalogChange{})
			must(t, err)
			must(t, s.PutPurpose(ctx, sluice.Purpose{Code: id}))
			must(t, s.PutUser(ctx, sluice.User{Name: id}))
			must(t, s.PutGrant(ctx, sluice.Grant{ID: id}))
		}
		var got [4][]string
		ds, err := s.Departments(ctx)
		must(t, err)
		for _, d := range ds {
			got[0] = append(got[0], d.ID)
		}
		ps, err := s.Purposes(ctx)
		must(t, err)
		for _, p := range ps {
			got[1] = append(got[1], p.Code)
		}
		us, err := s.Users(ctx)
		must(t, err)
		for _, u := range us {
			got[2] = append(got[2], u.Name)
		}
		gs, err := s.Grants(ctx)
		must(t, err)
		for _, g := range gs {
			got[3] = append(got[3], g.ID)
		}
		for i, g := range got {
			if !slices.Equal(g, want) {
				t.Errorf("listing %d: %q, want %q", i, g, want)
			}
		}
	})
}

func TestPurposes(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		p := sluice.Purpose{Code: "subsidy-review", Name: "低保审核", Description: "annual review", LegalDuty: "《社会救助暂行办法》"}
		allSet(t, p)
		must(t, s.PutPurpose(ctx, sluice.Purpose{Code: "subsidy-review", Name: "old"}))
		must(t, s.PutPurpose(ctx, p))
		must(t, s.PutPurpose(ctx, sluice.Purpose{Code: "enterprise-credit", Name: "企业信用"}))
		ps, err := s.Purposes(ctx)
		must(t, err)
		wantEqual(t, "purposes", ps, []sluice.Purpose{{Code: "enterprise-credit", Name: "企业信用"}, p})
		must(t, s.RemovePurpose(ctx, "enterprise-credit"))
		wantCode(t, s.RemovePurpose(ctx, "enterprise-credit"), sluice.ENotFound, "purpose enterprise-credit is not registered")
		ps, err = s.Purposes(ctx)
		must(t, err)
		wantEqual(t, "purposes after removal", ps, []sluice.Purpose{p})
		wantCode(t, s.PutPurpose(ctx, sluice.Purpose{}), sluice.EInvalid, "the purpose code is required")
	})
}

func TestUsers(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		alice := user("alice")
		allSet(t, alice)
		must(t, s.PutUser(ctx, user("bob")))
		must(t, s.PutUser(ctx, alice))
		got, err := s.User(ctx, "alice")
		must(t, err)
		wantEqual(t, "user", *got, jsonRT(t, alice))
		alice.Disabled = false
		alice.Role = sluice.RoleDeptAdmin
		must(t, s.PutUser(ctx, alice))
		us, err := s.Users(ctx)
		must(t, err)
		wantEqual(t, "users", us, []sluice.User{jsonRT(t, alice), jsonRT(t, user("bob"))})
		_, err = s.User(ctx, "mallory")
		wantCode(t, err, sluice.ENotFound, "user mallory does not exist")
		wantCode(t, s.PutUser(ctx, sluice.User{}), sluice.EInvalid, "the user name is required")
	})
}

func TestTokens(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		must(t, s.PutUser(ctx, user("alice")))
		must(t, s.PutUser(ctx, user("bob")))
		t1 := token("t1", "alice", at(0))
		allSet(t, t1)
		t1.RevokedAt = nil
		t2 := token("t2", "bob", at(1))
		t2.RevokedAt = nil
		t3 := token("t3", "alice", at(2))
		t3.ExpiresAt, t3.RevokedAt = time.Time{}, nil
		t3.SHA256 = strings.ToUpper(t3.SHA256)
		for _, tk := range []sluice.Token{t3, t2, t1} {
			must(t, s.AddToken(ctx, tk))
		}
		// The hash is not part of the JSON record; it comes back anyway.
		want := func(ts ...sluice.Token) []sluice.Token {
			var out []sluice.Token
			for _, tk := range ts {
				rt := jsonRT(t, tk)
				rt.SHA256 = strings.ToLower(tk.SHA256)
				out = append(out, rt)
			}
			return out
		}
		all, err := s.Tokens(ctx, "")
		must(t, err)
		wantEqual(t, "all tokens, oldest first", all, want(t1, t2, t3))
		mine, err := s.Tokens(ctx, "alice")
		must(t, err)
		wantEqual(t, "alice's tokens", mine, want(t1, t3))
		none, err := s.Tokens(ctx, "carol")
		if err != nil || len(none) != 0 {
			t.Fatalf("tokens of nobody: %v %v", none, err)
		}

		dup := token("t1", "alice", at(3))
		wantCode(t, s.AddToken(ctx, dup), sluice.EConflict, "token t1 already exists")
		sameHash := token("t9", "bob", at(3))
		sameHash.SHA256 = t1.SHA256
		wantCode(t, s.AddToken(ctx, sameHash), sluice.EConflict, "token t9: another token has the same hash")
		wantCode(t, s.AddToken(ctx, token("t8", "mallory", at(3))), sluice.ENotFound, "user mallory does not exist")
		for _, bad := range []string{"", "abc", strings.Repeat("g", 64), sum("x") + "00"} {
			tk := token("t7", "alice", at(3))
			tk.SHA256 = bad
			wantCode(t, s.AddToken(ctx, tk), sluice.EInvalid, "the SHA-256 must be 64 hex digits")
		}
		wantCode(t, s.AddToken(ctx, sluice.Token{User: "alice", SHA256: sum("y")}), sluice.EInvalid, "the token id is required")
		wantCode(t, s.AddToken(ctx, sluice.Token{ID: "t6", SHA256: sum("y")}), sluice.EInvalid, "the token's user is required")
		if all2, _ := s.Tokens(ctx, ""); len(all2) != 3 {
			t.Fatalf("refused tokens were stored: %v", all2)
		}

		// Revoking: the first time counts.
		first := at(5)
		must(t, s.RevokeToken(ctx, "t1", first))
		must(t, s.RevokeToken(ctx, "t1", at(6)))
		wantCode(t, s.RevokeToken(ctx, "nope", first), sluice.ENotFound, "token nope does not exist")
		before := time.Now()
		must(t, s.RevokeToken(ctx, "t2", time.Time{}))
		all, err = s.Tokens(ctx, "")
		must(t, err)
		t1.RevokedAt = &first
		wantEqual(t, "revoked token", all[0], want(t1)[0])
		if r := all[1].RevokedAt; r == nil || r.Before(before.Add(-time.Second)) || r.After(time.Now()) {
			t.Fatalf("revoked now: %v", r)
		}
		if all[2].RevokedAt != nil {
			t.Fatalf("t3 revoked: %v", all[2].RevokedAt)
		}
		// A token stored revoked stays revoked at its time.
		t4 := token("t4", "bob", at(7))
		must(t, s.AddToken(ctx, t4))
		must(t, s.RevokeToken(ctx, "t4", at(9)))
		bobs, err := s.Tokens(ctx, "bob")
		must(t, err)
		wantEqual(t, "token stored revoked", bobs[1], want(t4)[0])
	})
}

func TestGrants(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		g := grant("g-2")
		allSet(t, g)
		_, err := s.Grant(ctx, "g-2")
		wantCode(t, err, sluice.ENotFound, "grant g-2 does not exist")
		must(t, s.PutGrant(ctx, g))
		plain := sluice.Grant{ID: "g-1", Grantee: "dept:market", Dataset: "police.household", Columns: []string{"name"}, Purpose: "enterprise-credit", Mode: sluice.ModeRows}
		must(t, s.PutGrant(ctx, plain))
		got, err := s.Grant(ctx, "g-2")
		must(t, err)
		wantEqual(t, "grant", *got, jsonRT(t, g))
		g.Revoked, g.RevokedAt, g.RevokedBy = false, nil, ""
		g.Grantee = "bob"
		must(t, s.PutGrant(ctx, g))
		gs, err := s.Grants(ctx)
		must(t, err)
		wantEqual(t, "grants", gs, []sluice.Grant{jsonRT(t, plain), jsonRT(t, g)})
		wantCode(t, s.PutGrant(ctx, sluice.Grant{}), sluice.EInvalid, "the grant id is required")
		bad := grant("g-3")
		bad.Epsilon = nanValue()
		wantCode(t, s.PutGrant(ctx, bad), sluice.EInvalid, "grant g-3 cannot be stored")
	})
}

func nanValue() float64 { var z float64; return z / z }

func TestInvalidKeys(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		wantCode(t, s.PutGrant(ctx, sluice.Grant{ID: "a\x00b"}), sluice.EInvalid, "the grant id")
		wantCode(t, s.PutUser(ctx, sluice.User{Name: "\xff"}), sluice.EInvalid, "is not valid text")
		wantCode(t, s.PutGrant(ctx, sluice.Grant{ID: "g", Grantee: "x\x00"}), sluice.EInvalid, "the grantee")
		_, err := s.Applications(ctx, ApplicationFilter{Status: []sluice.ApplicationStatus{""}})
		wantCode(t, err, sluice.EInvalid, "the status is required")
		_, err = s.Reports(ctx, ReportFilter{Limit: -3})
		wantCode(t, err, sluice.EInvalid, "got -3")
	})
}

func TestApplications(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		a := application("app-1", "alice", "health", sluice.AppSubmitted, t0)
		allSet(t, a)
		_, err := s.Application(ctx, "app-1")
		wantCode(t, err, sluice.ENotFound, "application app-1 does not exist")
		must(t, s.CreateApplication(ctx, a))
		got, err := s.Application(ctx, "app-1")
		must(t, err)
		wantEqual(t, "application", got, jsonRT(t, a))

		wantCode(t, s.CreateApplication(ctx, application("app-1", "bob", "civil", sluice.AppSubmitted, t0)), sluice.EConflict, "application app-1 already exists")
		wantCode(t, s.CreateApplication(ctx, &sluice.Application{}), sluice.EInvalid, "the application id is required")
		wantCode(t, s.CreateApplication(ctx, nil), sluice.EInvalid, "no application given")
		got, _ = s.Application(ctx, "app-1")
		wantEqual(t, "application after a refused create", got, jsonRT(t, a))
	})
}

func TestUpdateApplicationCompareAndSet(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		a := application("app-7", "alice", "health", sluice.AppSubmitted, t0)
		must(t, s.CreateApplication(ctx, a))
		must(t, s.PutGrant(ctx, grant("taken")))

		// Forward: the status moves, the document is replaced.
		fwd := *a
		fwd.Status = sluice.AppForwarded
		fwd.History = append(slices.Clone(a.History), sluice.ApplicationEvent{Time: at(1), Actor: "dave", Role: sluice.RolePlatformAdmin, Action: "forward", Status: sluice.AppForwarded})
		must(t, s.UpdateApplication(ctx, &fwd, sluice.AppSubmitted))
		got, err := s.Application(ctx, "app-7")
		must(t, err)
		wantEqual(t, "forwarded", got, jsonRT(t, &fwd))

		// A reviewer who still saw it submitted loses, and nothing changes.
		stale := *a
		stale.Status = sluice.AppRefused
		wantCode(t, s.UpdateApplication(ctx, &stale, sluice.AppSubmitted), sluice.EConflict, "application app-7 is now forwarded; reload it")
		got, _ = s.Application(ctx, "app-7")
		wantEqual(t, "after a lost race", got, jsonRT(t, &fwd))

		// An approval whose grant id is taken changes nothing at all.
		appr := fwd
		appr.Status = sluice.AppApproved
		g1, g2 := grant("app-7-1"), grant("taken")
		wantCode(t, s.UpdateApplication(ctx, &appr, sluice.AppForwarded, g1, g2), sluice.EConflict, "grant taken already exists; application app-7 was not changed")
		got, _ = s.Application(ctx, "app-7")
		wantEqual(t, "after a grant conflict", got, jsonRT(t, &fwd))
		_, err = s.Grant(ctx, "app-7-1")
		wantCode(t, err, sluice.ENotFound, "grant app-7-1 does not exist")
		wantCode(t, s.UpdateApplication(ctx, &appr, sluice.AppForwarded, g1, g1), sluice.EConflict, "grant app-7-1 already exists")
		_, err = s.Grant(ctx, "app-7-1")
		wantCode(t, err, sluice.ENotFound, "grant app-7-1 does not exist")
		wantCode(t, s.UpdateApplication(ctx, &appr, sluice.AppForwarded, sluice.Grant{}), sluice.EInvalid, "the grant id is required")

		// The approval and its grants are stored together.
		g2 = grant("app-7-2")
		must(t, s.UpdateApplication(ctx, &appr, sluice.AppForwarded, g1, g2))
		got, _ = s.Application(ctx, "app-7")
		wantEqual(t, "approved", got, jsonRT(t, &appr))
		for _, g := range []sluice.Grant{g1, g2} {
			stored, err := s.Grant(ctx, g.ID)
			must(t, err)
			wantEqual(t, "grant of the approval", *stored, jsonRT(t, g))
		}

		missing := application("app-404", "alice", "health", sluice.AppForwarded, t0)
		wantCode(t, s.UpdateApplication(ctx, missing, sluice.AppSubmitted), sluice.ENotFound, "application app-404 does not exist")
		wantCode(t, s.UpdateApplication(ctx, &sluice.Application{}, sluice.AppSubmitted), sluice.EInvalid, "the application id is required")
	})
}

func TestApplicationFilters(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		// Submitted out of id order, and two at the same instant written
		// in different zones: order is by time, then id.
		apps := []*sluice.Application{
			application("a3", "alice", "health", sluice.AppSubmitted, at(0)),
			application("a1", "bob", "police", sluice.AppForwarded, at(0).In(time.UTC)),
			application("a2", "alice", "police", sluice.AppApproved, at(-1)),
			application("a0", "erin", "civil", sluice.AppSubmitted, at(2)),
			application("a4", "alice", "health", sluice.AppRefused, at(1)),
		}
		apps[1].Department = "market"
		apps[3].Department = "health"
		for _, a := range apps {
			must(t, s.CreateApplication(ctx, a))
		}
		ids := func(f ApplicationFilter) []string {
			t.Helper()
			as, err := s.Applications(ctx, f)
			must(t, err)
			var out []string
			for _, a := range as {
				out = append(out, a.ID)
			}
			return out
		}
		for _, c := range []struct {
			f    ApplicationFilter
			want []string
		}{
			{ApplicationFilter{}, []string{"a2", "a1", "a3", "a4", "a0"}},
			{ApplicationFilter{Limit: 2}, []string{"a2", "a1"}},
			{ApplicationFilter{Applicant: "alice"}, []string{"a2", "a3", "a4"}},
			{ApplicationFilter{Department: "civil"}, []string{"a2", "a3", "a4"}},
			{ApplicationFilter{Department: "market"}, []string{"a1"}},
			{ApplicationFilter{Provider: "police"}, []string{"a2", "a1"}},
			{ApplicationFilter{Status: []sluice.ApplicationStatus{sluice.AppSubmitted, sluice.AppForwarded}}, []string{"a1", "a3", "a0"}},
			{ApplicationFilter{Applicant: "alice", Provider: "health", Status: []sluice.ApplicationStatus{sluice.AppRefused}}, []string{"a4"}},
			{ApplicationFilter{Applicant: "nobody"}, nil},
		} {
			if got := ids(c.f); !slices.Equal(got, c.want) {
				t.Errorf("%+v: %v, want %v", c.f, got, c.want)
			}
		}
		all, err := s.Applications(ctx, ApplicationFilter{Applicant: "alice"})
		must(t, err)
		wantEqual(t, "listed applications", all, []sluice.Application{*jsonRT(t, apps[2]), *jsonRT(t, apps[0]), *jsonRT(t, apps[4])})

		// The status column follows updates.
		fwd := *apps[0]
		fwd.Status = sluice.AppForwarded
		must(t, s.UpdateApplication(ctx, &fwd, sluice.AppSubmitted))
		if got := ids(ApplicationFilter{Status: []sluice.ApplicationStatus{sluice.AppSubmitted}}); !slices.Equal(got, []string{"a0"}) {
			t.Fatalf("submitted after forwarding: %v", got)
		}
	})
}

func TestReports(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		r := report("r1", "alice", "civil", "civil.residents", sluice.ReportSubmitted, at(0))
		allSet(t, r)
		_, err := s.Report(ctx, "r1")
		wantCode(t, err, sluice.ENotFound, "error report r1 does not exist")
		must(t, s.CreateReport(ctx, r))
		got, err := s.Report(ctx, "r1")
		must(t, err)
		wantEqual(t, "report", got, jsonRT(t, r))
		wantCode(t, s.CreateReport(ctx, report("r1", "bob", "x", "x.y", sluice.ReportSubmitted, at(0))), sluice.EConflict, "error report r1 already exists")
		wantCode(t, s.CreateReport(ctx, &sluice.ErrorReport{}), sluice.EInvalid, "the error report id is required")

		ack := *r
		ack.Status = sluice.ReportAcknowledged
		ack.Seen = false
		ack.History = append(slices.Clone(r.History), sluice.ReportEvent{Time: at(1), Actor: "civil-admin", Status: sluice.ReportAcknowledged})
		must(t, s.UpdateReport(ctx, &ack, sluice.ReportSubmitted))
		stale := *r
		stale.Status = sluice.ReportRejected
		wantCode(t, s.UpdateReport(ctx, &stale, sluice.ReportSubmitted), sluice.EConflict, "error report r1 is now acknowledged; reload it")
		got, _ = s.Report(ctx, "r1")
		wantEqual(t, "acknowledged", got, jsonRT(t, &ack))
		// Marking it seen keeps the status: from is the current one.
		seen := ack
		seen.Seen = true
		must(t, s.UpdateReport(ctx, &seen, sluice.ReportAcknowledged))
		got, _ = s.Report(ctx, "r1")
		wantEqual(t, "seen", got, jsonRT(t, &seen))
		wantCode(t, s.UpdateReport(ctx, report("r404", "a", "b", "b.c", sluice.ReportCorrected, at(0)), sluice.ReportSubmitted), sluice.ENotFound, "error report r404 does not exist")

		for _, x := range []*sluice.ErrorReport{
			report("r0", "bob", "health", "health.insured", sluice.ReportSubmitted, at(2)),
			report("r3", "alice", "health", "health.insured", sluice.ReportCorrected, at(-1)),
			report("r2", "bob", "civil", "civil.residents", sluice.ReportRejected, at(0)),
		} {
			must(t, s.CreateReport(ctx, x))
		}
		for _, c := range []struct {
			f    ReportFilter
			want []string
		}{
			{ReportFilter{}, []string{"r3", "r1", "r2", "r0"}},
			{ReportFilter{Limit: 3}, []string{"r3", "r1", "r2"}},
			{ReportFilter{Reporter: "bob"}, []string{"r2", "r0"}},
			{ReportFilter{Provider: "civil"}, []string{"r1", "r2"}},
			{ReportFilter{Dataset: "health.insured"}, []string{"r3", "r0"}},
			{ReportFilter{Status: []sluice.ReportStatus{sluice.ReportSubmitted, sluice.ReportAcknowledged}}, []string{"r1", "r0"}},
			{ReportFilter{Reporter: "alice", Provider: "health", Status: []sluice.ReportStatus{sluice.ReportCorrected}}, []string{"r3"}},
			{ReportFilter{Reporter: "nobody"}, nil},
		} {
			rs, err := s.Reports(ctx, c.f)
			must(t, err)
			var ids []string
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			if !slices.Equal(ids, c.want) {
				t.Errorf("%+v: %v, want %v", c.f, ids, c.want)
			}
		}
		rs, err := s.Reports(ctx, ReportFilter{Reporter: "alice"})
		must(t, err)
		wantEqual(t, "listed reports", rs[1], *jsonRT(t, &seen))
	})
}

// Eight reviewers try to forward the same application at once, through
// two Store values (as two broker processes would): exactly one wins.
func TestConcurrentApplicationCAS(t *testing.T) {
	forEach(t, func(t *testing.T, target string) {
		stores := []*Store{open(t, target), open(t, target)}
		must(t, stores[0].CreateApplication(ctx, application("race", "alice", "health", sluice.AppSubmitted, t0)))
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				a := application("race", "alice", "health", sluice.AppForwarded, t0)
				a.History = append(a.History, sluice.ApplicationEvent{Time: at(1), Actor: fmt.Sprintf("reviewer-%d", i), Action: "forward", Status: sluice.AppForwarded})
				errs[i] = stores[i%2].UpdateApplication(ctx, a, sluice.AppSubmitted, grant(fmt.Sprintf("race-g%d", i)))
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner < 0:
				winner = i
			case err == nil:
				t.Fatalf("reviewers %d and %d both won", winner, i)
			default:
				wantCode(t, err, sluice.EConflict, "application race is now forwarded; reload it")
			}
		}
		if winner < 0 {
			t.Fatal("nobody won")
		}
		got, err := stores[1].Application(ctx, "race")
		must(t, err)
		if got.Status != sluice.AppForwarded || got.History[len(got.History)-1].Actor != fmt.Sprintf("reviewer-%d", winner) {
			t.Fatalf("stored %s by %s, winner %d", got.Status, got.History[len(got.History)-1].Actor, winner)
		}
		gs, err := stores[0].Grants(ctx)
		must(t, err)
		if len(gs) != 1 || gs[0].ID != fmt.Sprintf("race-g%d", winner) {
			t.Fatalf("grants %v: only the winner's may exist", gs)
		}
	})
}

// Concurrent catalog changes get distinct, gapless versions.
func TestConcurrentCatalogVersions(t *testing.T) {
	forEach(t, func(t *testing.T, target string) {
		stores := []*Store{open(t, target), open(t, target)}
		const n = 8
		versions := make([]int64, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				ch, err := stores[i%2].PutDepartment(ctx, &sluice.Department{ID: fmt.Sprintf("d%d", i%3)}, sluice.CatalogChange{Actor: "dave"})
				versions[i], errs[i] = ch.Version, err
			})
		}
		wg.Wait()
		for _, err := range errs {
			must(t, err)
		}
		slices.Sort(versions)
		for i, v := range versions {
			if v != int64(i+1) {
				t.Fatalf("versions %v", versions)
			}
		}
		chs, err := stores[0].CatalogChanges(ctx, "", 0)
		must(t, err)
		if len(chs) != n || chs[0].Version != n {
			t.Fatalf("changes %v", chs)
		}
	})
}
