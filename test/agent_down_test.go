package test

import (
	"strings"
	"testing"
	"time"
)

// TestAgentDown stops the health agent and checks that a query on its
// data fails with Unavailable naming the department, and that the broker
// keeps serving the other departments; then it starts the agent again and
// the query answers, so the test can run in any order.
func TestAgentDown(t *testing.T) {
	world.KillAgent("health")
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		_, _, err = query(t, "alice", "subsidy-review", "SELECT insurance_type, COUNT(*) AS n FROM health.insured GROUP BY insurance_type")
		if err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), "Unavailable") || !strings.Contains(err.Error(), "health") {
		t.Fatalf("want Unavailable naming the health department, got %v", err)
	}
	_, rows, err := query(t, "bob", "enterprise-credit", "SELECT COUNT(*) AS n FROM market.enterprises")
	if err != nil || len(rows) != 1 {
		t.Fatalf("the broker must keep serving other departments: %v %v", rows, err)
	}
	if err := world.RestartAgent("health"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		_, _, err = query(t, "alice", "subsidy-review", "SELECT insurance_type, COUNT(*) AS n FROM health.insured GROUP BY insurance_type")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after the agent is back: %v", err)
	}
}
