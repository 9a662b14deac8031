package auditchain

import (
	"encoding/json"
	"strings"
	"testing"
)

func frec(dept, ds string, rows, bytes int64, dg string) FragmentRecord {
	return FragmentRecord{Department: dept, Dataset: ds, SQLHash: "sha256:plan", Rows: rows, Bytes: bytes, Digest: dg}
}

func brokerResult(q, decision string, frs ...FragmentRecord) Entry {
	return Entry{Kind: KindResult, QueryID: q, Decision: decision, Fragments: frs}
}

func agentFragment(q, decision string, fr FragmentRecord) Entry {
	e := Entry{Kind: KindFragment, QueryID: q, Decision: decision, Datasets: []string{fr.Dataset}}
	if decision == DecisionAllow {
		fr.SQLHash = "sha256:rendered" // the agent hashes other SQL than the broker
		e.Fragments = []FragmentRecord{fr}
	}
	return e
}

func TestReconcile(t *testing.T) {
	civil := func(rows, bytes int64, dg string) FragmentRecord {
		return frec("civil", "civil.residents", rows, bytes, dg)
	}
	health := func(rows, bytes int64, dg string) FragmentRecord {
		return frec("health", "health.insured", rows, bytes, dg)
	}
	type want struct {
		query, dept, kind string
		broker, agent     bool   // which records the discrepancy carries
		detail            string // a substring of Detail
	}
	tests := []struct {
		name   string
		broker []Entry
		agents map[string][]Entry
		want   []want
	}{
		{
			name:   "perfect match",
			broker: []Entry{{Kind: KindQuery, QueryID: "q1", Decision: DecisionAllow}, brokerResult("q1", DecisionAllow, civil(30, 900, "sha256:a"))},
			agents: map[string][]Entry{"civil": {agentFragment("q1", DecisionAllow, civil(30, 900, "sha256:a"))}},
		},
		{
			name:   "zero rows on both sides",
			broker: []Entry{brokerResult("q1", DecisionAllow, civil(0, 0, "sha256:e"))},
			agents: map[string][]Entry{"civil": {agentFragment("q1", DecisionAllow, civil(0, 0, "sha256:e"))}},
		},
		{
			name:   "fragment the broker did not log",
			broker: []Entry{brokerResult("q1", DecisionAllow, civil(30, 900, "sha256:a"))},
			agents: map[string][]Entry{"civil": {
				agentFragment("q1", DecisionAllow, civil(30, 900, "sha256:a")),
				agentFragment("q2", DecisionAllow, civil(5, 100, "sha256:b")),
			}},
			want: []want{{"q2", "civil", DiscrepancyMissingInBroker, false, true, "5 rows"}},
		},
		{
			name:   "broker-only fragment",
			broker: []Entry{brokerResult("q1", DecisionAllow, civil(30, 900, "sha256:a"))},
			agents: map[string][]Entry{"civil": {}},
			want:   []want{{"q1", "civil", DiscrepancyMissingInAgent, true, false, "no record of serving"}},
		},
		{
			name:   "broker allow with zero rows still needs the agent's record",
			broker: []Entry{brokerResult("q1", DecisionAllow, civil(0, 0, "sha256:e"))},
			agents: map[string][]Entry{"civil": nil},
			want:   []want{{"q1", "civil", DiscrepancyMissingInAgent, true, false, "0 rows"}},
		},
		{
			name:   "row count mismatch",
			broker: []Entry{brokerResult("q1", DecisionAllow, civil(29, 870, "sha256:a"))},
			agents: map[string][]Entry{"civil": {agentFragment("q1", DecisionAllow, civil(30, 900, "sha256:b"))}},
			want:   []want{{"q1", "civil", DiscrepancyRows, true, true, "receiving 29 rows"}},
		},
		{
			name:   "byte count mismatch",
			broker: []Entry{brokerResult("q1", DecisionAllow, civil(30, 901, "sha256:a"))},
			agents: map[string][]Entry{"civil": {agentFragment("q1", DecisionAllow, civil(30, 900, "sha256:b"))}},
			want:   []want{{"q1", "civil", DiscrepancyBytes, true, true, "901 bytes"}},
		},
		{
			name:   "digest mismatch",
			broker: []Entry{brokerResult("q1", DecisionAllow, civil(30, 900, "sha256:a"))},
			agents: map[string][]Entry{"civil": {agentFragment("q1", DecisionAllow, civil(30, 900, "sha256:b"))}},
			want:   []want{{"q1", "civil", DiscrepancyDigest, true, true, "sha256:b"}},
		},
		{
			name:   "agent denial and a broker error with nothing received agree",
			broker: []Entry{brokerResult("q1", DecisionError, civil(0, 0, "sha256:e"))},
			agents: map[string][]Entry{"civil": {agentFragment("q1", DecisionDeny, civil(0, 0, ""))}},
		},
		{
			name:   "broker error after receiving rows the agent recorded as failed",
			broker: []Entry{brokerResult("q1", DecisionError, civil(1000, 9000, "sha256:p"))},
			agents: map[string][]Entry{"civil": {agentFragment("q1", DecisionError, civil(0, 0, ""))}},
			want:   []want{{"q1", "civil", DiscrepancyMissingInAgent, true, false, "recorded the fragment as error"}},
		},
		{
			name: "broker error with a partial stream the agent recorded in full",
			broker: []Entry{func() Entry {
				e := brokerResult("q1", DecisionError, civil(20, 600, "sha256:p"))
				e.Error = "the client went away"
				return e
			}()},
			agents: map[string][]Entry{"civil": {agentFragment("q1", DecisionAllow, civil(30, 900, "sha256:a"))}},
			want:   []want{{"q1", "civil", DiscrepancyRows, true, true, "the client went away"}},
		},
		{
			name:   "departments without an agent log are not judged",
			broker: []Entry{brokerResult("q1", DecisionAllow, civil(30, 900, "sha256:a"), health(3, 30, "sha256:h"))},
			agents: map[string][]Entry{"civil": {agentFragment("q1", DecisionAllow, civil(30, 900, "sha256:a"))}},
		},
		{
			name:   "names match case-insensitively",
			broker: []Entry{brokerResult("q1", DecisionAllow, frec("Civil", "CIVIL.Residents", 30, 900, "sha256:a"))},
			agents: map[string][]Entry{"civil": {agentFragment("q1", DecisionAllow, civil(30, 900, "sha256:a"))}},
		},
		{
			name:   "a retried fetch pairs the agreeing records and reports the extra one",
			broker: []Entry{brokerResult("q1", DecisionAllow, civil(30, 900, "sha256:a"))},
			agents: map[string][]Entry{"civil": {
				agentFragment("q1", DecisionAllow, civil(12, 300, "sha256:x")),
				agentFragment("q1", DecisionAllow, civil(30, 900, "sha256:a")),
			}},
			want: []want{{"q1", "civil", DiscrepancyMissingInBroker, false, true, "12 rows"}},
		},
		{
			name: "several departments, sorted by query then department",
			broker: []Entry{
				brokerResult("q2", DecisionAllow, health(3, 30, "sha256:h")),
				brokerResult("q1", DecisionAllow, civil(30, 900, "sha256:a")),
			},
			agents: map[string][]Entry{
				"civil":  {agentFragment("q1", DecisionAllow, civil(31, 900, "sha256:a")), agentFragment("q3", DecisionAllow, civil(1, 9, "sha256:c"))},
				"health": {agentFragment("q2", DecisionAllow, health(3, 30, "sha256:z"))},
			},
			want: []want{
				{"q1", "civil", DiscrepancyRows, true, true, ""},
				{"q2", "health", DiscrepancyDigest, true, true, ""},
				{"q3", "civil", DiscrepancyMissingInBroker, false, true, ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Reconcile(tt.broker, tt.agents)
			if len(got) != len(tt.want) {
				b, _ := json.MarshalIndent(got, "", "  ")
				t.Fatalf("got %d discrepancies, want %d:\n%s", len(got), len(tt.want), b)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.QueryID != w.query || g.Department != w.dept || g.Kind != w.kind {
					t.Errorf("[%d] %s/%s %s, want %s/%s %s", i, g.QueryID, g.Department, g.Kind, w.query, w.dept, w.kind)
				}
				if (g.Broker != nil) != w.broker || (g.Agent != nil) != w.agent {
					t.Errorf("[%d] carries broker %v agent %v, want %v %v", i, g.Broker != nil, g.Agent != nil, w.broker, w.agent)
				}
				if g.Dataset == "" || g.Detail == "" || !strings.Contains(g.Detail, w.detail) {
					t.Errorf("[%d] dataset %q detail %q, want it to mention %q", i, g.Dataset, g.Detail, w.detail)
				}
			}
		})
	}
}

func TestReconcileEmpty(t *testing.T) {
	if got := Reconcile(nil, nil); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
	// An agent log given but no broker entries: everything it served is
	// missing in the broker.
	got := Reconcile(nil, map[string][]Entry{"civil": {agentFragment("q1", DecisionAllow, frec("civil", "civil.residents", 1, 1, "d"))}})
	if len(got) != 1 || got[0].Kind != DiscrepancyMissingInBroker || got[0].Agent.Department != "civil" {
		t.Fatalf("got %+v", got)
	}
}
