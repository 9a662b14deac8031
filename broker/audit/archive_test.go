package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/crypto/auditchain"
)

var archiveBaseTime = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// archivedLog writes 30 entries a minute apart and archives them as
// 1-10, 11-20 and 21-25, leaving 26-30 in the store.
func archivedLog(t *testing.T, b backend, signers ...Signer) (*Log, string, []string, []Entry) {
	t.Helper()
	ctx := context.Background()
	path := b.target(t)
	var opts []Option
	if len(signers) > 0 {
		opts = append(opts, WithSigners(signers...), WithCheckpointEvery(7, time.Hour))
	}
	l, err := Open(ctx, path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var written []Entry
	for i := range 30 {
		e := sample(i)
		e.Time = archiveBaseTime.Add(time.Duration(i) * time.Minute)
		if err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		written = append(written, *e)
	}
	dir := filepath.Join(t.TempDir(), "archives")
	os.Mkdir(dir, 0o700)
	var files []string
	for _, c := range []struct {
		cut         int
		first, last int64
	}{{10, 1, 10}, {20, 11, 20}, {25, 21, 25}} {
		info, err := l.Archive(ctx, archiveBaseTime.Add(time.Duration(c.cut)*time.Minute), dir)
		if err != nil {
			t.Fatal(err)
		}
		if info.FirstSeq != c.first || info.LastSeq != c.last || info.Entries != int(c.last-c.first+1) ||
			filepath.Base(info.File) != filepath.Base(filepath.Join(dir, "audit-"+itoa(c.first)+"-"+itoa(c.last)+".jsonl.gz")) {
			t.Fatalf("archive %+v; want %d-%d", info, c.first, c.last)
		}
		files = append(files, info.File)
	}
	return l, path, files, written
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestArchiveRoundTrip(t *testing.T) { eachBackend(t, testArchiveRoundTrip) }

func testArchiveRoundTrip(t *testing.T, b backend) {
	ctx := context.Background()
	ed, ml := testSigners(t)
	l, path, files, written := archivedLog(t, b, ed, ml)

	// The file format: header, entries (body with hash), trailer.
	lines := readArchive(t, files[1])
	if len(lines) != 12 || !strings.HasPrefix(lines[0], `{"type":"sluice-audit-archive","first_seq":11,"last_seq":20,"prev_hash":"`+written[9].Hash+`","previous_archive_sha256":"`) ||
		lines[11] != `{"type":"end","last_hash":"`+written[19].Hash+`","count":10}` {
		t.Fatalf("archive 2 layout:\n%s", strings.Join(lines, "\n"))
	}
	body := strings.Replace(lines[1], `"hash":"`+written[10].Hash+`"`, `"hash":""`, 1)
	if auditchain.Sum([]byte(body)) != written[10].Hash {
		t.Fatal("an archived line with its hash blanked does not hash to the entry's hash")
	}

	// The store holds 26-30, chained to archive 3's last entry; appends
	// continue.
	tail, err := l.Tail(ctx, 100)
	if err != nil || len(tail) != 5 || tail[0].Seq != 26 || tail[0].PrevHash != written[24].Hash {
		t.Fatalf("store after archiving: %v, %v", seqs(tail), err)
	}
	e := sample(3)
	if err := l.Append(ctx, e); err != nil || e.Seq != 31 {
		t.Fatalf("append after archive: %d %v", e.Seq, err)
	}
	if _, err := l.Get(ctx, 3); sluice.ErrorCode(err) != sluice.ENotFound {
		t.Fatalf("archived entry still in the store: %v", err)
	}
	// Nothing old enough: nothing written.
	if info, err := l.Archive(ctx, archiveBaseTime, filepath.Dir(files[0])); err != nil || info.Entries != 0 {
		t.Fatalf("empty archive run: %+v %v", info, err)
	}
	// Checkpoints over archived entries stay.
	if cps, _ := l.Checkpoints(ctx); len(cps) < 4 || cps[0].Seq != 7 {
		t.Fatalf("checkpoints after archiving: %+v", cps)
	}

	keys := WithTrustedKeys(pub(ed), pub(ml))
	rep, err := l.Verify(ctx, WithArchives(files...), keys)
	if err != nil || !rep.OK || rep.Entries != 31 || rep.Archives != 3 || !rep.SignaturesChecked || rep.Head != e.Hash {
		t.Fatalf("Verify with archives = %+v, %v; want OK over 31 entries in 3 archives and the store", rep, err)
	}
	// Without the archives the report asks for them (the store part
	// verifies).
	rep, err = VerifyFile(ctx, path)
	if err != nil || rep.OK || !strings.Contains(rep.Problem, "pass the archive files") || rep.Entries != 6 {
		t.Fatalf("VerifyFile without archives = %+v, %v", rep, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err = VerifyFile(ctx, path, WithArchives(files...), keys)
	if err != nil || !rep.OK {
		t.Fatalf("VerifyFile with archives after close = %+v, %v", rep, err)
	}

	// Everything archived: the store is empty and appends link to the
	// last archive.
	l2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	info, err := l2.Archive(ctx, time.Now().Add(time.Hour), filepath.Dir(files[0]))
	if err != nil || info.FirstSeq != 26 || info.LastSeq != 31 {
		t.Fatalf("archive all: %+v %v", info, err)
	}
	l2.Close()
	l3, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l3.Close()
	if seq, _ := l3.Head(); seq != 31 {
		t.Fatalf("head of an emptied store %d; want 31", seq)
	}
	e = sample(0)
	if err := l3.Append(ctx, e); err != nil || e.Seq != 32 {
		t.Fatalf("append to emptied store: %d %v", e.Seq, err)
	}
	rep, err = l3.Verify(ctx, WithArchives(append(files, info.File)...))
	if err != nil || !rep.OK || rep.Entries != 32 || rep.Archives != 4 {
		t.Fatalf("Verify over 4 archives = %+v, %v", rep, err)
	}
}

func readArchive(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(gz)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func writeArchive(t *testing.T, file string, lines []string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(file))
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // differs from what Archive wrote
	gz.Write([]byte(strings.Join(lines, "\n") + "\n"))
	gz.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestArchiveTamper(t *testing.T) { eachBackend(t, testArchiveTamper) }

func testArchiveTamper(t *testing.T, b backend) {
	ctx := context.Background()
	l, path, files, _ := archivedLog(t, b)
	l.Close()
	edited := func(i int, edit func([]string) []string) []string {
		out := append([]string(nil), files...)
		out[i] = writeArchive(t, files[i], edit(readArchive(t, files[i])))
		return out
	}
	tests := []struct {
		name     string
		files    []string
		firstBad int64
		problem  string
	}{
		{"an archive missing in the middle", []string{files[0], files[2]}, 11, "entries 11 to 20 are missing"},
		{"the first archive missing", files[1:], 1, "an earlier archive is missing"},
		{"archives out of order", []string{files[1], files[0], files[2]}, 1, "an earlier archive is missing"},
		{"the last two swapped", []string{files[0], files[2], files[1]}, 11, "missing"},
		{"an archive passed twice", []string{files[0], files[0], files[1], files[2]}, 11, "out of order or one was passed twice"},
		{"an entry edited", edited(1, func(ls []string) []string {
			ls[5] = strings.Replace(ls[5], `"principal":"`, `"principal":"x`, 1) // entry 15
			return ls
		}), 15, "entry 15 was modified"},
		{"an entry removed", edited(1, func(ls []string) []string {
			return append(ls[:3:3], ls[4:]...) // entry 13
		}), 13, "entry 13 is missing"},
		{"the last entries and trailer cut", edited(2, func(ls []string) []string { return ls[:4] }), 24, "truncated"},
		{"the archive replaced by a re-compressed copy", edited(0, func(ls []string) []string { return ls }), 1, "it was replaced"},
		{"not a gzip file", func() []string {
			out := append([]string(nil), files...)
			out[1] = filepath.Join(t.TempDir(), "junk.jsonl.gz")
			os.WriteFile(out[1], []byte("junk"), 0o600)
			return out
		}(), 11, "not a gzip file"},
		{"the store's last archive left out", files[:2], 21, "entry 21 is missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := VerifyFile(ctx, path, WithArchives(tc.files...))
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.FirstBad != tc.firstBad || !strings.Contains(rep.Problem, tc.problem) {
				t.Fatalf("report %+v; want FirstBad %d, problem containing %q", rep, tc.firstBad, tc.problem)
			}
		})
	}
	_, err := VerifyFile(ctx, path, WithArchives(filepath.Join(t.TempDir(), "missing.jsonl.gz")))
	wantCode(t, err, sluice.EInvalid)
}

func TestArchiveErrors(t *testing.T) { eachBackend(t, testArchiveErrors) }

func testArchiveErrors(t *testing.T, b backend) {
	ctx := context.Background()
	l, _ := b.newLog(t)
	appendN(t, l, 3)
	_, err := l.Archive(ctx, time.Now().Add(time.Hour), filepath.Join(t.TempDir(), "nope"))
	wantCode(t, err, sluice.EInvalid)
	_, err = l.Archive(ctx, time.Time{}, t.TempDir())
	wantCode(t, err, sluice.EInvalid)
	// A broken chain is not archived.
	l2, path := b.newLog(t)
	appendN(t, l2, 3)
	db := rawDB(t, path)
	dropGuards(t, db)
	exec(t, db, `UPDATE audit_entries SET body = replace(body, '"principal":"alice"', '"principal":"bob"') WHERE seq = 1`)
	dir := t.TempDir()
	_, err = l2.Archive(ctx, time.Now().Add(time.Hour), dir)
	wantCode(t, err, sluice.EUnavailable)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left after a refused archive: %v", ents)
	}
}

func TestSearchDepartmentColumnAndExport(t *testing.T) {
	eachBackend(t, testSearchDepartmentColumnAndExport)
}

func testSearchDepartmentColumnAndExport(t *testing.T, b backend) {
	ctx := context.Background()
	l, _ := b.newLog(t)
	for i := range 8 {
		e := sample(i)
		if i%2 == 1 {
			e.Department = "market"
		}
		if i == 4 {
			e.Columns = append(e.Columns, sluice.ColumnUsage{Dataset: "civil.residents", Column: "District", Usages: []sluice.Usage{sluice.UsePredicate}})
		}
		if err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// sample: columns health.insured.annual_claims on i%4 in {0,2} and on
	// i%4==1 (deny keeps columns); i%4==3 has none.
	tests := []struct {
		name string
		f    Filter
		want []int64
	}{
		{"department", Filter{Department: "MARKET"}, []int64{2, 4, 6, 8}},
		{"column name", Filter{Column: "annual_claims"}, []int64{1, 2, 3, 5, 6, 7}},
		{"dataset.column", Filter{Column: "civil.residents.district"}, []int64{5}},
		{"column name, other case", Filter{Column: "DISTRICT"}, []int64{5}},
		{"wrong dataset for the column", Filter{Column: "health.insured.district"}, []int64{}},
		{"column and department", Filter{Column: "annual_claims", Department: "market"}, []int64{2, 6}},
		{"limit keeps the most recent", Filter{Column: "annual_claims", Limit: 2}, []int64{6, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Search(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if s := seqs(got); !reflect.DeepEqual(s, tc.want) {
				t.Fatalf("Search = %v; want %v", s, tc.want)
			}
			var buf bytes.Buffer
			n, err := l.Export(ctx, &buf, tc.f)
			if err != nil || n != len(tc.want) {
				t.Fatalf("Export = %d, %v; want %d", n, err, len(tc.want))
			}
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			for i, line := range lines {
				if n == 0 {
					break
				}
				e, err := auditchain.Decode([]byte(line))
				if err != nil || e.Seq != tc.want[i] || e.Hash != got[i].Hash {
					t.Fatalf("export line %d: %v %+v", i, err, e)
				}
				blank := strings.Replace(line, `"hash":"`+e.Hash+`"`, `"hash":""`, 1)
				if auditchain.Sum([]byte(blank)) != e.Hash {
					t.Fatalf("export line %d does not hash to its hash", i)
				}
			}
		})
	}
	// Export has no default limit.
	for range 5 {
		appendN(t, l, 1)
	}
	n, err := l.Export(ctx, &bytes.Buffer{}, Filter{})
	if err != nil || n != 13 {
		t.Fatalf("Export all = %d, %v", n, err)
	}
	_, err = l.Export(ctx, &bytes.Buffer{}, Filter{Limit: -1})
	wantCode(t, err, sluice.EInvalid)
}

func TestPolicyRevisions(t *testing.T) { eachBackend(t, testPolicyRevisions) }

func testPolicyRevisions(t *testing.T, b backend) {
	ctx := context.Background()
	l, path := b.newLog(t)
	l.now = func() time.Time { return time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC) }
	mods := map[string]string{"sluice.rego": "package sluice\n", "extra.rego": "package extra\n"}
	data := []byte(`{"grants":[]}`)
	if err := l.RecordPolicyRevision(ctx, "rev-a", mods, data); err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return time.Date(2025, 7, 2, 8, 0, 0, 0, time.UTC) }
	if err := l.RecordPolicyRevision(ctx, "rev-a", mods, data); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := l.RecordPolicyRevision(ctx, "rev-b", map[string]string{"sluice.rego": "package sluice\n# v2\n"}, nil); err != nil {
		t.Fatal(err)
	}
	wantCode(t, l.RecordPolicyRevision(ctx, "rev-a", mods, []byte(`{}`)), sluice.EInvalid)
	wantCode(t, l.RecordPolicyRevision(ctx, " ", mods, data), sluice.EInvalid)

	l.Close()
	l2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	p, err := l2.PolicyRevision(ctx, "rev-a")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Modules, mods) || string(p.Data) != string(data) || !p.FirstSeen.Equal(time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("PolicyRevision = %+v", p)
	}
	_, err = l2.PolicyRevision(ctx, "rev-z")
	wantCode(t, err, sluice.ENotFound)
	list, err := l2.PolicyRevisions(ctx)
	if err != nil || len(list) != 2 || list[0].Revision != "rev-a" || !reflect.DeepEqual(list[0].Modules, []string{"extra.rego", "sluice.rego"}) || list[1].Revision != "rev-b" {
		t.Fatalf("PolicyRevisions = %+v, %v", list, err)
	}
}
