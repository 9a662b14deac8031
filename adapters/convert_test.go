package adapters

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
)

// TestConvert feeds each writer the Go types the drivers return for its
// declared type (MySQL's []byte text protocol, pgx's NUMERIC strings,
// SQLite's integers for booleans and TEXT for dates, ...).
func TestConvert(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	const bad = "reject"
	tests := []struct {
		typ  sluice.ColumnType
		src  any
		want any // as rendered by cell; bad for a conversion error
	}{
		{sluice.TypeInteger, int64(-12), int64(-12)},
		{sluice.TypeInteger, nil, nil},
		{sluice.TypeInteger, []byte("9223372036854775807"), int64(math.MaxInt64)},
		{sluice.TypeInteger, []byte("-9223372036854775808"), int64(math.MinInt64)},
		{sluice.TypeInteger, []byte("9223372036854775808"), bad},
		{sluice.TypeInteger, "120.000", int64(120)},
		{sluice.TypeInteger, "120.5", bad},
		{sluice.TypeInteger, "abc", bad},
		{sluice.TypeInteger, "", bad},
		{sluice.TypeInteger, "-", bad},
		{sluice.TypeInteger, 7.0, int64(7)},
		{sluice.TypeInteger, 7.5, bad},
		{sluice.TypeInteger, math.NaN(), bad},
		{sluice.TypeInteger, uint64(math.MaxUint64), bad},
		{sluice.TypeInteger, true, int64(1)},
		{sluice.TypeInteger, time.Unix(0, 0), bad},

		{sluice.TypeFloat, 2.5, 2.5},
		{sluice.TypeFloat, int64(3), 3.0},
		{sluice.TypeFloat, []byte("-1.25e3"), -1250.0},
		{sluice.TypeFloat, "3.1400000", 3.14},
		{sluice.TypeFloat, "x", bad},
		{sluice.TypeFloat, nil, nil},

		{sluice.TypeDecimal, "1234.56", "1234.5600"},
		{sluice.TypeDecimal, []byte("-0.01"), "-0.0100"},
		{sluice.TypeDecimal, "0.00005", "0.0001"},   // half away from zero
		{sluice.TypeDecimal, "-0.00005", "-0.0001"}, // half away from zero
		{sluice.TypeDecimal, "0.00004999", "0.0000"},
		{sluice.TypeDecimal, "12", "12.0000"},
		{sluice.TypeDecimal, ".5", "0.5000"},
		{sluice.TypeDecimal, "+7.", "7.0000"},
		{sluice.TypeDecimal, "1.5e3", "1500.0000"},
		{sluice.TypeDecimal, "-2.00005E-1", "-0.2000"},
		{sluice.TypeDecimal, "1234567890123456789012345678.1234", "1234567890123456789012345678.1234"},
		{sluice.TypeDecimal, "9999999999999999999999999999999999.9999", "9999999999999999999999999999999999.9999"},
		{sluice.TypeDecimal, "9999999999999999999999999999999999.99995", bad}, // rounds past 38 digits
		{sluice.TypeDecimal, "99999999999999999999999999999999999", bad},      // 35 integer digits
		{sluice.TypeDecimal, "0000000000000000000000000000000000000001.5", "1.5000"},
		{sluice.TypeDecimal, "NaN", bad},
		{sluice.TypeDecimal, "1.2.3", bad},
		{sluice.TypeDecimal, "-", bad},
		{sluice.TypeDecimal, int64(-42), "-42.0000"},
		{sluice.TypeDecimal, 12.34, "12.3400"},
		{sluice.TypeDecimal, -0.1, "-0.1000"},
		{sluice.TypeDecimal, math.Inf(1), bad},
		{sluice.TypeDecimal, nil, nil},

		{sluice.TypeText, "张三", "张三"},
		{sluice.TypeText, []byte("城东区"), "城东区"},
		{sluice.TypeText, int64(-5), "-5"},
		{sluice.TypeText, 0.5, "0.5"},
		{sluice.TypeText, true, "true"},
		{sluice.TypeText, time.Date(1990, 5, 1, 0, 0, 0, 0, time.UTC), "1990-05-01"},
		{sluice.TypeText, time.Date(1990, 5, 1, 8, 30, 0, 0, shanghai), "1990-05-01T08:30:00+08:00"},
		{sluice.TypeText, nil, nil},

		{sluice.TypeBoolean, true, true},
		{sluice.TypeBoolean, int64(0), false},
		{sluice.TypeBoolean, int64(1), true},
		{sluice.TypeBoolean, []byte("1"), true},
		{sluice.TypeBoolean, []byte("0"), false},
		{sluice.TypeBoolean, "t", true},
		{sluice.TypeBoolean, "FALSE", false},
		{sluice.TypeBoolean, "True", true},
		{sluice.TypeBoolean, []byte{1}, true},  // MySQL BIT(1)
		{sluice.TypeBoolean, []byte{0}, false}, // MySQL BIT(1)
		{sluice.TypeBoolean, "maybe", bad},
		{sluice.TypeBoolean, 0.5, bad},
		{sluice.TypeBoolean, nil, nil},

		{sluice.TypeDate, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), "2024-02-29"},
		{sluice.TypeDate, time.Date(2024, 3, 1, 0, 0, 0, 0, shanghai), "2024-03-01"},
		{sluice.TypeDate, "1969-12-31", "1969-12-31"},
		{sluice.TypeDate, []byte("1900-01-01"), "1900-01-01"},
		{sluice.TypeDate, "0001-01-01", "0001-01-01"},
		{sluice.TypeDate, "2024-02-29 23:59:59", "2024-02-29"},
		{sluice.TypeDate, "2024-02-29T23:59:59+08:00", "2024-02-29"},
		{sluice.TypeDate, "2023-02-29", bad},
		{sluice.TypeDate, "2024-13-01", bad},
		{sluice.TypeDate, "2024-1-1", bad},
		{sluice.TypeDate, "2024-01-01x", bad},
		{sluice.TypeDate, int64(86400 * 365), "1971-01-01"},
		{sluice.TypeDate, int64(-1), "1969-12-31"},
		{sluice.TypeDate, nil, nil},

		{sluice.TypeTimestamp, time.Date(2024, 2, 29, 13, 45, 30, 123456789, time.UTC), "2024-02-29T13:45:30.123456Z"},
		{sluice.TypeTimestamp, time.Date(2024, 2, 29, 21, 45, 30, 0, shanghai), "2024-02-29T13:45:30Z"},
		{sluice.TypeTimestamp, "2024-02-29 13:45:30", "2024-02-29T13:45:30Z"},
		{sluice.TypeTimestamp, []byte("2024-02-29T13:45:30.5Z"), "2024-02-29T13:45:30.5Z"},
		{sluice.TypeTimestamp, "2024-02-29 13:45:30.1234567", "2024-02-29T13:45:30.123456Z"},
		{sluice.TypeTimestamp, "2024-02-29 21:45:30+08:00", "2024-02-29T13:45:30Z"},
		{sluice.TypeTimestamp, "2024-02-29 21:45:30+0800", "2024-02-29T13:45:30Z"},
		{sluice.TypeTimestamp, "2024-02-29 08:45:30-05", "2024-02-29T13:45:30Z"},
		{sluice.TypeTimestamp, "2024-02-29 21:45", "2024-02-29T21:45:00Z"},
		{sluice.TypeTimestamp, "2024-02-29", "2024-02-29T00:00:00Z"},
		{sluice.TypeTimestamp, "1969-12-31 23:59:59.999999", "1969-12-31T23:59:59.999999Z"},
		{sluice.TypeTimestamp, "2024-02-29 21:45:30.25 +0800 CST", "2024-02-29T13:45:30.25Z"}, // Go's Time.String
		{sluice.TypeTimestamp, "2024-02-29 24:00:00", bad},
		{sluice.TypeTimestamp, "2024-02-29 13:45:30 nonsense", bad},
		{sluice.TypeTimestamp, "yesterday", bad},
		{sluice.TypeTimestamp, int64(1), "1970-01-01T00:00:01Z"},
		{sluice.TypeTimestamp, int64(math.MaxInt64), bad},
		{sluice.TypeTimestamp, nil, nil},
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, tc := range tests {
		name := fmt.Sprintf("%s/%T", tc.typ, tc.src)
		t.Run(name, func(t *testing.T) {
			b := array.NewBuilder(mem, ArrowType(tc.typ))
			defer b.Release()
			w, err := newWriter("col", tc.typ, b)
			if err != nil {
				t.Fatal(err)
			}
			err = w.Scan(tc.src)
			if tc.want == bad {
				if err == nil {
					t.Fatalf("%#v: converted, want an error", tc.src)
				}
				msg := err.Error()
				if !strings.Contains(msg, `"col"`) || !strings.Contains(msg, string(tc.typ)) {
					t.Errorf("error %q does not name the column and type", msg)
				}
				if s, ok := tc.src.(string); ok && len(s) > 2 && strings.Contains(msg, s) {
					t.Errorf("error %q contains the value", msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("%#v: %v", tc.src, err)
			}
			arr := b.NewArray()
			defer arr.Release()
			if got := cell(arr, 0); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%#v: got %#v, want %#v", tc.src, got, tc.want)
			}
		})
	}
}

func TestSQLiteDSN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/data/civil.db", "file:/data/civil.db?_pragma=busy_timeout%285000%29&_pragma=case_sensitive_like%281%29&mode=ro"},
		{"/data/odd#%.db", "file:/data/odd%23%25.db?_pragma=busy_timeout%285000%29&_pragma=case_sensitive_like%281%29&mode=ro"},
		{"rel/civil.db?_pragma=foreign_keys(1)", "file:rel/civil.db?_pragma=foreign_keys%281%29&_pragma=case_sensitive_like%281%29&mode=ro"},
		{"/data/civil.db?mode=rw", "file:/data/civil.db?_pragma=busy_timeout%285000%29&_pragma=case_sensitive_like%281%29&mode=rw"},
		{"file:/data/civil.db?cache=shared", "file:/data/civil.db?cache=shared"},
		{":memory:", ":memory:"},
	}
	for _, tc := range tests {
		if got := sqliteDSN(tc.in); got != tc.want {
			t.Errorf("sqliteDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
