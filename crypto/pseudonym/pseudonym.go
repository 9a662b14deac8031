// Package pseudonym turns the identifiers of persons (privacy units) into
// keyed 64-bit pseudonyms, so that the broker can count and compare sets of
// persons without ever learning who they are.
//
// A department agent holds one secret Key. For each scope (for example the
// requesting department and the protected dataset, "civil|health.insured")
// it derives a scope key
//
//	scopeKey = first 16 bytes of HMAC-SHA256(secret, "sluice-unit-v2\x00" + scope)
//
// and a person's pseudonym in that scope is SipHash-2-4(scopeKey, id): a
// pseudorandom function made for short inputs, ten times faster than an
// HMAC on an 18-character identity number, which matters because an
// aggregate release hashes every person behind it. Without the secret the pseudonyms
// cannot be linked to identifiers (a dictionary of all identity numbers
// does not help), and pseudonyms of different scopes cannot be linked to
// each other.
//
// Rotating the secret (a new key file) changes every pseudonym: releases
// made before and after the rotation can no longer be compared by the
// broker's differencing guard, so the key should be kept for at least as
// long as the guard remembers releases.
//
// 64-bit pseudonyms of distinct persons collide with probability about
// n²/2⁶⁵ among n persons (about 10⁻⁵ for 20 million persons); a collision
// merges two persons into one unit, which can only make a group look
// smaller than it is.
//
// # Key file
//
// The key file holds the 32-byte secret as 64 hexadecimal digits; leading
// and trailing white space (a final newline) is ignored and nothing else
// is allowed. LoadOrCreate creates it with crypto/rand, mode 0600, in a
// directory it creates with mode 0700 if missing. A file that exists but
// does not hold such a key is never replaced.
package pseudonym

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	sluice "github.com/sluice-gov/sluice"
)

// KeySize is the size of the secret in bytes.
const KeySize = 32

// scopeLabel prefixes the scope in the derivation of a scope key; the NUL
// separates it from the scope so no scope can imitate another label.
const scopeLabel = "sluice-unit-v2\x00"

// Key is an agent's pseudonym secret. It is safe for concurrent use; the
// Hashers it makes are not.
type Key struct {
	secret [KeySize]byte
}

// NewRandom returns a fresh random key, for an agent that does not keep
// its pseudonyms comparable across restarts.
func NewRandom() (*Key, error) {
	k := new(Key)
	if _, err := rand.Read(k.secret[:]); err != nil {
		return nil, sluice.Errorf(sluice.EInternal, "pseudonym key cannot be generated: %v", err)
	}
	return k, nil
}

// FromBytes returns the key whose secret is b, which must be exactly
// KeySize bytes. b is copied.
func FromBytes(b []byte) (*Key, error) {
	if len(b) != KeySize {
		return nil, sluice.Errorf(sluice.EInvalid, "a pseudonym key is %d bytes; got %d", KeySize, len(b))
	}
	k := new(Key)
	copy(k.secret[:], b)
	return k, nil
}

// LoadOrCreate reads the key file at path or, when it does not exist,
// creates it with a new random key (mode 0600; a missing parent directory
// is created with mode 0700). The file holds 64 hexadecimal digits (see
// the package documentation). A file that exists but is malformed is an
// EInvalid error and is left as it is.
func LoadOrCreate(path string) (*Key, error) {
	if path == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "the pseudonym key path is empty")
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		data, err = create(path)
	}
	if err != nil {
		return nil, &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("pseudonym key %s cannot be read: %v", path, err), Err: err}
	}
	return parseFile(path, data)
}

func parseFile(path string, data []byte) (*Key, error) {
	text := bytes.TrimSpace(data)
	fix := "restore the right key file, or move this one away to create a new key (which makes earlier releases incomparable)"
	if len(text) != 2*KeySize {
		return nil, sluice.Errorf(sluice.EInvalid,
			"pseudonym key %s must hold %d hexadecimal digits (a %d-byte secret); it holds %d characters. It was not replaced: %s",
			path, 2*KeySize, KeySize, len(text), fix)
	}
	k := new(Key)
	if _, err := hex.Decode(k.secret[:], text); err != nil {
		return nil, sluice.Errorf(sluice.EInvalid,
			"pseudonym key %s is not hexadecimal (%v). It was not replaced: %s", path, err, fix)
	}
	return k, nil
}

// create writes a new key to path and returns the file's content. The key
// is written to a temporary file first and linked into place, so a
// concurrent reader never sees a half-written key; if another process
// created path meanwhile, its key is read and used.
func create(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var secret [KeySize]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, err
	}
	data := []byte(hex.EncodeToString(secret[:]) + "\n")
	tmp, err := os.CreateTemp(dir, ".pseudonym-key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	switch err := os.Link(tmp.Name(), path); {
	case err == nil:
		return data, nil
	case errors.Is(err, os.ErrExist):
		return os.ReadFile(path) // another process won the race
	default:
		// No hard links on this file system: create it exclusively.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return os.ReadFile(path)
		}
		if err != nil {
			return nil, err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			os.Remove(path)
			return nil, err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(path)
			return nil, err
		}
		return data, f.Close()
	}
}

// Scope returns a Hasher for the pseudonyms of one scope, keyed with the
// first 16 bytes of HMAC-SHA256(secret, "sluice-unit-v2\x00" + scope).
func (k *Key) Scope(scope string) *Hasher {
	m := hmac.New(sha256.New, k.secret[:])
	m.Write([]byte(scopeLabel))
	m.Write([]byte(scope))
	var sk [sha256.Size]byte
	m.Sum(sk[:0])
	return &Hasher{k0: binary.LittleEndian.Uint64(sk[0:8]), k1: binary.LittleEndian.Uint64(sk[8:16])}
}

// Hasher computes the pseudonyms of one scope. It holds only its key, so
// it is safe for concurrent use.
type Hasher struct {
	k0, k1 uint64
}

// Unit returns the pseudonym of the identifier value: SipHash-2-4 under
// the scope key. It does not allocate. Callers should normalise
// identifiers first (one spelling per person, e.g. upper-case check
// digits), since different bytes give unrelated pseudonyms.
func (h *Hasher) Unit(value []byte) uint64 { return sipHash24(h.k0, h.k1, value) }

// UnitString is Unit of a string, without copying it.
func (h *Hasher) UnitString(value string) uint64 { return sipHash24String(h.k0, h.k1, value) }
