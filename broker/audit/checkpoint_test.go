package audit

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

func testSigners(t testing.TB) (Signer, Signer) {
	t.Helper()
	dir := t.TempDir()
	ed, err := LoadOrCreateEd25519(filepath.Join(dir, "ed.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ml, err := LoadOrCreateMLDSA65(filepath.Join(dir, "ml.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return ed, ml
}

func pub(s Signer) PublicKey { return PublicKey{Algorithm: s.Algorithm(), Key: s.PublicKey()} }

func TestKeys(t *testing.T) {
	loaders := []struct {
		name string
		load func(string) (Signer, error)
		alg  string
	}{
		{"ed25519", LoadOrCreateEd25519, AlgEd25519},
		{"ml-dsa-65", LoadOrCreateMLDSA65, AlgMLDSA65},
	}
	for _, tc := range loaders {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "key.pem")
			s1, err := tc.load(path)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
			}
			s2, err := tc.load(path)
			if err != nil {
				t.Fatal(err)
			}
			if s1.Algorithm() != tc.alg || s1.KeyID() != s2.KeyID() || !strings.HasPrefix(s1.KeyID(), "sha256:") {
				t.Fatalf("reloaded key differs: %s %s %s", s1.Algorithm(), s1.KeyID(), s2.KeyID())
			}
			msg := []byte("hello")
			sig, err := s2.Sign(msg)
			if err != nil || !pub(s1).Verify(msg, sig) || pub(s1).Verify([]byte("hellO"), sig) {
				t.Fatalf("signature by the reloaded key does not verify (or verifies a different message): %v", err)
			}
			// Public key round trip.
			pp := filepath.Join(dir, "key.pub")
			if err := WritePublicKey(pp, s1); err != nil {
				t.Fatal(err)
			}
			k, err := LoadPublicKey(pp)
			if err != nil || k.Algorithm != tc.alg || k.KeyID() != s1.KeyID() {
				t.Fatalf("LoadPublicKey = %+v, %v", k, err)
			}
			wantCode(t, WritePublicKey(pp, s1), sluice.EUnavailable) // never overwritten

			// Bad files are errors naming the file and are left alone.
			bad := []struct {
				name, content string
				mode          os.FileMode
			}{
				{"not pem", "garbage", 0o600},
				{"wrong block", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 0o600},
				{"world readable", "", 0o644},
			}
			for _, b := range bad {
				p := filepath.Join(dir, strings.ReplaceAll(b.name, " ", "_")+".pem")
				content := []byte(b.content)
				if b.content == "" {
					content, _ = os.ReadFile(path)
				}
				if err := os.WriteFile(p, content, b.mode); err != nil {
					t.Fatal(err)
				}
				os.Chmod(p, b.mode)
				_, err := tc.load(p)
				wantCode(t, err, sluice.EInvalid)
				if !strings.Contains(err.Error(), p) {
					t.Errorf("%s: error %q does not name the file", b.name, err)
				}
				if after, _ := os.ReadFile(p); string(after) != string(content) {
					t.Errorf("%s: the file was replaced", b.name)
				}
			}
			_, err = tc.load(filepath.Join(dir, "no", "such", "key.pem"))
			wantCode(t, err, sluice.EUnavailable)
		})
	}
	t.Run("public key errors", func(t *testing.T) {
		dir := t.TempDir()
		ed, _ := testSigners(t)
		p := filepath.Join(dir, "x.pub")
		os.WriteFile(p, []byte("-----BEGIN SLUICE AUDIT PUBLIC KEY-----\nAlgorithm: rsa\n\nAAAA\n-----END SLUICE AUDIT PUBLIC KEY-----\n"), 0o644)
		_, err := LoadPublicKey(p)
		wantCode(t, err, sluice.EInvalid)
		_, err = LoadPublicKey(filepath.Join(dir, "missing.pub"))
		wantCode(t, err, sluice.EInvalid)
		_, err = VerifyFile(context.Background(), p, WithTrustedKeys(PublicKey{Algorithm: AlgEd25519, Key: ed.PublicKey()[:5]}))
		wantCode(t, err, sluice.EInvalid)
	})
}

