package main

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// How a volatile token is compared.
const (
	// bind: the README's value stands for whatever the run prints in its
	// place the first time; from then on it must be that same value (in
	// outputs and, substituted, in later commands), and no other README
	// value may stand for it. Identifiers, hashes, the run's dates.
	bind = iota
	// wild: any value of the same shape. Event times and measured
	// durations, which differ between entries printed in the same second
	// or not, and so cannot be held to one value.
	wild
)

// class is a kind of volatile token.
type class struct {
	name string
	mode int
	// find finds the token in README text (outputs and commands).
	find string
	// ok, when set, must accept a README match for it to count as a token
	// (else it is literal text).
	ok func(tok string) bool
	// actual returns the regexp the run's text must match in the token's
	// place (no anchors, no capturing groups).
	actual func(tok string) string
	why    string
}

var hexLetter = regexp.MustCompile(`[a-f]`)
var decDigit = regexp.MustCompile(`[0-9]`)

// classes are the volatile tokens, in order of precedence (at one position
// the first class that matches wins).
var classes = []class{
	{
		name: "token", mode: bind,
		find:   `slc_[A-Za-z0-9_-]{43}`,
		actual: func(string) string { return `slc_[A-Za-z0-9_-]{43}` },
		why:    "a bearer token is fresh random bytes for every user of every demo",
	},
	{
		name: "workflow id", mode: bind,
		find: `\b[a-z]+-[0-9]{8}-[0-9a-f]{8}\b`,
		actual: func(tok string) string {
			prefix := tok[:strings.IndexByte(tok, '-')]
			return regexp.QuoteMeta(prefix) + `-[0-9]{8}-[0-9a-f]{8}`
		},
		why: "application and report ids are the day of submission and 8 random hex digits (the prefix must match)",
	},
	{
		name: "uuid", mode: bind,
		find:   `\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`,
		actual: func(string) string { return `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}` },
		why:    "query ids are random UUIDs",
	},
	{
		name: "sha256", mode: bind,
		find:   `\b[0-9a-f]{64}\b`,
		actual: func(string) string { return `[0-9a-f]{64}` },
		why:    "the audit chain head and the policy revision hash data that holds the run's times and ids",
	},
	{
		name: "timestamp", mode: bind,
		find: `\b[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})`,
		actual: func(string) string {
			return `[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})`
		},
		why: "grant validity is relative to the demo's start and a query's time is when it ran; one README time must stay one run time",
	},
	{
		name: "event time", mode: wild,
		find: `\b[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}(:[0-9]{2})?\b`,
		actual: func(tok string) string {
			if len(tok) > len("2006-01-02 15:04") {
				return `[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}`
			}
			return `[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}`
		},
		why: "when an audit entry or alert was written; entries of one second in the README may straddle seconds in a run. " +
			"Compared exactly when its date was given in a command (then it is data, e.g. a grant's end)",
	},
	{
		name: "checkpoint progress", mode: wild,
		find: `\b[0-9]+ signed checkpoints verified, signed through entry [0-9]+( \(newer entries are signed at the next checkpoint\))?`,
		actual: func(string) string {
			return `[0-9]+ signed checkpoints verified, signed through entry [0-9]+(?: \(newer entries are signed at the next checkpoint\))?`
		},
		why: "the broker signs the chain head every 100 entries or 10 seconds, so how many checkpoints a tour has depends on how fast it ran; the entry count and head are still checked",
	},
	{
		name: "date", mode: bind,
		find:   `\b[0-9]{4}-[0-9]{2}-[0-9]{2}\b`,
		actual: func(string) string { return `[0-9]{4}-[0-9]{2}-[0-9]{2}` },
		why: "the day of the run and dates counted from it (due dates); a date written in a command is pinned to itself, " +
			"and all dates are compared exactly when the tour runs on the day the README's tour ran",
	},
	{
		name: "duration", mode: wild,
		find:   `\b([0-9]+h)?([0-9]+m)?[0-9]+\.[0-9]+(ns|µs|us|ms|s)\b`,
		actual: func(string) string { return `(?:[0-9]+h)?(?:[0-9]+m)?[0-9]+(?:\.[0-9]+)?(?:ns|µs|us|ms|s)` },
		why:    "a measured duration (one with a fraction); round durations are settings and compared exactly",
	},
	{
		name: "short id", mode: bind,
		find:   `\b[0-9a-f]{8}\b`,
		ok:     func(tok string) bool { return hexLetter.MatchString(tok) && decDigit.MatchString(tok) },
		actual: func(string) string { return `[0-9a-f]{8}` },
		why:    "the audit log shows a query by the first 8 hex digits of its id (README tokens of 8 hex digits with a letter and a digit)",
	},
}

