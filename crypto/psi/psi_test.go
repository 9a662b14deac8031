package psi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"

	fp "github.com/cloudflare/circl/math/fp25519"

	sluice "github.com/sluice-gov/sluice"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"１１０１０５１９４９１２３１００２ｘ", "11010519491231002X"},
		{"11010519491231002x", "11010519491231002X"},
		{"11010519491231002X", "11010519491231002X"},
		{" 110105 1949 1231 002x\t\n", "11010519491231002X"},
		{"110105\u3000194912310021", "110105194912310021"},       // ideographic space
		{"\ufeff110105194912\u200b310021", "110105194912310021"}, // BOM, zero-width space
		{"１１０１０５ １９４９１２３１００２Ｘ", "11010519491231002X"},
		{"91110000ＭＡ０１ａｂｃｄ５Ｘ", "91110000MA01ABCD5X"}, // credit code, full-width letters
		{"", ""},
		{"   ", ""},
		{"\u3000", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got := Normalize(tt.in)
			if got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := Normalize(got); again != got {
				t.Errorf("Normalize is not idempotent: %q → %q", got, again)
			}
		})
	}
}

func mustSecret(t testing.TB) *Secret {
	t.Helper()
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDoubleBlindingCommutes(t *testing.T) {
	a, b := mustSecret(t), mustSecret(t)
	for _, k := range []string{"110105194912310021", "11010519491231002X", "A"} {
		ab, err := b.Reblind(a.Blind(k, "person"))
		if err != nil {
			t.Fatal(err)
		}
		ba, err := a.Reblind(b.Blind(k, "person"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ab, ba) {
			t.Errorf("b·a·H(%s) != a·b·H(%s)", k, k)
		}
		if len(ab) != PointLen {
			t.Errorf("encoded point is %d bytes, want %d", len(ab), PointLen)
		}
	}
}

func TestDifferentKeysAndDomainsDoNotMatch(t *testing.T) {
	a, b := mustSecret(t), mustSecret(t)
	double := func(k, domain string) []byte {
		d, err := b.Reblind(a.Blind(k, domain))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	seen := map[string]string{}
	for _, k := range []string{"110105194912310021", "110105194912310022", "11010519491231002X", "1"} {
		for _, dom := range []string{"person", "enterprise"} {
			d := string(double(k, dom))
			if prev, dup := seen[d]; dup {
				t.Errorf("%s/%s matches %s", k, dom, prev)
			}
			seen[d] = k + "/" + dom
		}
	}
	// Fresh secrets: the same key blinds differently.
	if bytes.Equal(a.Blind("1", "person"), b.Blind("1", "person")) {
		t.Error("two secrets blind a key to the same value")
	}
}

func TestNormalisationMakesVariantsMatch(t *testing.T) {
	a, b := mustSecret(t), mustSecret(t)
	ka := []string{"１１０１０５１９４９１２３１００２ｘ", " 110105 194912310033 "}
	kb := []string{"110105194912310033", "11010519491231002X", "110105194912310044"}
	norm := func(ks []string) []string {
		out := make([]string, len(ks))
		for i, k := range ks {
			out[i] = Normalize(k)
		}
		return out
	}
	ctx := context.Background()
	a1, err := a.BlindAll(ctx, norm(ka), "person")
	if err != nil {
		t.Fatal(err)
	}
	b1, err := b.BlindAll(ctx, norm(kb), "person")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := b.ReblindAll(ctx, a1)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := a.ReblindAll(ctx, b1)
	if err != nil {
		t.Fatal(err)
	}
	got := Match(a2, b2)
	want := [][2]int32{{0, 1}, {1, 0}}
	if !slices.Equal(got, want) {
		t.Errorf("Match = %v, want %v", got, want)
	}
}

func TestInvalidPointsRejected(t *testing.T) {
	s := mustSecret(t)
	valid := s.Blind("110105194912310021", "person")
	zero := make([]byte, PointLen) // u = 0: the point of order 2
	one := make([]byte, PointLen)
	one[0] = 1                                           // u = 1: small order (on the twist)
	nonCanonical := bytes.Repeat([]byte{0xff}, PointLen) // top bit set and ≥ p
	pItself := fp.P()                                    // p ≡ 0, but not canonical
	pPlusOne := fp.P()
	pPlusOne[0]++
	tests := map[string][]byte{
		"nil":           nil,
		"short":         valid[:31],
		"long":          append(slices.Clone(valid), 0),
		"zero":          zero,
		"one":           one,
		"non-canonical": nonCanonical,
		"p":             pItself[:],
		"p+1":           pPlusOne[:],
		"twist point":   twistPoint(t),
		"order-8 point": order8Point(t),
		"p256 point":    append([]byte{0x02}, valid...),
		"top bit set":   setTopBit(valid),
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := s.Reblind(p)
			wantInvalid(t, err)
			_, err = s.ReblindAll(context.Background(), [][]byte{valid, valid, p})
			wantInvalid(t, err)
			if err != nil && !bytes.Contains([]byte(err.Error()), []byte("index 2")) {
				t.Errorf("error %q does not name index 2", err)
			}
		})
	}
	if _, err := s.Reblind(valid); err != nil {
		t.Errorf("a valid point was rejected: %v", err)
	}
}

func wantInvalid(t *testing.T, err error) {
	t.Helper()
	var e *sluice.Error
	if !errors.As(err, &e) || e.Code != sluice.EInvalid {
		t.Fatalf("got %v, want an EInvalid *sluice.Error", err)
	}
}

func TestDestroy(t *testing.T) {
	s := mustSecret(t)
	s.Destroy()
	s.Destroy()
	if s.Blind("1", "person") != nil {
		t.Error("Blind works after Destroy")
	}
	if _, err := s.Reblind(mustSecret(t).Blind("1", "person")); sluice.ErrorCode(err) != sluice.ENotFound {
		t.Errorf("Reblind after Destroy: %v, want ENotFound", err)
	}
	if got := fmt.Sprintf("%v %+v %#v %s", s, s, s, s); bytes.Contains([]byte(got), []byte("0x")) {
		t.Errorf("a Secret prints internals: %s", got)
	}
}

func TestBatchesHonourCancellation(t *testing.T) {
	s := mustSecret(t)
	keys := make([]string, 20000)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.BlindAll(ctx, keys, "person"); !errors.Is(err, context.Canceled) {
		t.Errorf("BlindAll on a cancelled context: %v", err)
	}
	if _, err := s.ReblindAll(ctx, [][]byte{s.Blind("1", "person")}); !errors.Is(err, context.Canceled) {
		t.Errorf("ReblindAll on a cancelled context: %v", err)
	}
	if _, err := s.BlindAll(context.Background(), keys, ""); sluice.ErrorCode(err) != sluice.EInvalid {
		t.Errorf("BlindAll with an empty domain: %v", err)
	}
}

func TestBatchMatchesSingle(t *testing.T) {
	s := mustSecret(t)
	keys := make([]string, 3000) // several chunks
	for i := range keys {
		keys[i] = fmt.Sprintf("1101051949%08d", i)
	}
	for _, i := range []int{0, 7, 511, 512, len(keys) - 1} {
		keys[i] = "" // absent, also at the ends of a chunk (one shared inversion each)
	}
	all, err := s.BlindAll(context.Background(), keys, "person")
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if k == "" {
			if all[i] != nil {
				t.Errorf("absent key %d blinded to a value", i)
			}
			continue
		}
		if !bytes.Equal(all[i], s.Blind(k, "person")) {
			t.Fatalf("BlindAll[%d] differs from Blind", i)
		}
	}
}

