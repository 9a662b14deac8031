package state

import (
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

func TestUsers(t *testing.T) {
	token := "slc_secret"
	u, err := NewUsers([]UserRecord{{Name: "bob", Role: sluice.RoleAnalyst, Department: "market", TokenSHA256: HashToken(token)}})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := u.Authenticate(token); !ok || p.Name != "bob" {
		t.Fatal("valid token refused")
	}
	if _, ok := u.Authenticate("slc_other"); ok {
		t.Fatal("invalid token accepted")
	}
	bad := []struct {
		name string
		recs []UserRecord
		want string
	}{
		{"no name", []UserRecord{{Role: sluice.RoleAnalyst, TokenSHA256: HashToken("a")}}, "name is required"},
		{"bad role", []UserRecord{{Name: "x", Role: "root", TokenSHA256: HashToken("a")}}, "role must be"},
		{"plain token", []UserRecord{{Name: "x", Role: sluice.RoleAnalyst, TokenSHA256: "secret"}}, "64 hex"},
		{"duplicate", []UserRecord{{Name: "x", Role: sluice.RoleAnalyst, TokenSHA256: HashToken("a")}, {Name: "x", Role: sluice.RoleAnalyst, TokenSHA256: HashToken("b")}}, "twice"},
	}
	for _, tc := range bad {
		if _, err := NewUsers(tc.recs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: want %q, got %v", tc.name, tc.want, err)
		}
	}
}

func TestTokenExpiry(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	users := []sluice.User{{Name: "gina", Role: sluice.RoleAnalyst, Department: "civil"}, {Name: "off", Role: sluice.RoleAnalyst, Department: "civil", Disabled: true}}
	revoked := now.Add(-time.Minute)
	tokens := []sluice.Token{
		{ID: "a", User: "gina", SHA256: HashToken("valid"), ExpiresAt: now.Add(time.Hour)},
		{ID: "b", User: "gina", SHA256: HashToken("expired"), ExpiresAt: now.Add(-time.Second)},
		{ID: "c", User: "gina", SHA256: HashToken("revoked"), ExpiresAt: now.Add(time.Hour), RevokedAt: &revoked},
		{ID: "d", User: "off", SHA256: HashToken("disabled"), ExpiresAt: now.Add(time.Hour)},
		{ID: "e", User: "gina", SHA256: HashToken("seeded")}, // from a users file: no expiry
	}
	clock := now
	u := UsersFromStore(users, tokens, func() time.Time { return clock })
	for tok, want := range map[string]bool{"valid": true, "expired": false, "revoked": false, "disabled": false, "seeded": true, "unknown": false} {
		if _, ok := u.Authenticate(tok); ok != want {
			t.Errorf("Authenticate(%s) = %v, want %v", tok, ok, want)
		}
	}
	clock = now.Add(time.Hour)
	if _, ok := u.Authenticate("valid"); ok {
		t.Errorf("a token is accepted at its expiry instant")
	}
}
