package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// Users lists the platform's users sorted by name.
func (s *Store) Users(ctx context.Context) ([]sluice.User, error) {
	return docs[sluice.User](ctx, s, s.db, "user", `SELECT doc FROM wf_users ORDER BY name`)
}

// User returns one user, or ENotFound.
func (s *Store) User(ctx context.Context, name string) (*sluice.User, error) {
	if err := checkKey("user name", name); err != nil {
		return nil, err
	}
	u, ok, err := one[sluice.User](ctx, s, s.db, "user", `SELECT doc FROM wf_users WHERE name = ?`, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, sluice.Errorf(sluice.ENotFound, "user %s does not exist", name)
	}
	return u, nil
}

// PutUser stores u, replacing any user with its name. Users are disabled,
// never deleted, so their tokens, applications and audit entries keep
// naming someone who exists.
func (s *Store) PutUser(ctx context.Context, u sluice.User) error {
	if err := checkKey("user name", u.Name); err != nil {
		return err
	}
	doc, err := encode("user "+u.Name, u)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, `INSERT INTO wf_users(name, doc) VALUES (?, ?)
			ON CONFLICT(name) DO UPDATE SET doc = excluded.doc`, u.Name, doc)
		return err
	})
}

// AddToken records a new token of an existing user (ENotFound otherwise).
// t.SHA256 is the hex SHA-256 of the token (64 digits; upper case is
// stored in lower case, as hex.EncodeToString writes it). A token id or
// hash already stored is EConflict: tokens are never replaced, only
// revoked.
func (s *Store) AddToken(ctx context.Context, t sluice.Token) error {
	if err := checkKey("token id", t.ID); err != nil {
		return err
	}
	if err := checkKey("token's user", t.User); err != nil {
		return err
	}
	t.SHA256 = strings.ToLower(t.SHA256)
	if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != 32 {
		return sluice.Errorf(sluice.EInvalid, "token %s: the SHA-256 must be 64 hex digits", t.ID)
	}
	doc, err := encode("token "+t.ID, t)
	if err != nil {
		return err
	}
	var revoked any
	if t.RevokedAt != nil {
		revoked = micros(*t.RevokedAt)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		switch err := tx.QueryRowContext(ctx, s.d.Rebind(`SELECT 1 FROM wf_users WHERE name = ?`), t.User).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			return sluice.Errorf(sluice.ENotFound, "user %s does not exist; create the user before issuing a token", t.User)
		case err != nil:
			return err
		}
		// DO NOTHING rather than catching a unique violation: on
		// PostgreSQL that error would abort the transaction.
		n, err := s.exec(ctx, tx, `INSERT INTO wf_tokens(id, user_name, sha256, created_us, revoked_us, doc) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, t.ID, t.User, t.SHA256, micros(t.CreatedAt), revoked, doc)
		if err != nil {
			return err
		}
		if n == 0 {
			var sameID int
			err := tx.QueryRowContext(ctx, s.d.Rebind(`SELECT COUNT(*) FROM wf_tokens WHERE id = ?`), t.ID).Scan(&sameID)
			if err != nil {
				return err
			}
			if sameID > 0 {
				return sluice.Errorf(sluice.EConflict, "token %s already exists; issue the new token under another id", t.ID)
			}
			// Never say whose token has this hash.
			return sluice.Errorf(sluice.EConflict, "token %s: another token has the same hash; generate a new token", t.ID)
		}
		return nil
	})
}

// Tokens lists the tokens of user, or of everyone (""), oldest first, each
// with its SHA256.
func (s *Store) Tokens(ctx context.Context, user string) ([]sluice.Token, error) {
	query, args := `SELECT sha256, doc FROM wf_tokens ORDER BY created_us, id`, []any(nil)
	if user != "" {
		if err := checkKey("user name", user); err != nil {
			return nil, err
		}
		query, args = `SELECT sha256, doc FROM wf_tokens WHERE user_name = ? ORDER BY created_us, id`, []any{user}
	}
	rows, err := s.db.QueryContext(ctx, s.d.Rebind(query), args...)
	if err != nil {
		return nil, s.unavailable(err)
	}
	defer rows.Close()
	var out []sluice.Token
	for rows.Next() {
		var sum, doc string
		if err := rows.Scan(&sum, &doc); err != nil {
			return nil, s.unavailable(err)
		}
		var t sluice.Token
		if err := decode("token", doc, &t); err != nil {
			return nil, err
		}
		t.SHA256 = sum
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, s.unavailable(err)
	}
	return out, nil
}

// RevokeToken marks a token revoked at at (now if zero), or returns
// ENotFound. Revoking a revoked token changes nothing, so the record keeps
// the time the token actually stopped working.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if err := checkKey("token id", id); err != nil {
		return err
	}
	if at.IsZero() {
		at = s.now().UTC()
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		t, ok, err := one[sluice.Token](ctx, s, tx, "token", `SELECT doc FROM wf_tokens WHERE id = ?`+s.d.ForUpdate(), id)
		if err != nil {
			return err
		}
		if !ok {
			return sluice.Errorf(sluice.ENotFound, "token %s does not exist", id)
		}
		if t.RevokedAt != nil {
			return nil
		}
		t.RevokedAt = &at
		doc, err := encode("token "+id, t)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `UPDATE wf_tokens SET revoked_us = ?, doc = ? WHERE id = ?`, micros(at), doc, id)
		return err
	})
}