func TestMatchDuplicatesAndAbsent(t *testing.T) {
	v := func(s string) []byte { return []byte(s) }
	a := [][]byte{v("x"), nil, v("y"), v("x"), {}}
	b := [][]byte{v("y"), v("x"), nil, v("x"), {}}
	got := Match(a, b)
	want := [][2]int32{{0, 1}, {0, 3}, {2, 0}, {3, 1}, {3, 3}}
	if !slices.Equal(got, want) {
		t.Errorf("Match = %v, want %v", got, want)
	}
}

// TestBrokerViewRevealsNoKeys runs the whole protocol between two parties
// and inspects everything the broker holds: both singly blinded sets and
// both doubly blinded sets. None of it may contain a raw key, a normalised
// key or the unblinded hash H(k) of any key; the two parties' singly
// blinded values of a shared key must differ (the broker cannot match
// them); and the doubly blinded sets must match on exactly the
// intersection.
func TestBrokerViewRevealsNoKeys(t *testing.T) {
	const domain = "person"
	rawA := []string{"110105194912310021", "１１０１０５１９４９１２３１００２ｘ", "110105195001010011", "440301198803030033"}
	rawB := []string{"11010519491231002X", "110105194912310021", "650102197707070077", " 440301198803030033 "}
	a, b := mustSecret(t), mustSecret(t)
	ctx := context.Background()
	normAll := func(ks []string) []string {
		out := make([]string, len(ks))
		for i, k := range ks {
			out[i] = Normalize(k)
		}
		return out
	}
	nA, nB := normAll(rawA), normAll(rawB)

	// Round 1: each agent blinds its own keys; the broker receives them.
	brokerA1, err := a.BlindAll(ctx, nA, domain)
	if err != nil {
		t.Fatal(err)
	}
	brokerB1, err := b.BlindAll(ctx, nB, domain)
	if err != nil {
		t.Fatal(err)
	}
	// Round 2: the broker relays crosswise; each agent reblinds.
	brokerB2, err := a.ReblindAll(ctx, brokerB1)
	if err != nil {
		t.Fatal(err)
	}
	brokerA2, err := b.ReblindAll(ctx, brokerA1)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string][][]byte{"A singly": brokerA1, "B singly": brokerB1, "A doubly": brokerA2, "B doubly": brokerB2}

	// What must not appear: raw keys, normalised keys, H(k) encodings.
	var forbidden []struct {
		what string
		b    []byte
	}
	add := func(what string, b []byte) {
		forbidden = append(forbidden, struct {
			what string
			b    []byte
		}{what, b})
	}
	for _, k := range append(append([]string{}, rawA...), rawB...) {
		add("raw key "+k, []byte(k))
		n := Normalize(k)
		add("normalised key "+n, []byte(n))
		hb, err := hashToGroup(n, domain)
		if err != nil {
			t.Fatal(err)
		}
		h := hb[:]
		add("H("+n+")", h)
		// Not even a long enough piece of a key or of its hash.
		add("prefix of "+n, []byte(n[:8]))
		add("prefix of H("+n+")", h[:8])
	}
	var all []byte
	for name, set := range held {
		for i, v := range set {
			if len(v) != PointLen {
				t.Errorf("%s[%d] is %d bytes, want %d", name, i, len(v), PointLen)
			}
			all = append(all, v...)
			all = append(all, 0)
			for _, f := range forbidden {
				if bytes.Equal(v, f.b) || bytes.Contains(v, f.b) {
					t.Errorf("the broker's %s[%d] contains %s", name, i, f.what)
				}
			}
		}
	}
	for _, f := range forbidden {
		if bytes.Contains(all, f.b) {
			t.Errorf("the broker's view contains %s", f.what)
		}
	}

	// The singly blinded values of shared keys differ between the parties,
	// and no singly blinded value of A equals any of B's.
	singlyB := map[string]bool{}
	for _, v := range brokerB1 {
		singlyB[string(v)] = true
	}
	for i, v := range brokerA1 {
		if singlyB[string(v)] {
			t.Errorf("A's singly blinded value %d equals one of B's: the broker could match without the agents", i)
		}
	}
	// Singly blinded values do not match the doubly blinded ones either.
	if len(Match(brokerA1, brokerB2)) != 0 || len(Match(brokerB1, brokerA2)) != 0 {
		t.Error("a singly blinded set matches a doubly blinded one")
	}

	// The doubly blinded sets match on exactly the intersection of the
	// normalised keys.
	var got, want []string
	for _, p := range Match(brokerA2, brokerB2) {
		got = append(got, fmt.Sprintf("%d-%d", p[0], p[1]))
	}
	for i, x := range nA {
		for j, y := range nB {
			if x == y {
				want = append(want, fmt.Sprintf("%d-%d", i, j))
			}
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) || len(want) != 3 {
		t.Errorf("matched %v, want %v (3 pairs)", got, want)
	}
}
