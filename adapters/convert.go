package adapters

import (
	"database/sql"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	sluice "github.com/sluice-gov/sluice"
)

// The column writers below are sql.Scanners that append each value straight
// to their Arrow builder. database/sql hands a Scanner the driver's value
// untouched, so a row costs neither an intermediate Go value nor the
// reflection database/sql uses for plain pointer destinations.
//
// Drivers return different Go types for the same SQL type (MySQL's text
// protocol returns []byte for everything, pgx returns NUMERIC as a string,
// SQLite has no date or boolean type), so every writer accepts each
// representation that can faithfully carry its declared type.

// convError reports a value that cannot become its declared type. It names
// the column, the declared type and the Go type the driver returned, never
// the value.
type convError struct {
	col string
	typ sluice.ColumnType
	src string
	why string
}

func (e *convError) Error() string {
	return fmt.Sprintf("column %q: cannot convert a database value of Go type %s to %s: %s", e.col, e.src, e.typ, e.why)
}

type colInfo struct {
	name string
	typ  sluice.ColumnType
}

func (c *colInfo) fail(src any, why string) error {
	return &convError{col: c.name, typ: c.typ, src: fmt.Sprintf("%T", src), why: why}
}

// newWriter returns the writer for one declared field over its builder.
func newWriter(name string, typ sluice.ColumnType, b array.Builder) (sql.Scanner, error) {
	info := colInfo{name: name, typ: typ}
	switch typ {
	case sluice.TypeInteger:
		return &intWriter{info, b.(*array.Int64Builder)}, nil
	case sluice.TypeFloat:
		return &floatWriter{info, b.(*array.Float64Builder)}, nil
	case sluice.TypeDecimal:
		return &decimalWriter{info, b.(*array.Decimal128Builder)}, nil
	case sluice.TypeText:
		return &textWriter{colInfo: info, b: b.(*array.StringBuilder)}, nil
	case sluice.TypeBoolean:
		return &boolWriter{info, b.(*array.BooleanBuilder)}, nil
	case sluice.TypeDate:
		return &dateWriter{info, b.(*array.Date64Builder)}, nil
	case sluice.TypeTimestamp:
		return &timestampWriter{info, b.(*array.TimestampBuilder)}, nil
	}
	return nil, sluice.Errorf(sluice.EInternal, "column %q: unknown declared type %q", name, typ)
}

// view reads b as a string without copying. It is only passed to parsers
// that do not keep it: the driver may reuse b after the Scan returns.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// bytesOf is the reverse of view, for builders that copy what they append.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

type intWriter struct {
	colInfo
	b *array.Int64Builder
}

func (w *intWriter) Scan(src any) error {
	switch v := src.(type) {
	case int64:
		w.b.Append(v)
	case nil:
		w.b.AppendNull()
	case []byte:
		n, ok := parseInt(v)
		if !ok {
			return w.fail(src, "not an integer in range")
		}
		w.b.Append(n)
	case string:
		n, ok := parseInt(v)
		if !ok {
			return w.fail(src, "not an integer in range")
		}
		w.b.Append(n)
	case float64:
		// Aggregates over integers come back as floats in some databases.
		if v != math.Trunc(v) || v < -(1<<63) || v >= 1<<63 {
			return w.fail(src, "not an integral value in range")
		}
		w.b.Append(int64(v))
	case uint64:
		if v > math.MaxInt64 {
			return w.fail(src, "out of the int64 range")
		}
		w.b.Append(int64(v))
	case bool:
		if v {
			w.b.Append(1)
		} else {
			w.b.Append(0)
		}
	default:
		return w.fail(src, "unsupported source type")
	}
	return nil
}

type floatWriter struct {
	colInfo
	b *array.Float64Builder
}

func (w *floatWriter) Scan(src any) error {
	switch v := src.(type) {
	case float64:
		w.b.Append(v)
	case nil:
		w.b.AppendNull()
	case int64:
		w.b.Append(float64(v))
	case []byte:
		f, err := strconv.ParseFloat(view(v), 64)
		if err != nil {
			return w.fail(src, "not a number")
		}
		w.b.Append(f)
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return w.fail(src, "not a number")
		}
		w.b.Append(f)
	case float32:
		w.b.Append(float64(v))
	case uint64:
		w.b.Append(float64(v))
	default:
		return w.fail(src, "unsupported source type")
	}
	return nil
}

