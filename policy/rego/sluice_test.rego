# Unit tests of the base policy, run by `sluice policy test` (policy.RunTests)
# and by `go test ./policy/...`. The data document is mocked per test.
package sluice.authz_test

import data.sluice.authz

catalog := {"datasets": {
	"civil.residents": {
		"name": "civil.residents",
		"department": "civil",
		"share_class": "conditional",
		"legal_basis": "Residents Data Regulation art. 12",
		"columns": {
			"id_card": {"name": "id_card", "release": "join_key", "mask": "", "grade": "L4", "key_domain": "person"},
			"name": {"name": "name", "release": "masked", "mask": "surname", "grade": "L3", "key_domain": ""},
			"district": {"name": "district", "release": "plain", "mask": "", "grade": "L1", "key_domain": ""},
			"monthly_allowance": {"name": "monthly_allowance", "release": "aggregate", "mask": "", "grade": "L3", "key_domain": ""},
			"notes": {"name": "notes", "release": "hidden", "mask": "", "grade": "L4", "key_domain": ""},
		},
	},
	"market.enterprises": {
		"name": "market.enterprises",
		"department": "market",
		"share_class": "unconditional",
		"legal_basis": "",
		"columns": {
			"name": {"name": "name", "release": "plain", "mask": "", "grade": "L1", "key_domain": ""},
			"legal_rep_id_card": {"name": "legal_rep_id_card", "release": "join_key", "mask": "", "grade": "L4", "key_domain": "person"},
		},
	},
	"police.criminal_records": {
		"name": "police.criminal_records",
		"department": "police",
		"share_class": "none",
		"legal_basis": "Criminal Records Law art. 6",
		"columns": {"offense": {"name": "offense", "release": "plain", "mask": "", "grade": "L4", "key_domain": ""}},
	},
}}

purposes := {"subsidy-review": {"code": "subsidy-review"}, "enterprise-credit": {"code": "enterprise-credit"}}

# 2030-01-01T00:00:00Z and 2031-01-01T00:00:00Z in nanoseconds.
jan2030 := 1893456000000000000

jan2031 := 1924992000000000000

grant(id, grantee, purpose, columns, mode, k) := {
	"id": id, "grantee": grantee, "dataset": "civil.residents", "columns": columns,
	"purpose": purpose, "valid_from": "2030-01-01T00:00:00Z", "valid_from_ns": jan2030,
	"valid_until": "2031-01-01T00:00:00Z", "valid_until_ns": jan2031,
	"mode": mode, "k": k, "revoked": false,
}

rows_grant := grant("g-rows", "bob", "enterprise-credit", ["*"], "rows", 0)

agg_grant := grant("g-agg", "dept:market", "enterprise-credit", ["district", "monthly_allowance"], "aggregate", 25)

# bob works for market: market.enterprises is his own department's dataset.
bob := {"name": "bob", "role": "analyst", "department": "market"}

req(principal, columns, aggregate) := {
	"principal": principal,
	"purpose": "enterprise-credit",
	"now": "2030-06-01T00:00:00Z",
	"datasets": {c.dataset | some c in columns},
	"columns": columns,
	"aggregate": aggregate,
}

use(ds, col, usages) := {"dataset": ds, "column": col, "usages": usages}

decide(principal, columns, aggregate, grants) := d if {
	d := authz.decision with input as req(principal, columns, aggregate)
		with data.catalog as catalog
		with data.purposes as purposes
		with data.grants as grants
		with data.settings as {"default_k": 10}
}

rules(d) := {r.rule | some r in d.reasons}

test_unconditional_plain_allowed if {
	erin := {"name": "erin", "role": "analyst", "department": "health"}
	d := decide(erin, [use("market.enterprises", "name", ["output"])], false, [])
	d.allow
	rules(d) == {"allow_unconditional"}
	d.min_group_size == 0
}

test_owner_reads_own_none_dataset if {
	police := {"name": "pat", "role": "analyst", "department": "police"}
	d := decide(police, [use("police.criminal_records", "offense", ["output"])], false, [])
	d.allow
	rules(d) == {"allow_owner"}
	d.masks == {}
}

test_share_class_none_cites_legal_basis if {
	d := decide(bob, [use("police.criminal_records", "offense", ["output"])], false, [])
	not d.allow
	some r in d.reasons
	r.rule == "share_class_none"
	r.legal_basis == "Criminal Records Law art. 6"
	contains(r.message, "Criminal Records Law art. 6")
}

test_conditional_without_grant if {
	d := decide(bob, [use("civil.residents", "district", ["output"])], false, [])
	not d.allow
	rules(d) == {"no_grant"}
	d.reasons[0].legal_basis == "Residents Data Regulation art. 12"
}

test_rows_grant_masks if {
	d := decide(bob, [use("civil.residents", "name", ["output"]), use("civil.residents", "district", ["group"])], false, [rows_grant])
	d.allow
	d.masks == {"civil.residents": {"name": "surname"}}
	d.grants == ["g-rows"]
}

test_grant_for_someone_else_is_not_considered if {
	other := grant("g-other", "alice", "enterprise-credit", ["*"], "rows", 0)
	d := decide(bob, [use("civil.residents", "district", ["output"])], false, [other])
	rules(d) == {"no_grant"}
}

