package adminapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-gov/sluice/broker/audit"
)

// TestDuplicateAuthorizationRefused: two Authorization headers are refused
// with 401 and a message saying to send one, and the refusal is recorded;
// the first header does not silently win, even when it alone is valid.
func TestDuplicateAuthorizationRefused(t *testing.T) {
	h := newHarness(t)
	for _, pair := range [][2]string{
		{"Bearer tok-dave", "Bearer tok-bob"},   // two valid tokens of different users
		{"Bearer tok-bob", "Bearer tok-nobody"}, // the first valid, the second not
		{"Bearer tok-bob", "Bearer tok-bob"},    // the same token twice
	} {
		req, err := http.NewRequest("GET", h.srv.URL+"/v1/whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Add("Authorization", pair[0])
		req.Header.Add("Authorization", pair[1])
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(raw), "2 Authorization headers") || !strings.Contains(string(raw), "exactly one") {
			t.Fatalf("%v: %d %s", pair, resp.StatusCode, raw)
		}
		e := h.rec.last()
		if e.Kind != audit.KindAuth || e.Decision != audit.DecisionDeny || e.Principal != "(unauthenticated)" || !strings.Contains(e.Error, "Authorization headers") {
			t.Fatalf("%v recorded as %+v", pair, e)
		}
	}
	// One header still works.
	if code, body := h.call("GET", "/v1/whoami", "tok-bob", ""); code != http.StatusOK || body["name"] != "bob" {
		t.Fatalf("one header: %d %v", code, body)
	}
}