type decimalWriter struct {
	colInfo
	b *array.Decimal128Builder
}

var decScaleMul = decimal128.FromU64(10000) // 10^DecimalScale

func (w *decimalWriter) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		w.b.AppendNull()
	case []byte:
		n, ok := parseDecimal(v)
		if !ok {
			return w.fail(src, "not a decimal number that fits decimal(38, 4)")
		}
		w.b.Append(n)
	case string:
		n, ok := parseDecimal(v)
		if !ok {
			return w.fail(src, "not a decimal number that fits decimal(38, 4)")
		}
		w.b.Append(n)
	case int64:
		w.b.Append(decimal128.FromI64(v).Mul(decScaleMul))
	case uint64:
		w.b.Append(decimal128.FromU64(v).Mul(decScaleMul))
	case float64:
		// SQLite stores NUMERIC values with a fraction as REAL; rounding to
		// the fixed scale recovers the decimal that was written.
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return w.fail(src, "not a finite number")
		}
		n, err := decimal128.FromFloat64(v, DecimalPrecision, DecimalScale)
		if err != nil {
			return w.fail(src, "out of range for decimal(38, 4)")
		}
		w.b.Append(n)
	default:
		return w.fail(src, "unsupported source type")
	}
	return nil
}

type textWriter struct {
	colInfo
	b       *array.StringBuilder
	scratch []byte
}

func (w *textWriter) Scan(src any) error {
	switch v := src.(type) {
	case string:
		w.b.BinaryBuilder.Append(bytesOf(v))
	case []byte:
		w.b.BinaryBuilder.Append(v)
	case nil:
		w.b.AppendNull()
	case int64:
		w.scratch = strconv.AppendInt(w.scratch[:0], v, 10)
		w.b.BinaryBuilder.Append(w.scratch)
	case uint64:
		w.scratch = strconv.AppendUint(w.scratch[:0], v, 10)
		w.b.BinaryBuilder.Append(w.scratch)
	case float64:
		w.scratch = strconv.AppendFloat(w.scratch[:0], v, 'g', -1, 64)
		w.b.BinaryBuilder.Append(w.scratch)
	case bool:
		w.b.Append(strconv.FormatBool(v))
	case time.Time:
		if v.Hour() == 0 && v.Minute() == 0 && v.Second() == 0 && v.Nanosecond() == 0 {
			// A date column the database reports as a time.
			w.scratch = v.AppendFormat(w.scratch[:0], time.DateOnly)
		} else {
			w.scratch = v.AppendFormat(w.scratch[:0], time.RFC3339Nano)
		}
		w.b.BinaryBuilder.Append(w.scratch)
	default:
		return w.fail(src, "unsupported source type")
	}
	return nil
}

type boolWriter struct {
	colInfo
	b *array.BooleanBuilder
}

func (w *boolWriter) Scan(src any) error {
	switch v := src.(type) {
	case bool:
		w.b.Append(v)
	case nil:
		w.b.AppendNull()
	case int64:
		// SQLite and MySQL store booleans as integers; any non-zero is true
		// as in SQL's own truth tests.
		w.b.Append(v != 0)
	case []byte:
		if len(v) == 1 && v[0] <= 1 {
			// MySQL BIT(1) arrives as one raw byte.
			w.b.Append(v[0] == 1)
			return nil
		}
		b, ok := parseBool(v)
		if !ok {
			return w.fail(src, "not a boolean")
		}
		w.b.Append(b)
	case string:
		b, ok := parseBool(v)
		if !ok {
			return w.fail(src, "not a boolean")
		}
		w.b.Append(b)
	case uint64:
		w.b.Append(v != 0)
	case float64:
		if v != 0 && v != 1 {
			return w.fail(src, "not 0 or 1")
		}
		w.b.Append(v == 1)
	default:
		return w.fail(src, "unsupported source type")
	}
	return nil
}

