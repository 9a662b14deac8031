package demo

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// Exists reports whether dir holds a demo world from an earlier run: its
// broker store (audit log, applications, grants) or its users' tokens. A
// demo started there keeps them and regenerates the rest.
func Exists(dir string) bool {
	for _, name := range []string{"broker.db", "users.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// demoEntries are the names Start and Generate write in the demo folder;
// Reset removes these and nothing else.
var demoEntries = map[string]bool{
	"tls": true, "keys": true, "users.json": true, "broker-users.json": true, "broker.yaml": true,
	"purposes.yaml": true, "grants.yaml": true,
}

func isDemoEntry(name string) bool {
	if demoEntries[name] || strings.HasPrefix(name, "broker.db") { // -wal, -shm, -journal too
		return true
	}
	for _, d := range Departments {
		if name == d {
			return true
		}
	}
	return false
}

// Reset removes the demo world in dir so that the next Start generates a
// new one: the databases, configuration, certificates, keys, the broker's
// store with its audit log and workflow, and the agents' logs. It removes
// only what a demo writes, and refuses a folder that does not hold a demo
// world (no broker.yaml or users.json), so a mistyped --dir never deletes
// anything else. It reports whether there was a world to remove.
func Reset(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, sluice.Errorf(sluice.EInvalid, "--reset: cannot read %s: %v", dir, err)
	}
	if len(entries) == 0 {
		return false, nil
	}
	marked := false
	for _, name := range []string{"broker.yaml", "users.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			marked = true
		}
	}
	if !marked {
		return false, sluice.Errorf(sluice.EInvalid, "--reset: %s does not hold a demo world (no broker.yaml or users.json), so nothing was deleted; pass the demo's --dir", dir)
	}
	var others []string
	for _, e := range entries {
		if !isDemoEntry(e.Name()) {
			others = append(others, e.Name())
		}
	}
	if len(others) > 0 {
		sort.Strings(others)
		return false, sluice.Errorf(sluice.EInvalid, "--reset: %s also holds %s, which a demo does not write, so nothing was deleted; move them away, or pass another --dir", dir, strings.Join(others, ", "))
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return false, sluice.Errorf(sluice.EInvalid, "--reset: cannot remove %s: %v", filepath.Join(dir, e.Name()), err)
		}
	}
	if err := os.Remove(dir); err != nil {
		return true, sluice.Errorf(sluice.EInvalid, "--reset: cannot remove %s: %v", dir, err)
	}
	return true, nil
}
