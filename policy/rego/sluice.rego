# Sluice base policy: decides whether a planned query may run, and with which
# obligations (masks at the source, minimum group size).
#
# Deny by default: the decision allows only when there is no denial and every
# dataset the query touches is allowed by a ground (owner, unconditional share,
# or a valid grant). Every denial is explained with a stable rule id.
#
# input: see policy.Input (principal, purpose, now, datasets, columns, aggregate).
# data:  see policy/README.md (catalog, purposes, grants, settings), built by
#        Engine.Update. Dataset and column keys are lower case, so lookups
#        lower-case the names the planner reports.
#
# Security-team modules in package sluice.custom.<name> add denials through
# `deny contains reason if { ... }`; they are collected by custom_denials.
package sluice.authz

# ---------------------------------------------------------------------------
# Basic facts about the request.

default_k := k if {
	k := data.settings.default_k
	is_number(k)
	k > 0
} else := 10

analyst if input.principal.role == "analyst"

now_ns := time.parse_rfc3339_ns(input.now)

purpose_registered if {
	input.purpose != ""
	data.purposes[input.purpose]
}

# Every dataset the query touches, lower-cased to match the data keys.
used_datasets contains lower(d) if some d in input.datasets

used_datasets contains lower(c.dataset) if some c in input.columns

# Non-analysts read no data: with nothing known, every dataset rule below is
# silent for them and the single "role" denial explains the decision.
known contains d if {
	some d in used_datasets
	data.catalog.datasets[d]
}

# A department reads its own data at plain: owned datasets skip every
# share-class, grant and column-level rule below.
owned contains d if {
	some d in known
	data.catalog.datasets[d].department == input.principal.department
}

foreign contains d if {
	some d in known
	not d in owned
}

share_class(d) := data.catalog.datasets[d].share_class

# Column rules only matter where the data could be shared at all; for share
# class none the single share_class_none denial says everything.
level_checked contains d if {
	some d in foreign
	share_class(d) in {"unconditional", "conditional"}
}

# Columns of dataset d the query uses (lower case).
cols_used[d] contains lower(c.column) if {
	some c in input.columns
	d := lower(c.dataset)
}

column(d, col) := data.catalog.datasets[d].columns[col]

ds_name(d) := n if {
	n := data.catalog.datasets[d].name
} else := d

col_label(d, col) := sprintf("%s.%s", [ds_name(d), column(d, col).name]) if {
	column(d, col)
} else := sprintf("%s.%s", [ds_name(d), col])

col_name(d, col) := n if {
	n := column(d, col).name
} else := col

valid_usages := {
	"output", "predicate", "group", "order", "join_key",
	"aggregate", "distinct_aggregate", "order_statistic", "aggregate_expression",
}

# The usages of a column inside an aggregate: the bare argument of
# COUNT/SUM/AVG, of COUNT/SUM/AVG(DISTINCT ...), of MIN/MAX, and anywhere
# inside an aggregate argument that is an expression.
in_aggregate_usages := {"aggregate", "distinct_aggregate", "order_statistic", "aggregate_expression"}

# What an aggregate-only release allows: these aggregates of a bare column
# (MIN and MAX release one person's exact value).
aggregate_functions := "COUNT/SUM/AVG"

reason(rule, d, col, msg) := {
	"rule": rule,
	"dataset": ds_name(d),
	"column": col_name(d, col),
	"message": msg,
	"legal_basis": "",
}

dataset_reason(rule, d, msg, basis) := {
	"rule": rule,
	"dataset": ds_name(d),
	"column": "",
	"message": msg,
	"legal_basis": basis,
}

# ---------------------------------------------------------------------------
# Request-level denials.

deny contains r if {
	not analyst
	r := {
		"rule": "role",
		"dataset": "",
		"column": "",
		"legal_basis": "",
		"message": sprintf(
			"%v has role %v; only analysts may query data. Auditors review policies and audit logs (sluice policy, sluice audit); admins use the admin API.",
			[input.principal.name, input.principal.role],
		),
	}
}

purpose_codes := {code | some code, _ in data.purposes}

registered_purposes := concat(", ", sort(purpose_codes))