// dateMillis is a calendar day as Arrow Date64 (milliseconds at UTC
// midnight). Date64 rather than Date32: the Flight SQL database/sql driver
// of arrow-go v18 reads both, but the driver of Arrow v15, which analysts'
// tools still ship, reads Date64 only (test/v15client checks it).
func dateMillis(days int64) arrow.Date64 { return arrow.Date64(days * 86400000) }

type dateWriter struct {
	colInfo
	b *array.Date64Builder
}

func (w *dateWriter) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		// The calendar date in the value's own location: drivers return
		// DATE columns as midnight in the session's zone.
		y, m, d := v.Date()
		w.b.Append(dateMillis(int64(daysFromCivil(y, int(m), d))))
	case nil:
		w.b.AppendNull()
	case string:
		days, ok := parseDate(v)
		if !ok {
			return w.fail(src, "not a date (want YYYY-MM-DD)")
		}
		w.b.Append(dateMillis(int64(days)))
	case []byte:
		days, ok := parseDate(v)
		if !ok {
			return w.fail(src, "not a date (want YYYY-MM-DD)")
		}
		w.b.Append(dateMillis(int64(days)))
	case int64:
		// SQLite's unixepoch convention: seconds since 1970-01-01 UTC.
		days := floorDiv(v, 86400)
		if days < math.MinInt32 || days > math.MaxInt32 {
			return w.fail(src, "out of the date range")
		}
		w.b.Append(dateMillis(int64(days)))
	default:
		return w.fail(src, "unsupported source type")
	}
	return nil
}

type timestampWriter struct {
	colInfo
	b *array.TimestampBuilder
}

func (w *timestampWriter) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		w.b.Append(arrow.Timestamp(v.UnixMicro()))
	case nil:
		w.b.AppendNull()
	case string:
		us, ok := parseTimestamp(v)
		if !ok {
			return w.fail(src, "not a timestamp (want YYYY-MM-DD HH:MM:SS[.ffffff][zone])")
		}
		w.b.Append(arrow.Timestamp(us))
	case []byte:
		us, ok := parseTimestamp(v)
		if !ok {
			return w.fail(src, "not a timestamp (want YYYY-MM-DD HH:MM:SS[.ffffff][zone])")
		}
		w.b.Append(arrow.Timestamp(us))
	case int64:
		// SQLite's unixepoch convention: seconds since 1970-01-01 UTC.
		if v > math.MaxInt64/1_000_000 || v < math.MinInt64/1_000_000 {
			return w.fail(src, "out of the timestamp range")
		}
		w.b.Append(arrow.Timestamp(v * 1e6))
	default:
		return w.fail(src, "unsupported source type")
	}
	return nil
}

// text is what the parsers accept: drivers hand over both.
type text interface{ ~string | ~[]byte }