test_expired_grant if {
	d := authz.decision with input as object.union(req(bob, [use("civil.residents", "district", ["output"])], false), {"now": "2031-02-01T00:00:00Z"})
		with data.catalog as catalog
		with data.purposes as purposes
		with data.grants as [rows_grant]
	not d.allow
	some r in d.reasons
	r.rule == "grant_expired"
	contains(r.message, "g-rows")
	contains(r.message, "2031-01-01T00:00:00Z")
}

test_expiry_instant_is_exclusive if {
	d := authz.decision with input as object.union(req(bob, [use("civil.residents", "district", ["output"])], false), {"now": "2031-01-01T00:00:00Z"})
		with data.catalog as catalog
		with data.purposes as purposes
		with data.grants as [rows_grant]
	rules(d) == {"grant_expired"}
}

test_wrong_purpose if {
	g := grant("g-sub", "bob", "subsidy-review", ["*"], "rows", 0)
	d := decide(bob, [use("civil.residents", "district", ["output"])], false, [g])
	rules(d) == {"grant_purpose"}
}

test_grant_columns if {
	g := grant("g-narrow", "bob", "enterprise-credit", ["district"], "rows", 0)
	d := decide(bob, [use("civil.residents", "district", ["output"]), use("civil.residents", "name", ["output"])], false, [g])
	rules(d) == {"grant_columns"}
	contains(d.reasons[0].message, "name")
}

test_revoked_grant if {
	g := object.union(rows_grant, {"revoked": true})
	d := decide(bob, [use("civil.residents", "district", ["output"])], false, [g])
	rules(d) == {"grant_revoked"}
}

test_join_key_only_as_join_key if {
	ok := decide(bob, [use("civil.residents", "id_card", ["join_key"])], false, [rows_grant])
	ok.allow
	every u in ["output", "predicate", "group", "order", "aggregate"] {
		d := decide(bob, [use("civil.residents", "id_card", [u])], false, [rows_grant])
		rules(d) == {"join_key_use"}
	}
}

test_masked_cannot_join if {
	d := decide(bob, [use("civil.residents", "name", ["join_key"])], false, [rows_grant])
	rules(d) == {"masked_join_key"}
}

test_hidden_column if {
	d := decide(bob, [use("civil.residents", "notes", ["predicate"])], true, [rows_grant])
	rules(d) == {"hidden_column"}
}

test_aggregate_column_rules if {
	ok := decide(bob, [use("civil.residents", "monthly_allowance", ["aggregate", "predicate"])], true, [rows_grant])
	ok.allow
	ok.min_group_size == 10
	rules(decide(bob, [use("civil.residents", "monthly_allowance", ["output"])], false, [rows_grant])) == {"aggregate_row_output"}
	rules(decide(bob, [use("civil.residents", "monthly_allowance", ["group"])], true, [rows_grant])) == {"aggregate_column_use"}
	rules(decide(bob, [use("civil.residents", "monthly_allowance", ["aggregate", "predicate"])], false, [rows_grant])) == {"aggregate_column_use", "aggregate_row_output"}
}

test_aggregate_grant if {
	cols := [use("civil.residents", "district", ["group"]), use("civil.residents", "monthly_allowance", ["aggregate"])]
	ok := decide(bob, cols, true, [agg_grant])
	ok.allow
	ok.min_group_size == 25
	ok.grants == ["g-agg"]
	denied := decide(bob, [use("civil.residents", "district", ["output"])], false, [agg_grant])
	rules(denied) == {"aggregate_only_grant"}
}

test_rows_grant_preferred_over_aggregate_grant if {
	d := decide(bob, [use("civil.residents", "district", ["output"])], false, [rows_grant, agg_grant])
	d.allow
	d.grants == ["g-rows"]
	d.min_group_size == 0
}

test_non_analyst_denied if {
	carol := {"name": "carol", "role": "auditor", "department": "audit"}
	d := decide(carol, [use("market.enterprises", "name", ["output"])], false, [])
	rules(d) == {"role"}
}

test_unknown_purpose_lists_registered if {
	d := authz.decision with input as object.union(req(bob, [use("market.enterprises", "name", ["output"])], false), {"purpose": "curiosity"})
		with data.catalog as catalog
		with data.purposes as purposes
	rules(d) == {"unknown_purpose"}
	contains(d.reasons[0].message, "enterprise-credit, subsidy-review")
}

test_unknown_dataset_and_column if {
	d := decide(bob, [use("tax.returns", "income", ["output"]), use("market.enterprises", "nope", ["output"])], false, [])
	rules(d) == {"unknown_dataset", "unknown_column"}
}

test_names_are_case_insensitive if {
	d := decide(bob, [use("Civil.Residents", "NAME", ["output"])], false, [rows_grant])
	d.allow
	d.masks == {"civil.residents": {"name": "surname"}}
}

test_custom_denials_are_collected if {
	d := decide(bob, [use("market.enterprises", "name", ["output"])], false, []) with data.sluice.custom as {"night": {"deny": {"no queries at night", {"rule": "night", "message": "closed"}}}}
	not d.allow
	rules(d) == {"custom:sluice.custom.night", "night"}
}

test_reasons_sorted if {
	d := decide(bob, [use("police.criminal_records", "offense", ["output"]), use("civil.residents", "district", ["output"])], false, [])
	[r.dataset | some r in d.reasons] == ["civil.residents", "police.criminal_records"]
}
