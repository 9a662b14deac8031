package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/psi"
	"github.com/sluice-gov/sluice/planner"
)

// PSIStream is the answer to PSIBlind: the session to reblind and close
// with, and the agent's records. Column 0 of each record is the blinded key
// (binary, psi.PointLen bytes; null for an absent key), the other columns are
// the fragment's other select items as the agent released them. Next,
// Record, Err and Release behave as for Stream.
type PSIStream struct {
	*Stream
	// Session names the agent's secret for PSIReblind and PSIClose.
	Session string
	// Group and KeyDomain say how the keys were hashed and blinded.
	Group, KeyDomain string
}

// psiBlind is PSIBlind (tracing.go) without its span.
func (c *Client) psiBlind(ctx context.Context, f *planner.Fragment, keyColumn, keyDomain string) (*PSIStream, error) {
	if f == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "no fragment given")
	}
	cmd, err := json.Marshal(psiCommand{Op: actionPSIBlind, Fragment: f, KeyColumn: keyColumn, KeyDomain: keyDomain})
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "the psi-blind request cannot be encoded: %v", err)
	}
	if len(cmd) > maxTicketBytes {
		return nil, sluice.Errorf(sluice.EInvalid, "the psi-blind request for %s is %d bytes encoded; the limit is %d", f.Dataset, len(cmd), maxTicketBytes)
	}
	sctx, cancel := context.WithCancel(ctx)
	ex, err := c.fc.DoExchange(sctx)
	if err != nil {
		cancel()
		return nil, c.mapError(err, nil)
	}
	if err := ex.Send(&flight.FlightData{FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd}}); err != nil && !errors.Is(err, io.EOF) {
		cancel()
		return nil, c.mapError(err, nil)
	}
	if err := ex.CloseSend(); err != nil {
		cancel()
		return nil, c.mapError(err, nil)
	}
	// The first message is the session header or the agent's refusal.
	first, err := ex.Recv()
	if err != nil {
		cancel()
		if err == io.EOF {
			return nil, sluice.Errorf(sluice.EInternal, "the agent of department %s ended psi-blind without a session", c.dept)
		}
		return nil, c.mapError(err, trailer(ex))
	}
	var hdr psiHeader
	if err := json.Unmarshal(first.GetAppMetadata(), &hdr); err != nil || hdr.Session == "" {
		cancel()
		return nil, sluice.Errorf(sluice.EInternal, "the agent of department %s answered psi-blind without a readable session header", c.dept)
	}
	if hdr.Group != psi.GroupName || hdr.KeyDomain != keyDomain {
		cancel()
		return nil, sluice.Errorf(sluice.EInternal, "the agent of department %s blinded in group %q, domain %q; this broker expects %q, %q",
			c.dept, hdr.Group, hdr.KeyDomain, psi.GroupName, keyDomain)
	}
	rdr, err := flight.NewRecordReader(ex, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		cancel()
		return nil, c.mapError(err, trailer(ex))
	}
	if sc := rdr.Schema(); sc.NumFields() < 1 || !arrow.TypeEqual(sc.Field(0).Type, arrow.BinaryTypes.Binary) {
		rdr.Release()
		cancel()
		return nil, sluice.Errorf(sluice.EInternal, "the agent of department %s sent a psi-blind stream whose first column is not binary", c.dept)
	}
	return &PSIStream{
		Stream:  &Stream{c: c, gs: ex, rdr: rdr, cancel: cancel},
		Session: hdr.Session, Group: hdr.Group, KeyDomain: hdr.KeyDomain,
	}, nil
}

