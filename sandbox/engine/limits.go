package engine

import (
	"strconv"
	"time"
)

// Byte units the limits are given and named in.
const (
	MiB = 1 << 20
	GiB = 1 << 30
)

// Defaults for Limits fields left zero.
const (
	DefaultMemory   = 1 * GiB
	DefaultThreads  = 2
	DefaultMaxSpill = 10 * GiB
)

// Limits come from the broker's configuration. They apply to every
// Session, that is to every analyst query, separately (see the package
// documentation): a Session has a DuckDB database to itself.
type Limits struct {
	// Memory is DuckDB's memory_limit for one session in bytes
	// (DefaultMemory when 0). DuckDB spills hash tables, sorts and
	// materialised inputs beyond it to SpillDir.
	Memory int64
	// Threads is DuckDB's threads setting for one session
	// (DefaultThreads when 0).
	Threads int
	// SpillDir is the parent of the private spill directory (0700) that
	// Open creates (os.TempDir() when empty). Each database of the engine
	// spills into its own subdirectory, which it leaves empty for the next
	// session or removes when it is closed; Engine.Close removes them all.
	SpillDir string
	// MaxSpill is DuckDB's max_temp_directory_size for one session in
	// bytes (DefaultMaxSpill when 0).
	MaxSpill int64
	// QueryTime is the wall-clock limit of one session, from Engine.Session
	// to the last statement or result batch (none when 0).
	QueryTime time.Duration
}

// withDefaults fills the zero fields of lim.
func (lim Limits) withDefaults() Limits {
	if lim.Memory == 0 {
		lim.Memory = DefaultMemory
	}
	if lim.Threads == 0 {
		lim.Threads = DefaultThreads
	}
	if lim.MaxSpill == 0 {
		lim.MaxSpill = DefaultMaxSpill
	}
	return lim
}

// formatBytes names a limit the way the sandbox's messages do: whole GiB
// or MiB when exact, MiB with two decimals otherwise.
func formatBytes(n int64) string {
	switch {
	case n >= GiB && n%GiB == 0:
		return strconv.FormatInt(n/GiB, 10) + " GiB"
	case n%MiB == 0:
		return strconv.FormatInt(n/MiB, 10) + " MiB"
	}
	return strconv.FormatFloat(float64(n)/MiB, 'f', 2, 64) + " MiB"
}
