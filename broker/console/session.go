package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

const (
	// sessionCookie holds the session id. The __Host- prefix makes the
	// browser refuse it unless it is Secure, has Path=/ and no Domain.
	sessionCookie = "__Host-sluice-console"
	// loginCookie holds the login form's CSRF token before there is a
	// session (double submit: cookie and form field must match).
	loginCookie = "__Host-sluice-login"
	// maxSessions bounds the sessions kept; a login beyond it is refused
	// until some expire.
	maxSessions = 10000
)

// session is what the server keeps of a signed-in browser. The token is
// kept here, never in the cookie, and re-checked on every request.
type session struct {
	token    string
	csrf     string
	created  time.Time
	lastSeen time.Time
}

type sessions struct {
	mu        sync.Mutex
	byHash    map[[32]byte]*session
	idle, max time.Duration
	now       func() time.Time
}

func newSessions(idle, max time.Duration, now func() time.Time) *sessions {
	return &sessions{byHash: map[[32]byte]*session{}, idle: idle, max: max, now: now}
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create opens a session for token; it returns the session id for the
// cookie, or "" when the table is full.
func (s *sessions) create(token string) (string, *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.byHash) >= maxSessions {
		s.pruneLocked(now)
		if len(s.byHash) >= maxSessions {
			return "", nil
		}
	}
	id := randomToken()
	ss := &session{token: token, csrf: randomToken(), created: now, lastSeen: now}
	s.byHash[sha256.Sum256([]byte(id))] = ss
	return id, ss
}

// get is the live session of id, touched; nil when unknown or expired.
func (s *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.byHash[k]
	if ss == nil {
		return nil
	}
	now := s.now()
	if s.expired(ss, now) {
		delete(s.byHash, k)
		return nil
	}
	ss.lastSeen = now
	return ss
}

func (s *sessions) expired(ss *session, now time.Time) bool {
	return now.Sub(ss.lastSeen) > s.idle || now.Sub(ss.created) > s.max
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byHash, sha256.Sum256([]byte(id)))
}

func (s *sessions) pruneLocked(now time.Time) {
	for k, ss := range s.byHash {
		if s.expired(ss, now) {
			delete(s.byHash, k)
		}
	}
}

// equalToken compares two secrets in constant time; empty never matches.
func equalToken(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// secureCookie is a cookie the browser sends only over HTTPS, only to this
// site and never to scripts.
func secureCookie(name, value, path string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode}
}