purpose_message := "no purposes are registered yet; ask the platform admin to register the purpose of this work" if {
	count(purpose_codes) == 0
} else := sprintf(
	"no purpose was declared; declare one of the registered purposes (%s) in the x-sluice-purpose header",
	[registered_purposes],
) if {
	input.purpose == ""
} else := sprintf(
	"purpose %q is not registered; declare one of the registered purposes (%s), or ask the platform admin to register a new one",
	[input.purpose, registered_purposes],
)

deny contains r if {
	analyst
	not purpose_registered
	r := {"rule": "unknown_purpose", "dataset": "", "column": "", "legal_basis": "", "message": purpose_message}
}

raw_datasets contains d if some d in input.datasets

raw_datasets contains c.dataset if some c in input.columns

deny contains r if {
	analyst
	some raw in raw_datasets
	not data.catalog.datasets[lower(raw)]
	r := {
		"rule": "unknown_dataset",
		"dataset": raw,
		"column": "",
		"legal_basis": "",
		"message": sprintf("dataset %s is not in the data resource catalog; check the name (department.dataset) against the catalog", [raw]),
	}
}

deny contains r if {
	some c in input.columns
	d := lower(c.dataset)
	d in known
	not column(d, lower(c.column))
	r := {
		"rule": "unknown_column",
		"dataset": ds_name(d),
		"column": c.column,
		"legal_basis": "",
		"message": sprintf("column %s is not registered for dataset %s in the catalog", [c.column, ds_name(d)]),
	}
}

# ---------------------------------------------------------------------------
# Share classes.

deny contains r if {
	some d in foreign
	share_class(d) == "none"
	ds := data.catalog.datasets[d]
	msg := sprintf(
		"%s is not shared (share class none) by the %s department; legal basis: %s. It cannot be queried by other departments through Sluice.",
		[ds_name(d), ds.department, ds.legal_basis],
	)
	r := dataset_reason("share_class_none", d, msg, ds.legal_basis)
}

deny contains r if {
	some d in foreign
	not share_class(d) in {"unconditional", "conditional", "none"}
	msg := sprintf("%s has no valid share class in the catalog (%v); ask its department to classify it", [ds_name(d), share_class(d)])
	r := dataset_reason("share_class_unknown", d, msg, "")
}

# ---------------------------------------------------------------------------
# Grants for conditional datasets.

names_principal(g) if {
	input.principal.name != ""
	g.grantee == input.principal.name
}

names_principal(g) if {
	input.principal.department != ""
	g.grantee == sprintf("dept:%s", [input.principal.department])
}

# [d, i]: grant i names the principal and is for conditional dataset d.
candidate contains [d, i] if {
	some d in foreign
	share_class(d) == "conditional"
	some i, g in data.grants
	lower(g.dataset) == d
	names_principal(g)
}

has_candidate(d) if {
	some p in candidate
	p[0] == d
}

covers(g, _) if "*" in g.columns

covers(g, col) if {
	some gc in g.columns
	lower(gc) == col
}

uncovered(d, g) := {col | some col in cols_used[d]; not covers(g, col)}

grant_fault contains [d, i, "grant_revoked"] if {
	some [d, i] in candidate
	data.grants[i].revoked == true
}

grant_fault contains [d, i, "grant_not_yet_valid"] if {
	some [d, i] in candidate
	now_ns < data.grants[i].valid_from_ns
}

grant_fault contains [d, i, "grant_expired"] if {
	some [d, i] in candidate
	now_ns >= data.grants[i].valid_until_ns
}

grant_fault contains [d, i, "grant_purpose"] if {
	some [d, i] in candidate
	data.grants[i].purpose != input.purpose
}

grant_fault contains [d, i, "grant_columns"] if {
	some [d, i] in candidate
	count(uncovered(d, data.grants[i])) > 0
}

faulty contains [d, i] if some [d, i, _] in grant_fault

valid_grant contains p if {
	some p in candidate
	not p in faulty
}

rows_mode(g) if g.mode == "rows"

has_rows_grant(d) if {
	some [d2, i] in valid_grant
	d2 == d
	rows_mode(data.grants[i])
}

has_valid_grant(d) if {
	some [d2, _] in valid_grant
	d2 == d
}

# The grants a decision relies on. A rows grant is the least restrictive, so
# when one is valid the aggregate-only grants for that dataset are not needed.
# Any mode other than "rows" is treated as aggregate-only (fail closed).
relied contains [d, i] if {
	some [d, i] in valid_grant
	rows_mode(data.grants[i])
}

