package auditchain

import (
	"strings"
	"testing"
	"time"
)

// TestTraceIDEncoding: the trace id is part of the canonical encoding (so
// the hash covers it) when set, and absent when empty, so entries written
// before it existed keep their bytes and their hash; a traced entry seals
// after an old-style one, and changing its trace id changes its hash.
func TestTraceIDEncoding(t *testing.T) {
	base := Entry{Kind: KindQuery, QueryID: "q1", Principal: "alice", Decision: DecisionAllow,
		Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	plain, err := Canonical(&base)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(plain), "trace_id") {
		t.Fatalf("an entry without a trace id encodes one: %s", plain)
	}
	traced := base
	traced.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	body, err := Canonical(&traced)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","prev_hash"`) {
		t.Fatalf("canonical encoding lacks the trace id before prev_hash: %s", body)
	}
	if traced.ComputeHash() == base.ComputeHash() {
		t.Fatal("the hash does not cover the trace id")
	}
	back, err := Decode(body)
	if err != nil || back.TraceID != traced.TraceID {
		t.Fatalf("decode: %+v %v", back, err)
	}

	// A chain of an old-style entry and a traced one.
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	first, _, err := Seal(&base, EmptyHead, now)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := Seal(&traced, Head{Seq: first.Seq, Hash: first.Hash}, now)
	if err != nil {
		t.Fatal(err)
	}
	if second.TraceID != traced.TraceID || second.ComputeHash() != second.Hash {
		t.Fatalf("sealed traced entry %+v", second)
	}
	forged := *second
	forged.TraceID = "00000000000000000000000000000001"
	if forged.ComputeHash() == second.Hash {
		t.Fatal("a rewritten trace id keeps the entry's hash")
	}
}
