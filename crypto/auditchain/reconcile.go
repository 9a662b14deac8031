package auditchain

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Discrepancy kinds.
const (
	DiscrepancyMissingInBroker = "missing_in_broker" // an agent recorded serving a fragment the broker did not record receiving
	DiscrepancyMissingInAgent  = "missing_in_agent"  // the broker recorded receiving a fragment the agent did not record serving
	DiscrepancyRows            = "rows_mismatch"
	DiscrepancyBytes           = "bytes_mismatch"
	DiscrepancyDigest          = "digest_mismatch"
	// DiscrepancyInterrupted: the agent recorded beginning to send a
	// fragment (its write-ahead entry) and has no outcome for it: it
	// stopped mid-stream (killed, crashed, lost its disk). What the broker
	// received, if anything, is in Broker. It is reported, but it is not a
	// disagreement between the logs (Serious is false) unless the broker
	// recorded the result as complete.
	DiscrepancyInterrupted = "interrupted"
)

// Serious reports whether the discrepancy is a disagreement between the two
// logs (exit status 1 in `sluice audit reconcile`), as opposed to a fragment
// the agent was interrupted serving, which both logs account for.
func (d Discrepancy) Serious() bool {
	return d.Kind != DiscrepancyInterrupted || (d.Broker != nil && d.brokerAllow)
}

// Discrepancy is one difference between what the broker recorded receiving
// from a department and what that department's agent recorded sending.
type Discrepancy struct {
	QueryID    string          `json:"query_id"`
	Department string          `json:"department"`
	Dataset    string          `json:"dataset"`
	Kind       string          `json:"kind"` // one of the Discrepancy* constants
	Broker     *FragmentRecord `json:"broker,omitempty"`
	Agent      *FragmentRecord `json:"agent,omitempty"`
	Detail     string          `json:"detail"`

	brokerAllow bool // an interrupted fragment the broker recorded as complete
}