// psiReblind is PSIReblind (tracing.go) without its span.
func (c *Client) psiReblind(ctx context.Context, session string, points [][]byte) ([][]byte, error) {
	if session == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "no PSI session given")
	}
	cmd, err := json.Marshal(psiCommand{Op: actionPSIReblind, Session: session})
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "the psi-reblind request cannot be encoded: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ex, err := c.fc.DoExchange(ctx)
	if err != nil {
		return nil, c.mapError(err, nil)
	}
	// Send on one goroutine and receive on this one, so that neither side's
	// flow-control window can stall the other.
	sent := make(chan error, 1)
	go func() {
		err := sendPoints(ex, cmd, points)
		select {
		case sent <- err:
		case <-ctx.Done():
		}
	}()
	out := make([][]byte, 0, len(points))
	slab := make([]byte, 0, len(points)*psi.PointLen)
	rdr, err := flight.NewRecordReader(ex, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, c.mapError(err, trailer(ex))
	}
	defer rdr.Release()
	for rdr.Next() {
		col, ok := rdr.Record().Column(0).(*array.Binary)
		if !ok {
			return nil, sluice.Errorf(sluice.EInternal, "the agent of department %s answered psi-reblind with a column that is not binary", c.dept)
		}
		for i := 0; i < col.Len(); i++ {
			if col.IsNull(i) {
				out = append(out, nil)
				continue
			}
			v := col.Value(i)
			if len(v) != psi.PointLen || cap(slab)-len(slab) < len(v) {
				// Keep the copy independent of the record's buffers.
				out = append(out, append([]byte(nil), v...))
				continue
			}
			start := len(slab)
			slab = append(slab, v...)
			out = append(out, slab[start:len(slab):len(slab)])
		}
	}
	if err := rdr.Err(); err != nil {
		return nil, c.mapError(err, trailer(ex))
	}
	// Only a clean end of the call proves success.
	if _, err := ex.Recv(); err != io.EOF {
		if err == nil {
			err = errors.New("data after the end of the stream")
		}
		return nil, c.mapError(err, trailer(ex))
	}
	select {
	case err := <-sent:
		if err != nil {
			return nil, c.mapError(err, trailer(ex))
		}
	case <-ctx.Done():
		return nil, c.mapError(ctx.Err(), nil)
	}
	if len(out) != len(points) {
		return nil, sluice.Errorf(sluice.EInternal, "the agent of department %s answered %d points for %d", c.dept, len(out), len(points))
	}
	for i := range out {
		if (out[i] == nil) != (points[i] == nil) {
			return nil, sluice.Errorf(sluice.EInternal, "the agent of department %s answered psi-reblind out of order (point %d)", c.dept, i)
		}
	}
	return out, nil
}

// sendPoints writes the command and then points in batches, and closes the
// sending side.
func sendPoints(ex flight.FlightService_DoExchangeClient, cmd []byte, points [][]byte) error {
	if err := ex.Send(&flight.FlightData{FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd}}); err != nil {
		return err
	}
	w := flight.NewRecordWriter(ex, ipc.WithSchema(psiPointSchema), ipc.WithAllocator(memory.DefaultAllocator))
	for lo := 0; lo < len(points); lo += psiPointsPerBatch {
		hi := min(lo+psiPointsPerBatch, len(points))
		b := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.Binary)
		b.Reserve(hi - lo)
		b.ReserveData((hi - lo) * psi.PointLen)
		for _, p := range points[lo:hi] {
			if p == nil {
				b.AppendNull()
			} else {
				b.Append(p)
			}
		}
		arr := b.NewArray()
		b.Release()
		rec := array.NewRecord(psiPointSchema, []arrow.Array{arr}, int64(hi-lo))
		arr.Release()
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return ex.CloseSend()
}

// PSIClose tells the agent to destroy the session's secret. Closing a
// session the agent no longer holds is not an error.
func (c *Client) PSIClose(ctx context.Context, session string) error {
	body, err := json.Marshal(psiCommand{Session: session})
	if err != nil {
		return sluice.Errorf(sluice.EInvalid, "the psi-close request cannot be encoded: %v", err)
	}
	res, err := c.actionResults(ctx, actionPSIClose, body)
	if err != nil {
		return err
	}
	if len(res) != 1 || string(res[0]) != "ok" {
		return sluice.Errorf(sluice.EInternal, "the agent of department %s answered psi-close unexpectedly", c.dept)
	}
	return nil
}
