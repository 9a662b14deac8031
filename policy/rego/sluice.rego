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

valid_usages := {"output", "predicate", "group", "order", "aggregate", "join_key"}

aggregate_functions := "COUNT/SUM/AVG/MIN/MAX"

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
		"grant %s on %s allows only aggregates over groups of at least %d rows; rewrite the query with GROUP BY and %s so that every output column is an aggregate or a group key",
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
forbidden := {
	"masked": {"join_key": "masked_join_key"},
	"aggregate": {
		"output": "aggregate_row_output",
		"group": "aggregate_column_use",
		"order": "aggregate_column_use",
		"join_key": "aggregate_column_use",
	},
	"join_key": {
		"output": "join_key_use",
		"predicate": "join_key_use",
		"group": "join_key_use",
		"order": "join_key_use",
		"aggregate": "join_key_use",
	},
}

deny contains r if {
	some [d, col, u, rel] in checked
	rule := forbidden[rel][u]
	r := reason(rule, d, col, column_message(rule, d, col, u))
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
	some [d, col, "aggregate", "aggregate"] in checked
	not [d, col, "output", "aggregate"] in checked
	r := reason("aggregate_row_output", d, col, sprintf(
		"column %s may be released only inside %s over groups of at least %d rows, but this query also releases row-level values; make every output column an aggregate or a GROUP BY key",
		[col_label(d, col), aggregate_functions, default_k],
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
	not rel in {"plain", "masked", "aggregate", "join_key"}
	msg := sprintf("column %s is hidden from other departments and cannot be used in any way; remove it from the query", [col_label(d, col)])
	r := reason("hidden_column", d, col, msg)
}

column_message("masked_join_key", d, col, _) := sprintf(
	"column %s is released only masked at the source, so it cannot be a join key; join on a join_key column of the same key domain instead",
	[col_label(d, col)],
)

column_message("aggregate_row_output", d, col, _) := sprintf(
	"column %s may be released only inside %s over groups of at least %d rows, never as row values; use it inside an aggregate, e.g. AVG(%s), with GROUP BY",
	[col_label(d, col), aggregate_functions, default_k, col_name(d, col)],
)

column_message("aggregate_column_use", d, col, u) := sprintf(
	"column %s is aggregate-only: it cannot be used as a %s key, only inside %s over groups of at least %d rows",
	[col_label(d, col), usage_word(u), aggregate_functions, default_k],
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

usage_noun("aggregate") := "an aggregate argument (including COUNT(DISTINCT))"

usage_noun(u) := sprintf("%v usage", [u]) if not u in {"output", "predicate", "group", "order", "aggregate"}

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
	"grants": [],
	"row_cap": 0,
	"dp": [],
}
