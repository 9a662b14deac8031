package test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// sluiceCLI builds the sluice binary once for the tests that drive the CLI.
func sluiceCLI(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-cli-")
		if err != nil {
			cliErr = err
			return
		}
		cliPath = filepath.Join(dir, "sluice")
		out, err := exec.Command("go", "build", "-o", cliPath, "../cmd/sluice").CombinedOutput()
		if err != nil {
			cliErr = fmt.Errorf("go build ./cmd/sluice: %v\n%s", err, out)
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// cli runs the sluice binary and returns stdout, stderr and the exit code.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sluiceCLI(t), args...)
	cmd.Env = append(os.Environ(), "SLUICE_ADDR=", "SLUICE_TOKEN=", "SLUICE_ADMIN=", "SLUICE_CA=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("sluice %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), code
}

// TestWorkflowWalkthrough walks the data-sharing workflow with the CLI
// against the running demo broker: a new department (transport) registers
// a SQLite source through its agent and classifies it; alice's query is
// denied; she applies; the platform forwards; the provider approves; the
// query succeeds within the grant's scope and is denied outside it; the
// provider revokes; the query is denied again. Every step is in the audit
// log.
func TestWorkflowWalkthrough(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// --- the transport department's own side: a database and an agent ---
	dbPath := filepath.Join(dir, "transport.db")
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	mustExec := func(q string, args ...any) {
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(`CREATE TABLE vehicles (plate TEXT, owner_id_card TEXT, owner_name TEXT, owner_phone TEXT, district TEXT, vehicle_type TEXT, registered_on DATE)`)
	districts := []string{"城东区", "城中区", "城西区", "城北区", "湟中区"}
	types := []string{"car", "truck", "bus"}
	truth := map[string]int{}
	for i := 0; i < 300; i++ {
		d := districts[(i*7)%len(districts)]
		mustExec(`INSERT INTO vehicles VALUES (?, ?, ?, ?, ?, ?, ?)`, fmt.Sprintf("青A%05d", i), fmt.Sprintf("63010219800101%04d", i), "王"+strings.Repeat("某", 1+i%2),
			fmt.Sprintf("1390000%04d", i), d, types[i%len(types)], "2020-01-01")
		truth[d]++
	}
	db.Close()

	crt, key := filepath.Join(dir, "transport.crt"), filepath.Join(dir, "transport.key")
	if err := tlsutil.WriteSelfSigned(crt, key, "sluice-agent-transport", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	agentPin, err := tlsutil.FingerprintFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	brokerPin, err := tlsutil.FingerprintFile(world.BrokerCert)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dept := &sluice.Department{
		ID: "transport", Name: "交通运输局 Transport Bureau",
		Agent: sluice.AgentInfo{Address: lis.Addr().String(), TLSCert: crt, TLSKey: key, BrokerFingerprints: []string{brokerPin},
			AuditLog: filepath.Join(dir, "transport-agent-audit.db"), SigningKey: filepath.Join(dir, "transport-agent.key")},
		Sources: []sluice.Source{{Name: "main", Driver: sluice.DriverSQLite, DSN: dbPath}},
	}
	if err := dept.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := agent.New(ctx, dept, agent.WithRegistry(filepath.Join(dir, "transport-registry.json")))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	defer func() { cancel(); <-done; srv.Close() }()

	admin := func(token string) []string {
		return []string{"--admin", world.AdminAddr, "--ca", world.BrokerCert, "--token", token}
	}
	tok := func(user string) string {
		t.Helper()
		v, err := world.Token(user)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ok := func(what string, args ...string) string {
		t.Helper()
		out, errOut, code := cli(t, args...)
		if code != 0 {
			t.Fatalf("%s: sluice %s\nexit %d\nstdout: %s\nstderr: %s", what, strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	fails := func(what, want string, args ...string) {
		t.Helper()
		out, errOut, code := cli(t, args...)
		if code == 0 || !strings.Contains(out+errOut, want) {
			t.Fatalf("%s: sluice %s\nexit %d, want a failure mentioning %q\nstdout: %s\nstderr: %s", what, strings.Join(args, " "), code, want, out, errOut)
		}
	}
	withArgs := func(base []string, more ...string) []string { return append(append([]string(nil), base...), more...) }
	dave, alice, carol := tok("dave"), tok("alice"), tok("carol")

	// 1. The platform admin creates the department's data admin and a token.
	ok("create tom", withArgs([]string{"users", "set", "tom", "--role", "dept_admin", "--department", "transport"}, admin(dave)...)...)
	out := ok("issue tom's token", withArgs([]string{"tokens", "issue", "tom", "--ttl", "24h", "--json"}, admin(dave)...)...)
	var issued struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(out), &issued); err != nil || !strings.HasPrefix(issued.Token, "slc_") {
		t.Fatalf("tokens issue --json answered %q (%v)", out, err)
	}
	if d := time.Until(issued.ExpiresAt); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("tom's token expires at %s, want in 24h", issued.ExpiresAt)
	}
	tom := issued.Token

	// 2. tom registers the agent, reads the source through it and
	// classifies the table.
	ok("register agent", withArgs([]string{"catalog", "register-agent", "transport", "--address", lis.Addr().String(), "--fingerprint", agentPin, "--name", "交通运输局 Transport Bureau"}, admin(tom)...)...)
	if out := ok("list tables", withArgs([]string{"catalog", "tables", "transport"}, admin(tom)...)...); !strings.Contains(out, "vehicles") {
		t.Fatalf("catalog tables: %q lacks vehicles", out)
	}
	propFile := filepath.Join(dir, "vehicles.json")
	ok("propose", withArgs([]string{"catalog", "propose", "transport", "vehicles", "-o", propFile}, admin(tom)...)...)
	var reg struct {
		Source  string         `json:"source"`
		Table   string         `json:"table"`
		Dataset sluice.Dataset `json:"dataset"`
	}
	raw, err := os.ReadFile(propFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &reg); err != nil {
		t.Fatalf("proposal %s: %v", raw, err)
	}
	want := map[string]sluice.Release{"owner_id_card": sluice.ReleaseJoinKey, "owner_name": sluice.ReleaseMasked, "owner_phone": sluice.ReleaseMasked, "district": sluice.ReleasePlain}
	for _, c := range reg.Dataset.Columns {
		if w, ok := want[c.Name]; ok && c.Release != w {
			t.Errorf("proposed %s as %s, want %s", c.Name, c.Release, w)
		}
	}
	// The admin reviews the proposal: conditional, with its legal basis.
	reg.Dataset.Title = "机动车登记 Motor vehicle register"
	reg.Dataset.ShareClass = sluice.ShareConditional
	reg.Dataset.LegalBasis = "《道路交通安全法》第八条; 本市政务数据共享管理办法 第十二条"
	raw, _ = json.MarshalIndent(reg, "", "  ")
	if err := os.WriteFile(propFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	ok("classify", withArgs([]string{"catalog", "classify", "transport", propFile}, admin(tom)...)...)
	if out := ok("search", withArgs([]string{"catalog", "search", "--q", "vehicle", "--json"}, admin(alice)...)...); !strings.Contains(out, `"transport"`) {
		t.Fatalf("catalog search: %s", out)
	}

	// 3. alice's query is denied: conditional data needs a grant.
	countSQL := "SELECT district, COUNT(*) AS n FROM transport.vehicles GROUP BY district ORDER BY district"
	q := func(token, purpose, sql string) []string {
		return []string{"query", "--addr", world.BrokerAddr, "--ca", world.BrokerCert, "--token", token, "--purpose", purpose, sql}
	}
	fails("before the application", "transport.vehicles", q(alice, "subsidy-review", countSQL)...)

	// 4. alice applies; the platform forwards; tom approves.
	from := time.Now().AddDate(0, 0, -1).Format(time.DateOnly)
	until := time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
	out = ok("apply", withArgs([]string{"applications", "submit", "--dataset", "transport.vehicles", "--columns", "district,vehicle_type", "--purpose", "subsidy-review",
		"--justification", "vehicle ownership per district for the subsidy means test", "--from", from, "--until", until, "--mode", "rows", "--json"}, admin(alice)...)...)
	var app sluice.Application
	if err := json.Unmarshal([]byte(out), &app); err != nil || app.ID == "" || app.Status != sluice.AppSubmitted {
		t.Fatalf("applications submit: %q (%v)", out, err)
	}
	fails("provider cannot approve before the platform forwards", "forwarded", withArgs([]string{"applications", "approve", app.ID}, admin(tom)...)...)
	ok("forward", withArgs([]string{"applications", "forward", app.ID, "--note", "purpose and scope are proportionate"}, admin(dave)...)...)
	fails("refusal needs a basis", "basis", withArgs([]string{"applications", "refuse", app.ID, "--basis", ""}, admin(tom)...)...)
	ok("approve", withArgs([]string{"applications", "approve", app.ID, "--note", "approved for one year"}, admin(tom)...)...)
	out = ok("show", withArgs([]string{"applications", "show", app.ID, "--json"}, admin(alice)...)...)
	if err := json.Unmarshal([]byte(out), &app); err != nil || app.Status != sluice.AppApproved || len(app.GrantIDs) != 1 {
		t.Fatalf("applications show after approval: %q (%v)", out, err)
	}
	grantID := app.GrantIDs[0]

	// 5. The same query now succeeds, with the right numbers.
	out = ok("query within the grant", q(alice, "subsidy-review", countSQL)...)
	for d, n := range truth {
		if !strings.Contains(out, d) || !strings.Contains(out, fmt.Sprint(n)) {
			t.Errorf("query output lacks %s = %d:\n%s", d, n, out)
		}
	}
	// ...and is denied outside it: another column, another purpose.
	fails("another column", "owner_name", q(alice, "subsidy-review", "SELECT district, owner_name FROM transport.vehicles")...)
	fails("another purpose", "transport.vehicles", q(alice, "enterprise-credit", countSQL)...)

	// 6. tom revokes; the very next query is denied.
	ok("revoke", withArgs([]string{"grants", "revoke", grantID, "--reason", "scope review"}, admin(tom)...)...)
	fails("after revocation", "revoked", q(alice, "subsidy-review", countSQL)...)

	// 7. Every step is in the audit log.
	status, body := adminAPI(t, "GET", "/v1/audit/entries?kind=admin&limit=1000", "carol", nil)
	if status != 200 {
		t.Fatalf("audit search: %d %s", status, body)
	}
	for _, step := range []string{
		"PUT /v1/users/tom", "POST /v1/users/tom/tokens", "PUT /v1/departments/transport/agent", "PUT /v1/departments/transport/datasets/vehicles",
		"POST /v1/applications", "POST /v1/applications/" + app.ID + "/forward", "POST /v1/applications/" + app.ID + "/approve", "POST /v1/grants/" + grantID + "/revoke",
	} {
		if !bytes.Contains(body, []byte(`"admin `+step+`"`)) {
			t.Errorf("no admin audit entry for %s", step)
		}
	}
	status, body = adminAPI(t, "GET", "/v1/audit/entries?principal=alice&dataset=transport.vehicles&kind=query&limit=1000", "carol", nil)
	if status != 200 {
		t.Fatalf("audit search: %d %s", status, body)
	}
	var qs struct {
		Entries []struct {
			Decision string `json:"decision"`
			Purpose  string `json:"purpose"`
		} `json:"entries"`
	}
	json.Unmarshal(body, &qs)
	var decisions []string
	for _, e := range qs.Entries {
		decisions = append(decisions, e.Decision+"/"+e.Purpose)
	}
	got := strings.Join(decisions, " ")
	for _, w := range []string{"deny/subsidy-review", "allow/subsidy-review", "deny/enterprise-credit"} {
		if !strings.Contains(got, w) {
			t.Errorf("audit query entries %q lack %s", got, w)
		}
	}
	_ = carol
	// The catalog change is versioned with who made it.
	status, body = adminAPI(t, "GET", "/v1/catalog/changes?department=transport", "carol", nil)
	if status != 200 || !bytes.Contains(body, []byte(`"actor":"tom"`)) || !bytes.Contains(body, []byte(`"register-dataset"`)) {
		t.Fatalf("catalog changes: %d %s", status, body)
	}
}