// Reconcile compares what the broker recorded receiving from each department
// (the Fragments of its "result" entries) with what each agent recorded
// sending (the Fragments of its "fragment" entries with Decision "allow"),
// matching by (QueryID, Department, Dataset). agentLogs maps a department
// id to that agent's entries. Departments with no agent log given are not
// judged. The result is sorted by query id, department, dataset and kind;
// it is empty when the logs agree.
//
// Rules:
//
//   - Department and dataset names are matched case-insensitively; the
//     department of an agent's record is the agentLogs key it came under.
//   - Broker records are taken from "result" entries of any decision. A
//     result with Decision "error" may hold a partial fragment (the stream
//     broke part-way); it is still compared: what the broker received must
//     equal what the agent recorded sending.
//   - Agent records are taken from "fragment" entries with Decision "allow"
//     only. An agent "deny" or "error" entry means the agent did not serve the
//     fragment (it refused it, or the stream failed and the agent did not
//     release its end).
//   - A pair is compared on rows, then bytes, then digest, and reported once,
//     by the first field that differs (a row mismatch implies the others).
//     SQLHash is not compared: the broker hashes its normalised plan, the
//     agent the SQL it rendered for its database.
//   - A broker record with no matching agent "allow" record is
//     missing_in_agent when the broker's entry says "allow", or when it says
//     "error" but the broker received rows (> 0). A failed broker result
//     that received nothing is no discrepancy: the agent refused it, was
//     unreachable, or failed before sending.
//   - An agent "allow" record with no matching broker record is
//     missing_in_broker. (A query still running when the logs were read can
//     show up this way; reconcile up to a point both logs have passed.)
//   - When the same key occurs more than once on a side (a retried fetch),
//     records that agree exactly are paired first, the rest in log order,
//     and unpaired records are judged as above.
//   - An agent's write-ahead entry (Phase "begin") is the record that a
//     fragment began leaving. One with no outcome entry for the same query
//     and dataset (allow, deny or error) is a run the agent never finished
//     recording — it was killed mid-stream — and is reported once as
//     interrupted, paired with a broker record the agent has no outcome for
//     (instead of missing_in_agent), or alone. Interrupted is not Serious
//     unless the broker recorded that result as complete.
//   - Entries of other kinds are ignored, as are fragment records of a
//     broker entry for departments other than the agentLogs keys.
func Reconcile(broker []Entry, agentLogs map[string][]Entry) []Discrepancy {
	type side = reconcileSide
	type group struct {
		queryID, dept, dataset string
		broker, agent          []side
		agentRefused           []string // decisions of agent deny/error entries
		begun                  []Entry  // the agent's write-ahead entries
	}
	groups := map[string]*group{}
	judged := map[string]string{} // lower-case department → agentLogs key
	for dept := range agentLogs {
		judged[strings.ToLower(dept)] = dept
	}
	get := func(queryID, dept, dataset string) *group {
		k := queryID + "\x00" + strings.ToLower(dept) + "\x00" + strings.ToLower(dataset)
		g := groups[k]
		if g == nil {
			g = &group{queryID: queryID, dept: dept, dataset: dataset}
			groups[k] = g
		}
		return g
	}
	for _, e := range broker {
		if e.Kind != KindResult {
			continue
		}
		for _, fr := range e.Fragments {
			dept, ok := judged[strings.ToLower(fr.Department)]
			if !ok {
				continue
			}
			g := get(e.QueryID, dept, fr.Dataset)
			g.broker = append(g.broker, side{rec: fr, decision: e.Decision, errMsg: e.Error})
		}
	}
	for dept, entries := range agentLogs {
		for _, e := range entries {
			if e.Kind != KindFragment {
				continue
			}
			if e.Phase == PhaseBegin {
				for _, ds := range e.Datasets {
					g := get(e.QueryID, dept, ds)
					g.begun = append(g.begun, e)
				}
				continue
			}
			if e.Decision != DecisionAllow {
				// Not served; remembered only to explain a missing_in_agent.
				for _, ds := range e.Datasets {
					g := get(e.QueryID, dept, ds)
					g.agentRefused = append(g.agentRefused, e.Decision)
				}
				continue
			}
			for _, fr := range e.Fragments {
				fr.Department = dept
				g := get(e.QueryID, dept, fr.Dataset)
				g.agent = append(g.agent, side{rec: fr, decision: e.Decision})
			}
		}
	}

	var out []Discrepancy
	for _, g := range groups {
		d := func(kind string, b, a *side, detail string) Discrepancy {
			x := Discrepancy{QueryID: g.queryID, Department: g.dept, Dataset: g.dataset, Kind: kind, Detail: detail}
			if b != nil {
				r := b.rec
				x.Broker = &r
			}
			if a != nil {
				r := a.rec
				x.Agent = &r
			}
			return x
		}
		// Pair exact agreements first, then the rest in order.
		bUsed := make([]bool, len(g.broker))
		aUsed := make([]bool, len(g.agent))
		for i, b := range g.broker {
			for j, a := range g.agent {
				if !aUsed[j] && sameRecord(b.rec, a.rec) {
					bUsed[i], aUsed[j] = true, true
					break
				}
			}
		}
		// Write-ahead entries with no outcome: runs the agent began and never
		// finished recording. Each explains one broker record the agent has
		// no outcome for.
		interrupted := len(g.begun) - len(g.agent) - len(g.agentRefused)
		reported := 0
		interrupt := func(b *side) {
			reported++
			e := g.begun[len(g.begun)-1]
			detail := fmt.Sprintf("the agent of department %s recorded beginning to send %s at %s (its entry %d) and has no outcome for it: it stopped mid-stream (killed or crashed)",
				g.dept, g.dataset, e.Time.UTC().Format(time.RFC3339), e.Seq)
			if b != nil {
				detail += fmt.Sprintf("; the broker recorded receiving %d rows (%d bytes) before the stream ended (result %s)", b.rec.Rows, b.rec.Bytes, b.decision)
			} else {
				detail += "; the broker's log has no rows received for it"
			}
			x := d(DiscrepancyInterrupted, b, nil, detail)
			x.brokerAllow = b != nil && b.decision == DecisionAllow
			if x.brokerAllow {
				x.Detail += ", yet the broker recorded the result as complete"
			}
			out = append(out, x)
		}
		j := 0
		for i := range g.broker {
			if bUsed[i] {
				continue
			}
			for j < len(g.agent) && aUsed[j] {
				j++
			}
			b := &g.broker[i]
			if j < len(g.agent) {
				aUsed[j] = true
				a := &g.agent[j]
				if kind, detail := compareRecords(b, a.rec, g.dept, g.dataset); kind != "" {
					out = append(out, d(kind, b, a, detail))
				}
				continue
			}
			if reported < interrupted {
				interrupt(b)
				continue
			}
			if b.decision == DecisionAllow || b.rec.Rows > 0 {
				detail := fmt.Sprintf("the broker recorded receiving %d rows (%d bytes) of %s from department %s (result %s), but the agent's log has no record of serving them",
					b.rec.Rows, b.rec.Bytes, g.dataset, g.dept, b.decision)
				if len(g.agentRefused) > 0 {
					detail += fmt.Sprintf("; the agent recorded the fragment as %s", strings.Join(slices.Compact(slices.Sorted(slices.Values(g.agentRefused))), ", "))
				}
				out = append(out, d(DiscrepancyMissingInAgent, b, nil, detail))
			}
		}
		for reported < interrupted {
			interrupt(nil)
		}
		for j := range g.agent {
			if aUsed[j] {
				continue
			}
			a := &g.agent[j]
			out = append(out, d(DiscrepancyMissingInBroker, nil, a, fmt.Sprintf(
				"the agent of department %s recorded sending %d rows (%d bytes) of %s, but the broker's log has no result recording them",
				g.dept, a.rec.Rows, a.rec.Bytes, g.dataset)))
		}
	}
	slices.SortStableFunc(out, func(x, y Discrepancy) int {
		return cmp.Or(
			cmp.Compare(x.QueryID, y.QueryID),
			cmp.Compare(x.Department, y.Department),
			cmp.Compare(strings.ToLower(x.Dataset), strings.ToLower(y.Dataset)),
			cmp.Compare(x.Kind, y.Kind),
		)
	})
	return out
}

