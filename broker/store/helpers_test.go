package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/test/dbtest"
)

// backend is one database the shared suite runs against.
type backend struct {
	name string
	// target returns a fresh, empty database for one test, removed when
	// the test ends.
	target func(tb testing.TB) string
}

var backends = []backend{
	{SQLite, func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "sluice.db") }},
	// A schema of its own for each test, so tests never see each other's
	// rows, dropped afterwards; skipped without a server, or failed under
	// CI=true.
	{Postgres, dbtest.PostgresSchema},
}

// forEach runs f once per backend, as subtests named after the dialect.
func forEach(t *testing.T, f func(t *testing.T, target string)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { f(t, be.target(t)) })
	}
}

// open opens target and closes it when the test ends (before a PostgreSQL
// schema is dropped: cleanups run last in, first out).
func open(tb testing.TB, target string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), target)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// each is forEach with the store already open.
func each(t *testing.T, f func(t *testing.T, s *Store)) {
	forEach(t, func(t *testing.T, target string) { f(t, open(t, target)) })
}

func wantCode(t *testing.T, err error, code, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s containing %q", code, contains)
	}
	if sluice.ErrorCode(err) != code || !strings.Contains(sluice.ErrorMessage(err), contains) {
		t.Fatalf("got %q (%s), want %s containing %q", sluice.ErrorMessage(err), sluice.ErrorCode(err), code, contains)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// jsonRT is v after a JSON round trip: what the store promises to give
// back (fields hidden from JSON dropped, times with a fixed-offset
// location rather than the caller's *time.Location).
func jsonRT[T any](t testing.TB, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("%s differs\n got: %s\nwant: %s", what, g, w)
	}
}

var timeType = reflect.TypeFor[time.Time]()

// allSet fails if any field of v that JSON carries is zero, so that the
// round-trip tests cover every field, including ones added later.
func allSet(t *testing.T, v any) {
	t.Helper()
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch {
		case v.Type() == timeType:
			if v.Interface().(time.Time).IsZero() {
				t.Errorf("fixture field %s is zero; set it so the round trip covers it", path)
			}
		case v.Kind() == reflect.Pointer:
			if v.IsNil() {
				t.Errorf("fixture field %s is nil; set it so the round trip covers it", path)
				return
			}
			walk(path, v.Elem())
		case v.Kind() == reflect.Struct:
			for i := range v.NumField() {
				f := v.Type().Field(i)
				if !f.IsExported() || f.Tag.Get("json") == "-" {
					continue
				}
				walk(path+"."+f.Name, v.Field(i))
			}
		case v.Kind() == reflect.Slice:
			if v.Len() == 0 {
				t.Errorf("fixture field %s is empty; set it so the round trip covers it", path)
			}
			for i := range v.Len() {
				walk(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
			}
		default:
			if v.IsZero() {
				t.Errorf("fixture field %s is zero; set it so the round trip covers it", path)
			}
		}
	}
	walk(reflect.TypeOf(v).String(), reflect.ValueOf(v))
}

// Fixture times carry nanoseconds and a non-UTC offset, the hardest case
// for an exact round trip.
var (
	cst = time.FixedZone("CST", 8*3600)
	t0  = time.Date(2025, 3, 4, 9, 30, 15, 123456789, cst)
)

func at(days int) time.Time { return t0.Add(time.Duration(days) * 24 * time.Hour) }

func ptr[T any](v T) *T { return &v }

func department(id string) *sluice.Department {
	return &sluice.Department{
		ID:   id,
		Name: id + " 民政局",
		Agent: sluice.AgentInfo{
			Address: id + ".agent:7443", TLSCert: "/etc/" + id + ".crt", TLSKey: "/etc/" + id + ".key",
			Fingerprint: "sha256:" + strings.Repeat("ab", 32), BrokerFingerprints: []string{"sha256:00"},
			AuditLog: "/var/" + id + ".db", SigningKey: "/etc/" + id + ".ed25519",
		},
		Sources: []sluice.Source{{Name: "main", Driver: sluice.DriverSQLite, DSN: "/srv/" + id + ".db"}},
		Datasets: []*sluice.Dataset{{
			Department: id, Name: "residents", Title: "居民信息", Description: "Registered residents",
			Source: "main", Table: "residents", Format: "table", ShareClass: sluice.ShareConditional,
			LegalBasis: "《政务数据共享条例》第十二条", ShareConditions: "approved application",
			UpdateFrequency: "daily",
			Columns: []*sluice.Column{{
				Name: "id_card", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseJoinKey,
				Mask: sluice.MaskIDCard, KeyDomain: "person", Unique: true, DPRequired: true, Description: "resident ID number",
			}, {
				Name: "name", Type: sluice.TypeText, Grade: sluice.GradeL3, Release: sluice.ReleaseMasked,
				Mask: sluice.MaskSurname, KeyDomain: "none", Unique: true, DPRequired: true, Description: "姓名",
			}},
		}},
	}
}

