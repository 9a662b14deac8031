# Tests must live outside data.sluice.custom: the base policy evaluates every
# rule under it, and a test that calls the decision from there would recurse.
package custom_test.no_night_queries

import data.sluice.authz

catalog := {"datasets": {"health.insured": {
	"name": "health.insured", "department": "health", "share_class": "unconditional", "legal_basis": "",
	"columns": {
		"insurance_type": {"name": "insurance_type", "release": "plain", "mask": "", "grade": "L2", "key_domain": ""},
		"annual_claims": {"name": "annual_claims", "release": "plain", "mask": "", "grade": "L4", "key_domain": ""},
	},
}}}

req(now, col) := {
	"principal": {"name": "alice", "role": "analyst", "department": "civil"},
	"purpose": "subsidy-review",
	"now": now,
	"datasets": ["health.insured"],
	"columns": [{"dataset": "health.insured", "column": col, "usages": ["output"]}],
	"aggregate": false,
}

decide(now, col) := d if {
	d := authz.decision with input as req(now, col)
		with data.catalog as catalog
		with data.purposes as {"subsidy-review": {}}
}

# 15:00 UTC is 23:00 in Beijing.
test_sensitive_column_at_night_denied if {
	d := decide("2026-03-10T15:00:00Z", "annual_claims")
	not d.allow
	[r.rule | some r in d.reasons] == ["custom:no_night_queries"]
}

test_sensitive_column_in_office_hours_allowed if {
	decide("2026-03-10T02:00:00Z", "annual_claims").allow
}

test_internal_column_at_night_allowed if {
	decide("2026-03-10T15:00:00Z", "insurance_type").allow
}