relied contains [d, i] if {
	some [d, i] in valid_grant
	not rows_mode(data.grants[i])
	not has_rows_grant(d)
}

grant_k(g) := g.k if {
	is_number(g.k)
	g.k > 0
} else := default_k

# Aggregate-only grants relied on: dataset d → the smallest k among them
# (any one of them suffices).
aggregate_grant_k[d] := min({grant_k(data.grants[i]) | some [d2, i] in relied; d2 == d}) if {
	some [d, i] in relied
	not rows_mode(data.grants[i])
}

legal_basis(d) := object.get(data.catalog.datasets[d], "legal_basis", "")

deny contains r if {
	some d in foreign
	share_class(d) == "conditional"
	not has_candidate(d)
	msg := sprintf(
		"%s is shared only under an approved application (share class conditional; legal basis: %s), and you hold no grant for it. Apply for access to %s for purpose %s, naming the columns you need.",
		[ds_name(d), legal_basis(d), ds_name(d), input.purpose],
	)
	r := dataset_reason("no_grant", d, msg, legal_basis(d))
}

deny contains r if {
	some d in foreign
	share_class(d) == "conditional"
	not has_valid_grant(d)
	some [d2, i, rule] in grant_fault
	d2 == d
	r := dataset_reason(rule, d, fault_message(rule, d, data.grants[i]), legal_basis(d))
}

fault_message("grant_revoked", d, g) := sprintf(
	"grant %s on %s has been revoked; apply for access again if the work still needs it",
	[g.id, ds_name(d)],
)

fault_message("grant_not_yet_valid", d, g) := sprintf(
	"grant %s on %s is valid only from %s; wait until then or ask the provider to change the start date",
	[g.id, ds_name(d), g.valid_from],
)

fault_message("grant_expired", d, g) := sprintf(
	"grant %s on %s expired at %s; apply for a renewal of the grant to keep using %s",
	[g.id, ds_name(d), g.valid_until, ds_name(d)],
)

fault_message("grant_purpose", d, g) := sprintf(
	"grant %s on %s is for purpose %s, but the query declares purpose %q; shared data may be used only for the approved purpose: declare %s or apply for access for %q",
	[g.id, ds_name(d), g.purpose, input.purpose, g.purpose, input.purpose],
)

fault_message("grant_columns", d, g) := sprintf(
	"grant %s on %s does not cover column(s) %s; remove them from the query or apply to extend the grant",
	[g.id, ds_name(d), concat(", ", sort([col_name(d, c) | some c in uncovered(d, g)]))],
)

deny contains r if {
	not input.aggregate
	some [d, i] in relied
	g := data.grants[i]
	not rows_mode(g)
	msg := sprintf(
		"grant %s on %s allows only aggregates over groups of at least %d persons; rewrite the query with GROUP BY and %s so that every output column is an aggregate or a group key",
		[g.id, ds_name(d), grant_k(g), aggregate_functions],
	)
	r := dataset_reason("aggregate_only_grant", d, msg, "")
}

# ---------------------------------------------------------------------------
# Column release levels (non-owners).

# One row per usage of a column of a non-owner's shareable dataset, with the
# column's catalog release level, so each check below is a single pass.
checked contains [d, col, u, rel] if {
	some c in input.columns
	d := lower(c.dataset)
	d in level_checked
	col := lower(c.column)
	rel := column(d, col).release
	some u in c.usages
}

# release level → usage → the rule that forbids it, whatever the query's shape.
# An aggregate-level column enters an aggregate only bare, and only in
# COUNT/SUM/AVG: an order statistic is one person's exact value, DISTINCT
# weighs values rather than persons, and a CASE, condition or arithmetic
# inside the aggregate can single out one person within a large group.
forbidden := {
	"masked": {"join_key": "masked_join_key"},
	"aggregate": {
		"output": "aggregate_row_output",
		"group": "aggregate_column_use",
		"order": "aggregate_column_use",
		"join_key": "aggregate_column_use",
		"order_statistic": "order_statistic",
		"distinct_aggregate": "distinct_aggregate",
		"aggregate_expression": "aggregate_expression",
	},
	"join_key": {
		"output": "join_key_use",
		"predicate": "join_key_use",
		"group": "join_key_use",
		"order": "join_key_use",
		"aggregate": "join_key_use",
		"distinct_aggregate": "join_key_use",
		"order_statistic": "join_key_use",
		"aggregate_expression": "join_key_use",
	},
}

