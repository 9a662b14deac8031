package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// UserRecord is a user as a users file declares it: the token only as a
// hash.
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

// Users authenticates bearer tokens. It is an immutable index: the broker
// builds a new one whenever users or tokens change.
type Users struct {
	byHash map[string]tokenEntry
	byName map[string]sluice.Principal
	byCert map[string]sluice.Principal
	now    func() time.Time
}

type tokenEntry struct {
	p       sluice.Principal
	expires time.Time // zero: no expiry (file-seeded tokens)
}

// NewUsers indexes user records, rejecting duplicates and bad roles.
func NewUsers(records []UserRecord) (*Users, error) {
	u := &Users{byHash: map[string]tokenEntry{}, byName: map[string]sluice.Principal{}, byCert: map[string]sluice.Principal{}, now: time.Now}
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
		u.byHash[strings.ToLower(r.TokenSHA256)] = tokenEntry{p: p}
	}
	return u, nil
}

// UsersFromStore indexes the workflow store's users and their valid
// tokens; disabled users and revoked tokens are left out, expiry is checked
// at each use (against now).
func UsersFromStore(users []sluice.User, tokens []sluice.Token, now func() time.Time) *Users {
	u := &Users{byHash: map[string]tokenEntry{}, byName: map[string]sluice.Principal{}, byCert: map[string]sluice.Principal{}, now: now}
	for i := range users {
		if users[i].Disabled {
			continue
		}
		p := users[i].Principal()
		u.byName[p.Name] = p
		if fp := users[i].CertFingerprint; fp != "" {
			u.byCert[strings.ToLower(fp)] = p
		}
	}
	for _, t := range tokens {
		p, ok := u.byName[t.User]
		if !ok || t.RevokedAt != nil {
			continue
		}
		u.byHash[strings.ToLower(t.SHA256)] = tokenEntry{p: p, expires: t.ExpiresAt}
	}
	return u
}

// LoadUsers reads a users file (a JSON list of UserRecord).
func LoadUsers(path string) (*Users, error) {
	recs, err := LoadUserRecords(path)
	if err != nil {
		return nil, err
	}
	u, err := NewUsers(recs)
	if err != nil {
		return nil, &sluice.ConfigError{File: path, Problem: sluice.ErrorMessage(err)}
	}
	return u, nil
}

// LoadUserRecords reads and checks a users file without indexing it (the
// broker imports it into its store).
func LoadUserRecords(path string) ([]UserRecord, error) {
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
	if _, err := NewUsers(recs); err != nil {
		return nil, &sluice.ConfigError{File: path, Problem: sluice.ErrorMessage(err)}
	}
	return recs, nil
}

// Authenticate maps a bearer token to its principal.
func (u *Users) Authenticate(token string) (sluice.Principal, bool) {
	e, ok := u.byHash[HashToken(token)]
	if !ok || (!e.expires.IsZero() && !u.now().Before(e.expires)) {
		return sluice.Principal{}, false
	}
	return e.p, true
}

// AuthenticateCert maps a verified client certificate's fingerprint
// (sha256:hex) to its user.
func (u *Users) AuthenticateCert(fingerprint string) (sluice.Principal, bool) {
	p, ok := u.byCert[strings.ToLower(fingerprint)]
	return p, ok
}

// Lookup finds a user by name (for `sluice policy explain --user`).
func (u *Users) Lookup(name string) (sluice.Principal, bool) {
	p, ok := u.byName[name]
	return p, ok
}