func openSigned(t testing.TB, path string, every int, after time.Duration, signers ...Signer) *Log {
	t.Helper()
	l, err := Open(context.Background(), path, WithSigners(signers...), WithCheckpointEvery(every, after))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestCheckpoints(t *testing.T) { eachBackend(t, testCheckpoints) }

func testCheckpoints(t *testing.T, b backend) {
	ctx := context.Background()
	ed, ml := testSigners(t)
	path := b.target(t)
	l := openSigned(t, path, 5, time.Hour, ed, ml)
	written := appendN(t, l, 12)
	cps, err := l.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 2 || cps[0].Seq != 5 || cps[1].Seq != 10 || cps[1].Hash != written[9].Hash || len(cps[1].Signatures) != 2 {
		t.Fatalf("checkpoints %+v; want signed ones at 5 and 10", cps)
	}
	if err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Checkpoint(ctx); err != nil { // nothing new: no second one
		t.Fatal(err)
	}
	appendN(t, l, 1)
	if err := l.Close(); err != nil { // writes the final checkpoint at 13
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    []VerifyOption
		checked bool
	}{
		{"no keys: consistency only", nil, false},
		{"both keys", []VerifyOption{WithTrustedKeys(pub(ed), pub(ml))}, true},
		{"ed25519 only", []VerifyOption{WithTrustedKeys(pub(ed))}, true},
		{"ml-dsa only", []VerifyOption{WithTrustedKeys(pub(ml))}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := VerifyFile(ctx, path, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK || rep.Checkpoints != 4 || rep.SignedThrough != 13 || rep.SignaturesChecked != tc.checked {
				t.Fatalf("report %+v; want OK, 4 checkpoints through 13, signatures checked %v", rep, tc.checked)
			}
		})
	}
	// Checkpoint without signers is refused.
	l2, _ := b.newLog(t)
	wantCode(t, l2.Checkpoint(ctx), sluice.EInvalid)
}

func TestCheckpointTimer(t *testing.T) { eachBackend(t, testCheckpointTimer) }

func testCheckpointTimer(t *testing.T, b backend) {
	ctx := context.Background()
	ed, _ := testSigners(t)
	l := openSigned(t, b.target(t), 1000, 40*time.Millisecond, ed)
	appendN(t, l, 3)
	deadline := time.Now().Add(5 * time.Second)
	for {
		cps, err := l.Checkpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(cps) == 1 && cps[0].Seq == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no timed checkpoint after 5s: %+v", cps)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCheckpointTamper(t *testing.T) {
	ctx := context.Background()
	ed, ml := testSigners(t)
	other, _ := LoadOrCreateEd25519(filepath.Join(t.TempDir(), "other.pem"))
	const n = 20 // checkpoints at 5, 10, 15, 20
	tests := []struct {
		name     string
		tamper   func(t *testing.T, db *rawStore)
		keys     []PublicKey
		firstBad int64
		problem  string
		openOK   bool
	}{
		{
			name: "a signature altered",
			tamper: func(t *testing.T, db *rawStore) {
				dropCPGuards(t, db)
				var s string
				db.QueryRow(`SELECT signatures FROM audit_checkpoints WHERE seq = 10`).Scan(&s)
				var sigs []CheckpointSignature
				json.Unmarshal([]byte(s), &sigs)
				sigs[0].Signature[3] ^= 1
				b, _ := json.Marshal(sigs)
				if _, err := db.Exec(`UPDATE audit_checkpoints SET signatures = ? WHERE seq = 10`, string(b)); err != nil {
					t.Fatal(err)
				}
			},
			keys: []PublicKey{pub(ed), pub(ml)}, firstBad: 10, problem: "does not verify", openOK: true,
		},
		{
			name: "checkpoint time edited",
			tamper: func(t *testing.T, db *rawStore) {
				dropCPGuards(t, db)
				exec(t, db, `UPDATE audit_checkpoints SET time = '2001-01-01T00:00:00Z' WHERE seq = 15`)
			},
			keys: []PublicKey{pub(ml)}, firstBad: 15, problem: "does not verify", openOK: true,
		},
		{
			name:     "signed by a key the auditor does not trust",
			tamper:   func(t *testing.T, db *rawStore) {},
			keys:     []PublicKey{pub(other)},
			firstBad: 5, problem: "no signature by a trusted key", openOK: true,
		},
		{
			name: "checkpoints deleted",
			tamper: func(t *testing.T, db *rawStore) {
				dropCPGuards(t, db)
				exec(t, db, `DELETE FROM audit_checkpoints`)
			},
			keys: []PublicKey{pub(ed)}, firstBad: 1, problem: "no signed checkpoint", openOK: true,
		},
		{
			name: "tail truncated and head rewritten",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db, `DELETE FROM audit_entries WHERE seq > 17`)
				if _, err := db.Exec(`UPDATE audit_head SET seq = 17, hash = ?`, hashOf(t, db, 17)); err != nil {
					t.Fatal(err)
				}
			},
			keys: []PublicKey{pub(ed)}, firstBad: 18, problem: "entries 18 to 20 were removed",
		},
		{
			name: "tail truncated and head rewritten, no keys given",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db, `DELETE FROM audit_entries WHERE seq > 17`)
				if _, err := db.Exec(`UPDATE audit_head SET seq = 17, hash = ?`, hashOf(t, db, 17)); err != nil {
					t.Fatal(err)
				}
			},
			firstBad: 18, problem: "tail was truncated",
		},
		{
			name: "signed entry and the rest of the chain rewritten with the head",
			tamper: func(t *testing.T, db *rawStore) {
				exec(t, db, `DELETE FROM audit_entries WHERE seq >= 20`)
				h := forge(t, db, 20, hashOf(t, db, 19))
				if _, err := db.Exec(`UPDATE audit_head SET hash = ?`, h); err != nil {
					t.Fatal(err)
				}
			},
			keys: []PublicKey{pub(ed)}, firstBad: 20, problem: "does not match the checkpoint signed at entry 20",
		},
	}
	eachBackend(t, func(t *testing.T, b backend) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				path := b.target(t)
				l := openSigned(t, path, 5, time.Hour, ed, ml)
				appendN(t, l, n)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				db := rawDB(t, path)
				dropGuards(t, db)
				tc.tamper(t, db)
				db.Close()
				var opts []VerifyOption
				if tc.keys != nil {
					opts = append(opts, WithTrustedKeys(tc.keys...))
				}
				rep, err := VerifyFile(ctx, path, opts...)
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK || rep.FirstBad != tc.firstBad || !strings.Contains(rep.Problem, tc.problem) {
					t.Fatalf("report %+v; want FirstBad %d and a problem containing %q", rep, tc.firstBad, tc.problem)
				}
				if rep.SignaturesChecked != (tc.keys != nil) {
					t.Fatalf("SignaturesChecked = %v", rep.SignaturesChecked)
				}
				l2, err := Open(ctx, path)
				if tc.openOK {
					if err != nil {
						t.Fatal(err)
					}
					l2.Close()
					return
				}
				wantCode(t, err, sluice.EUnavailable)
			})
		}
	})
}

