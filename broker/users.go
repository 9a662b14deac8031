package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// UserRecord is a user as the broker stores it: the token only as a hash.
type UserRecord struct {
	Name        string      `json:"name"`
	Role        sluice.Role `json:"role"`
	Department  string      `json:"department"`
	TokenSHA256 string      `json:"token_sha256"`
}

// HashToken is how tokens are stored. Tokens are 256-bit random strings, so
// a fast hash is enough: there is nothing to brute-force.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Users authenticates bearer tokens.
type Users struct {
	byHash map[string]sluice.Principal
	byName map[string]sluice.Principal
}

// NewUsers indexes user records, rejecting duplicates and bad roles.
func NewUsers(records []UserRecord) (*Users, error) {
	u := &Users{byHash: map[string]sluice.Principal{}, byName: map[string]sluice.Principal{}}
	for i, r := range records {
		if r.Name == "" {
			return nil, sluice.Errorf(sluice.EInvalid, "user %d: name is required", i)
		}
		if !sluice.ValidRole(r.Role) {
			return nil, sluice.Errorf(sluice.EInvalid, "user %s: role must be analyst, dept_admin, platform_admin or auditor; got %q", r.Name, r.Role)
		}
		if len(r.TokenSHA256) != 64 {
			return nil, sluice.Errorf(sluice.EInvalid, "user %s: token_sha256 must be 64 hex characters (the SHA-256 of the token)", r.Name)
		}
		if _, dup := u.byName[r.Name]; dup {
			return nil, sluice.Errorf(sluice.EInvalid, "user %s is declared twice", r.Name)
		}
		p := sluice.Principal{Name: r.Name, Role: r.Role, Department: r.Department}
		u.byName[r.Name] = p
		u.byHash[strings.ToLower(r.TokenSHA256)] = p
	}
	return u, nil
}

// LoadUsers reads a users file (a JSON list of UserRecord).
func LoadUsers(path string) (*Users, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &sluice.ConfigError{File: path, Problem: fmt.Sprintf("cannot read: %v", err)}
	}
	var recs []UserRecord
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&recs); err != nil {
		return nil, &sluice.ConfigError{File: path, Problem: "not a JSON list of {name, role, department, token_sha256}: " + err.Error()}
	}
	u, err := NewUsers(recs)
	if err != nil {
		return nil, &sluice.ConfigError{File: path, Problem: sluice.ErrorMessage(err)}
	}
	return u, nil
}

// Authenticate maps a bearer token to its principal.
func (u *Users) Authenticate(token string) (sluice.Principal, bool) {
	p, ok := u.byHash[HashToken(token)]
	return p, ok
}

// Lookup finds a user by name (for `sluice policy explain --user`).
func (u *Users) Lookup(name string) (sluice.Principal, bool) {
	p, ok := u.byName[name]
	return p, ok
}
