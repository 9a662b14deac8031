package broker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/admission"
)

func TestAdmissionConfig(t *testing.T) {
	dir := t.TempDir()
	base := "listen: x:1\ntls_cert: a\ntls_key: b\nstore: s\n"
	bad := []struct{ body, field string }{
		{"admission:\n  cross:\n    concurrency: -1\n", "admission.cross.concurrency"},
		{"admission:\n  single:\n    queue: -3\n", "admission.single.queue"},
		{"admission:\n  cross:\n    queue: 4\n    per_principal: 9\n", "admission.cross.per_principal"},
		{"admission:\n  cross:\n    expected: -1s\n", "admission.cross.expected"},
	}
	for i, tc := range bad {
		p := filepath.Join(dir, "b"+string(rune('0'+i))+".yaml")
		os.WriteFile(p, []byte(base+tc.body), 0o600)
		_, err := LoadConfig(p)
		var ce *sluice.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%q: want a ConfigError on %s, got %v", tc.body, tc.field, err)
		}
	}
	p := filepath.Join(dir, "good.yaml")
	os.WriteFile(p, []byte(base+"admission:\n  cross:\n    concurrency: 3\n    expected: 2s\n"), 0o600)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Admission.withDefaults()
	d := DefaultAdmission()
	if a.Cross.Concurrency != 3 || a.Cross.Expected != 2*time.Second || a.Cross.Queue != d.Cross.Queue || a.Single != d.Single {
		t.Fatalf("defaults not filled: %+v", a)
	}
	if _, err := a.controller(); err != nil {
		t.Fatal(err)
	}
}

// A busy refusal reaches the client as ResourceExhausted with the retry
// delay in a RetryInfo detail.
func TestBusyStatusCarriesRetryInfo(t *testing.T) {
	b := &admission.Busy{Class: admission.Cross, Reason: "queue_full", Ahead: 70, Limit: 64, RetryAfter: 7 * time.Second}
	err := toStatus(&sluice.Error{Code: sluice.EResource, Message: b.Error(), Err: b})
	st, _ := status.FromError(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "retry after 7s") {
		t.Fatalf("status %v", st)
	}
	var retry time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri.RetryDelay.AsDuration()
		}
	}
	if retry != 7*time.Second {
		t.Fatalf("retry info %s, want 7s", retry)
	}
}
