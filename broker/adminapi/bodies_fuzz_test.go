package adminapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/adminapi"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/broker/store"
	"github.com/sluice-gov/sluice/broker/workflow"
	"github.com/sluice-gov/sluice/policy"
)

// fuzzRecorder accepts every audit entry (the fuzz target checks answers,
// not the log).
type fuzzRecorder struct{}

func (r *fuzzRecorder) Record(context.Context, *audit.Entry) error { return nil }

// fuzzReader is an empty audit log.
type fuzzReader struct{}

func (fuzzReader) Search(context.Context, audit.Filter) ([]audit.Entry, error) { return nil, nil }
func (fuzzReader) Get(context.Context, int64) (*audit.Entry, error) {
	return nil, sluice.Errorf(sluice.ENotFound, "no entry")
}
func (fuzzReader) Verify(context.Context, ...audit.VerifyOption) (*audit.VerifyReport, error) {
	return &audit.VerifyReport{}, nil
}

// fuzzRoute is an endpoint that reads a JSON body, called by a user whose
// role may call it, so that the body is decoded and acted on.
type fuzzRoute struct {
	method, path, token string
}

// FuzzAdminBodies sends arbitrary bodies to every admin API endpoint that
// reads one, through the API's real HTTP handler over a real (SQLite)
// workflow store, as a user allowed to call it. Any answer is fine except
// a panic, a 500 (an untyped or internal error: a bad body must be refused
// with a typed error and a 4xx that says what is wrong), or an error that
// is not the API's JSON error object. CI runs it briefly (.ci/run).
func FuzzAdminBodies(f *testing.F) {
	ctx := context.Background()
	dir := f.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "broker.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	eng, err := policy.New(ctx)
	if err != nil {
		f.Fatal(err)
	}
	noAgents := func(context.Context, string, string, string) (state.AgentClient, error) {
		return nil, sluice.Errorf(sluice.EUnavailable, "no agents in this test")
	}
	wf, err := workflow.New(st, eng, workflow.Options{Dial: noAgents})
	if err != nil {
		f.Fatal(err)
	}
	dept := &sluice.Department{ID: "market", Name: "Market Regulation Administration", Datasets: []*sluice.Dataset{{
		Name: "enterprises", Table: "enterprises", ShareClass: sluice.ShareConditional, LegalBasis: "Regulation on Enterprise Information, art. 9",
		Columns: []*sluice.Column{
			{Name: "name", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain},
			{Name: "district", Type: sluice.TypeText, Grade: sluice.GradeL1, Release: sluice.ReleasePlain},
			{Name: "capital", Type: sluice.TypeFloat, Grade: sluice.GradeL2, Release: sluice.ReleasePlain},
		},
	}}}
	civil := &sluice.Department{ID: "civil", Name: "Civil Affairs Bureau"}
	people := []sluice.Principal{
		{Name: "dave", Role: sluice.RolePlatformAdmin, Department: "platform"},
		{Name: "bob", Role: sluice.RoleAnalyst, Department: "civil"},
		{Name: "mei", Role: sluice.RoleDeptAdmin, Department: "market"},
	}
	var users []state.UserRecord
	for _, p := range people {
		users = append(users, state.UserRecord{Name: p.Name, Role: p.Role, Department: p.Department, TokenSHA256: state.HashToken("tok-" + p.Name)})
	}
	purposes := []sluice.Purpose{{Code: "enterprise-credit", Name: "Enterprise credit", LegalDuty: "Social Credit Measures, art. 4"}}
	if err := wf.Seed(ctx, []*sluice.Department{dept, civil}, users, purposes, nil); err != nil {
		f.Fatal(err)
	}
	if err := wf.Reload(ctx); err != nil {
		f.Fatal(err)
	}
	h := adminapi.New(adminapi.Config{Workflow: wf, Review: fuzzReader{}, Recorder: &fuzzRecorder{}}).Handler()
	call := func(rt fuzzRoute, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+rt.token)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	// One real application, so that the review steps reach it.
	now := time.Now().UTC().Truncate(time.Second)
	app := sluice.Application{Items: []sluice.ApplicationItem{{Dataset: "market.enterprises", Columns: []string{"name", "district"}}},
		Purpose: "enterprise-credit", Justification: "credit checks of applicants for subsidies",
		ValidFrom: now, ValidUntil: now.AddDate(0, 3, 0), Mode: sluice.ModeRows}
	appBody, _ := json.Marshal(app)
	w := call(fuzzRoute{"POST", "/v1/applications", "tok-bob"}, appBody)
	var created struct {
		ID string `json:"id"`
	}
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &created) != nil || created.ID == "" {
		f.Fatalf("seed application: %d %s", w.Code, w.Body.String())
	}
	id := created.ID
	routes := []fuzzRoute{
		{"POST", "/v1/applications", "tok-bob"},
		{"POST", "/v1/applications/" + id + "/forward", "tok-dave"},
		{"POST", "/v1/applications/" + id + "/approve", "tok-mei"},
		{"POST", "/v1/applications/" + id + "/refuse", "tok-mei"},
		{"POST", "/v1/applications/" + id + "/withdraw", "tok-bob"},
		{"PUT", "/v1/departments/market/agent", "tok-mei"},
		{"PUT", "/v1/departments/market/datasets/licences", "tok-mei"},
		{"PUT", "/v1/purposes/fuzz-purpose", "tok-dave"},
		{"PUT", "/v1/users/fuzzuser", "tok-dave"},
		{"POST", "/v1/users/bob/tokens", "tok-bob"},
		{"POST", "/v1/grants/" + id + "-1/revoke", "tok-mei"},
		{"POST", "/v1/reports", "tok-bob"},
		{"POST", "/v1/reports/rep-1/acknowledge", "tok-mei"},
	}
	seeds := [][]byte{
		appBody,
		[]byte(`{"note":"purpose and columns are proportionate"}`),
		[]byte(`{"note":"two districts","row_filter":{"column":"district","values":["城东区","城西区"]},"mode":"aggregate","k":10,"valid_until":"2027-05-22T23:59:00Z"}`),
		[]byte(`{"note":"no","basis":"Regulation on Enterprise Information, art. 9"}`),
		[]byte(`{}`),
		[]byte(`{"address":"127.0.0.1:47473","fingerprint":"sha256:` + string(bytes.Repeat([]byte("ab"), 32)) + `"}`),
		[]byte(`{"source":"main","table":"licences","dataset":{"name":"licences","title":"许可证","share_class":"unconditional","columns":[{"name":"no","type":"text","grade":"L1","release":"plain"}]}}`),
		[]byte(`{"code":"fuzz-purpose","name":"Fuzzing","legal_duty":"none"}`),
		[]byte(`{"role":"analyst","department":"civil"}`),
		[]byte(`{"label":"laptop","ttl":"720h"}`),
		[]byte(`{"reason":"finished"}`),
		[]byte(`{"dataset":"market.enterprises","column":"capital","description":"wrong capital","row_ref":"91630102016031848A"}`),
		[]byte(`{"items":[{"dataset":"market.enterprises","columns":["capital"],"clamp":{"capital":[0,1e9]}}],"purpose":"enterprise-credit","justification":"x","valid_from":"2026-12-02T00:00:00Z","valid_until":"2027-05-22T00:00:00Z","mode":"aggregate","k":10,"epsilon":1,"epsilon_per_query":0.25}`),
		[]byte(`{"items":null} trailing`), []byte(`[1,2,3]`), []byte(`null`), []byte(`"\u0000"`), []byte(`{"k":1e400}`),
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
		f.Add(uint8(i+1), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rt := routes[int(which)%len(routes)]
		w := call(rt, body)
		// 503 (an agent is unavailable) and 501 are typed answers; 500
		// is an internal or untyped error.
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s answered %d to %q: %s", rt.method, rt.path, w.Code, body, w.Body.String())
		}
		if w.Code >= 400 {
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s %s answered %d without a JSON error: %q", rt.method, rt.path, w.Code, w.Body.String())
			}
		}
	})
}
