package test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/audit"
)

// lockStore takes the audit store's write lock from another connection, as
// a stuck or failing store would, until the returned function is called.
func lockStore(t *testing.T) func() {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+storePath(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		db.Close()
	}
}

// TestAuditStoreFailureFailsClosed makes the audit store unwritable mid-run:
// a new query is refused with no data; a query whose decision was recorded
// but whose result cannot be is cut off before its last batch; and service
// resumes by itself once the store is writable again.
func TestAuditStoreFailureFailsClosed(t *testing.T) {
	const stmt = "SELECT name, household_district FROM police.household WHERE migrant = 1 LIMIT 5"

	// 1. The decision is recorded, then the store fails before the result.
	bctx, bob := flightClient(t, "bob")
	bctx = metadata.AppendToOutgoingContext(bctx, broker.PurposeHeader, "enterprise-credit")
	info, err := bob.Execute(bctx, stmt)
	if err != nil {
		t.Fatal(err)
	}
	unlock := lockStore(t)
	rd, err := bob.DoGet(bctx, info.Endpoint[0].Ticket)
	rows := 0
	if err == nil {
		for rd.Next() {
			rows += int(rd.Record().NumRows())
		}
		err = rd.Err()
		rd.Release()
	}
	if err == nil || !strings.Contains(err.Error(), "Unavailable") {
		t.Fatalf("a result the audit log cannot record must fail with Unavailable, got %v after %d rows", err, rows)
	}
	if rows >= 5 {
		t.Fatalf("the complete result (%d rows) was released without its audit entry", rows)
	}

	// 2. A new statement while the store is down: refused, no ticket.
	_, _, err = query(t, "bob", "enterprise-credit", stmt)
	if err == nil || !strings.Contains(err.Error(), "audit log unavailable") {
		t.Fatalf("want a fail-closed audit error, got %v", err)
	}
	unlock()

	// 3. The store is back: service resumes without a restart.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, got, err := query(t, "bob", "enterprise-credit", stmt)
		if err == nil && len(got) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not resume after the store recovered: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rep, err := audit.VerifyFile(context.Background(), storePath(t))
	if err != nil || !rep.OK {
		t.Fatalf("chain after recovery: %+v %v", rep, err)
	}
}
