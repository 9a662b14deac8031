package alerts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
)

// A Wednesday, 10:00 in Shanghai.
var noon = time.Date(2026, 11, 18, 2, 0, 0, 0, time.UTC)

func TestRepeatedDenials(t *testing.T) {
	e, err := New(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	var got []Alert
	for i := 0; i < 7; i++ {
		got = append(got, e.Observe(audit.Entry{Kind: audit.KindQuery, Decision: audit.DecisionDeny, Principal: "bob", Time: noon.Add(time.Duration(i) * time.Second)})...)
	}
	if len(got) != 1 || got[0].Rule != "repeated_denials" || got[0].Principal != "bob" {
		t.Fatalf("want one repeated_denials alert for bob, got %+v", got)
	}
	// Denials spread beyond the window do not alert.
	e2, _ := New(DefaultRules())
	for i := 0; i < 10; i++ {
		if a := e2.Observe(audit.Entry{Kind: audit.KindQuery, Decision: audit.DecisionDeny, Principal: "erin", Time: noon.Add(time.Duration(i) * 3 * time.Minute)}); len(a) > 0 {
			t.Fatalf("denials 3 minutes apart raised %+v", a)
		}
	}
}

func TestVolumeAndHours(t *testing.T) {
	r := DefaultRules()
	r.Volume.Rows = 100
	e, err := New(r)
	if err != nil {
		t.Fatal(err)
	}
	if a := e.Observe(audit.Entry{Kind: audit.KindResult, Decision: audit.DecisionAllow, Principal: "alice", Rows: 60, Time: noon}); len(a) != 0 {
		t.Fatalf("60 rows alerted: %+v", a)
	}
	a := e.Observe(audit.Entry{Kind: audit.KindResult, Decision: audit.DecisionAllow, Principal: "alice", Rows: 60, Time: noon.Add(time.Minute)})
	if len(a) != 1 || a[0].Rule != "volume" {
		t.Fatalf("120 rows within the hour must alert once, got %+v", a)
	}
	night := time.Date(2026, 11, 18, 15, 0, 0, 0, time.UTC) // 23:00 in Shanghai
	if a := e.Observe(audit.Entry{Kind: audit.KindQuery, Decision: audit.DecisionAllow, Principal: "bob", Time: night, Datasets: []string{"police.household"}}); len(a) != 1 || a[0].Rule != "outside_working_hours" {
		t.Fatalf("a query at 23:00 must alert, got %+v", a)
	}
	if a := e.Observe(audit.Entry{Kind: audit.KindQuery, Decision: audit.DecisionAllow, Principal: "bob", Time: noon}); len(a) != 0 {
		t.Fatalf("a query at 10:00 on a Wednesday alerted: %+v", a)
	}
	saturday := time.Date(2026, 11, 21, 2, 0, 0, 0, time.UTC)
	if a := e.Observe(audit.Entry{Kind: audit.KindQuery, Decision: audit.DecisionAllow, Principal: "bob", Time: saturday}); len(a) != 1 {
		t.Fatalf("a query on Saturday must alert, got %+v", a)
	}
}

func TestExpiringGrants(t *testing.T) {
	e, _ := New(DefaultRules())
	grants := []sluice.Grant{
		{ID: "soon", Grantee: "bob", Dataset: "police.household", Purpose: "enterprise-credit", ValidUntil: noon.Add(48 * time.Hour)},
		{ID: "later", Grantee: "alice", ValidUntil: noon.Add(90 * 24 * time.Hour)},
		{ID: "expired", Grantee: "erin", ValidUntil: noon.Add(-time.Hour)},
		{ID: "revoked", Grantee: "erin", ValidUntil: noon.Add(time.Hour), Revoked: true},
	}
	a := e.ExpiringGrants(noon, grants)
	if len(a) != 1 || a[0].Grant != "soon" || !strings.Contains(a[0].Message, "expires") {
		t.Fatalf("want one alert for grant soon, got %+v", a)
	}
	if again := e.ExpiringGrants(noon.Add(time.Hour), grants); len(again) != 0 {
		t.Fatalf("a grant alerts once, got %+v", again)
	}
	if ent := a[0].Entry(); ent.Kind != audit.KindAlert || ent.Decision != audit.DecisionAlert {
		t.Fatalf("alert entry: %+v", ent)
	}
}

func TestBadRules(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"bad zone":       "working_hours: {enabled: true, start: '08:00', end: '18:00', location: Mars/Olympus}\n",
		"bad clock":      "working_hours: {enabled: true, start: '8am', end: '18:00', location: UTC}\n",
		"end before":     "working_hours: {enabled: true, start: '18:00', end: '08:00', location: UTC}\n",
		"unknown field":  "repeated_denial: {count: 3}\n",
		"negative count": "repeated_denials: {count: -1, window: 1m}\n",
	}
	for name, body := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := LoadRules(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: want an error naming %s, got %v", name, p, err)
		}
	}
	p := filepath.Join(dir, "ok.yaml")
	os.WriteFile(p, []byte("repeated_denials: {count: 3, window: 5m}\n"), 0o600)
	r, err := LoadRules(p)
	if err != nil || r.RepeatedDenials.Count != 3 || r.Volume.Rows != DefaultRules().Volume.Rows {
		t.Fatalf("partial file must keep defaults: %+v %v", r, err)
	}
}
