package tpch

import (
	"fmt"
	"math"
	"slices"
)

// Kind is the SQL type of a column.
type Kind uint8

const (
	// KindInt is an integer (keys and counts): BIGINT, INTEGER in
	// SQLite. Values are int64.
	KindInt Kind = iota
	// KindDecimal is DECIMAL(15,2). Values are Decimal (hundredths).
	KindDecimal
	// KindDate is DATE. Values are Date (days since 1970-01-01); SQLite
	// stores them as 'YYYY-MM-DD' text in a column declared DATE.
	KindDate
	// KindText is VARCHAR(Len). Values are string.
	KindText
)

func (k Kind) String() string {
	switch k {
	case KindInt:
		return "int"
	case KindDecimal:
		return "decimal"
	case KindDate:
		return "date"
	case KindText:
		return "text"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Column is one column of a TPC-H table.
type Column struct {
	Name string
	Kind Kind
	Len  int // the maximum length of a Text column (VARCHAR(Len))
}

// Table is one of the eight TPC-H tables (spec clause 1.4).
type Table struct {
	Name       string
	Department string // the department that holds it (Departments)
	Columns    []Column
	Key        []string // the primary key
}

// ColumnNames returns the names of t's columns in order.
func (t Table) ColumnNames() []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return names
}

// The departments the tables are split into.
const (
	Trade     = "trade"     // orders, lineitem
	Customers = "customers" // customer, nation, region
	Supply    = "supply"    // part, partsupp, supplier
)

// Departments maps each TPC-H table to the department that holds it: the
// split a catalog over the three department databases is built from.
var Departments = map[string]string{
	"orders":   Trade,
	"lineitem": Trade,
	"customer": Customers,
	"nation":   Customers,
	"region":   Customers,
	"part":     Supply,
	"partsupp": Supply,
	"supplier": Supply,
}

// DepartmentNames returns the three departments, sorted.
func DepartmentNames() []string { return []string{Customers, Supply, Trade} }

// TablesOf returns the tables department dept holds, in generation order.
func TablesOf(dept string) []string {
	var names []string
	for _, t := range Tables {
		if t.Department == dept {
			names = append(names, t.Name)
		}
	}
	return names
}

// Qualified returns the name a query uses for table: department.table.
// It panics on a name that is not a TPC-H table.
func Qualified(table string) string {
	d, ok := Departments[table]
	if !ok {
		panic("tpch: no table " + table)
	}
	return d + "." + table
}

func integer(name string) Column     { return Column{Name: name, Kind: KindInt} }
func decimal(name string) Column     { return Column{Name: name, Kind: KindDecimal} }
func date(name string) Column        { return Column{Name: name, Kind: KindDate} }
func text(name string, n int) Column { return Column{Name: name, Kind: KindText, Len: n} }
func key(cols ...string) []string    { return cols }
func table(name string, k []string, cols ...Column) Table {
	return Table{Name: name, Department: Departments[name], Columns: cols, Key: k}
}

// Tables are the eight TPC-H tables (spec clause 1.4.1) in the order
// Generate produces them. The spec's fixed-length CHAR(n) columns are
// VARCHAR(n) here, so that no database pads the values.
var Tables = []Table{
	table("region", key("r_regionkey"),
		integer("r_regionkey"), text("r_name", 25), text("r_comment", 152)),
	table("nation", key("n_nationkey"),
		integer("n_nationkey"), text("n_name", 25), integer("n_regionkey"), text("n_comment", 152)),
	table("supplier", key("s_suppkey"),
		integer("s_suppkey"), text("s_name", 25), text("s_address", 40), integer("s_nationkey"),
		text("s_phone", 15), decimal("s_acctbal"), text("s_comment", 101)),
	table("customer", key("c_custkey"),
		integer("c_custkey"), text("c_name", 25), text("c_address", 40), integer("c_nationkey"),
		text("c_phone", 15), decimal("c_acctbal"), text("c_mktsegment", 10), text("c_comment", 117)),
	table("part", key("p_partkey"),
		integer("p_partkey"), text("p_name", 55), text("p_mfgr", 25), text("p_brand", 10),
		text("p_type", 25), integer("p_size"), text("p_container", 10), decimal("p_retailprice"),
		text("p_comment", 23)),
	table("partsupp", key("ps_partkey", "ps_suppkey"),
		integer("ps_partkey"), integer("ps_suppkey"), integer("ps_availqty"), decimal("ps_supplycost"),
		text("ps_comment", 199)),
	table("orders", key("o_orderkey"),
		integer("o_orderkey"), integer("o_custkey"), text("o_orderstatus", 1), decimal("o_totalprice"),
		date("o_orderdate"), text("o_orderpriority", 15), text("o_clerk", 15), integer("o_shippriority"),
		text("o_comment", 79)),
	table("lineitem", key("l_orderkey", "l_linenumber"),
		integer("l_orderkey"), integer("l_partkey"), integer("l_suppkey"), integer("l_linenumber"),
		decimal("l_quantity"), decimal("l_extendedprice"), decimal("l_discount"), decimal("l_tax"),
		text("l_returnflag", 1), text("l_linestatus", 1), date("l_shipdate"), date("l_commitdate"),
		date("l_receiptdate"), text("l_shipinstruct", 25), text("l_shipmode", 10), text("l_comment", 44)),
}

// Lookup returns the TPC-H table called name.
func Lookup(name string) (Table, bool) {
	i := slices.IndexFunc(Tables, func(t Table) bool { return t.Name == name })
	if i < 0 {
		return Table{}, false
	}
	return Tables[i], true
}

// scaled returns base*sf rounded, at least 1.
func scaled(sf float64, base int64) int64 {
	return max(1, int64(math.Round(sf*float64(base))))
}

// Cardinality returns the number of rows table has at scale factor sf
// (spec clause 4.2.5.1). For lineitem, whose size is random (one to
// seven lines an order), it is the expected number, four per order.
func Cardinality(sf float64, table string) int64 {
	switch table {
	case "region":
		return 5
	case "nation":
		return 25
	case "supplier":
		return scaled(sf, 10_000)
	case "customer":
		return scaled(sf, 150_000)
	case "part":
		return scaled(sf, 200_000)
	case "partsupp":
		return 4 * scaled(sf, 200_000)
	case "orders":
		return scaled(sf, 1_500_000)
	case "lineitem":
		return 4 * scaled(sf, 1_500_000)
	}
	return 0
}