func grant(id string) sluice.Grant {
	return sluice.Grant{
		ID: id, Grantee: "alice", Dataset: "health.insured", Columns: []string{"id_card", "annual_claims"},
		Purpose: "subsidy-review", ValidFrom: at(0), ValidUntil: at(90), Mode: sluice.ModeAggregate, K: 10,
		Epsilon: 1.5, EpsilonPerQuery: 0.1, Clamp: map[string]sluice.Bounds{"annual_claims": {-0.5, 5000}}, RowCap: 5000,
		RowFilter: &sluice.RowFilter{Column: "district", Values: []string{"城东区", "湟中区"}},
		Revoked:   true, Application: "app-1", RevokedAt: ptr(at(3)), RevokedBy: "dave",
	}
}

func application(id, applicant, provider string, status sluice.ApplicationStatus, submitted time.Time) *sluice.Application {
	return &sluice.Application{
		ID: id, Applicant: applicant, Department: "civil", ForDepartment: true, Provider: provider,
		Items: []sluice.ApplicationItem{{Dataset: provider + ".insured", Columns: []string{"id_card", "chronic_disease"},
			Clamp: map[string]sluice.Bounds{"chronic_disease": {0, 1}}}},
		Purpose: "subsidy-review", Justification: "annual low-income subsidy review",
		ValidFrom: at(1), ValidUntil: at(91), Mode: sluice.ModeAggregate, K: 10, Epsilon: 2, EpsilonPerQuery: 0.25,
		RowCap: 100, RowFilter: &sluice.RowFilter{Column: "district", Values: []string{"城西区"}},
		Status: status, SubmittedAt: submitted, PlatformDue: submitted.Add(72 * time.Hour),
		ForwardedAt: ptr(submitted.Add(time.Hour)), ProviderDue: ptr(submitted.Add(240 * time.Hour)),
		DecidedAt: ptr(submitted.Add(48 * time.Hour)), RefusalBasis: "《条例》第九条", RefusalReason: "out of scope",
		GrantIDs: []string{id + "-1"},
		History: []sluice.ApplicationEvent{{
			Time: submitted, Actor: applicant, Role: sluice.RoleAnalyst, Action: "submit", Status: sluice.AppSubmitted, Note: "首次提交",
		}},
	}
}

func report(id, reporter, provider, dataset string, status sluice.ReportStatus, created time.Time) *sluice.ErrorReport {
	return &sluice.ErrorReport{
		ID: id, Reporter: reporter, Department: "civil", Dataset: dataset, Provider: provider, Column: "birth_date",
		Description: "birth year after death year", RowRef: "110101********1234", Status: status, Reason: "corrected at source",
		CreatedAt: created, UpdatedAt: created.Add(time.Minute),
		History: []sluice.ReportEvent{{Time: created, Actor: reporter, Status: sluice.ReportSubmitted, Note: "见附件"}},
		Seen:    true,
	}
}

func user(name string) sluice.User {
	return sluice.User{
		Name: name, Role: sluice.RoleAnalyst, Department: "civil", Disabled: true, CreatedAt: at(0),
		CreatedBy: "dave", CertFingerprint: "sha256:" + strings.Repeat("cd", 32),
	}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func token(id, user string, created time.Time) sluice.Token {
	return sluice.Token{
		ID: id, User: user, SHA256: sum(id), Label: "laptop " + id, CreatedAt: created,
		ExpiresAt: created.Add(30 * 24 * time.Hour), RevokedAt: ptr(created.Add(time.Hour)),
	}
}
