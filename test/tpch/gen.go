package tpch

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Seed seeds the random streams: the same scale factor always gives the
// same rows. Each table has a stream of its own (lineitem shares orders',
// since an order's price and status come from its lines), so any table
// can be generated alone.
//
// At SF 0.01 a few answers hang on a handful of rows (Q18 expects about
// half a row, Q19 about one): 11 was picked among the seeds 1..12 as one
// under which every query there has a non-empty, non-NULL answer (and
// Q8 a non-zero share in both years).
const Seed uint64 = 11

// Decimal is a DECIMAL(15,2) value in hundredths: Decimal(12345) is
// 123.45.
type Decimal int64

// String formats d with two decimals, e.g. "-3.05".
func (d Decimal) String() string {
	v := int64(d)
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	frac := v % 100
	s := sign + strconv.FormatInt(v/100, 10) + "."
	if frac < 10 {
		s += "0"
	}
	return s + strconv.FormatInt(frac, 10)
}

// Float64 returns d as a float64 (the nearest double).
func (d Decimal) Float64() float64 { return float64(d) / 100 }

// Date is a calendar day, counted from 1970-01-01.
type Date int32

// MakeDate returns the Date of year-month-day.
func MakeDate(year int, month time.Month, day int) Date {
	return Date(time.Date(year, month, day, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// Time returns d as midnight UTC.
func (d Date) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// String formats d as YYYY-MM-DD.
func (d Date) String() string {
	if d >= StartDate && d <= EndDate {
		return dateStrings()[d-StartDate]
	}
	return d.Time().Format(time.DateOnly)
}

// The date range of spec clause 4.2.3: every date the generator makes is
// in [StartDate, EndDate]; CurrentDate decides l_returnflag and
// l_linestatus.
var (
	StartDate   = MakeDate(1992, 1, 1)
	EndDate     = MakeDate(1998, 12, 31)
	CurrentDate = MakeDate(1995, 6, 17)
)

var dateStrings = sync.OnceValue(func() []string {
	s := make([]string, EndDate-StartDate+1)
	for i := range s {
		s[i] = (StartDate + Date(i)).Time().Format(time.DateOnly)
	}
	return s
})

// Row is one generated row: for each column of its Table, an int64
// (KindInt), a Decimal, a Date or a string (KindText). Sources reuse a
// Row for the next one: copy it to keep it.
type Row []any

// MinScaleFactor is the least scale factor generated. Below about 0.008
// (80 suppliers) the spec's PS_SUPPKEY formula gives some parts the same
// supplier twice.
const MinScaleFactor = 0.01

// Rows returns the rows of table at scale factor sf, in primary-key
// order. Each range over the sequence generates them afresh, the same
// each time.
func Rows(sf float64, table string) (iter.Seq[Row], error) {
	if !(sf >= MinScaleFactor) {
		return nil, fmt.Errorf("tpch: scale factor %v is below %v", sf, MinScaleFactor)
	}
	g := newGen(sf)
	switch table {
	case "region":
		return g.region, nil
	case "nation":
		return g.nation, nil
	case "supplier":
		return g.supplier, nil
	case "customer":
		return g.customer, nil
	case "part":
		return g.part, nil
	case "partsupp":
		return g.partsupp, nil
	case "orders":
		return g.ordersRows, nil
	case "lineitem":
		return g.lineitem, nil
	}
	return nil, fmt.Errorf("tpch: no table %q", table)
}

// Generate calls fn for each of the eight tables in turn (the order of
// Tables) with the table's rows at scale factor sf, and stops at the
// first error. The rows are generated while fn ranges over them; nothing
// is held beyond one row (and one order's lines).
func Generate(sf float64, fn func(t Table, rows iter.Seq[Row]) error) error {
	for _, t := range Tables {
		rows, err := Rows(sf, t.Name)
		if err != nil {
			return err
		}
		if err := fn(t, rows); err != nil {
			return fmt.Errorf("tpch: %s: %w", t.Name, err)
		}
	}
	return nil
}

type gen struct {
	sf                                  float64
	suppliers, customers, parts, orders int64
	clerks                              int64
}

func newGen(sf float64) *gen {
	return &gen{
		sf:        sf,
		suppliers: Cardinality(sf, "supplier"),
		customers: Cardinality(sf, "customer"),
		parts:     Cardinality(sf, "part"),
		orders:    Cardinality(sf, "orders"),
		clerks:    scaled(sf, 1000),
	}
}

// The random streams, one per table.
const (
	streamRegion = iota + 1
	streamNation
	streamSupplier
	streamCustomer
	streamPart
	streamPartsupp
	streamOrders
	streamPress // which suppliers' comments carry complaints
)

func stream(id uint64) *rand.Rand { return rand.New(rand.NewPCG(Seed, id)) }

// between returns a random integer in [lo, hi].
func between(r *rand.Rand, lo, hi int64) int64 { return lo + r.Int64N(hi-lo+1) }

func pick(r *rand.Rand, list []string) string { return list[r.IntN(len(list))] }

// phone returns a phone number of nation nk: country code nk+10 (spec
// clause 4.2.2.9).
func phone(r *rand.Rand, nk int64) string {
	b := make([]byte, 0, 15)
	b = strconv.AppendInt(b, nk+10, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, between(r, 100, 999), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, between(r, 100, 999), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, between(r, 1000, 9999), 10)
	return string(b)
}

func padded(prefix string, n int64) string { return fmt.Sprintf("%s%09d", prefix, n) }

func (g *gen) region(yield func(Row) bool) {
	r := stream(streamRegion)
	row := make(Row, 3)
	for i, name := range regionNames {
		row[0], row[1], row[2] = int64(i), name, comment(r, 31, 115)
		if !yield(row) {
			return
		}
	}
}

func (g *gen) nation(yield func(Row) bool) {
	r := stream(streamNation)
	row := make(Row, 4)
	for i, n := range nations {
		row[0], row[1], row[2], row[3] = int64(i), n.name, n.region, comment(r, 31, 114)
		if !yield(row) {
			return
		}
	}
}

// press returns the suppliers whose comments carry "Customer ...
// Complaints" (true) or "Customer ... Recommends" (false): SF*5 of each
// (spec clause 4.2.3), but at least one, so that Q16's LIKE has something
// to exclude at any scale.
func (g *gen) press() map[int64]bool {
	r := stream(streamPress)
	k := scaled(g.sf, 5)
	m := make(map[int64]bool)
	for want := min(2*k, g.suppliers); int64(len(m)) < want; {
		s := between(r, 1, g.suppliers)
		if _, ok := m[s]; !ok {
			m[s] = int64(len(m)) < k
		}
	}
	return m
}

func (g *gen) supplier(yield func(Row) bool) {
	r := stream(streamSupplier)
	press := g.press()
	row := make(Row, 7)
	for key := int64(1); key <= g.suppliers; key++ {
		nk := between(r, 0, 24)
		row[0] = key
		row[1] = padded("Supplier#", key)
		row[2] = vstring(r, 10, 40)
		row[3] = nk
		row[4] = phone(r, nk)
		row[5] = Decimal(between(r, -99999, 999999))
		c := comment(r, 25, 100)
		if complaint, ok := press[key]; ok {
			word := "Recommends"
			if complaint {
				word = "Complaints"
			}
			b := []byte(c)
			i := r.IntN(len(b) - 19 + 1)
			j := i + 9 + r.IntN(len(b)-10-(i+9)+1)
			copy(b[i:], "Customer ")
			copy(b[j:], word)
			c = string(b)
		}
		row[6] = c
		if !yield(row) {
			return
		}
	}
}

func (g *gen) customer(yield func(Row) bool) {
	r := stream(streamCustomer)
	row := make(Row, 8)
	for key := int64(1); key <= g.customers; key++ {
		nk := between(r, 0, 24)
		row[0] = key
		row[1] = padded("Customer#", key)
		row[2] = vstring(r, 10, 40)
		row[3] = nk
		row[4] = phone(r, nk)
		row[5] = Decimal(between(r, -99999, 999999))
		row[6] = pick(r, segments)
		row[7] = comment(r, 29, 116)
		if !yield(row) {
			return
		}
	}
}

// retailPrice is P_RETAILPRICE of part key (spec clause 4.2.3).
func retailPrice(key int64) Decimal {
	return Decimal(90000 + (key/10)%20001 + 100*(key%1000))
}

// partSupplier is the i-th (0..3) supplier of part key among s suppliers
// (spec clause 4.2.3, PS_SUPPKEY).
func partSupplier(key, i, s int64) int64 {
	return (key+(i*(s/4+(key-1)/s)))%s + 1
}

func (g *gen) part(yield func(Row) bool) {
	r := stream(streamPart)
	perm := make([]int, len(colors))
	for i := range perm {
		perm[i] = i
	}
	row := make(Row, 9)
	var name []byte
	for key := int64(1); key <= g.parts; key++ {
		name = name[:0]
		for i := range 5 {
			j := i + r.IntN(len(perm)-i)
			perm[i], perm[j] = perm[j], perm[i]
			if i > 0 {
				name = append(name, ' ')
			}
			name = append(name, colors[perm[i]]...)
		}
		m := between(r, 1, 5)
		row[0] = key
		row[1] = string(name)
		row[2] = "Manufacturer#" + strconv.FormatInt(m, 10)
		row[3] = "Brand#" + strconv.FormatInt(m*10+between(r, 1, 5), 10)
		row[4] = pick(r, typeSyllable1) + " " + pick(r, typeSyllable2) + " " + pick(r, typeSyllable3)
		row[5] = between(r, 1, 50)
		row[6] = pick(r, containerSyllable1) + " " + pick(r, containerSyllable2)
		row[7] = retailPrice(key)
		row[8] = comment(r, 5, 22)
		if !yield(row) {
			return
		}
	}
}

func (g *gen) partsupp(yield func(Row) bool) {
	r := stream(streamPartsupp)
	row := make(Row, 5)
	var supps [4]int64
	for key := int64(1); key <= g.parts; key++ {
		for i := range supps {
			supps[i] = partSupplier(key, int64(i), g.suppliers)
		}
		slices.Sort(supps[:]) // primary-key order
		for _, s := range supps {
			row[0] = key
			row[1] = s
			row[2] = between(r, 1, 9999)
			row[3] = Decimal(between(r, 100, 100000))
			row[4] = comment(r, 49, 198)
			if !yield(row) {
				return
			}
		}
	}
}

type line struct {
	partkey, suppkey, quantity int64
	extended, discount, tax    Decimal
	returnflag, linestatus     string
	ship, commit, receipt      Date
	instruct, mode, comment    string
}

type order struct {
	key, custkey int64
	status       string
	total        Decimal
	date         Date
	priority     string
	clerk        string
	comment      string
	lines        []line
}

// orderKey is the key of the i-th order (from 1): the first 8 of every
// 32 keys are used (spec clause 4.2.3).
func orderKey(i int64) int64 { return ((i-1)/8)*32 + (i-1)%8 + 1 }

// eachOrder generates the orders and their lines, reusing o.
func (g *gen) eachOrder(yield func(o *order) bool) {
	r := stream(streamOrders)
	clerks := make([]string, g.clerks)
	for i := range clerks {
		clerks[i] = padded("Clerk#", int64(i+1))
	}
	last := EndDate - 151
	o := &order{lines: make([]line, 0, 7)}
	for i := int64(1); i <= g.orders; i++ {
		o.key = orderKey(i)
		// A third of the customers have no orders (spec clause 4.2.3).
		for o.custkey = between(r, 1, g.customers); o.custkey%3 == 0; {
			o.custkey = between(r, 1, g.customers)
		}
		o.date = StartDate + Date(r.Int64N(int64(last-StartDate)+1))
		o.priority = pick(r, priorities)
		o.clerk = clerks[r.IntN(len(clerks))]
		o.comment = comment(r, 19, 78)
		n := int(between(r, 1, 7))
		o.lines = o.lines[:n]
		o.total = 0
		var open, filled int
		for j := range o.lines {
			l := &o.lines[j]
			l.partkey = between(r, 1, g.parts)
			l.suppkey = partSupplier(l.partkey, r.Int64N(4), g.suppliers)
			l.quantity = between(r, 1, 50)
			l.extended = Decimal(l.quantity) * retailPrice(l.partkey)
			l.discount = Decimal(between(r, 0, 10))
			l.tax = Decimal(between(r, 0, 8))
			l.ship = o.date + Date(between(r, 1, 121))
			l.commit = o.date + Date(between(r, 30, 90))
			l.receipt = l.ship + Date(between(r, 1, 30))
			if l.receipt <= CurrentDate {
				l.returnflag = "R"
				if r.IntN(2) == 0 {
					l.returnflag = "A"
				}
			} else {
				l.returnflag = "N"
			}
			if l.ship > CurrentDate {
				l.linestatus = "O"
				open++
			} else {
				l.linestatus = "F"
				filled++
			}
			l.instruct = pick(r, instructions)
			l.mode = pick(r, modes)
			l.comment = comment(r, 10, 43)
			// extended * (1 + tax) * (1 - discount), rounded to cents.
			x := int64(l.extended) * int64(100-l.discount) * int64(100+l.tax)
			o.total += Decimal((x + 5000) / 10000)
		}
		switch {
		case open == 0:
			o.status = "F"
		case filled == 0:
			o.status = "O"
		default:
			o.status = "P"
		}
		if !yield(o) {
			return
		}
	}
}

func (g *gen) ordersRows(yield func(Row) bool) {
	row := make(Row, 9)
	for o := range g.eachOrder {
		row[0] = o.key
		row[1] = o.custkey
		row[2] = o.status
		row[3] = o.total
		row[4] = o.date
		row[5] = o.priority
		row[6] = o.clerk
		row[7] = int64(0)
		row[8] = o.comment
		if !yield(row) {
			return
		}
	}
}

func (g *gen) lineitem(yield func(Row) bool) {
	row := make(Row, 16)
	for o := range g.eachOrder {
		for j := range o.lines {
			l := &o.lines[j]
			row[0] = o.key
			row[1] = l.partkey
			row[2] = l.suppkey
			row[3] = int64(j + 1)
			row[4] = Decimal(l.quantity * 100)
			row[5] = l.extended
			row[6] = l.discount
			row[7] = l.tax
			row[8] = l.returnflag
			row[9] = l.linestatus
			row[10] = l.ship
			row[11] = l.commit
			row[12] = l.receipt
			row[13] = l.instruct
			row[14] = l.mode
			row[15] = l.comment
			if !yield(row) {
				return
			}
		}
	}
}
