package workflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/broker/store"
)

// Token lifetimes: issued tokens always expire.
const (
	DefaultTokenTTL = 90 * 24 * time.Hour
	MaxTokenTTL     = 366 * 24 * time.Hour
)

var userNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`)

func mustPlatformAdmin(p sluice.Principal, what string) error {
	if p.Role != sluice.RolePlatformAdmin {
		return denied("only the platform admin may %s; you are %s", what, p.Role)
	}
	return nil
}

// PutPurpose adds or updates a purpose in the registry.
func (w *Service) PutPurpose(ctx context.Context, p sluice.Principal, pur sluice.Purpose) (*sluice.Purpose, error) {
	if err := mustPlatformAdmin(p, "keep the purposes registry"); err != nil {
		return nil, err
	}
	if err := sluice.ValidatePurpose(&pur); err != nil {
		return nil, err
	}
	if err := w.store.PutPurpose(ctx, pur); err != nil {
		return nil, err
	}
	return &pur, w.Reload(ctx)
}

// RemovePurpose retires a purpose nobody relies on: no open application
// and no grant in force names it.
func (w *Service) RemovePurpose(ctx context.Context, p sluice.Principal, code string) error {
	if err := mustPlatformAdmin(p, "keep the purposes registry"); err != nil {
		return err
	}
	open, err := w.store.Applications(ctx, store.ApplicationFilter{Status: []sluice.ApplicationStatus{sluice.AppSubmitted, sluice.AppForwarded}})
	if err != nil {
		return err
	}
	for _, a := range open {
		if a.Purpose == code {
			return sluice.Errorf(sluice.EConflict, "purpose %s is named by open application %s; decide it first", code, a.ID)
		}
	}
	now := w.now()
	for _, g := range w.Current().Grants {
		if g.Purpose == code && !g.Revoked && now.Before(g.ValidUntil) {
			return sluice.Errorf(sluice.EConflict, "purpose %s is named by grant %s in force until %s; revoke it first", code, g.ID, g.ValidUntil.Format(time.DateOnly))
		}
	}
	if err := w.store.RemovePurpose(ctx, code); err != nil {
		return err
	}
	return w.Reload(ctx)
}

// PutUser creates or updates a user (platform admin).
func (w *Service) PutUser(ctx context.Context, p sluice.Principal, u sluice.User) (*sluice.User, error) {
	if err := mustPlatformAdmin(p, "manage users"); err != nil {
		return nil, err
	}
	if !userNameRE.MatchString(u.Name) {
		return nil, sluice.Errorf(sluice.EInvalid, "name: must be letters, digits, '_', '.', '-' (at most 63), got %q", u.Name)
	}
	if !sluice.ValidRole(u.Role) {
		return nil, sluice.Errorf(sluice.EInvalid, "role: must be analyst, dept_admin, platform_admin or auditor; got %q", u.Role)
	}
	if !sluice.ValidIdentifier(u.Department) {
		return nil, sluice.Errorf(sluice.EInvalid, "department: must be a department id, got %q", u.Department)
	}
	if u.CertFingerprint != "" {
		u.CertFingerprint = strings.ToLower(u.CertFingerprint)
		if !fingerprintRE.MatchString(u.CertFingerprint) {
			return nil, sluice.Errorf(sluice.EInvalid, "cert_fingerprint: must be sha256:<64 hex> of the client certificate")
		}
	}
	old, err := w.store.User(ctx, u.Name)
	switch {
	case err == nil:
		u.CreatedAt, u.CreatedBy = old.CreatedAt, old.CreatedBy
	case sluice.ErrorCode(err) == sluice.ENotFound:
		u.CreatedAt, u.CreatedBy = w.now(), p.Name
	default:
		return nil, err
	}
	if err := w.store.PutUser(ctx, u); err != nil {
		return nil, err
	}
	return &u, w.Reload(ctx)
}

// IssuedToken is a new token: the secret is in this answer only.
type IssuedToken struct {
	sluice.Token
	Secret string `json:"token"`
}

// IssueToken creates a token for a user, valid for ttl (default 90 days,
// at most 366). The platform admin issues for anyone; a user may issue
// for itself.
func (w *Service) IssueToken(ctx context.Context, p sluice.Principal, user, label string, ttl time.Duration) (*IssuedToken, error) {
	if p.Role != sluice.RolePlatformAdmin && p.Name != user {
		return nil, denied("only the platform admin issues tokens for other users")
	}
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < time.Minute || ttl > MaxTokenTTL {
		return nil, sluice.Errorf(sluice.EInvalid, "ttl: must be between 1m and %s (e.g. 720h); tokens always expire", MaxTokenTTL)
	}
	u, err := w.store.User(ctx, user)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, sluice.Errorf(sluice.EConflict, "user %s is disabled; enable it first", user)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "random token: %v", err)
	}
	secret := "slc_" + hex.EncodeToString(b[:])
	var id [6]byte
	rand.Read(id[:])
	now := w.now()
	t := sluice.Token{ID: "tok-" + hex.EncodeToString(id[:]), User: user, SHA256: state.HashToken(secret), Label: label, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := w.store.AddToken(ctx, t); err != nil {
		return nil, err
	}
	return &IssuedToken{Token: t, Secret: secret}, w.Reload(ctx)
}

// ListTokens lists a user's tokens (never their secrets).
func (w *Service) ListTokens(ctx context.Context, p sluice.Principal, user string) ([]sluice.Token, error) {
	if p.Role != sluice.RolePlatformAdmin && p.Role != sluice.RoleAuditor && p.Name != user {
		return nil, denied("you may list only your own tokens")
	}
	ts, err := w.store.Tokens(ctx, user)
	if ts == nil {
		ts = []sluice.Token{}
	}
	return ts, err
}

// RevokeToken ends a token at once: its owner or the platform admin.
func (w *Service) RevokeToken(ctx context.Context, p sluice.Principal, id string) error {
	all, err := w.store.Tokens(ctx, "")
	if err != nil {
		return err
	}
	for _, t := range all {
		if t.ID != id {
			continue
		}
		if p.Role != sluice.RolePlatformAdmin && p.Name != t.User {
			break
		}
		if err := w.store.RevokeToken(ctx, id, w.now()); err != nil {
			return err
		}
		return w.Reload(ctx)
	}
	return sluice.Errorf(sluice.ENotFound, "no token %s that you may revoke", id)
}