usable_releases := {"plain", "masked", "aggregate", "join_key"}

deny contains r if {
	some [d, col, u, rel] in checked
	rule := forbidden[rel][u]
	r := reason(rule, d, col, column_message(rule, d, col, u))
}

# [d, col, u]: a column-level rule above (the forbidden table, or a hidden
# column) already refuses this usage, so the release-wide rules below stay
# silent about it and every refusal is explained once.
level_refused contains [d, col, u] if {
	some [d, col, u, rel] in checked
	forbidden[rel][u]
}

level_refused contains [d, col, u] if {
	some [d, col, u, rel] in checked
	not rel in usable_releases
}

# A join key leaves its agent only blinded, through a private set
# intersection with a join_key column of the same key domain: every join
# pair naming a non-owner's join_key column must be a PSI pair.
join_sides contains [lower(side.dataset), lower(side.column), pair] if {
	some pair in object.get(input, "joins", [])
	some side in [pair.left, pair.right]
	side.dataset != ""
}

deny contains r if {
	some [d, col, pair] in join_sides
	d in level_checked
	column(d, col).release == "join_key"
	not pair.psi
	r := reason("join_key_plain_join", d, col, sprintf(
		"column %s is a join key: it can be joined only with a join_key column of the same key domain, as a private set intersection; this join would expose it to the broker",
		[col_label(d, col)],
	))
}

# An aggregate-level column may be compared, or aggregated, only when the
# whole result is aggregate-only.
deny contains r if {
	not input.aggregate
	some [d, col, "predicate", "aggregate"] in checked
	r := reason("aggregate_column_use", d, col, sprintf(
		"column %s is aggregate-only: it may be compared in a condition only when every output of the query is an aggregate or a group key; rewrite the query with GROUP BY and %s",
		[col_label(d, col), aggregate_functions],
	))
}

deny contains r if {
	not input.aggregate
	some [d, col, u, "aggregate"] in checked
	u in in_aggregate_usages
	not [d, col, "output", "aggregate"] in checked
	r := reason("aggregate_row_output", d, col, sprintf(
		"column %s may be released only inside %s over groups of at least %d persons, but this query also releases row-level values; make every output column an aggregate or a GROUP BY key",
		[col_label(d, col), aggregate_functions, dataset_k(d)],
	))
}

deny contains r if {
	some [d, col, u, _] in checked
	not u in valid_usages
	r := reason("unknown_usage", d, col, sprintf("column %s is used in an unrecognised way (%v); the query cannot be checked", [col_label(d, col), u]))
}

# Hidden columns, and any release level this policy does not know, are
# unusable by non-owners.
deny contains r if {
	some d in level_checked
	some col in cols_used[d]
	rel := column(d, col).release
	not rel in usable_releases
	msg := sprintf("column %s is hidden from other departments and cannot be used in any way; remove it from the query", [col_label(d, col)])
	r := reason("hidden_column", d, col, msg)
}

column_message("masked_join_key", d, col, _) := sprintf(
	"column %s is released only masked at the source, so it cannot be a join key; join on a join_key column of the same key domain instead",
	[col_label(d, col)],
)

column_message("aggregate_row_output", d, col, _) := sprintf(
	"column %s may be released only inside %s over groups of at least %d persons, never as row values; use it inside an aggregate, e.g. AVG(%s), with GROUP BY",
	[col_label(d, col), aggregate_functions, dataset_k(d), col_name(d, col)],
)

column_message("aggregate_column_use", d, col, u) := sprintf(
	"column %s is aggregate-only: it cannot be used as a %s key, only as the bare argument of %s over groups of at least %d persons",
	[col_label(d, col), usage_word(u), aggregate_functions, dataset_k(d)],
)

column_message("order_statistic", d, col, _) := sprintf(
	"column %s is aggregate-only: MIN and MAX release one person's exact value, so they are refused on it; allowed are COUNT, SUM and AVG of the bare column, e.g. SUM(%s), over groups of at least %d persons. %s",
	[col_label(d, col), col_name(d, col), dataset_k(d), order_statistic_advice],
)

