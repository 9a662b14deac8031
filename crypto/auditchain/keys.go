package auditchain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	sluice "github.com/sluice-gov/sluice"
)

// Signature algorithms of checkpoints.
const (
	AlgEd25519  = "ed25519"
	AlgMLDSA65  = "ml-dsa-65"
	pemPubType  = "SLUICE AUDIT PUBLIC KEY"
	pemMLDSAKey = "ML-DSA-65 PRIVATE KEY"
)

// Signer signs checkpoints. KeyID is "sha256:" followed by the hex SHA-256
// of PublicKey.
type Signer interface {
	Algorithm() string // AlgEd25519 or AlgMLDSA65
	KeyID() string
	PublicKey() []byte
	Sign(msg []byte) ([]byte, error)
}

// PublicKey is a key an auditor trusts to have signed checkpoints.
type PublicKey struct {
	Algorithm string
	Key       []byte
}

// KeyID is the identifier signatures by this key carry.
func (k PublicKey) KeyID() string { return keyID(k.Key) }

func keyID(pub []byte) string {
	s := sha256.Sum256(pub)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Check reports whether k is a key of a known algorithm and the right size.
func (k PublicKey) Check() error {
	switch k.Algorithm {
	case AlgEd25519:
		if len(k.Key) != ed25519.PublicKeySize {
			return sluice.Errorf(sluice.EInvalid, "ed25519 public key must be %d bytes; got %d", ed25519.PublicKeySize, len(k.Key))
		}
	case AlgMLDSA65:
		if len(k.Key) != mldsa65.PublicKeySize {
			return sluice.Errorf(sluice.EInvalid, "ml-dsa-65 public key must be %d bytes; got %d", mldsa65.PublicKeySize, len(k.Key))
		}
	default:
		return sluice.Errorf(sluice.EInvalid, "public key algorithm must be %s or %s; got %q", AlgEd25519, AlgMLDSA65, k.Algorithm)
	}
	return nil
}

// Verify reports whether sig is k's signature of msg.
func (k PublicKey) Verify(msg, sig []byte) bool {
	switch k.Algorithm {
	case AlgEd25519:
		return len(k.Key) == ed25519.PublicKeySize && ed25519.Verify(ed25519.PublicKey(k.Key), msg, sig)
	case AlgMLDSA65:
		var pk mldsa65.PublicKey
		if err := pk.UnmarshalBinary(k.Key); err != nil {
			return false
		}
		return mldsa65.Verify(&pk, msg, nil, sig)
	}
	return false
}

type ed25519Signer struct{ key ed25519.PrivateKey }

func (s *ed25519Signer) Algorithm() string { return AlgEd25519 }
func (s *ed25519Signer) PublicKey() []byte { return bytes.Clone(s.key.Public().(ed25519.PublicKey)) }
func (s *ed25519Signer) KeyID() string     { return keyID(s.key.Public().(ed25519.PublicKey)) }
func (s *ed25519Signer) Sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(s.key, msg), nil
}

type mldsaSigner struct {
	sk  *mldsa65.PrivateKey
	pub []byte
}

func (s *mldsaSigner) Algorithm() string { return AlgMLDSA65 }
func (s *mldsaSigner) PublicKey() []byte { return bytes.Clone(s.pub) }
func (s *mldsaSigner) KeyID() string     { return keyID(s.pub) }

// Sign uses the hedged (randomized) variant of ML-DSA with an empty context.
func (s *mldsaSigner) Sign(msg []byte) ([]byte, error) {
	sig := make([]byte, mldsa65.SignatureSize)
	if err := mldsa65.SignTo(s.sk, msg, nil, true, sig); err != nil {
		return nil, err
	}
	return sig, nil
}

// LoadOrCreateEd25519 loads the Ed25519 checkpoint key from path (PEM
// "PRIVATE KEY", PKCS#8, as openssl genpkey -algorithm ed25519 writes) or,
// when the file does not exist, generates one and writes it with mode 0600.
// The directory must exist. A file that exists but does not hold an Ed25519
// key is an error; it is never replaced.
func LoadOrCreateEd25519(path string) (Signer, error) {
	return loadOrCreate(path, "ed25519", func() ([]byte, error) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}, func(b *pem.Block) (Signer, error) {
		if b.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("PEM block is %q; want \"PRIVATE KEY\" (PKCS#8)", b.Type)
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, err
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("the key is a %T, not an Ed25519 key", k)
		}
		return &ed25519Signer{key: ek}, nil
	})
}

