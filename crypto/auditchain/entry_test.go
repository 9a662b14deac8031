package auditchain

import (
	"testing"
	"time"
)

// TestCanonicalEncoding pins the encoding the hashes are computed over: a
// change here invalidates every existing log, so it must be deliberate.
func TestCanonicalEncoding(t *testing.T) {
	e := &Entry{
		Seq:         7,
		Time:        time.Date(2025, 1, 2, 11, 4, 5, 600000000, time.FixedZone("CST", 8*3600)),
		Kind:        KindQuery,
		QueryID:     "q1",
		Principal:   "alice",
		SQL:         "SELECT a FROM t WHERE b < 3 & c > 4",
		Decision:    DecisionAllow,
		Obligations: map[string]any{"masks": map[string]any{"phone": "phone", "name": "surname"}, "k": 10},
		Rows:        0,
		DurationMS:  0.5,
		PrevHash:    GenesisHash,
		Hash:        "ignored",
	}
	const want = `{"seq":7,"time":"2025-01-02T03:04:05.6Z","kind":"query","query_id":"q1","principal":"alice","sql":"SELECT a FROM t WHERE b < 3 & c > 4","decision":"allow","obligations":{"k":10,"masks":{"name":"surname","phone":"phone"}},"rows":0,"duration_ms":0.5,"prev_hash":"` + GenesisHash + `","hash":""}`
	got, err := Canonical(e)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("canonical encoding changed:\n got %s\nwant %s", got, want)
	}
	if e.ComputeHash() != Sum([]byte(want)) {
		t.Fatal("ComputeHash is not sha256 of the canonical encoding")
	}
	// The same entry built in another order and zone hashes the same.
	f := *e
	f.Time = e.Time.UTC()
	f.Obligations = map[string]any{"k": 10, "masks": map[string]any{"name": "surname", "phone": "phone"}}
	f.Hash = ""
	if f.ComputeHash() != e.ComputeHash() {
		t.Fatal("hash depends on time zone or map order")
	}
}

// TestOneEncoding: the line an entry travels as (archives, exports, an
// agent's answer to the broker) is its canonical body with the hash filled
// in, and it decodes strictly back to the same entry.
func TestOneEncoding(t *testing.T) {
	e := &Entry{Kind: KindFragment, QueryID: "q", Principal: "bob", Decision: DecisionAllow,
		Obligations: map[string]any{"suppressed_groups": 12345678901234567}, Plan: `SELECT "a" FROM t WHERE b < ?`}
	sealed, body, err := Seal(e, EmptyHead, time.Date(2025, 1, 2, 3, 4, 5, 6789, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if sealed.Seq != 1 || sealed.PrevHash != GenesisHash || sealed.Hash != Sum(body) || sealed.Time.Nanosecond() != 6000 {
		t.Fatalf("sealed %+v", sealed)
	}
	line, err := Encode(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if string(line) != string(Line(body, sealed.Hash)) {
		t.Fatalf("Encode and Line differ:\n%s\n%s", line, Line(body, sealed.Hash))
	}
	back, err := Decode(line)
	if err != nil || back.ComputeHash() != sealed.Hash || back.Hash != sealed.Hash {
		t.Fatalf("decode %+v %v", back, err)
	}
	for _, bad := range []string{
		`{"seq":1,"unknown":true}`,
		string(line) + `{}`,
	} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%s) accepted", bad)
		}
	}
	if Line([]byte(`{"seq":1}`), "x") != nil {
		t.Error("Line of a body not in canonical form")
	}
}