column_message("distinct_aggregate", d, col, _) := sprintf(
	"column %s is aggregate-only: DISTINCT inside an aggregate counts or sums values instead of persons, so a value only one person has weighs as much as a value shared by many and can be read back; use COUNT, SUM or AVG of the bare column without DISTINCT, e.g. SUM(%s), over groups of at least %d persons",
	[col_label(d, col), col_name(d, col), dataset_k(d)],
)

column_message("aggregate_expression", d, col, _) := sprintf(
	"column %s is aggregate-only: inside an aggregate it may appear only as the bare argument, e.g. SUM(%s) or AVG(%s); a CASE, condition or arithmetic inside the aggregate can single out one person within a large group. Move conditions to WHERE and compute on the released aggregates instead",
	[col_label(d, col), col_name(d, col), col_name(d, col)],
)

column_message("join_key_use", d, col, u) := sprintf(
	"column %s is a join key: it is never released and can be used only as an equality join key with a join_key column of the same key domain (executed as a private set intersection), never as %s",
	[col_label(d, col), usage_noun(u)],
)

usage_word("group") := "GROUP BY"

usage_word("order") := "ORDER BY"

usage_word("join_key") := "join"

usage_noun("output") := "an output value"

usage_noun("predicate") := "a condition (WHERE/HAVING/CASE)"

usage_noun("group") := "a GROUP BY key"

usage_noun("order") := "an ORDER BY key"

usage_noun("aggregate") := "an aggregate argument"

usage_noun("distinct_aggregate") := "a DISTINCT aggregate argument, e.g. COUNT(DISTINCT ...)"

usage_noun("order_statistic") := "the argument of MIN or MAX"

usage_noun("aggregate_expression") := "part of an expression inside an aggregate"

usage_noun(u) := sprintf("%v usage", [u]) if not u in {
	"output", "predicate", "group", "order",
	"aggregate", "distinct_aggregate", "order_statistic", "aggregate_expression",
}

# What to use instead of MIN/MAX, depending on whether the query relies on
# a differential-privacy budget.
order_statistic_advice := "This query relies on a differential-privacy budget, under which only COUNT and SUM are released, with noise: use those." if {
	count(dp) > 0
} else := "Order statistics are released only under a differential-privacy budget, which no grant this query relies on carries."

# ---------------------------------------------------------------------------
# Protected releases: where k applies.
#
# A dataset is protected when a non-owner uses one of its aggregate-level
# columns (k = the default k) or relies on an aggregate-only grant for it
# (k = the grant's k, the smallest among several); with both, the larger.
dataset_ks contains [d, default_k] if some [d, _, _, "aggregate"] in checked

dataset_ks contains [d, k] if some d, k in aggregate_grant_k

protected_k[d] := max({k | some [d2, k] in dataset_ks; d2 == d}) if some [d, _] in dataset_ks

dataset_k(d) := object.get(protected_k, d, default_k)

protected_release if count(protected_k) > 0

protected_text := concat(", ", sort([sprintf("%s with k = %d", [ds_name(d), k]) | some d, k in protected_k]))

# Every column of every dataset the query may read (the principal's own
# department's included), with each of its usages.
readable contains d if some d in owned

readable contains d if some d in level_checked

used_column_usages contains [d, col, u] if {
	some c in input.columns
	d := lower(c.dataset)
	d in readable
	col := lower(c.column)
	column(d, col)
	some u in c.usages
}

# In a protected release no aggregate may isolate one person, whoever owns
# the column: SUM(CASE WHEN r.phone = '...' THEN i.annual_claims END) picks
# one person out of a large group through the owner's own phone column, and
# MAX(r.monthly_allowance) per insurance type reveals the group of the person
# with the largest allowance. An aggregate's argument must be a bare column
# or *, and MIN/MAX are refused.
release_rules := {"aggregate_expression": "aggregate_expression", "order_statistic": "order_statistic"}

deny contains r if {
	protected_release
	some [d, col, u] in used_column_usages
	rule := release_rules[u]
	not [d, col, u] in level_refused
	r := reason(rule, d, col, release_message(rule, d, col))
}

release_message("aggregate_expression", d, col) := sprintf(
	"this release is aggregate-only (%s): in an aggregate-only release an aggregate's argument must be a bare column or *, e.g. COUNT(*) or SUM(x), but column %s appears inside an expression (a CASE, condition, arithmetic or function) within an aggregate, which can single out one person within a large group%s. Move conditions to WHERE and compute on the released aggregates instead",
	[protected_text, col_label(d, col), own_column_note(d)],
)

