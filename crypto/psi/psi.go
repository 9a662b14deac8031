package psi

// DST is the hash-to-group domain separation tag for a key domain.
func DST(domain string) string { return "sluice-psi-v1:" + domain }
