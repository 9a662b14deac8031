//go:build duckdb_arrow

package engine

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
)

// Parameters: by position and by name, of the Go types the planner binds
// and a few more; a wrong count is refused.
func TestQueryParameters(t *testing.T) {
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	at := time.Date(2024, 2, 29, 12, 30, 0, 0, time.UTC)
	_, rows := readAll(t, must(t)(s.Query(context.Background(),
		"SELECT $1::BIGINT + 1, $2::DOUBLE * 2, $3::VARCHAR || '!', NOT $4::BOOLEAN, $5 IS NULL, epoch($6::TIMESTAMP)::BIGINT, octet_length($7::BLOB)",
		int64(41), 1.25, "hi", true, nil, at, []byte{1, 2, 3})))
	if got := fmt.Sprint(rows); got != fmt.Sprintf("[[42 2.5 hi! false true %d 3]]", at.Unix()) {
		t.Errorf("got %s", got)
	}
	_, rows = readAll(t, must(t)(s.Query(context.Background(), "SELECT $x::INTEGER * 2", sql.Named("x", 21))))
	if fmt.Sprint(rows) != "[[42]]" {
		t.Errorf("named: %v", rows)
	}
	_, err := s.Query(context.Background(), "SELECT $1::INTEGER")
	wantCode(t, err, sluice.EInvalid)
	_, err = s.Query(context.Background(), "SELECT 1", 1)
	wantCode(t, err, sluice.EInvalid)
	_, err = s.Query(context.Background(), "SELECT $1", struct{}{})
	wantCode(t, err, sluice.EInternal)
}

// Inputs without rows, with no batch at all, and with columns whose names
// need quoting.
func TestInputShapes(t *testing.T) {
	mem := checkedMem(t)
	e := openEngine(t, Limits{})
	s := openSession(t, e)
	schema := arrow.NewSchema([]arrow.Field{{Name: "a b", Type: arrow.PrimitiveTypes.Int64}, {Name: `q"uote`, Type: arrow.BinaryTypes.String}}, nil)
	none, err := array.NewRecordReader(schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register("none", none); err != nil {
		t.Fatal(err)
	}
	if err := s.Register("empty", makeReader(t, mem, 0, int64Col("x", func(i int) int64 { return 0 }))); err != nil {
		t.Fatal(err)
	}
	_, rows := readAll(t, must(t)(s.Query(context.Background(), `SELECT (SELECT count(*) FROM none), (SELECT count("a b") + count("q""uote") FROM none), (SELECT count(*) FROM empty)`)))
	if fmt.Sprint(rows) != "[[0 0 0]]" {
		t.Errorf("got %v", rows)
	}
	r := must(t)(s.Query(context.Background(), `SELECT * FROM none`))
	if got := r.Schema().String(); got == "" || r.Schema().NumFields() != 2 || r.Schema().Field(0).Name != "a b" {
		t.Errorf("schema %s", got)
	}
	readAll(t, r)
}
