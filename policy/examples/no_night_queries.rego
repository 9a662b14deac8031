# Example security-team module: no queries on sensitive (L3/L4) columns of
# other departments' data outside office hours, 08:00-20:00 Beijing time
# (UTC+8). Load it with `sluice broker --policy-dir DIR` (policy.WithPolicyDir).
#
# Custom modules live under package sluice.custom.<name> and can only add
# denials: every element of their `deny` set becomes a denial reason.
package sluice.custom.no_night_queries

import data.sluice.authz

# Shift to UTC+8 by adding the offset, so no time zone database is needed.
beijing_hour := time.clock(time.parse_rfc3339_ns(input.now) + ((8 * 3600) * 1000000000))[0]

office_hours if {
	beijing_hour >= 8
	beijing_hour < 20
}

deny contains reason if {
	not office_hours
	some c in input.columns
	d := lower(c.dataset)
	d in authz.foreign
	col := data.catalog.datasets[d].columns[lower(c.column)]
	col.grade in {"L3", "L4"}
	reason := {
		"rule": "custom:no_night_queries",
		"dataset": data.catalog.datasets[d].name,
		"column": col.name,
		"message": sprintf("column %s.%s is graded %s: other departments' sensitive data may be queried only during office hours (08:00-20:00 Beijing time); run the query then", [data.catalog.datasets[d].name, col.name, col.grade]),
	}
}