// TestRecoversFromExclusiveLock: while another connection holds the write
// lock appends fail closed after the busy timeout; once it is released the
// same Log appends again and the chain verifies.
func TestRecoversFromExclusiveLock(t *testing.T) { eachBackend(t, testRecoversFromExclusiveLock) }

func testRecoversFromExclusiveLock(t *testing.T, b backend) {
	ctx := context.Background()
	path := b.target(t)
	l, err := Open(ctx, path, WithBusyTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendN(t, l, 2)
	release := holdWriteLock(t, path, `BEGIN EXCLUSIVE`)
	for range 3 {
		start := time.Now()
		e := sample(0)
		wantCode(t, l.Append(ctx, e), sluice.EUnavailable)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("a failing append took %v; the busy timeout is 50ms", d)
		}
	}
	release()
	e := sample(1)
	if err := l.Append(ctx, e); err != nil || e.Seq != 3 {
		t.Fatalf("append after release: seq %d, %v", e.Seq, err)
	}
	mustVerify(t, l, 3)
}

// TestGroupCommit: concurrent appends share transactions, and a batch that
// fails fails every caller in it and advances nothing.
func TestGroupCommit(t *testing.T) { eachBackend(t, testGroupCommit) }

func testGroupCommit(t *testing.T, b backend) {
	ctx := context.Background()
	l, _ := b.newLog(t)
	appendN(t, l, 1)
	const workers = 32

	var commits atomic.Int64
	l.beforeCommit = func() error { commits.Add(1); return nil }
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range 10 {
				if err := l.Append(ctx, sample(w*10+i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d appends in %d transactions", workers*10, commits.Load())
	if commits.Load() >= workers*10 {
		t.Errorf("%d transactions for %d concurrent appends: appends were not grouped", commits.Load(), workers*10)
	}
	mustVerify(t, l, 1+workers*10)

	// A failing batch: everyone in it fails, nothing advances.
	before, _ := l.Head()
	l.beforeCommit = func() error { return sluice.Errorf(sluice.EUnavailable, "disk full (injected)") }
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() { errs <- l.Append(ctx, sample(w)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		wantCode(t, err, sluice.EUnavailable)
	}
	if seq, _ := l.Head(); seq != before {
		t.Fatalf("head moved to %d after failed batches; want %d", seq, before)
	}
	l.beforeCommit = nil
	appendN(t, l, 1)
	mustVerify(t, l, before+1)

	// A bad entry in a batch fails alone.
	bad := sample(0)
	bad.Obligations = map[string]any{"f": make(chan int)}
	wantCode(t, l.Append(ctx, bad), sluice.EInvalid)

	// A caller whose context is already done is not written.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	wantCode(t, l.Append(cctx, sample(0)), sluice.EUnavailable)
	mustVerify(t, l, before+1)
}

// BenchmarkAppendParallel32 is 32 concurrent clients appending, as 32
// concurrent audited queries would.
func BenchmarkAppendParallel32(b *testing.B) {
	l, _ := newTestLog(b)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 32 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := l.Append(ctx, sample(0)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

func BenchmarkAppendParallel32Signed(b *testing.B) {
	ed, ml := testSigners(b)
	l := openSigned(b, filepath.Join(b.TempDir(), "broker.db"), DefaultCheckpointEntries, DefaultCheckpointInterval, ed, ml)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 32 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := l.Append(ctx, sample(0)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}
