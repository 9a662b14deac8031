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
	m.Write([]byte("sluice-unit-v2\x00civil|health.insured"))
	scopeKey := m.Sum(nil)
	k0, k1 := binary.LittleEndian.Uint64(scopeKey[0:8]), binary.LittleEndian.Uint64(scopeKey[8:16])
	want := sipHash24(k0, k1, []byte("110101199003071234"))
	h := k.Scope("civil|health.insured")
	if got := h.Unit([]byte("110101199003071234")); got != want {
		t.Fatalf("Unit = %x, want %x", got, want)
	}
	if got := h.UnitString("110101199003071234"); got != want {
		t.Fatalf("UnitString = %x, want %x", got, want)
	}
}

// sipVectors are the SipHash-2-4 reference outputs (siphash24.c) for key
// 00 01 … 0f and the messages 00 01 … (i-1) of length i = 0..63.
var sipVectors = [64]uint64{
	0x726fdb47dd0e0e31, 0x74f839c593dc67fd, 0x0d6c8009d9a94f5a, 0x85676696d7fb7e2d,
	0xcf2794e0277187b7, 0x18765564cd99a68d, 0xcbc9466e58fee3ce, 0xab0200f58b01d137,
	0x93f5f5799a932462, 0x9e0082df0ba9e4b0, 0x7a5dbbc594ddb9f3, 0xf4b32f46226bada7,
	0x751e8fbc860ee5fb, 0x14ea5627c0843d90, 0xf723ca908e7af2ee, 0xa129ca6149be45e5,
	0x3f2acc7f57c29bdb, 0x699ae9f52cbe4794, 0x4bc1b3f0968dd39c, 0xbb6dc91da77961bd,
	0xbed65cf21aa2ee98, 0xd0f2cbb02e3b67c7, 0x93536795e3a33e88, 0xa80c038ccd5ccec8,
	0xb8ad50c6f649af94, 0xbce192de8a85b8ea, 0x17d835b85bbb15f3, 0x2f2e6163076bcfad,
	0xde4daaaca71dc9a5, 0xa6a2506687956571, 0xad87a3535c49ef28, 0x32d892fad841c342,
	0x7127512f72f27cce, 0xa7f32346f95978e3, 0x12e0b01abb051238, 0x15e034d40fa197ae,
	0x314dffbe0815a3b4, 0x027990f029623981, 0xcadcd4e59ef40c4d, 0x9abfd8766a33735c,
	0x0e3ea96b5304a7d0, 0xad0c42d6fc585992, 0x187306c89bc215a9, 0xd4a60abcf3792b95,
	0xf935451de4f21df2, 0xa9538f0419755787, 0xdb9acddff56ca510, 0xd06c98cd5c0975eb,
	0xe612a3cb9ecba951, 0xc766e62cfcadaf96, 0xee64435a9752fe72, 0xa192d576b245165a,
	0x0a8787bf8ecb74b2, 0x81b3e73d20b49b6f, 0x7fa8220ba3b2ecea, 0x245731c13ca42499,
	0xb78dbfaf3a8d83bd, 0xea1ad565322a1a0b, 0x60e61c23a3795013, 0x6606d7e446282b93,
	0x6ca4ecb15c5f91e1, 0x9f626da15c9625f3, 0xe51b38608ef25f57, 0x958a324ceb064572,
}

func TestSipHashVectors(t *testing.T) {
	var key [16]byte
	msg := make([]byte, 64)
	for i := range 16 {
		key[i] = byte(i)
	}
	for i := range msg {
		msg[i] = byte(i)
	}
	k0, k1 := binary.LittleEndian.Uint64(key[0:8]), binary.LittleEndian.Uint64(key[8:16])
	for i, want := range sipVectors {
		if got := sipHash24(k0, k1, msg[:i]); got != want {
			t.Errorf("length %d: %016x, want %016x", i, got, want)
		}
		if got := sipHash24String(k0, k1, string(msg[:i])); got != want {
			t.Errorf("string, length %d: %016x, want %016x", i, got, want)
		}
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