release_message("order_statistic", d, col) := sprintf(
	"this release is aggregate-only (%s): MIN and MAX release one person's exact value, and MIN or MAX of column %s would reveal which group that person belongs to%s; allowed are COUNT, SUM and AVG of bare columns over groups of at least %d persons. %s",
	[protected_text, col_label(d, col), own_column_note(d), min_group_size, order_statistic_advice],
)

own_column_note(d) := ", even though the column is your own department's" if d in owned else := ""

# Counting in persons needs to know who each row is about: a protected
# dataset must declare a privacy unit, a join_key column with unique: true.
has_privacy_unit(d) if {
	some c in data.catalog.datasets[d].columns
	c.release == "join_key"
	object.get(c, "unique", false) == true
}

deny contains r if {
	some d, k in protected_k
	not has_privacy_unit(d)
	msg := sprintf(
		"aggregate-only releases of %s are counted in persons (at least %d distinct persons per group), but it declares no unique person key; its data admin (department %s) must mark the column that identifies each row's person as join_key with unique: true (one row per person)",
		[ds_name(d), k, data.catalog.datasets[d].department],
	)
	r := dataset_reason("no_privacy_unit", d, msg, "")
}

# ---------------------------------------------------------------------------
# Differential privacy where the data demands it: a column flagged
# dp_required in the catalog, or graded in settings.dp_grades, reaches
# other departments only under a grant with a budget.
dp_grades := {g | some g in data.settings.dp_grades}

dp_required_why(d, col) := "its catalog entry marks it dp_required" if {
	object.get(column(d, col), "dp_required", false) == true
} else := sprintf("the policy requires a differential-privacy budget for every column graded %s (settings dp_grades)", [column(d, col).grade]) if {
	column(d, col).grade in dp_grades
}

has_dp_grant(d) if {
	some [d2, i] in relied
	d2 == d
	object.get(data.grants[i], "epsilon", 0) > 0
}

# A join key is never released (it leaves only blinded, for a private
# join), so it needs no budget however it is graded.
deny contains r if {
	some d in level_checked
	some col in cols_used[d]
	column(d, col).release != "join_key"
	why := dp_required_why(d, col)
	not has_dp_grant(d)
	r := reason("dp_required", d, col, dp_required_message(d, col, why))
}

dp_required_message(d, col, why) := sprintf(
	"column %s (grade %s) may be used by other departments only under a differential-privacy budget, because %s: a minimum group size alone does not protect it against several queries combined, and no grant this query relies on for %s carries a budget. Apply for a grant on %s with a differential-privacy budget for purpose %s; under it only noisy COUNT and SUM of the bare column are released",
	[col_label(d, col), column(d, col).grade, why, ds_name(d), ds_name(d), input.purpose],
) if {
	share_class(d) == "conditional"
} else := sprintf(
	"column %s (grade %s) may be used by other departments only under a differential-privacy budget, because %s: a minimum group size alone does not protect it against several queries combined. A budget comes only with an approved grant, and %s is shared unconditionally, without grants; ask the %s department's data admin to share it conditionally so that you can apply for a grant with a differential-privacy budget; under it only noisy COUNT and SUM of the bare column are released",
	[col_label(d, col), column(d, col).grade, why, ds_name(d), data.catalog.datasets[d].department],
)

# ---------------------------------------------------------------------------
# Security-team additions: every set named deny under data.sluice.custom.

custom_denials contains r if {
	walk(data.sluice.custom, [path, value])
	n := count(path)
	n > 0
	path[n - 1] == "deny"
	is_set(value)
	pkg := concat(".", array.concat(["sluice", "custom"], [sprintf("%v", [p]) | some j, p in path; j < n - 1]))
	some item in value
	r := custom_reason(pkg, item)
}

as_text(x) := x if is_string(x) else := sprintf("%v", [x])

custom_reason(pkg, item) := {
	"rule": as_text(object.get(item, "rule", sprintf("custom:%s", [pkg]))),
	"dataset": as_text(object.get(item, "dataset", "")),
	"column": as_text(object.get(item, "column", "")),
	"message": as_text(object.get(item, "message", sprintf("denied by security policy %s", [pkg]))),
	"legal_basis": as_text(object.get(item, "legal_basis", "")),
} if is_object(item)

