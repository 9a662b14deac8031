package audit

import "github.com/sluice-gov/sluice/crypto/auditchain"

// Checkpoint keys are auditchain's; these names re-export them.

// Signature algorithms of checkpoints.
const (
	AlgEd25519 = auditchain.AlgEd25519
	AlgMLDSA65 = auditchain.AlgMLDSA65
)

type (
	// Signer signs checkpoints (auditchain.Signer).
	Signer = auditchain.Signer
	// PublicKey is a key an auditor trusts to have signed checkpoints
	// (auditchain.PublicKey).
	PublicKey = auditchain.PublicKey
)

// LoadOrCreateEd25519 loads or creates an Ed25519 checkpoint key
// (auditchain.LoadOrCreateEd25519).
func LoadOrCreateEd25519(path string) (Signer, error) { return auditchain.LoadOrCreateEd25519(path) }

// LoadOrCreateMLDSA65 loads or creates an ML-DSA-65 checkpoint key
// (auditchain.LoadOrCreateMLDSA65).
func LoadOrCreateMLDSA65(path string) (Signer, error) { return auditchain.LoadOrCreateMLDSA65(path) }

// WritePublicKey writes s's public key for auditors
// (auditchain.WritePublicKey).
func WritePublicKey(path string, s Signer) error { return auditchain.WritePublicKey(path, s) }

// LoadPublicKey reads a public key (auditchain.LoadPublicKey).
func LoadPublicKey(path string) (PublicKey, error) { return auditchain.LoadPublicKey(path) }
