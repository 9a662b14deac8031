// Package alerts raises review alerts from the audit stream: repeated
// denials by one principal, an unusual volume read by one principal,
// queries outside working hours, and grants about to expire. Alerts are
// written back into the audit log (kind "alert"), so they are chained and
// signed like everything else and an auditor finds them with `sluice audit
// search --kind alert`.
package alerts

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/broker/audit"
)

// Rules configures the alert rules. A zero count or duration disables a rule.
type Rules struct {
	// RepeatedDenials: at least Count denials by one principal within Window.
	RepeatedDenials struct {
		Count  int           `yaml:"count"`
		Window time.Duration `yaml:"window"`
	} `yaml:"repeated_denials"`
	// Volume: more than Rows rows released to one principal within Window.
	Volume struct {
		Rows   int64         `yaml:"rows"`
		Window time.Duration `yaml:"window"`
	} `yaml:"volume"`
	// WorkingHours: data queries outside [Start, End) on weekdays, in Location.
	WorkingHours struct {
		Enabled  bool   `yaml:"enabled"`
		Start    string `yaml:"start"`    // "08:30"
		End      string `yaml:"end"`      // "17:30"
		Location string `yaml:"location"` // IANA zone, e.g. Asia/Shanghai
	} `yaml:"working_hours"`
	// GrantExpiry: a grant ends within this long.
	GrantExpiry time.Duration `yaml:"grant_expiry"`
}

// DefaultRules are what a broker uses without an alerts file.
func DefaultRules() Rules {
	var r Rules
	r.RepeatedDenials.Count, r.RepeatedDenials.Window = 5, 10*time.Minute
	r.Volume.Rows, r.Volume.Window = 1_000_000, time.Hour
	r.WorkingHours.Enabled = true
	r.WorkingHours.Start, r.WorkingHours.End, r.WorkingHours.Location = "08:00", "20:00", "Asia/Shanghai"
	r.GrantExpiry = 7 * 24 * time.Hour
	return r
}

// LoadRules reads an alerts file; fields not given keep their defaults.
func LoadRules(path string) (Rules, error) {
	r := DefaultRules()
	raw, err := os.ReadFile(path)
	if err != nil {
		return r, &sluice.ConfigError{File: path, Problem: fmt.Sprintf("cannot read: %v", err)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return r, &sluice.ConfigError{File: path, Problem: "not valid alert rules YAML: " + err.Error()}
	}
	if _, err := New(r); err != nil {
		return r, &sluice.ConfigError{File: path, Problem: sluice.ErrorMessage(err)}
	}
	return r, nil
}

// Alert is one raised alert.
type Alert struct {
	Rule      string    `json:"rule"` // repeated_denials | volume | outside_working_hours | grant_expiring
	Principal string    `json:"principal,omitempty"`
	QueryID   string    `json:"query_id,omitempty"`
	Grant     string    `json:"grant,omitempty"`
	Message   string    `json:"message"`
	Time      time.Time `json:"time"`
}

// Entry turns an alert into its audit entry.
func (a Alert) Entry() *audit.Entry {
	return &audit.Entry{
		Kind:      audit.KindAlert,
		QueryID:   a.QueryID,
		Principal: a.Principal,
		Decision:  audit.DecisionAlert,
		Reasons:   []string{a.Rule + ": " + a.Message},
	}
}

// Engine evaluates the rules. It keeps a sliding window per principal and
// is safe for concurrent use.
type Engine struct {
	rules      Rules
	loc        *time.Location
	start, end int // minutes after midnight

	mu      sync.Mutex
	denials map[string][]time.Time
	volume  map[string][]volumePoint
	// fired remembers when a (rule, principal) last alerted, so a burst
	// raises one alert per window rather than one per request.
	fired       map[string]time.Time
	grantsFired map[string]bool
}

type volumePoint struct {
	at   time.Time
	rows int64
}

// New checks the rules and builds an engine.
func New(r Rules) (*Engine, error) {
	e := &Engine{rules: r, denials: map[string][]time.Time{}, volume: map[string][]volumePoint{}, fired: map[string]time.Time{}, grantsFired: map[string]bool{}}
	if r.RepeatedDenials.Count < 0 || r.RepeatedDenials.Window < 0 || r.Volume.Rows < 0 || r.Volume.Window < 0 || r.GrantExpiry < 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "alert rule counts and windows must not be negative")
	}
	if r.WorkingHours.Enabled {
		loc, err := time.LoadLocation(r.WorkingHours.Location)
		if err != nil {
			return nil, sluice.Errorf(sluice.EInvalid, "working_hours.location %q is not a time zone name (e.g. Asia/Shanghai): %v", r.WorkingHours.Location, err)
		}
		e.loc = loc
		if e.start, err = clock(r.WorkingHours.Start); err != nil {
			return nil, sluice.Errorf(sluice.EInvalid, "working_hours.start: %v", err)
		}
		if e.end, err = clock(r.WorkingHours.End); err != nil {
			return nil, sluice.Errorf(sluice.EInvalid, "working_hours.end: %v", err)
		}
		if e.end <= e.start {
			return nil, sluice.Errorf(sluice.EInvalid, "working_hours.end must be after start")
		}
	}
	return e, nil
}

