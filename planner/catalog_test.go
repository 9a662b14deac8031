package planner

import (
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

// testCatalog is the demo world of the brief: five datasets of four
// departments with the brief's release levels and masks.
func testCatalog(t testing.TB) *sluice.Catalog {
	t.Helper()
	col := func(name string, typ sluice.ColumnType, g sluice.Grade, rel sluice.Release, mask sluice.MaskRule, domain string) *sluice.Column {
		return &sluice.Column{Name: name, Type: typ, Grade: g, Release: rel, Mask: mask, KeyDomain: domain}
	}
	const (
		text    = sluice.TypeText
		integer = sluice.TypeInteger
		decimal = sluice.TypeDecimal
		date    = sluice.TypeDate
	)
	civil := &sluice.Department{ID: "civil", Name: "Civil Affairs Bureau", Datasets: []*sluice.Dataset{{
		Name: "residents", Table: "residents", ShareClass: sluice.ShareConditional,
		LegalBasis: "Regulation on Minimum Living Security, art. 12",
		Columns: []*sluice.Column{
			col("id_card", text, sluice.GradeL4, sluice.ReleaseJoinKey, "", "person"),
			col("name", text, sluice.GradeL3, sluice.ReleaseMasked, sluice.MaskSurname, ""),
			col("gender", text, sluice.GradeL2, sluice.ReleasePlain, "", ""),
			col("birth_date", date, sluice.GradeL3, sluice.ReleaseMasked, sluice.MaskYear, ""),
			col("district", text, sluice.GradeL1, sluice.ReleasePlain, "", ""),
			col("phone", text, sluice.GradeL3, sluice.ReleaseMasked, sluice.MaskPhone, ""),
			col("low_income", integer, sluice.GradeL3, sluice.ReleasePlain, "", ""),
			col("monthly_allowance", decimal, sluice.GradeL3, sluice.ReleaseAggregate, "", ""),
		},
	}}}
	health := &sluice.Department{ID: "health", Name: "Healthcare Security Administration", Datasets: []*sluice.Dataset{{
		Name: "insured", ShareClass: sluice.ShareConditional, LegalBasis: "Medical Security Fund Regulation, art. 38",
		Columns: []*sluice.Column{
			col("id_card", text, sluice.GradeL4, sluice.ReleaseJoinKey, "", "person"),
			col("insurance_type", text, sluice.GradeL2, sluice.ReleasePlain, "", ""),
			col("chronic_disease", integer, sluice.GradeL4, sluice.ReleaseAggregate, "", ""),
			col("annual_claims", decimal, sluice.GradeL4, sluice.ReleaseAggregate, "", ""),
			col("hospital_visits", integer, sluice.GradeL4, sluice.ReleaseAggregate, "", ""),
		},
	}}}
	market := &sluice.Department{ID: "market", Name: "Market Regulation Administration", Datasets: []*sluice.Dataset{{
		Name: "enterprises", Table: "mr.enterprises", ShareClass: sluice.ShareUnconditional,
		Columns: []*sluice.Column{
			col("credit_code", text, sluice.GradeL1, sluice.ReleasePlain, "", ""),
			col("name", text, sluice.GradeL1, sluice.ReleasePlain, "", ""),
			col("legal_rep_name", text, sluice.GradeL2, sluice.ReleasePlain, "", ""),
			col("industry", text, sluice.GradeL1, sluice.ReleasePlain, "", ""),
			col("district", text, sluice.GradeL1, sluice.ReleasePlain, "", ""),
			col("registered_capital", decimal, sluice.GradeL1, sluice.ReleasePlain, "", ""),
			col("status", text, sluice.GradeL1, sluice.ReleasePlain, "", ""),
			col("established", date, sluice.GradeL1, sluice.ReleasePlain, "", ""),
			col("legal_rep_id_card", text, sluice.GradeL4, sluice.ReleaseJoinKey, "", "person"),
		},
	}}}
	police := &sluice.Department{ID: "police", Name: "Public Security Bureau", Datasets: []*sluice.Dataset{
		{
			Name: "household", ShareClass: sluice.ShareConditional, LegalBasis: "Household Registration Regulation, art. 3",
			Columns: []*sluice.Column{
				col("id_card", text, sluice.GradeL4, sluice.ReleaseJoinKey, "", "person"),
				col("name", text, sluice.GradeL3, sluice.ReleaseMasked, sluice.MaskSurname, ""),
				col("household_district", text, sluice.GradeL2, sluice.ReleasePlain, "", ""),
				col("migrant", integer, sluice.GradeL2, sluice.ReleasePlain, "", ""),
			},
		},
		{
			Name: "criminal_records", ShareClass: sluice.ShareNone, LegalBasis: "Criminal Procedure Law, art. 286 (sealed records)",
			Columns: []*sluice.Column{
				col("id_card", text, sluice.GradeL4, sluice.ReleaseJoinKey, "", "person"),
				col("offense", text, sluice.GradeL4, sluice.ReleaseHidden, "", ""),
				col("sentence_date", date, sluice.GradeL4, sluice.ReleaseHidden, "", ""),
			},
		},
	}}
	// One row per person, as in the demo world; an enterprise's legal
	// representative may represent several.
	for _, ds := range []*sluice.Dataset{civil.Datasets[0], health.Datasets[0], police.Datasets[0]} {
		ds.Column("id_card").Unique = true
	}
	depts := []*sluice.Department{civil, health, market, police}
	for _, d := range depts {
		if err := d.Validate(); err != nil {
			t.Fatalf("test catalog: %v", err)
		}
	}
	cat, err := sluice.NewCatalog(depts...)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func mustPlan(t testing.TB, p *Planner, sql string) *Plan {
	t.Helper()
	pl, err := p.Plan("q-test", sql)
	if err != nil {
		t.Fatalf("Plan(%q): %v", sql, err)
	}
	return pl
}
