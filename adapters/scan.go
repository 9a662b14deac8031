package adapters

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
)

// DefaultBatchRows is the batch size Scan uses when given batchRows <= 0.
const DefaultBatchRows = 4096

// ctxCheckEvery is how many rows Scan reads between looks at its context
// inside a batch. The driver also watches the context, but a driver that
// has a whole result buffered would otherwise keep converting rows.
const ctxCheckEvery = 1024

// maxReserve caps the rows reserved in the builders up front, so a large
// batchRows does not allocate for rows a small result never has.
const maxReserve = 8192

// firstReserve is the rows reserved before the first batch.
const firstReserve = 256

// Scan runs sqlText with args and calls emit with record batches of at most
// batchRows rows (DefaultBatchRows when batchRows <= 0) whose schema is
// Schema(fields). A result without rows produces no batch.
//
// emit owns the record only for the duration of the call: Scan releases it
// when emit returns, so emit must Retain it to keep it. An error from emit
// ends the scan and is returned unchanged.
//
// Each value is converted from whatever the driver returns into the
// declared type; NULL becomes null. Text timestamps without a zone are taken
// as UTC; integers in date and timestamp columns as Unix seconds. A value that cannot be converted is an
// EInternal error naming the column and the declared type, never the value.
// A result whose column count differs from len(fields) is EInternal.
//
// Cancelling ctx ends the scan promptly with an error that wraps ctx.Err().
// Only one batch is held at a time. rows is the number of rows delivered to
// emit.
func (db *DB) Scan(ctx context.Context, sqlText string, args []any, fields []planner.Field, batchRows int, emit func(arrow.Record) error) (rows int64, err error) {
	if batchRows <= 0 {
		batchRows = DefaultBatchRows
	}
	for _, f := range fields {
		switch f.Type {
		case sluice.TypeInteger, sluice.TypeFloat, sluice.TypeDecimal, sluice.TypeText,
			sluice.TypeBoolean, sluice.TypeDate, sluice.TypeTimestamp:
		default:
			return 0, sluice.Errorf(sluice.EInternal, "field %q: unknown declared type %q", f.Name, f.Type)
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, db.ctxError(err)
	}
	if db.fl != nil {
		return db.fl.scan(ctx, sqlText, args, fields, batchRows, emit)
	}

	res, err := db.x.QueryContext(ctx, sqlText, args...)
	if err != nil {
		if ctx.Err() != nil {
			return 0, db.ctxError(ctx.Err())
		}
		return 0, db.queryError(err)
	}
	defer res.Close()

	cols, err := res.Columns()
	if err != nil {
		return 0, db.queryError(err)
	}
	if len(cols) != len(fields) {
		return 0, sluice.Errorf(sluice.EInternal, "source %q returned %d columns, but %d fields were declared", db.name, len(cols), len(fields))
	}

	rb := array.NewRecordBuilder(db.mem, Schema(fields))
	defer rb.Release()
	dest := make([]any, len(fields))
	var texts []*array.StringBuilder
	for i, f := range fields {
		w, err := newWriter(f.Name, f.Type, rb.Field(i))
		if err != nil {
			return 0, err
		}
		dest[i] = w
		if sb, ok := rb.Field(i).(*array.StringBuilder); ok {
			texts = append(texts, sb)
		}
	}
	// The first batch starts small: an aggregate answers in a few rows,
	// and reserving a whole batch for each of its columns would cost more
	// than the rows. A full batch reserves the full size for the next.
	reserve := min(batchRows, maxReserve)
	rb.Reserve(min(reserve, firstReserve))
	textBytes := make([]int, len(texts))

	flush := func() error {
		for i, sb := range texts {
			textBytes[i] = sb.DataLen()
		}
		rec := rb.NewRecord()
		defer rec.Release()
		n := rec.NumRows()
		if err := emit(rec); err != nil {
			return err
		}
		rows += n
		// The next batch of a scan is usually shaped like the last one, so
		// reserving what it used saves growing the buffers row by row.
		rb.Reserve(reserve)
		for i, sb := range texts {
			sb.ReserveData(textBytes[i])
		}
		return nil
	}

	inBatch := 0
	for res.Next() {
		if err := res.Scan(dest...); err != nil {
			if ctx.Err() != nil {
				return rows, db.ctxError(ctx.Err())
			}
			var ce *convError
			if errors.As(err, &ce) {
				return rows, &sluice.Error{Code: sluice.EInternal, Message: fmt.Sprintf("source %q: %s", db.name, ce.Error()), Err: ce}
			}
			return rows, db.queryError(err)
		}
		inBatch++
		if inBatch == batchRows {
			if err := flush(); err != nil {
				return rows, err
			}
			inBatch = 0
			if err := ctx.Err(); err != nil {
				return rows, db.ctxError(err)
			}
		} else if inBatch%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return rows, db.ctxError(err)
			}
		}
	}
	if err := res.Err(); err != nil {
		if ctx.Err() != nil {
			return rows, db.ctxError(ctx.Err())
		}
		return rows, db.queryError(err)
	}
	if err := ctx.Err(); err != nil {
		return rows, db.ctxError(err)
	}
	if inBatch > 0 {
		if err := flush(); err != nil {
			return rows, err
		}
	}
	return rows, nil
}