func clock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Observe folds one audit entry in and returns the alerts it raises.
func (e *Engine) Observe(en audit.Entry) []Alert {
	if en.Kind == audit.KindAlert || en.Principal == "" {
		return nil
	}
	at := en.Time
	if at.IsZero() {
		at = time.Now()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Alert
	rd := e.rules.RepeatedDenials
	if rd.Count > 0 && rd.Window > 0 && (en.Decision == audit.DecisionDeny) {
		list := prune(append(e.denials[en.Principal], at), at.Add(-rd.Window))
		e.denials[en.Principal] = list
		if len(list) >= rd.Count && e.fire("repeated_denials", en.Principal, at, rd.Window) {
			out = append(out, Alert{Rule: "repeated_denials", Principal: en.Principal, QueryID: en.QueryID, Time: at,
				Message: fmt.Sprintf("%s was denied %d times within %s; review whether the account probes protected data", en.Principal, len(list), rd.Window)})
		}
	}
	v := e.rules.Volume
	if v.Rows > 0 && v.Window > 0 && en.Kind == audit.KindResult && en.Rows > 0 {
		pts := append(e.volume[en.Principal], volumePoint{at, en.Rows})
		cut := at.Add(-v.Window)
		i := 0
		for i < len(pts) && pts[i].at.Before(cut) {
			i++
		}
		pts = pts[i:]
		e.volume[en.Principal] = pts
		var total int64
		for _, p := range pts {
			total += p.rows
		}
		if total > v.Rows && e.fire("volume", en.Principal, at, v.Window) {
			out = append(out, Alert{Rule: "volume", Principal: en.Principal, QueryID: en.QueryID, Time: at,
				Message: fmt.Sprintf("%s received %d rows within %s (threshold %d)", en.Principal, total, v.Window, v.Rows)})
		}
	}
	if e.loc != nil && en.Kind == audit.KindQuery && en.Decision == audit.DecisionAllow && e.outsideHours(at) {
		out = append(out, Alert{Rule: "outside_working_hours", Principal: en.Principal, QueryID: en.QueryID, Time: at,
			Message: fmt.Sprintf("%s queried %s at %s, outside working hours (%s–%s %s, Monday to Friday)", en.Principal, joinOr(en.Datasets), at.In(e.loc).Format("2006-01-02 15:04"), e.rules.WorkingHours.Start, e.rules.WorkingHours.End, e.rules.WorkingHours.Location)})
	}
	return out
}

func (e *Engine) outsideHours(t time.Time) bool {
	l := t.In(e.loc)
	if l.Weekday() == time.Saturday || l.Weekday() == time.Sunday {
		return true
	}
	m := l.Hour()*60 + l.Minute()
	return m < e.start || m >= e.end
}

func (e *Engine) fire(rule, principal string, at time.Time, window time.Duration) bool {
	key := rule + "\x00" + principal
	if last, ok := e.fired[key]; ok && at.Sub(last) < window {
		return false
	}
	e.fired[key] = at
	return true
}

// ExpiringGrants returns one alert per active grant that ends within the
// configured period; each grant alerts once per engine.
func (e *Engine) ExpiringGrants(now time.Time, grants []sluice.Grant) []Alert {
	if e.rules.GrantExpiry <= 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Alert
	for _, g := range grants {
		if g.Revoked || !now.Before(g.ValidUntil) || g.ValidUntil.Sub(now) > e.rules.GrantExpiry || e.grantsFired[g.ID] {
			continue
		}
		e.grantsFired[g.ID] = true
		out = append(out, Alert{Rule: "grant_expiring", Principal: g.Grantee, Grant: g.ID, Time: now,
			Message: fmt.Sprintf("grant %s (%s on %s for %s) expires at %s; the provider should review renewal", g.ID, g.Grantee, g.Dataset, g.Purpose, g.ValidUntil.UTC().Format(time.RFC3339))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Grant < out[j].Grant })
	return out
}

func prune(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cut) {
		i++
	}
	return ts[i:]
}

func joinOr(ds []string) string {
	if len(ds) == 0 {
		return "the catalog"
	}
	return fmt.Sprint(ds)
}
