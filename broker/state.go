package broker

import (
	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/planner"
	"github.com/sluice-gov/sluice/policy"
)

// state is what decisions are made against: the catalog and its planner,
// purposes, grants, users and the agents. It is immutable; the workflow
// builds a new one on every change and swaps it in, so a request sees one
// consistent version from start to end and a change applies to the very
// next request without a restart.
type state struct {
	catalog        *sluice.Catalog
	planner        *planner.Planner
	catalogVersion string
	purposes       map[string]sluice.Purpose
	grants         []sluice.Grant
	grantsByID     map[string]*sluice.Grant
	users          *Users
	agents         map[string]AgentClient
	// policy is the policy revision prepared over exactly this catalog,
	// these purposes and grants.
	policy *policy.Prepared
}

// snap is the state in force.
func (s *Server) snap() *state { return s.cur.Load() }

func newState(cat *sluice.Catalog, purposes []sluice.Purpose, grants []sluice.Grant, users *Users, agents map[string]AgentClient, pol *policy.Prepared) *state {
	st := &state{
		policy:     pol,
		catalog:    cat,
		planner:    planner.New(cat),
		purposes:   map[string]sluice.Purpose{},
		grants:     grants,
		grantsByID: map[string]*sluice.Grant{},
		users:      users,
		agents:     agents,
	}
	st.catalogVersion = CatalogVersion(cat)
	for _, p := range purposes {
		st.purposes[p.Code] = p
	}
	for i := range grants {
		st.grantsByID[grants[i].ID] = &grants[i]
	}
	return st
}
