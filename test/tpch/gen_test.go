package tpch

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"iter"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// rowHash hashes the first n rows of rows (all if n <= 0).
func rowHash(t testing.TB, rows iter.Seq[Row], n int) (string, int) {
	h := sha256.New()
	count := 0
	for row := range rows {
		for _, v := range row {
			fmt.Fprintf(h, "%v|", v)
		}
		h.Write([]byte{'\n'})
		count++
		if count == n {
			break
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], count
}

func mustRows(t testing.TB, sf float64, table string) iter.Seq[Row] {
	t.Helper()
	rows, err := Rows(sf, table)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// goldenHashes are the hashes of the first 1000 rows of each table at SF
// 0.01. A change to the generator that changes the data changes them: if
// it is meant, update them (and expect answers compared elsewhere to
// change).
var goldenHashes = map[string]string{
	"region":   "6672450886b5e447",
	"nation":   "f8b92a4e11b31064",
	"supplier": "a6406b650ea2a7e6",
	"customer": "726d2b16f303720a",
	"part":     "31ae4c11640296f9",
	"partsupp": "8889ade42486a3e2",
	"orders":   "8bf1205353f1ad6d",
	"lineitem": "ad1d9f98f3b70756",
}

func TestDeterministic(t *testing.T) {
	for _, tab := range Tables {
		a, n := rowHash(t, mustRows(t, 0.01, tab.Name), 1000)
		b, _ := rowHash(t, mustRows(t, 0.01, tab.Name), 1000)
		if a != b {
			t.Errorf("%s: two runs differ: %s, %s", tab.Name, a, b)
		}
		// The same rows whether the table is generated alone or with the rest.
		if n != min(1000, int(Cardinality(0.01, tab.Name))) && tab.Name != "lineitem" {
			t.Errorf("%s: %d rows hashed", tab.Name, n)
		}
		if want, ok := goldenHashes[tab.Name]; ok && a != want {
			t.Errorf("%s: hash %s, want %s (the generator's output changed)", tab.Name, a, want)
		}
	}
	var fromGenerate []string
	err := Generate(0.01, func(tab Table, rows iter.Seq[Row]) error {
		h, _ := rowHash(t, rows, 1000)
		fromGenerate = append(fromGenerate, tab.Name+"="+h)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, tab := range Tables {
		h, _ := rowHash(t, mustRows(t, 0.01, tab.Name), 1000)
		if fromGenerate[i] != tab.Name+"="+h {
			t.Errorf("Generate gives %s, Rows %s=%s", fromGenerate[i], tab.Name, h)
		}
	}
	// Another scale factor gives other data.
	a, _ := rowHash(t, mustRows(t, 0.01, "orders"), 100)
	b, _ := rowHash(t, mustRows(t, 0.02, "orders"), 100)
	if a == b {
		t.Error("orders at SF 0.01 and 0.02 have the same first 100 rows")
	}
}

func TestCardinalities(t *testing.T) {
	want := map[string]int{
		"region": 5, "nation": 25, "supplier": 100, "customer": 1500,
		"part": 2000, "partsupp": 8000, "orders": 15000,
	}
	err := Generate(0.01, func(tab Table, rows iter.Seq[Row]) error {
		n := 0
		for row := range rows {
			if len(row) != len(tab.Columns) {
				return fmt.Errorf("row of %d values, want %d", len(row), len(tab.Columns))
			}
			n++
		}
		if tab.Name == "lineitem" {
			// One to seven lines an order, four on average.
			if n < 57000 || n > 63000 {
				t.Errorf("lineitem: %d rows, want about 60000", n)
			}
			return nil
		}
		if n != want[tab.Name] || int64(n) != Cardinality(0.01, tab.Name) {
			t.Errorf("%s: %d rows, want %d", tab.Name, n, want[tab.Name])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sf := range []float64{0, -1, 0.005} {
		if _, err := Rows(sf, "orders"); err == nil {
			t.Errorf("Rows accepts scale factor %v", sf)
		}
	}
	if _, err := Rows(0.01, "nosuch"); err == nil {
		t.Error("Rows accepts table nosuch")
	}
}

// collect returns all rows of table at sf, copied.
func collect(t testing.TB, sf float64, table string) [][]any {
	var out [][]any
	for row := range mustRows(t, sf, table) {
		out = append(out, slices.Clone(row))
	}
	return out
}

var (
	phoneRE      = regexp.MustCompile(`^(\d\d)-\d{3}-\d{3}-\d{4}$`)
	mfgrRE       = regexp.MustCompile(`^Manufacturer#[1-5]$`)
	brandRE      = regexp.MustCompile(`^Brand#[1-5][1-5]$`)
	clerkRE      = regexp.MustCompile(`^Clerk#0000000(0[1-9]|10)$`)
	complaintsRE = regexp.MustCompile(`Customer.*Complaints`)
	specialRE    = regexp.MustCompile(`special.*requests`)
)

// TestValueRules checks the rules of spec clause 4.2.3 on all of SF 0.01.
func TestValueRules(t *testing.T) {
	const sf = 0.01
	// A broken rule would fail on every row: report the first 20.
	fails := 0
	check := func(ok bool, format string, args ...any) {
		if !ok {
			fails++
			if fails <= 20 {
				t.Errorf(format, args...)
			}
		}
	}
	inList := func(list []string, s string) bool { return slices.Contains(list, s) }
	textLen := func(s string, lo, hi int) bool { return len(s) >= lo && len(s) <= hi }

	for _, r := range collect(t, sf, "region") {
		check(r[1] == regionNames[r[0].(int64)], "region %v", r)
		check(textLen(r[2].(string), 31, 115), "r_comment %q", r[2])
	}
	for _, n := range collect(t, sf, "nation") {
		rk := n[2].(int64)
		check(rk >= 0 && rk <= 4 && n[1] == nations[n[0].(int64)].name, "nation %v", n)
	}
	if nations[7].name != "GERMANY" || nations[7].region != 3 || nations[20].name != "SAUDI ARABIA" || regionNames[3] != "EUROPE" {
		t.Error("nation or region list out of order")
	}

	phoneOK := func(phone string, nk int64) bool {
		m := phoneRE.FindStringSubmatch(phone)
		return m != nil && m[1] == fmt.Sprint(nk+10)
	}
	complaints := 0
	for _, s := range collect(t, sf, "supplier") {
		key, nk := s[0].(int64), s[3].(int64)
		check(s[1] == fmt.Sprintf("Supplier#%09d", key), "s_name %v", s[1])
		check(textLen(s[2].(string), 10, 40), "s_address %q", s[2])
		check(nk >= 0 && nk <= 24 && phoneOK(s[4].(string), nk), "supplier %d: phone %v nation %d", key, s[4], nk)
		check(s[5].(Decimal) >= -99999 && s[5].(Decimal) <= 999999, "s_acctbal %v", s[5])
		check(textLen(s[6].(string), 25, 100), "s_comment %q", s[6])
		if complaintsRE.MatchString(s[6].(string)) {
			complaints++
		}
	}
	check(complaints >= 1, "no supplier comment has Customer...Complaints (Q16)")

	customers := collect(t, sf, "customer")
	for _, c := range customers {
		key, nk := c[0].(int64), c[3].(int64)
		check(c[1] == fmt.Sprintf("Customer#%09d", key), "c_name %v", c[1])
		check(nk >= 0 && nk <= 24 && phoneOK(c[4].(string), nk), "customer %d: phone %v nation %d", key, c[4], nk)
		check(c[5].(Decimal) >= -99999 && c[5].(Decimal) <= 999999, "c_acctbal %v", c[5])
		check(inList(segments, c[6].(string)), "c_mktsegment %v", c[6])
		check(textLen(c[7].(string), 29, 116), "c_comment %q", c[7])
	}

	price := map[int64]Decimal{}
	for _, p := range collect(t, sf, "part") {
		key := p[0].(int64)
		words := strings.Split(p[1].(string), " ")
		check(len(words) == 5, "p_name %q", p[1])
		seen := map[string]bool{}
		for _, w := range words {
			check(inList(colors, w) && !seen[w], "p_name %q: word %q", p[1], w)
			seen[w] = true
		}
		mfgr, brand := p[2].(string), p[3].(string)
		check(mfgrRE.MatchString(mfgr), "p_mfgr %q", mfgr)
		check(brandRE.MatchString(brand) && brand[6] == mfgr[13], "p_brand %q of %q", brand, mfgr)
		ty := strings.Split(p[4].(string), " ")
		check(len(ty) == 3 && inList(typeSyllable1, ty[0]) && inList(typeSyllable2, ty[1]) && inList(typeSyllable3, ty[2]), "p_type %q", p[4])
		size := p[5].(int64)
		check(size >= 1 && size <= 50, "p_size %d", size)
		ct := strings.Split(p[6].(string), " ")
		check(len(ct) == 2 && inList(containerSyllable1, ct[0]) && inList(containerSyllable2, ct[1]), "p_container %q", p[6])
		// (90000 + ((key/10) modulo 20001) + 100 * (key modulo 1000)) / 100
		want := Decimal(90000 + (key/10)%20001 + 100*(key%1000))
		check(p[7] == want, "part %d: p_retailprice %v, want %v", key, p[7], want)
		check(textLen(p[8].(string), 5, 22), "p_comment %q", p[8])
		price[key] = p[7].(Decimal)
	}
	if price[1] != 90100 || price[2000] != 90200 {
		t.Errorf("p_retailprice of parts 1, 2000: %v, %v; want 901.00, 902.00", price[1], price[2000])
	}

	suppliersOf := map[int64][]int64{}
	for _, ps := range collect(t, sf, "partsupp") {
		pk, sk := ps[0].(int64), ps[1].(int64)
		check(sk >= 1 && sk <= 100, "ps_suppkey %d", sk)
		check(!slices.Contains(suppliersOf[pk], sk), "part %d has supplier %d twice", pk, sk)
		suppliersOf[pk] = append(suppliersOf[pk], sk)
		q := ps[2].(int64)
		check(q >= 1 && q <= 9999, "ps_availqty %d", q)
		check(ps[3].(Decimal) >= 100 && ps[3].(Decimal) <= 100000, "ps_supplycost %v", ps[3])
		check(textLen(ps[4].(string), 49, 198), "ps_comment %q", ps[4])
	}
	check(len(suppliersOf) == 2000, "%d parts in partsupp", len(suppliersOf))

	type orderInfo struct {
		date         Date
		status       string
		total        Decimal
		lines        int
		open, filled int
		sum          Decimal
	}
	orders := map[int64]*orderInfo{}
	var lastKey int64
	special := 0
	for _, o := range collect(t, sf, "orders") {
		key, ck := o[0].(int64), o[1].(int64)
		check(key > lastKey && (key-1)%32 < 8, "o_orderkey %d after %d", key, lastKey)
		lastKey = key
		check(ck >= 1 && ck <= 1500 && ck%3 != 0, "o_custkey %d", ck)
		d := o[4].(Date)
		check(d >= StartDate && d <= EndDate-151, "o_orderdate %v", d)
		check(inList(priorities, o[5].(string)), "o_orderpriority %v", o[5])
		check(clerkRE.MatchString(o[6].(string)), "o_clerk %v", o[6])
		check(o[7] == int64(0), "o_shippriority %v", o[7])
		check(textLen(o[8].(string), 19, 78), "o_comment %q", o[8])
		if specialRE.MatchString(o[8].(string)) {
			special++
		}
		orders[key] = &orderInfo{date: d, status: o[2].(string), total: o[3].(Decimal)}
	}
	check(lastKey == orderKey(15000) && lastKey == 59976, "last order key %d", lastKey)
	check(special > 0 && special < 15000/10, "%d order comments match special...requests (Q13)", special)

	flags := map[string]int{}
	for _, l := range collect(t, sf, "lineitem") {
		ok, pk, sk, ln := l[0].(int64), l[1].(int64), l[2].(int64), l[3].(int64)
		o := orders[ok]
		if o == nil {
			check(false, "lineitem of order %d, which does not exist", ok)
			continue
		}
		o.lines++
		check(ln == int64(o.lines), "order %d: l_linenumber %d, want %d", ok, ln, o.lines)
		check(slices.Contains(suppliersOf[pk], sk), "lineitem %d/%d: supplier %d does not supply part %d", ok, ln, sk, pk)
		qty, ext, disc, tax := l[4].(Decimal), l[5].(Decimal), l[6].(Decimal), l[7].(Decimal)
		check(qty >= 100 && qty <= 5000 && qty%100 == 0, "l_quantity %v", qty)
		check(ext == qty/100*price[pk], "l_extendedprice %v, want %v * %v", ext, qty, price[pk])
		check(disc >= 0 && disc <= 10 && tax >= 0 && tax <= 8, "l_discount %v, l_tax %v", disc, tax)
		rf, ls := l[8].(string), l[9].(string)
		ship, commit, receipt := l[10].(Date), l[11].(Date), l[12].(Date)
		check(ship >= o.date+1 && ship <= o.date+121, "l_shipdate %v for o_orderdate %v", ship, o.date)
		check(commit >= o.date+30 && commit <= o.date+90, "l_commitdate %v for o_orderdate %v", commit, o.date)
		check(receipt >= ship+1 && receipt <= ship+30, "l_receiptdate %v for l_shipdate %v", receipt, ship)
		check(receipt <= EndDate, "l_receiptdate %v after %v", receipt, EndDate)
		if receipt <= CurrentDate {
			check(rf == "R" || rf == "A", "l_returnflag %s with receipt %v", rf, receipt)
		} else {
			check(rf == "N", "l_returnflag %s with receipt %v", rf, receipt)
		}
		if ship > CurrentDate {
			check(ls == "O", "l_linestatus %s with ship %v", ls, ship)
			o.open++
		} else {
			check(ls == "F", "l_linestatus %s with ship %v", ls, ship)
			o.filled++
		}
		flags[rf+ls]++
		check(inList(instructions, l[13].(string)) && inList(modes, l[14].(string)), "l_shipinstruct %v, l_shipmode %v", l[13], l[14])
		check(textLen(l[15].(string), 10, 43), "l_comment %q", l[15])
		x := int64(ext) * int64(100-disc) * int64(100+tax)
		o.sum += Decimal((x + 5000) / 10000)
	}
	for _, f := range []string{"AF", "NF", "NO", "RF"} {
		check(flags[f] > 0, "no line with l_returnflag, l_linestatus = %s (Q1 has four groups)", f)
	}
	check(len(flags) == 4, "l_returnflag, l_linestatus pairs: %v", flags)
	statuses := map[string]int{}
	for key, o := range orders {
		check(o.lines >= 1 && o.lines <= 7, "order %d has %d lines", key, o.lines)
		want := "P"
		if o.open == 0 {
			want = "F"
		} else if o.filled == 0 {
			want = "O"
		}
		check(o.status == want, "order %d: o_orderstatus %s, want %s", key, o.status, want)
		check(o.total == o.sum, "order %d: o_totalprice %v, want %v", key, o.total, o.sum)
		statuses[o.status]++
	}
	check(len(statuses) == 3, "o_orderstatus values: %v", statuses)
}

func TestTypes(t *testing.T) {
	if s := Decimal(-305).String(); s != "-3.05" {
		t.Errorf("Decimal(-305) = %s", s)
	}
	if s := Decimal(123400).String(); s != "1234.00" {
		t.Errorf("Decimal(123400) = %s", s)
	}
	if s := Decimal(7).String(); s != "0.07" {
		t.Errorf("Decimal(7) = %s", s)
	}
	if s := StartDate.String(); s != "1992-01-01" {
		t.Errorf("StartDate = %s", s)
	}
	if s := EndDate.String(); s != "1998-12-31" {
		t.Errorf("EndDate = %s", s)
	}
	if s := (EndDate + 1).String(); s != "1999-01-01" {
		t.Errorf("EndDate+1 = %s", s)
	}
	if s := CurrentDate.String(); s != "1995-06-17" {
		t.Errorf("CurrentDate = %s", s)
	}
	if d := MakeDate(1970, 1, 1); d != 0 {
		t.Errorf("epoch = %d", d)
	}
}

func TestDepartments(t *testing.T) {
	if len(Tables) != 8 || len(Departments) != 8 {
		t.Fatalf("%d tables, %d in Departments", len(Tables), len(Departments))
	}
	n := 0
	for _, d := range DepartmentNames() {
		n += len(TablesOf(d))
	}
	if n != 8 {
		t.Errorf("departments hold %d tables", n)
	}
	if got := TablesOf(Trade); !slices.Equal(got, []string{"orders", "lineitem"}) {
		t.Errorf("trade holds %v", got)
	}
	if Qualified("lineitem") != "trade.lineitem" || Qualified("nation") != "customers.nation" || Qualified("part") != "supply.part" {
		t.Error("Qualified")
	}
	for _, tab := range Tables {
		if tab.Department != Departments[tab.Name] {
			t.Errorf("%s: Department %q", tab.Name, tab.Department)
		}
		for _, k := range tab.Key {
			if !slices.Contains(tab.ColumnNames(), k) {
				t.Errorf("%s: key column %s", tab.Name, k)
			}
		}
	}
}

var tableRE = regexp.MustCompile(`(?i)\b(from|join|,)\s+([a-z_]+\.[a-z_]+)`)

func TestQueries(t *testing.T) {
	for n := 1; n <= NumQueries; n++ {
		q := Query(n)
		if strings.Contains(q, "$") || strings.Contains(q, ";") {
			t.Errorf("Q%d: %q", n, q)
		}
		for _, m := range tableRE.FindAllStringSubmatch(q, -1) {
			name := m[2]
			dept, table, _ := strings.Cut(name, ".")
			if Departments[table] != dept {
				t.Errorf("Q%d names %s", n, name)
			}
		}
		if !strings.Contains(q, ".") {
			t.Errorf("Q%d has no qualified table", n)
		}
		bare := QueryWith(n, func(t string) string { return t })
		if strings.Contains(bare, "trade.") || strings.Contains(bare, "supply.") || strings.Contains(bare, "customers.") {
			t.Errorf("Q%d with bare names: %s", n, bare)
		}
	}
	limits := map[int]string{2: "limit 100", 3: "limit 10", 10: "limit 20", 18: "limit 100", 21: "limit 100"}
	for n := 1; n <= NumQueries; n++ {
		got := ""
		if i := strings.LastIndex(Query(n), "limit "); i >= 0 {
			got = Query(n)[i:]
		}
		if got != limits[n] {
			t.Errorf("Q%d ends with %q, want %q", n, got, limits[n])
		}
	}
	if !strings.Contains(Query(15), "with revenue0 as (") {
		t.Error("Q15 does not define revenue0 as a CTE")
	}
	for _, n := range []int{0, 23} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Query(%d) does not panic", n)
				}
			}()
			Query(n)
		}()
	}
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	var rows int
	for b.Loop() {
		rows = 0
		err := Generate(0.01, func(_ Table, rs iter.Seq[Row]) error {
			for range rs {
				rows++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
