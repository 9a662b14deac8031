// Package state is the snapshot every request is decided under: the
// catalog and its planner, the purposes registry, the grants, the users and
// their tokens, the department agents and the policy revision prepared over
// exactly that catalog, those purposes and grants.
//
// A State is immutable. The workflow (broker/workflow) builds a new one on
// every change and swaps it in; the Flight SQL service (broker) and the
// admin API (broker/adminapi) read the one in force through a Source, once
// per request, so a request sees one consistent version from start to end
// and a change applies to the very next request without a restart.
//
// The package is plain data and small helpers: no Flight, no HTTP, no
// store.
package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/policy"
)

// AgentClient is what the broker needs from a department agent.
type AgentClient interface {
	Fetch(ctx context.Context, f *planner.Fragment) (*agent.Stream, error)
	// The private-join protocol (see adapters/agent/psi*.go).
	PSIBlind(ctx context.Context, f *planner.Fragment, keyColumn, keyDomain string) (*agent.PSIStream, error)
	PSIReblind(ctx context.Context, session string, points [][]byte) ([][]byte, error)
	PSIClose(ctx context.Context, session string) error
	Close() error
}

// State is what decisions are made against. Every field is read-only once
// New has returned it: build a new State instead of changing one.
type State struct {
	Catalog *sluice.Catalog
	// Planner plans statements against Catalog.
	Planner *planner.Planner
	// CatalogVersion is CatalogVersion(Catalog), recorded in every audit
	// entry decided under this state.
	CatalogVersion string
	// Purposes is the purposes registry by code.
	Purposes map[string]sluice.Purpose
	Grants   []sluice.Grant
	// GrantsByID finds a grant of Grants by id (budgets, row filters).
	GrantsByID map[string]*sluice.Grant
	Users      *Users
	// Agents are the department agents' clients by department id.
	Agents map[string]AgentClient
	// Policy is the policy revision prepared over exactly this catalog,
	// these purposes and grants.
	Policy *policy.Prepared
}

// New builds a state. pol must have been prepared over cat, purposes and
// grants (policy.Engine.Update, then Current).
func New(cat *sluice.Catalog, purposes []sluice.Purpose, grants []sluice.Grant, users *Users, agents map[string]AgentClient, pol *policy.Prepared) *State {
	st := &State{
		Policy:     pol,
		Catalog:    cat,
		Planner:    planner.New(cat),
		Purposes:   map[string]sluice.Purpose{},
		Grants:     grants,
		GrantsByID: map[string]*sluice.Grant{},
		Users:      users,
		Agents:     agents,
	}
	st.CatalogVersion = CatalogVersion(cat)
	for _, p := range purposes {
		st.Purposes[p.Code] = p
	}
	for i := range grants {
		st.GrantsByID[grants[i].ID] = &grants[i]
	}
	return st
}

// Source gives the state in force. It is the one interface between the
// query path and the workflow: the workflow service implements it, and a
// broker whose state comes from files only reads a Static one.
type Source interface {
	// Current is the state in force; the caller loads it once per request.
	Current() *State
}

// Static is a Source that always gives the same state.
func Static(st *State) Source { return static{st} }

type static struct{ st *State }

func (s static) Current() *State { return s.st }

// CatalogVersion is the SHA-256 of the catalog's canonical JSON: every
// audit entry records the version it was decided under.
func CatalogVersion(cat *sluice.Catalog) string {
	raw, err := json.Marshal(cat.Datasets())
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// PurposeList lists the registered purpose codes for messages, sorted, or
// "(none)".
func (st *State) PurposeList() string {
	codes := make([]string, 0, len(st.Purposes))
	for c := range st.Purposes {
		codes = append(codes, c)
	}
	if len(codes) == 0 {
		return "(none)"
	}
	sort.Strings(codes)
	return strings.Join(codes, ", ")
}

// SplitDataset splits "department.dataset" into its two names.
func SplitDataset(full string) (string, string) {
	d, n, _ := strings.Cut(full, ".")
	return d, n
}
