package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSluice answers -h as the real CLI does (cmd/sluice): Go flag
// defaults, a group command without flags, an admin command.
const fakeSluice = `#!/bin/sh
case "$*" in
"query -h") cat <<'EOF'
Usage: sluice query --purpose P [--format table|csv|json] [connection flags] "SQL"

Flags:
  -addr string
    	broker address ($SLUICE_ADDR) (default "127.0.0.1:47470")
  -ca string
    	the broker's certificate to pin ($SLUICE_CA) (default ".sluice-demo/tls/broker.crt")
  -format string
    	output format: table, csv or json (default "table")
  -timeout duration
    	give up after this long (default 1m0s)
  -user string
    	take the token of this user from --users (demo convenience)
  -users string
    	users file with tokens, as written by 'sluice demo' ($SLUICE_USERS) (default ".sluice-demo/users.json")
EOF
;;
"audit -h") echo 'sluice: unknown audit command "-h"'; echo "usage: sluice audit <command> [--config broker.yaml | --store FILE] [flags]"; exit 1;;
"audit verify -h") cat <<'EOF'
Usage: sluice audit verify

Flags:
  -config string
    	broker configuration naming the store and keys (default ".sluice-demo/broker.yaml")
  -store string
    	the audit store file (overrides --config)
EOF
;;
"applications -h") echo "Usage: sluice applications <command> [flags] [connection flags]";;
"applications forward -h") cat <<'EOF'
Usage: sluice applications forward ID [connection flags]

Connection flags:
  -admin string
    	host:port of the broker's admin API ($SLUICE_ADMIN; default: admin_listen of --config)
  -ca string
    	the broker's certificate (pinned) or its CA ($SLUICE_CA; default: tls_cert of --config, else .sluice-demo/tls/broker.crt)
  -config string
    	broker configuration to take admin_listen (and tls_cert) from when --admin (--ca) is not given (default ".sluice-demo/broker.yaml")
  -users string
    	users file with tokens, as written by 'sluice demo' ($SLUICE_USERS) (default ".sluice-demo/users.json")
EOF
;;
*) echo "unexpected: $*" >&2; exit 3;;
esac
`

func TestPoint(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	if err := os.WriteFile(bin, []byte(fakeSluice), 0o755); err != nil {
		t.Fatal(err)
	}
	tg := &target{bin: bin, work: dir, dir: "/tmp/x/demo", addr: "127.0.0.1:5555", cache: map[string][]flagDefault{}}
	for _, tc := range []struct{ in, want, added string }{
		{"query --user bob --purpose p SQL",
			"query --addr=127.0.0.1:5555 --ca=/tmp/x/demo/tls/broker.crt --users=/tmp/x/demo/users.json --user bob --purpose p SQL",
			"--addr=127.0.0.1:5555 --ca=/tmp/x/demo/tls/broker.crt --users=/tmp/x/demo/users.json"},
		// a flag the README sets itself is left alone
		{"query --ca=my.crt --user bob SQL",
			"query --addr=127.0.0.1:5555 --users=/tmp/x/demo/users.json --ca=my.crt --user bob SQL", ""},
		{"audit verify", "audit verify --config=/tmp/x/demo/broker.yaml", ""},
		{"applications forward app-20261203-59aa7275 --user dave",
			"applications forward --config=/tmp/x/demo/broker.yaml --users=/tmp/x/demo/users.json app-20261203-59aa7275 --user dave", ""},
	} {
		got, added, err := tg.point(context.Background(), strings.Fields(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, strings.Join(got, " "), tc.want)
		}
		if tc.added != "" && strings.Join(added, " ") != tc.added {
			t.Errorf("%s: added %q", tc.in, added)
		}
	}
	if _, _, err := tg.point(context.Background(), []string{"frobnicate"}); err == nil || !strings.Contains(err.Error(), "lists none") {
		t.Errorf("an unknown command: %v", err)
	}
}
