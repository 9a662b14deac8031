package test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAdminReviewAPI: the auditor reads alerts and the audit log over the
// admin API; an analyst may not; bad requests get a clear 4xx.
func TestAdminReviewAPI(t *testing.T) {
	call := func(method, path, user string) (int, map[string]any) {
		t.Helper()
		status, raw := adminAPI(t, method, path, user, nil)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("%s %s: not JSON: %q", method, path, raw)
		}
		return status, body
	}
	// Make sure there is something to read.
	query(t, "bob", "enterprise-credit", "SELECT offense FROM police.criminal_records")

	cases := []struct {
		method, path, user string
		status             int
		want               string // a key of the JSON body, or a substring of the error
	}{
		{"GET", "/v1/audit/entries?principal=bob&decision=deny&limit=5", "carol", 200, "entries"},
		{"GET", "/v1/alerts", "carol", 200, "alerts"},
		{"GET", "/v1/audit/entries/1", "dave", 200, "hash"},
		{"GET", "/v1/audit/verify", "carol", 200, "ok"},
		{"GET", "/v1/audit/entries", "bob", 403, "may not call GET /v1/audit/entries"},
		{"GET", "/v1/audit/entries", "", 401, "Bearer"},
		{"POST", "/v1/audit/entries", "carol", 405, "not allowed on /v1/audit/entries; use GET"},
		{"GET", "/v1/nothing", "carol", 404, "no such endpoint"},
		{"GET", "/v1/audit/entries?colour=red", "carol", 400, "unknown query parameter"},
		{"GET", "/v1/audit/entries?limit=0", "carol", 400, "limit must be"},
		{"GET", "/v1/audit/entries?since=yesterday", "carol", 400, "RFC 3339"},
		{"GET", "/v1/audit/entries/abc", "carol", 400, "not a positive integer"},
		{"GET", "/v1/audit/entries/99999999", "carol", 404, "does not exist"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path+" as "+tc.user, func(t *testing.T) {
			status, body := call(tc.method, tc.path, tc.user)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, body)
			}
			if _, ok := body[tc.want]; ok {
				return
			}
			if msg, _ := body["error"].(string); !strings.Contains(msg, tc.want) {
				t.Fatalf("body %v has neither key nor error %q", body, tc.want)
			}
		})
	}
	status, body := call("GET", "/v1/audit/verify", "carol")
	if status != 200 || body["ok"] != true || body["signatures_checked"] != true {
		t.Fatalf("verify over the API: %d %v", status, body)
	}
}
