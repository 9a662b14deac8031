package pseudonym

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	sluice "github.com/sluice-gov/sluice"
)

func testKey(t testing.TB) *Key {
	t.Helper()
	k, err := FromBytes(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestUnitMatchesDefinition(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, KeySize)
	k := testKey(t)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("sluice-unit-v1\x00civil|health.insured"))
	scopeKey := m.Sum(nil)
	m = hmac.New(sha256.New, scopeKey)
	m.Write([]byte("110101199003071234"))
	want := binary.LittleEndian.Uint64(m.Sum(nil))
	if got := k.Scope("civil|health.insured").Unit([]byte("110101199003071234")); got != want {
		t.Fatalf("Unit = %x, want %x", got, want)
	}
}

func TestDeterministic(t *testing.T) {
	k := testKey(t)
	h1, h2 := k.Scope("civil|health.insured"), k.Scope("civil|health.insured")
	id := []byte("110101199003071234")
	a := h1.Unit(id)
	for range 3 {
		if h1.Unit(id) != a || h2.Unit(id) != a {
			t.Fatal("the same id gave different pseudonyms")
		}
	}
	if h1.Unit([]byte("110101199003071235")) == a {
		t.Fatal("different ids gave the same pseudonym")
	}
	// The same key loaded from bytes gives the same pseudonyms.
	k2, _ := FromBytes(bytes.Repeat([]byte{7}, KeySize))
	if k2.Scope("civil|health.insured").Unit(id) != a {
		t.Fatal("a key from the same bytes gave another pseudonym")
	}
	// Another key gives another pseudonym.
	k3, _ := FromBytes(bytes.Repeat([]byte{8}, KeySize))
	if k3.Scope("civil|health.insured").Unit(id) == a {
		t.Fatal("another key gave the same pseudonym")
	}
}

func TestScopeSeparation(t *testing.T) {
	k := testKey(t)
	id := []byte("110101199003071234")
	seen := map[uint64]string{}
	for _, sc := range []string{"civil|health.insured", "civil|health.claims", "tax|health.insured", "", "civil", "civil|"} {
		u := k.Scope(sc).Unit(id)
		if prev, ok := seen[u]; ok {
			t.Fatalf("scopes %q and %q gave the same pseudonym", prev, sc)
		}
		seen[u] = sc
	}
}

func TestNewRandom(t *testing.T) {
	a, err := NewRandom()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRandom()
	if err != nil {
		t.Fatal(err)
	}
	if a.secret == b.secret {
		t.Fatal("two random keys are equal")
	}
}

func TestFromBytesSize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		_, err := FromBytes(make([]byte, n))
		if sluice.ErrorCode(err) != sluice.EInvalid {
			t.Fatalf("FromBytes(%d bytes) = %v, want EInvalid", n, err)
		}
	}
	b := bytes.Repeat([]byte{1}, KeySize)
	k, _ := FromBytes(b)
	b[0] = 2 // the key keeps its own copy
	if k.secret[0] != 1 {
		t.Fatal("FromBytes did not copy")
	}
}

func TestLoadOrCreateRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys", "agent") // missing parents
	path := filepath.Join(dir, "pseudonym.key")
	k1, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("key directory mode %v, want 0700", di.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if len(data) != 65 || data[64] != '\n' {
		t.Fatalf("key file is %q, want 64 hex digits and a newline", data)
	}
	k2, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.secret != k2.secret {
		t.Fatal("the key read back differs from the one created")
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d files, want 1", len(ents))
	}
}

func TestLoadExistingHex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	secret := bytes.Repeat([]byte{0xab}, KeySize)
	if err := os.WriteFile(path, []byte("  "+strings.ToUpper(hex.EncodeToString(secret))+"\r\n\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	k, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.secret[:], secret) {
		t.Fatal("wrong secret")
	}
}

func TestLoadMalformed(t *testing.T) {
	cases := map[string]string{
		"empty":       "",
		"short":       strings.Repeat("ab", 31),
		"long":        strings.Repeat("ab", 33),
		"not hex":     strings.Repeat("zz", 32),
		"raw bytes":   strings.Repeat("\x01", 32),
		"inner space": strings.Repeat("ab", 16) + " " + strings.Repeat("ab", 16)[1:],
		"two keys":    strings.Repeat("ab", 32) + "\n" + strings.Repeat("cd", 32),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreate(path)
			if sluice.ErrorCode(err) != sluice.EInvalid || !strings.Contains(err.Error(), "was not replaced") {
				t.Fatalf("got %v, want EInvalid saying it was not replaced", err)
			}
			after, _ := os.ReadFile(path)
			if string(after) != content {
				t.Fatal("the malformed file was changed")
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := LoadOrCreate(""); sluice.ErrorCode(err) != sluice.EInvalid {
		t.Fatalf("empty path: %v", err)
	}
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir); sluice.ErrorCode(err) != sluice.EUnavailable {
		t.Fatalf("a directory: %v", err)
	}
}

func TestConcurrentCreateAgrees(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	keys := make([]*Key, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := LoadOrCreate(path)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k == nil || k.secret != keys[0].secret {
			t.Fatal("concurrent creators got different keys")
		}
	}
}

func TestUnitDoesNotAllocate(t *testing.T) {
	h := testKey(t).Scope("civil|health.insured")
	id := []byte("110101199003071234")
	if n := testing.AllocsPerRun(100, func() { h.Unit(id) }); n != 0 {
		t.Fatalf("Unit allocates %v times per call", n)
	}
}

func BenchmarkUnit(b *testing.B) {
	h := testKey(b).Scope("civil|health.insured")
	id := []byte("110101199003071234")
	b.ReportAllocs()
	var sink uint64
	for b.Loop() {
		sink ^= h.Unit(id)
	}
	_ = sink
}