var tokenRE = func() *regexp.Regexp {
	parts := make([]string, len(classes))
	for i, c := range classes {
		parts[i] = "(" + c.find + ")"
	}
	return regexp.MustCompile(strings.Join(parts, "|"))
}()

// group index in tokenRE of each class's outer group
var classGroup = func() []int {
	g := make([]int, len(classes))
	n := 1
	for i, c := range classes {
		g[i] = n
		n += 1 + regexp.MustCompile(c.find).NumSubexp()
	}
	return g
}()

// segment is a piece of a README line: literal text or a volatile token.
type segment struct {
	lit   string
	tok   string
	class int // index in classes, or -1 for literal text
}

// tokenize cuts README text into literal text and volatile tokens.
func tokenize(s string) []segment {
	var out []segment
	last := 0
	for _, m := range tokenRE.FindAllStringSubmatchIndex(s, -1) {
		ci := -1
		for i, g := range classGroup {
			if m[2*g] >= 0 {
				ci = i
				break
			}
		}
		tok := s[m[0]:m[1]]
		if ci < 0 || (classes[ci].ok != nil && !classes[ci].ok(tok)) {
			continue
		}
		if m[0] > last {
			out = append(out, segment{lit: s[last:m[0]], class: -1})
		}
		out = append(out, segment{tok: tok, class: ci})
		last = m[1]
	}
	if last < len(s) {
		out = append(out, segment{lit: s[last:], class: -1})
	}
	return out
}

// binding records what a README value stands for in this run.
type binding struct {
	actual string
	class  int
	where  string // the step that bound it
	pinned bool   // written in a command before any output showed it
}

// bindings maps the README's volatile values to the run's, both ways.
type bindings struct {
	fwd map[string]binding // README value → run value
	rev map[string]string  // run value → README value
	// exactDates: the tour runs on the day the README's tour ran, so its
	// dates (the day, due dates counted from it) must be the README's.
	exactDates bool
}

func newBindings() *bindings {
	return &bindings{fwd: map[string]binding{}, rev: map[string]string{}}
}

func (b *bindings) clone() *bindings {
	c := newBindings()
	c.exactDates = b.exactDates
	for k, v := range b.fwd {
		c.fwd[k] = v
	}
	for k, v := range b.rev {
		c.rev[k] = v
	}
	return c
}

// bindOne binds readme to actual, or says why it cannot.
func (b *bindings) bindOne(readme, actual string, class int, where string) error {
	if have, ok := b.fwd[readme]; ok {
		if have.actual != actual {
			return fmt.Errorf("README's %s %s stands for %s (since %s) but here the run printed %s", classes[class].name, readme, have.actual, have.where, actual)
		}
		return nil
	}
	if other, ok := b.rev[actual]; ok && other != readme {
		return fmt.Errorf("the run printed %s where the README has %s, but %s already stands for README's %s", actual, readme, actual, other)
	}
	b.fwd[readme] = binding{actual: actual, class: class, where: where}
	b.rev[actual] = readme
	return nil
}

// substitute rewrites a command word: volatile values bound by earlier
// outputs are replaced by the run's; an unbound identifier, hash or date is
// pinned (it is input, so the run must show it as written). It returns the
// word and the tokens it pinned.
func (b *bindings) substitute(word, where string) (string, []string) {
	var out strings.Builder
	var pinned []string
	for _, sg := range tokenize(word) {
		if sg.class < 0 {
			out.WriteString(sg.lit)
			continue
		}
		if classes[sg.class].mode == bind {
			if have, ok := b.fwd[sg.tok]; ok {
				out.WriteString(have.actual)
				continue
			}
			if _, taken := b.rev[sg.tok]; !taken {
				b.fwd[sg.tok] = binding{actual: sg.tok, class: sg.class, where: where, pinned: true}
				b.rev[sg.tok] = sg.tok
				pinned = append(pinned, sg.tok)
			}
		}
		out.WriteString(sg.tok)
	}
	return out.String(), pinned
}

// isPinnedDate says whether a date was written in a command.
func (b *bindings) isPinnedDate(date string) bool {
	bd, ok := b.fwd[date]
	return ok && bd.pinned
}