// LoadOrCreateMLDSA65 loads the ML-DSA-65 checkpoint key from path or
// creates it (mode 0600) when the file does not exist. The file is PEM of
// type "ML-DSA-65 PRIVATE KEY" holding the 32-byte seed the key is derived
// from (FIPS 204 ML-DSA.KeyGen_internal), which is both smaller and more
// portable than the expanded key. A file that exists but does not hold such
// a key is an error; it is never replaced.
func LoadOrCreateMLDSA65(path string) (Signer, error) {
	return loadOrCreate(path, "ml-dsa-65", func() ([]byte, error) {
		var seed [mldsa65.SeedSize]byte
		if _, err := rand.Read(seed[:]); err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: pemMLDSAKey, Bytes: seed[:]}), nil
	}, func(b *pem.Block) (Signer, error) {
		if b.Type != pemMLDSAKey {
			return nil, fmt.Errorf("PEM block is %q; want %q", b.Type, pemMLDSAKey)
		}
		if len(b.Bytes) != mldsa65.SeedSize {
			return nil, fmt.Errorf("the seed is %d bytes; want %d", len(b.Bytes), mldsa65.SeedSize)
		}
		var seed [mldsa65.SeedSize]byte
		copy(seed[:], b.Bytes)
		pk, sk := mldsa65.NewKeyFromSeed(&seed)
		return &mldsaSigner{sk: sk, pub: pk.Bytes()}, nil
	})
}

func loadOrCreate(path, what string, create func() ([]byte, error), parse func(*pem.Block) (Signer, error)) (Signer, error) {
	if path == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "%s checkpoint key path is empty", what)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		data, err = create()
		if err != nil {
			return nil, sluice.Errorf(sluice.EInternal, "%s key cannot be generated: %v", what, err)
		}
		if err := writeExclusive(path, data, 0o600); err != nil {
			return nil, &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("%s checkpoint key %s cannot be created: %v", what, path, err), Err: err}
		}
	} else if err != nil {
		return nil, &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("%s checkpoint key %s cannot be read: %v", what, path, err), Err: err}
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "%s checkpoint key %s is readable by others (mode %v); run chmod 600 on it", what, path, fi.Mode().Perm())
	}
	b, rest := pem.Decode(data)
	if b == nil {
		return nil, sluice.Errorf(sluice.EInvalid, "%s checkpoint key %s is not a PEM file; it was not replaced: restore it or move it away to create a new key", what, path)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "%s checkpoint key %s has data after its PEM block; it was not replaced", what, path)
	}
	s, err := parse(b)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "%s checkpoint key %s is not usable: %v; it was not replaced", what, path, err)
	}
	return s, nil
}

// writeExclusive creates path (failing if it exists) and syncs it.
func writeExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// WritePublicKey writes s's public key to path as PEM of type
// "SLUICE AUDIT PUBLIC KEY" with headers Algorithm and Key-ID, the form
// LoadPublicKey reads and auditors pass to `sluice audit verify`. An
// existing file is not overwritten.
func WritePublicKey(path string, s Signer) error {
	if s == nil {
		return sluice.Errorf(sluice.EInvalid, "no signer given")
	}
	k := PublicKey{Algorithm: s.Algorithm(), Key: s.PublicKey()}
	if err := k.Check(); err != nil {
		return err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemPubType, Headers: map[string]string{"Algorithm": k.Algorithm, "Key-ID": k.KeyID()}, Bytes: k.Key})
	if err := writeExclusive(path, data, 0o644); err != nil {
		return &sluice.Error{Code: sluice.EUnavailable, Message: fmt.Sprintf("public key %s cannot be written: %v", path, err), Err: err}
	}
	return nil
}

// LoadPublicKey reads a public key written by WritePublicKey, or an Ed25519
// key in standard PEM "PUBLIC KEY" (PKIX) form.
func LoadPublicKey(path string) (PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		code := sluice.EUnavailable
		if errors.Is(err, os.ErrNotExist) {
			code = sluice.EInvalid
		}
		return PublicKey{}, &sluice.Error{Code: code, Message: fmt.Sprintf("public key %s cannot be read: %v", path, err), Err: err}
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return PublicKey{}, sluice.Errorf(sluice.EInvalid, "public key %s is not a PEM file", path)
	}
	var k PublicKey
	switch b.Type {
	case pemPubType:
		k = PublicKey{Algorithm: b.Headers["Algorithm"], Key: b.Bytes}
		if id, ok := b.Headers["Key-ID"]; ok && k.Check() == nil && id != k.KeyID() {
			return PublicKey{}, sluice.Errorf(sluice.EInvalid, "public key %s: its Key-ID header %s does not match the key (%s)", path, id, k.KeyID())
		}
	case "PUBLIC KEY":
		pk, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return PublicKey{}, sluice.Errorf(sluice.EInvalid, "public key %s: %v", path, err)
		}
		ek, ok := pk.(ed25519.PublicKey)
		if !ok {
			return PublicKey{}, sluice.Errorf(sluice.EInvalid, "public key %s holds a %T; checkpoints are signed with ed25519 or ml-dsa-65", path, pk)
		}
		k = PublicKey{Algorithm: AlgEd25519, Key: []byte(ek)}
	default:
		return PublicKey{}, sluice.Errorf(sluice.EInvalid, "public key %s has PEM type %q; want %q", path, b.Type, pemPubType)
	}
	if err := k.Check(); err != nil {
		return PublicKey{}, sluice.Errorf(sluice.EInvalid, "public key %s: %s", path, sluice.ErrorMessage(err))
	}
	return k, nil
}