// parseInt parses an optionally signed decimal integer. A fraction of zeros
// ("12.00", as MySQL and PostgreSQL return SUM over integers) is accepted.
func parseInt[T text](s T) (int64, bool) {
	i, n := 0, len(s)
	for i < n && s[i] == ' ' {
		i++
	}
	for n > i && s[n-1] == ' ' {
		n--
	}
	neg := false
	if i < n && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	if i == n {
		return 0, false
	}
	var u uint64
	digits := 0
	for ; i < n && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
		digits++
	}
	if i < n && s[i] == '.' {
		for i++; i < n && s[i] == '0'; i++ {
		}
	}
	if i != n || digits == 0 {
		return 0, false
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

func parseBool[T text](s T) (bool, bool) {
	switch len(s) {
	case 1:
		switch s[0] {
		case '1', 't', 'T', 'y', 'Y':
			return true, true
		case '0', 'f', 'F', 'n', 'N':
			return false, true
		}
	case 4:
		if (s[0]|0x20) == 't' && (s[1]|0x20) == 'r' && (s[2]|0x20) == 'u' && (s[3]|0x20) == 'e' {
			return true, true
		}
	case 5:
		if (s[0]|0x20) == 'f' && (s[1]|0x20) == 'a' && (s[2]|0x20) == 'l' && (s[3]|0x20) == 's' && (s[4]|0x20) == 'e' {
			return false, true
		}
	}
	return false, false
}

var ten = decimal128.FromU64(10)

// maxDecimal is 10^38, the first value Decimal128(38, _) cannot hold.
var maxDecimal = decimal128.GetScaleMultiplier(DecimalPrecision)

// parseDecimal parses a decimal number into a Decimal128 at DecimalScale,
// rounding half away from zero. It works on the digits directly (no big
// numbers) because NUMERIC columns arrive as text from PostgreSQL and MySQL
// on every row. Exponent forms ("1.5e3") go through math/big.
func parseDecimal[T text](s T) (decimal128.Num, bool) {
	i, n := 0, len(s)
	for i < n && s[i] == ' ' {
		i++
	}
	for n > i && s[n-1] == ' ' {
		n--
	}
	neg := false
	if i < n && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	var (
		small  uint64 // the digits so far while they fit
		wide   decimal128.Num
		isWide bool
		digits int // integer and kept fraction digits, leading zeros excluded
		frac   = -1
		round  bool
		seen   bool
	)
	push := func(d uint64) bool {
		if small == 0 && !isWide && d == 0 {
			return true
		}
		digits++
		if digits > DecimalPrecision {
			return false
		}
		if !isWide {
			if small < 1e18 {
				small = small*10 + d
				return true
			}
			wide, isWide = decimal128.FromU64(small), true
		}
		wide = wide.Mul(ten).Add(decimal128.FromU64(d))
		return true
	}
	for ; i < n; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			seen = true
			switch {
			case frac < 0 || frac < DecimalScale:
				if !push(uint64(c - '0')) {
					return decimal128.Num{}, false
				}
				if frac >= 0 {
					frac++
				}
			case frac == DecimalScale:
				round = c >= '5'
				frac++
			}
		case c == '.' && frac < 0:
			frac = 0
		case c == 'e' || c == 'E':
			return parseDecimalBig(view([]byte(s[:n])))
		default:
			return decimal128.Num{}, false
		}
	}
	if !seen {
		return decimal128.Num{}, false
	}
	if frac < 0 {
		frac = 0
	}
	for ; frac < DecimalScale; frac++ {
		if !push(0) {
			return decimal128.Num{}, false
		}
	}
	var out decimal128.Num
	if isWide {
		out = wide
	} else {
		out = decimal128.FromU64(small)
	}
	if round {
		out = out.Add(decimal128.FromU64(1))
	}
	if !out.Less(maxDecimal) {
		return decimal128.Num{}, false
	}
	if neg {
		out = out.Negate()
	}
	return out, true
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (H. Hinnant's algorithm), without building a
// time.Time per row.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func digitsAt[T text](s T, i, k int) (int, bool) {
	if i+k > len(s) {
		return 0, false
	}
	v := 0
	for j := i; j < i+k; j++ {
		c := s[j]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// civilDate parses the YYYY-MM-DD at the start of s.
func civilDate[T text](s T) (days int64, ok bool) {
	y, ok1 := digitsAt(s, 0, 4)
	m, ok2 := digitsAt(s, 5, 2)
	d, ok3 := digitsAt(s, 8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '-' || s[7] != '-' || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	return daysFromCivil(y, m, d), true
}

// parseDate accepts YYYY-MM-DD, optionally followed by a time part (the
// date is taken as written, whatever the zone).
func parseDate[T text](s T) (int64, bool) {
	days, ok := civilDate(s)
	if !ok {
		return 0, false
	}
	if len(s) > 10 && s[10] != ' ' && s[10] != 'T' {
		return 0, false
	}
	if days < math.MinInt32 || days > math.MaxInt32 {
		return 0, false
	}
	return days, true
}

// parseTimestamp parses the forms databases write timestamps in as text:
// YYYY-MM-DD[( |T)HH:MM[:SS[.fraction]]][ ][Z|±HH[:MM]|±HHMM], a time
// without a zone being UTC. The fraction is truncated to microseconds.
// Other forms (Go's time.Time.String output, which older SQLite writers
// store) go through time.Parse.
func parseTimestamp[T text](s T) (int64, bool) {
	days, ok := civilDate(s)
	if !ok {
		return parseTimestampSlow(view([]byte(s)))
	}
	secs := days * 86400
	var micros int64
	i := 10
	if len(s) > 10 {
		if s[10] != ' ' && s[10] != 'T' {
			return parseTimestampSlow(view([]byte(s)))
		}
		h, ok1 := digitsAt(s, 11, 2)
		mi, ok2 := digitsAt(s, 14, 2)
		if !ok1 || !ok2 || s[13] != ':' || h > 23 || mi > 59 {
			return parseTimestampSlow(view([]byte(s)))
		}
		secs += int64(h*3600 + mi*60)
		i = 16
		if i < len(s) && s[i] == ':' {
			sec, ok := digitsAt(s, 17, 2)
			if !ok || sec > 59 {
				return parseTimestampSlow(view([]byte(s)))
			}
			secs += int64(sec)
			i = 19
			if i < len(s) && s[i] == '.' {
				i++
				start := i
				var f int64
				for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
					if i-start < 6 {
						f = f*10 + int64(s[i]-'0')
					}
				}
				if i == start {
					return parseTimestampSlow(view([]byte(s)))
				}
				for k := i - start; k < 6; k++ {
					f *= 10
				}
				micros = f
			}
		}
		if i < len(s) && s[i] == ' ' && i+1 < len(s) && (s[i+1] == '+' || s[i+1] == '-' || s[i+1] == 'Z') {
			i++
		}
		if i < len(s) {
			off, ok := parseZone(s[i:])
			if !ok {
				return parseTimestampSlow(view([]byte(s)))
			}
			secs -= off
		}
	}
	if secs > math.MaxInt64/1_000_000-1 || secs < math.MinInt64/1_000_000+1 {
		return 0, false
	}
	return secs*1e6 + micros, true
}

// parseZone parses Z, ±HH, ±HH:MM or ±HHMM into seconds east of UTC.
func parseZone[T text](z T) (int64, bool) {
	if len(z) == 1 && z[0] == 'Z' {
		return 0, true
	}
	if len(z) < 3 || (z[0] != '+' && z[0] != '-') {
		return 0, false
	}
	h, ok := digitsAt(z, 1, 2)
	if !ok || h > 23 {
		return 0, false
	}
	m := 0
	switch len(z) {
	case 3:
	case 5:
		if m, ok = digitsAt(z, 3, 2); !ok {
			return 0, false
		}
	case 6:
		if z[3] != ':' {
			return 0, false
		}
		if m, ok = digitsAt(z, 4, 2); !ok {
			return 0, false
		}
	default:
		return 0, false
	}
	if m > 59 {
		return 0, false
	}
	off := int64(h*3600 + m*60)
	if z[0] == '-' {
		off = -off
	}
	return off, true
}

var slowLayouts = []string{
	"2006-01-02 15:04:05.999999999 -0700 MST",
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 Z07:00",
}

func parseTimestampSlow(s string) (int64, bool) {
	for _, l := range slowLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixMicro(), true
		}
	}
	return 0, false
}

// parseDecimalBig handles the rare exponent form exactly, with math/big.
func parseDecimalBig(s string) (decimal128.Num, bool) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return decimal128.Num{}, false
	}
	r.Mul(r, new(big.Rat).SetInt64(10000))
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	// Round half away from zero: compare 2|m| with the denominator.
	if m.Sign() != 0 && new(big.Int).Abs(m.Lsh(m, 1)).Cmp(r.Denom()) >= 0 {
		q.Add(q, big.NewInt(int64(r.Sign())))
	}
	if new(big.Int).Abs(q).Cmp(maxDecimal.BigInt()) >= 0 {
		return decimal128.Num{}, false
	}
	return decimal128.FromBigInt(q), true
}
