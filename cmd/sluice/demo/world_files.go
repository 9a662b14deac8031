package demo

import (
	"fmt"

	sluice "github.com/sluice-gov/sluice"
)

// WritePurposes writes purposes in the format LoadPurposes reads.
func WritePurposes(path string, ps []sluice.Purpose) error {
	return writeList(path, "# Purposes registry (用途): the application scenarios data may be used for.\n", ps)
}

// WriteGrants writes grants in the format LoadGrants reads.
func WriteGrants(path string, gs []sluice.Grant) error {
	return writeList(path, "# Approved applications (grants): who may use which columns, for which purpose, until when.\n", gs)
}

func writeList(path, header string, v any) error {
	body, err := marshalYAML(v)
	if err != nil {
		return fmt.Errorf("demo: encoding %s: %w", path, err)
	}
	return writeFileAtomic(path, append([]byte(header), body...), 0o644)
}