// linePattern is a compiled README line: the regexp a run's line must match
// and, per capturing group, the README token it captures.
type linePattern struct {
	re      *regexp.Regexp
	capture []segment
}

// compileLine turns a README output line into a pattern under the current
// bindings: literal text and bound or pinned values must appear as they
// are (bound ones as the run's value), unbound values and wild tokens are
// captured by their class's shape. With elide set, "…" matches any text
// (used only to hint that a difference is a README elision).
func (b *bindings) compileLine(line string, elide bool) linePattern {
	var re strings.Builder
	var caps []segment
	re.WriteString("^")
	lit := func(s string) {
		if !elide {
			re.WriteString(regexp.QuoteMeta(s))
			return
		}
		parts := strings.Split(s, "…")
		for i, p := range parts {
			if i > 0 {
				re.WriteString(".*?")
			}
			re.WriteString(regexp.QuoteMeta(p))
		}
	}
	for _, sg := range tokenize(line) {
		if sg.class < 0 {
			lit(sg.lit)
			continue
		}
		c := classes[sg.class]
		if c.name == "date" && b.exactDates {
			re.WriteString(regexp.QuoteMeta(sg.tok))
			continue
		}
		if c.mode == bind {
			if have, ok := b.fwd[sg.tok]; ok {
				re.WriteString(regexp.QuoteMeta(have.actual))
				continue
			}
		}
		if c.name == "event time" && b.isPinnedDate(sg.tok[:10]) {
			re.WriteString(regexp.QuoteMeta(sg.tok))
			continue
		}
		re.WriteString("(" + c.actual(sg.tok) + ")")
		caps = append(caps, sg)
	}
	re.WriteString("$")
	return linePattern{re: regexp.MustCompile(re.String()), capture: caps}
}

// matchLine matches a run's line against a README line and, when it
// matches, the values it binds (checked for consistency against b and
// within the line, but not yet recorded).
func (b *bindings) matchLine(p linePattern, actual string) (map[string]string, bool) {
	m := p.re.FindStringSubmatch(actual)
	if m == nil {
		return nil, false
	}
	nb := map[string]string{}
	nrev := map[string]string{}
	for i, sg := range p.capture {
		if classes[sg.class].mode != bind {
			continue
		}
		v := m[i+1]
		if have, ok := nb[sg.tok]; ok && have != v {
			return nil, false
		}
		if other, ok := nrev[v]; ok && other != sg.tok {
			return nil, false
		}
		if other, ok := b.rev[v]; ok && other != sg.tok {
			return nil, false
		}
		nb[sg.tok], nrev[v] = v, sg.tok
	}
	return nb, true
}

// changed lists the bindings whose run value differs from the README's, for
// the report.
func (b *bindings) changed() []string {
	var out []string
	for k, v := range b.fwd {
		if v.actual != k {
			out = append(out, fmt.Sprintf("%-13s %s → %s", classes[v.class].name, k, v.actual))
		}
	}
	sort.Strings(out)
	return out
}

// rewrite replaces the bound values in a README line by the run's, so a
// diff shows only what really differs.
func (b *bindings) rewrite(line string) string {
	var out strings.Builder
	for _, sg := range tokenize(line) {
		if sg.class >= 0 {
			if have, ok := b.fwd[sg.tok]; ok {
				out.WriteString(have.actual)
				continue
			}
			out.WriteString(sg.tok)
			continue
		}
		out.WriteString(sg.lit)
	}
	return out.String()
}

var dayInID = regexp.MustCompile(`^[a-z]+-([0-9]{4})([0-9]{2})([0-9]{2})-`)

// tourDay returns the day the README's tour ran: the most common day among
// the dates in its outputs (event times, timestamps, ids that carry a day,
// dates), the earliest on a tie; "" when they have none.
func tourDay(steps []step) string {
	count := map[string]int{}
	for _, st := range steps {
		for _, ln := range st.Expected {
			for _, sg := range tokenize(ln) {
				if sg.class < 0 {
					continue
				}
				switch classes[sg.class].name {
				case "event time", "timestamp", "date":
					count[sg.tok[:10]]++
				case "workflow id":
					if m := dayInID.FindStringSubmatch(sg.tok); m != nil {
						count[m[1]+"-"+m[2]+"-"+m[3]]++
					}
				}
			}
		}
	}
	best := ""
	for d, n := range count {
		if best == "" || n > count[best] || n == count[best] && d < best {
			best = d
		}
	}
	return best
}