custom_reason(pkg, item) := {
	"rule": sprintf("custom:%s", [pkg]),
	"dataset": "",
	"column": "",
	"message": as_text(item),
	"legal_basis": "",
} if not is_object(item)

denials := deny | custom_denials

# ---------------------------------------------------------------------------
# Grounds and obligations.

ground contains r if {
	some d in owned
	r := dataset_reason("allow_owner", d, sprintf("%s belongs to your department %s: read at plain", [ds_name(d), input.principal.department]), "")
}

ground contains r if {
	some d in foreign
	share_class(d) == "unconditional"
	r := dataset_reason("allow_unconditional", d, sprintf("%s is shared unconditionally with every department; column release levels apply", [ds_name(d)]), "")
}

ground contains r if {
	some [d, i] in relied
	g := data.grants[i]
	msg := sprintf("%s is shared under grant %s (purpose %s, %s, valid until %s)", [ds_name(d), g.id, g.purpose, mode_text(g), g.valid_until])
	r := dataset_reason("allow_grant", d, msg, "")
}

mode_text(g) := "rows" if rows_mode(g) else := sprintf("aggregate-only, k = %d", [grant_k(g)])

grounded contains d if some d in owned

grounded contains d if {
	some d in foreign
	share_class(d) == "unconditional"
}

grounded contains d if {
	some [d, _] in relied
}

default allow := false

allow if {
	analyst
	count(denials) == 0
	every d in used_datasets {
		d in grounded
	}
}

mask_entries contains [d, col] if some [d, col, _, "masked"] in checked

masks := {ds_name(d): cols |
	some [d, _] in mask_entries
	cols := {col_name(d, col): column(d, col).mask | some [d2, col] in mask_entries; d2 == d}
}

# k applies when a non-owner uses an aggregate-level column, or relies on an
# aggregate-only grant; the largest k that applies wins.
ks contains default_k if some [_, _, _, "aggregate"] in checked

ks contains k if some _, k in aggregate_grant_k

min_group_size := max(ks) if count(ks) > 0 else := 0

protected := {ds_name(d): k | some d, k in protected_k}

grant_ids := sort({data.grants[i].id | some [_, i] in relied})

# A row cap applies when any grant relied on sets one; the smallest wins.
row_caps contains data.grants[i].row_cap if {
	some [_, i] in relied
	object.get(data.grants[i], "row_cap", 0) > 0
}

row_cap := min(row_caps) if count(row_caps) > 0 else := 0

# Differential privacy: every grant relied on that carries a budget spends
# its per-query epsilon; the broker reserves it before the query runs. The
# grant's clamp bounds (lower-case column → [lo, hi]) say how the broker
# may sum its dataset's columns under the noise.
dp := sort([{"grant": g.id, "dataset": g.dataset, "epsilon_per_query": g.epsilon_per_query, "epsilon": g.epsilon, "clamp": object.get(g, "clamp", {})} |
	some [_, i] in relied
	g := data.grants[i]
	object.get(g, "epsilon", 0) > 0
])

sorted_reasons(rs) := [r |
	some t in sort({[x.dataset, x.column, x.rule, x.message, x.legal_basis] | some x in rs})
	r := {"rule": t[2], "dataset": t[0], "column": t[1], "message": t[3], "legal_basis": t[4]}
]

# The fallback reason keeps "deny by default" explainable even if no rule
# above names the cause (e.g. a query that touches no dataset for a role
# that may not read data is impossible, but an empty grounds set is not).
fallback_reasons := [{
	"rule": "default_deny",
	"dataset": "",
	"column": "",
	"legal_basis": "",
	"message": "no rule allows this query (deny by default); check the datasets, purpose and grants it relies on",
}]

decision := {
	"allow": true,
	"reasons": sorted_reasons(ground),
	"masks": masks,
	"min_group_size": min_group_size,
	"protected": protected,
	"grants": grant_ids,
	"row_cap": row_cap,
	"dp": dp,
} if {
	allow
} else := {
	"allow": false,
	"reasons": sorted_reasons(denials),
	"masks": {},
	"min_group_size": 0,
	"protected": {},
	"grants": [],
	"row_cap": 0,
	"dp": [],
} if {
	count(denials) > 0
} else := {
	"allow": false,
	"reasons": fallback_reasons,
	"masks": {},
	"min_group_size": 0,
	"protected": {},
	"grants": [],
	"row_cap": 0,
	"dp": [],
}