// reconcileSide is one fragment record with the decision of its entry.
type reconcileSide struct {
	rec      FragmentRecord
	decision string
	errMsg   string
}

func sameRecord(b, a FragmentRecord) bool {
	return b.Rows == a.Rows && b.Bytes == a.Bytes && b.Digest == a.Digest
}

// compareRecords returns the kind and detail of the first difference between
// what the broker received (b) and what the agent sent (a), or "" when they
// agree. Details carry counts and digests only, never values.
func compareRecords(b *reconcileSide, a FragmentRecord, dept, dataset string) (kind, detail string) {
	var what string
	switch {
	case b.rec.Rows != a.Rows:
		kind = DiscrepancyRows
		what = fmt.Sprintf("the broker recorded receiving %d rows of %s from department %s, the agent recorded sending %d", b.rec.Rows, dataset, dept, a.Rows)
	case b.rec.Bytes != a.Bytes:
		kind = DiscrepancyBytes
		what = fmt.Sprintf("the broker recorded receiving %d bytes of %s from department %s, the agent recorded sending %d (same row count, %d)", b.rec.Bytes, dataset, dept, a.Bytes, a.Rows)
	case b.rec.Digest != a.Digest:
		kind = DiscrepancyDigest
		what = fmt.Sprintf("the broker and the agent of department %s recorded different digests for %s (broker %s, agent %s) with the same row and byte counts: the values differ", dept, dataset, b.rec.Digest, a.Digest)
	default:
		return "", ""
	}
	if b.decision == DecisionError {
		what += "; the broker recorded the result as failed"
		if b.errMsg != "" {
			what += " (" + b.errMsg + ")"
		}
		what += ", so it may have received only part of the stream"
	}
	return kind, what
}
