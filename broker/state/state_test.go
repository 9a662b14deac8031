package state

import (
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

func testCatalog(t *testing.T) *sluice.Catalog {
	t.Helper()
	civil := &sluice.Department{ID: "civil", Name: "Civil Affairs Bureau", Datasets: []*sluice.Dataset{{
		Name: "residents", Title: "Registered residents", ShareClass: sluice.ShareConditional, LegalBasis: "art. 12",
		Columns: []*sluice.Column{
			{Name: "id_card", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseJoinKey, KeyDomain: "person"},
			{Name: "district", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain, Description: "城东区 and the others"},
			{Name: "case_notes", Type: sluice.TypeText, Grade: sluice.GradeL4, Release: sluice.ReleaseHidden},
		},
	}}}
	market := &sluice.Department{ID: "market", Name: "Market Regulation Administration", Datasets: []*sluice.Dataset{{
		Name: "enterprises", ShareClass: sluice.ShareUnconditional,
		Columns: []*sluice.Column{{Name: "name", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain}},
	}}}
	cat, err := sluice.NewCatalog(civil, market)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// TestNew: a state indexes its purposes and grants and carries the version
// of its catalog; a static source always gives it.
func TestNew(t *testing.T) {
	cat := testCatalog(t)
	grants := []sluice.Grant{{ID: "g1", Dataset: "civil.residents"}, {ID: "g2", Dataset: "civil.residents"}}
	st := New(cat, []sluice.Purpose{{Code: "subsidy-review"}, {Code: "enterprise-credit"}}, grants, nil, nil, nil)
	if st.GrantsByID["g2"] != &st.Grants[1] || len(st.GrantsByID) != 2 {
		t.Fatalf("grants by id: %v", st.GrantsByID)
	}
	if st.Planner == nil || st.CatalogVersion == "" || st.CatalogVersion != CatalogVersion(cat) {
		t.Fatalf("planner %v, catalog version %q", st.Planner, st.CatalogVersion)
	}
	if got := st.PurposeList(); got != "enterprise-credit, subsidy-review" {
		t.Fatalf("purpose list %q", got)
	}
	if got := New(cat, nil, nil, nil, nil, nil).PurposeList(); got != "(none)" {
		t.Fatalf("empty purpose list %q", got)
	}
	if Static(st).Current() != st {
		t.Fatal("a static source gives another state")
	}
	if d, n := SplitDataset("civil.residents"); d != "civil" || n != "residents" {
		t.Fatalf("split: %q %q", d, n)
	}
}

// TestCatalogVersion: the version changes with the catalog and only with
// it.
func TestCatalogVersion(t *testing.T) {
	a, b := testCatalog(t), testCatalog(t)
	if CatalogVersion(a) != CatalogVersion(b) {
		t.Fatal("equal catalogs have different versions")
	}
	b.Dataset("civil", "residents").Columns[1].Release = sluice.ReleaseMasked
	if CatalogVersion(a) == CatalogVersion(b) {
		t.Fatal("a reclassified column does not change the version")
	}
}

// TestBrowseCatalog: other departments never see hidden columns, nor find
// a dataset by them; the filters combine.
func TestBrowseCatalog(t *testing.T) {
	st := New(testCatalog(t), nil, nil, nil, nil, nil)
	bob := sluice.Principal{Name: "bob", Role: sluice.RoleAnalyst, Department: "market"}
	owner := sluice.Principal{Name: "cora", Role: sluice.RoleDeptAdmin, Department: "civil"}
	names := func(vs []DatasetView) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.FullName())
		}
		return out
	}
	all := st.BrowseCatalog(bob, CatalogQuery{})
	if len(all) != 2 || all[0].DepartmentName != "Civil Affairs Bureau" || len(all[0].Columns) != 2 {
		t.Fatalf("browse all as bob: %+v", all)
	}
	if len(st.BrowseCatalog(owner, CatalogQuery{Department: "civil"})[0].Columns) != 3 {
		t.Fatal("the owner department does not see its hidden column")
	}
	cases := []struct {
		p    sluice.Principal
		q    CatalogQuery
		want []string
	}{
		{bob, CatalogQuery{Keyword: "城东区"}, []string{"civil.residents"}},
		{bob, CatalogQuery{Keyword: "case_notes"}, nil},
		{owner, CatalogQuery{Keyword: "case_notes"}, []string{"civil.residents"}},
		{bob, CatalogQuery{Grade: "L4"}, []string{"civil.residents"}},
		{bob, CatalogQuery{ShareClass: "unconditional"}, []string{"market.enterprises"}},
		{bob, CatalogQuery{Department: "market", Grade: "L4"}, nil},
	}
	for _, c := range cases {
		got := names(st.BrowseCatalog(c.p, c.q))
		if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) {
			t.Errorf("%s %+v: %v, want %v", c.p.Name, c.q, got, c.want)
		}
	}
}

// TestTokensAtEachUse: a token's expiry is checked when it is used, on the
// state's clock.
func TestTokensAtEachUse(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	clock := now
	u := UsersFromStore([]sluice.User{{Name: "gina", Role: sluice.RoleAnalyst, Department: "civil", CertFingerprint: "SHA256:AB"}},
		[]sluice.Token{{ID: "a", User: "gina", SHA256: HashToken("t"), ExpiresAt: now.Add(time.Minute)}}, func() time.Time { return clock })
	if _, ok := u.Authenticate("t"); !ok {
		t.Fatal("valid token refused")
	}
	if p, ok := u.AuthenticateCert("sha256:ab"); !ok || p.Name != "gina" {
		t.Fatal("certificate fingerprints are not compared case-insensitively")
	}
	if p, ok := u.Lookup("gina"); !ok || p.Department != "civil" {
		t.Fatal("lookup by name")
	}
	clock = now.Add(2 * time.Minute)
	if _, ok := u.Authenticate("t"); ok {
		t.Fatal("expired token accepted")
	}
}
