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
			"id_card": {"name": "id_card", "release": "join_key", "mask": "", "grade": "L4", "key_domain": "person", "unique": true},
			"name": {"name": "name", "release": "masked", "mask": "surname", "grade": "L3", "key_domain": ""},
			"district": {"name": "district", "release": "plain", "mask": "", "grade": "L1", "key_domain": ""},
			"monthly_allowance": {"name": "monthly_allowance", "release": "aggregate", "mask": "", "grade": "L3", "key_domain": ""},
			"notes": {"name": "notes", "release": "hidden", "mask": "", "grade": "L4", "key_domain": ""},
			"disability": {"name": "disability", "release": "aggregate", "mask": "", "grade": "L3", "key_domain": "", "dp_required": true},
			"care_level": {"name": "care_level", "release": "aggregate", "mask": "", "grade": "L4", "key_domain": ""},
		},
	},
	"health.insured": {
		"name": "health.insured",
		"department": "health",
		"share_class": "conditional",
		"legal_basis": "Medical Security Data Measures art. 14",
		"columns": {
			"id_card": {"name": "id_card", "release": "join_key", "mask": "", "grade": "L4", "key_domain": "person", "unique": true},
			"insurance_type": {"name": "insurance_type", "release": "plain", "mask": "", "grade": "L2", "key_domain": ""},
			"annual_claims": {"name": "annual_claims", "release": "aggregate", "mask": "", "grade": "L3", "key_domain": ""},
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
	every u in ["output", "predicate", "group", "order", "aggregate", "distinct_aggregate", "order_statistic", "aggregate_expression"] {
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

# ---------------------------------------------------------------------------
# Aggregates that cannot single out a person.

# An aggregate-only grant on civil.residents covering every column.
agg_all := grant("g-agg-all", "bob", "enterprise-credit", ["*"], "aggregate", 25)

decide_with(principal, columns, aggregate, grants, settings) := d if {
	d := authz.decision with input as req(principal, columns, aggregate)
		with data.catalog as catalog
		with data.purposes as purposes
		with data.grants as grants
		with data.settings as settings
}

reasons_for(d, ds, col) := [r | some r in d.reasons; r.dataset == ds; r.column == col]

test_aggregate_level_column_bare_in_count_sum_avg_allowed if {
	d := decide(bob, [use("civil.residents", "monthly_allowance", ["aggregate"])], true, [rows_grant])
	d.allow
	d.min_group_size == 10
	d.protected == {"civil.residents": 10}
}

test_aggregate_level_column_in_expression_denied if {
	d := decide(bob, [use("civil.residents", "monthly_allowance", ["aggregate_expression"])], true, [rows_grant])
	not d.allow
	rules(d) == {"aggregate_expression"}
	r := d.reasons[0]
	r.dataset == "civil.residents"
	r.column == "monthly_allowance"
	contains(r.message, "SUM(monthly_allowance) or AVG(monthly_allowance)")
	contains(r.message, "Move conditions to WHERE")
	d.protected == {}
}

test_aggregate_level_column_order_statistic_denied if {
	d := decide(bob, [use("civil.residents", "monthly_allowance", ["order_statistic"])], true, [rows_grant])
	rules(d) == {"order_statistic"}
	count(d.reasons) == 1
	contains(d.reasons[0].message, "MIN and MAX release one person's exact value")
	contains(d.reasons[0].message, "at least 10 persons")
	contains(d.reasons[0].message, "released only under a differential-privacy budget, which no grant")
}

test_order_statistic_under_dp_budget_points_to_count_and_sum if {
	dp_grant := object.union(agg_all, {"epsilon": 2, "epsilon_per_query": 0.5})
	d := decide(bob, [use("civil.residents", "monthly_allowance", ["order_statistic"])], true, [dp_grant])
	rules(d) == {"order_statistic"}
	count(d.reasons) == 1
	contains(d.reasons[0].message, "only COUNT and SUM are released, with noise")
}

test_distinct_on_aggregate_level_column_denied if {
	d := decide(bob, [use("civil.residents", "monthly_allowance", ["distinct_aggregate"])], true, [rows_grant])
	rules(d) == {"distinct_aggregate"}
	contains(d.reasons[0].message, "without DISTINCT")
}

test_distinct_count_of_plain_column_under_protection_allowed if {
	d := decide(bob, [use("civil.residents", "district", ["distinct_aggregate"])], true, [agg_all])
	d.allow
	d.protected == {"civil.residents": 25}
}

test_min_of_plain_column_under_protection_denied if {
	d := decide(bob, [use("civil.residents", "district", ["order_statistic"])], true, [agg_all])
	not d.allow
	rules(d) == {"order_statistic"}
	contains(d.reasons[0].message, "civil.residents with k = 25")
}

test_min_of_plain_column_without_protection_allowed if {
	d := decide(bob, [use("civil.residents", "district", ["order_statistic", "aggregate_expression"])], true, [rows_grant])
	d.allow
	d.min_group_size == 0
	d.protected == {}
}

# SUM(CASE WHEN e.name = '...' THEN r.monthly_allowance ELSE 0 END) joined
# on the legal representative: the owner's own column isolates one person.
owner_case_columns := [
	use("market.enterprises", "legal_rep_id_card", ["join_key"]),
	use("market.enterprises", "name", ["predicate", "aggregate_expression"]),
	use("civil.residents", "id_card", ["join_key"]),
	use("civil.residents", "district", ["group", "output"]),
	use("civil.residents", "monthly_allowance", ["aggregate_expression"]),
]

test_owner_column_in_case_under_protection_denied if {
	d := decide(bob, owner_case_columns, true, [agg_all])
	not d.allow
	rules(d) == {"aggregate_expression"}
	[r] := reasons_for(d, "market.enterprises", "name")
	contains(r.message, "bare column or *")
	contains(r.message, "civil.residents with k = 25")

	# The aggregate-level column is refused once, by its column rule.
	[m] := reasons_for(d, "civil.residents", "monthly_allowance")
	contains(m.message, "is aggregate-only")
}

test_owner_max_under_protection_denied if {
	cols := [
		use("market.enterprises", "legal_rep_id_card", ["join_key"]),
		use("market.enterprises", "name", ["order_statistic"]),
		use("civil.residents", "id_card", ["join_key"]),
		use("civil.residents", "district", ["group", "output"]),
	]
	d := decide(bob, cols, true, [agg_all])
	rules(d) == {"order_statistic"}
	[r] := reasons_for(d, "market.enterprises", "name")
	contains(r.message, "even though the column is your own department's")
}

test_owner_case_without_protected_dataset_allowed if {
	cols := [
		use("market.enterprises", "name", ["predicate", "aggregate_expression", "order_statistic"]),
		use("civil.residents", "district", ["group", "output"]),
	]
	d := decide(bob, cols, true, [rows_grant])
	d.allow
	d.protected == {}
	d.min_group_size == 0
}

test_join_key_inside_aggregate_reported_once if {
	d := decide(bob, [use("civil.residents", "id_card", ["aggregate_expression", "order_statistic"])], true, [agg_all])
	rules(d) == {"join_key_use"}
}

test_protected_map_per_dataset if {
	health_rows := object.union(grant("g-health", "bob", "enterprise-credit", ["*"], "rows", 0), {"dataset": "health.insured"})
	cols := [
		use("civil.residents", "id_card", ["join_key"]),
		use("civil.residents", "district", ["group", "output"]),
		use("health.insured", "id_card", ["join_key"]),
		use("health.insured", "annual_claims", ["aggregate"]),
	]
	d := decide(bob, cols, true, [agg_all, health_rows])
	d.allow
	d.protected == {"civil.residents": 25, "health.insured": 10}
	d.min_group_size == 25
}

test_protected_k_is_the_larger_of_grant_and_default if {
	small := grant("g-small", "bob", "enterprise-credit", ["*"], "aggregate", 5)
	bare := decide(bob, [use("civil.residents", "district", ["group", "output"])], true, [small])
	bare.allow
	bare.protected == {"civil.residents": 5}
	with_agg_col := decide(bob, [use("civil.residents", "district", ["group", "output"]), use("civil.residents", "monthly_allowance", ["aggregate"])], true, [small])
	with_agg_col.allow
	with_agg_col.protected == {"civil.residents": 10}
	with_agg_col.min_group_size == 10
}

# ---------------------------------------------------------------------------
# Privacy unit.

catalog_without_unit := json.patch(catalog, [{"op": "remove", "path": "/datasets/civil.residents/columns/id_card/unique"}])

test_no_privacy_unit if {
	d := authz.decision with input as req(bob, [use("civil.residents", "monthly_allowance", ["aggregate"])], true)
		with data.catalog as catalog_without_unit
		with data.purposes as purposes
		with data.grants as [rows_grant]
		with data.settings as {"default_k": 10}
	not d.allow
	rules(d) == {"no_privacy_unit"}
	r := d.reasons[0]
	r.dataset == "civil.residents"
	r.column == ""
	r.legal_basis == ""
	contains(r.message, "join_key with unique: true")
	d.protected == {}
}

test_no_privacy_unit_only_for_protected_datasets if {
	d := authz.decision with input as req(bob, [use("civil.residents", "district", ["output"])], false)
		with data.catalog as catalog_without_unit
		with data.purposes as purposes
		with data.grants as [rows_grant]
		with data.settings as {"default_k": 10}
	d.allow
}

# ---------------------------------------------------------------------------
# Differential privacy where the data demands it.

test_dp_required_by_catalog_flag if {
	d := decide(bob, [use("civil.residents", "disability", ["aggregate"])], true, [agg_all])
	not d.allow
	rules(d) == {"dp_required"}
	r := d.reasons[0]
	r.column == "disability"
	contains(r.message, "grade L3")
	contains(r.message, "marks it dp_required")
	contains(r.message, "Apply for a grant on civil.residents with a differential-privacy budget")
}

test_dp_required_by_grade if {
	settings := {"default_k": 10, "dp_grades": ["L4"]}
	d := decide_with(bob, [use("civil.residents", "care_level", ["aggregate"])], true, [agg_all], settings)
	rules(d) == {"dp_required"}
	contains(d.reasons[0].message, "graded L4")
	ok := decide_with(bob, [use("civil.residents", "monthly_allowance", ["aggregate"])], true, [agg_all], settings)
	ok.allow
	without := decide(bob, [use("civil.residents", "care_level", ["aggregate"])], true, [agg_all])
	without.allow
}

test_dp_required_allowed_with_budget if {
	dp_grant := object.union(agg_all, {"epsilon": 2, "epsilon_per_query": 0.5})
	settings := {"default_k": 10, "dp_grades": ["L4"]}
	cols := [use("civil.residents", "disability", ["aggregate"]), use("civil.residents", "care_level", ["aggregate"])]
	d := decide_with(bob, cols, true, [dp_grant], settings)
	d.allow
	count(d.dp) == 1
}

test_dp_required_does_not_bind_the_owner if {
	civil := {"name": "cora", "role": "analyst", "department": "civil"}
	d := decide_with(civil, [use("civil.residents", "disability", ["output"])], false, [], {"default_k": 10, "dp_grades": ["L3", "L4"]})
	d.allow
}

test_dp_required_never_binds_a_join_key if {
	# id_card is L4 but a join key: it leaves only blinded, so a private
	# join on it needs no budget even when every L4 column does.
	settings := {"default_k": 10, "dp_grades": ["L4"]}
	d := decide_with(bob, [use("civil.residents", "id_card", ["join_key"]), use("civil.residents", "monthly_allowance", ["aggregate"])], true, [agg_all], settings)
	d.allow
}
