package main

import (
	"fmt"
	"regexp"
	"strings"
)

// result is the outcome of comparing one command's output.
type result struct {
	OK    bool
	Diff  string   // unified diff of the README (normalised) and the run
	Notes []string // what was normalised or why it differs
	// Elided is set when the output would match if the README's "…" stood
	// for any text: the README abbreviates what the command prints.
	Elided bool
	// Noisy is set when numbers of a result table were compared by shape.
	Noisy bool
}

// compareOutput compares a run's output with the README's lines under the
// bindings, records the values the output binds, and returns the result.
// With noisy set, the numbers in a result table are compared by shape.
func compareOutput(b *bindings, expected []string, output, where string, noisy bool) result {
	actual := trimTrailingBlank(strings.Split(strings.ReplaceAll(output, "\r\n", "\n"), "\n"))
	expected = trimTrailingBlank(expected)
	var res result
	if noisy {
		es, ev := noisyShape(expected)
		as, av := noisyShape(actual)
		if len(ev) > 0 {
			trial := b.clone()
			if r := align(trial, es, as, where, false); r.OK {
				*b = *trial
				r.Noisy = true
				r.Notes = append(r.Notes, fmt.Sprintf("noisy values compared by shape (columns, row count, labels): README %s, run %s",
					strings.Join(ev, " "), strings.Join(av, " ")))
				return r
			}
			res.Notes = append(res.Notes, "noisy values: even by shape (columns, row count, labels) the table differs")
		}
	}
	r := align(b, expected, actual, where, false)
	r.Notes = append(res.Notes, r.Notes...)
	if !r.OK {
		// The values a run prints are facts about the run whether or not
		// the README abbreviates the text around them: keep the bindings
		// of an output that matches but for the README's elisions.
		if trial := b.clone(); align(trial, expected, actual, where, true).OK {
			*b = *trial
			r.Elided = true
			r.Notes = append(r.Notes, "differs only where the README elides text with \"…\": it would match if each \"…\" stood for the text the command prints there")
		}
	}
	return r
}

// align matches README lines to the run's lines in order (longest common
// subsequence under the patterns), records the bindings of matched lines,
// and diffs the rest.
func align(b *bindings, expected, actual []string, where string, elide bool) result {
	pats := make([]linePattern, len(expected))
	for i, e := range expected {
		pats[i] = b.compileLine(e, elide)
	}
	n, m := len(expected), len(actual)
	match := make([][]bool, n)
	for i := range match {
		match[i] = make([]bool, m)
		for j := range match[i] {
			_, match[i][j] = b.matchLine(pats[i], actual[j])
		}
	}
	// lcs[i][j]: longest common subsequence of expected[i:] and actual[j:]
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			switch {
			case match[i][j]:
				lcs[i][j] = lcs[i+1][j+1] + 1
			case lcs[i+1][j] >= lcs[i][j+1]:
				lcs[i][j] = lcs[i+1][j]
			default:
				lcs[i][j] = lcs[i][j+1]
			}
		}
	}
	var res result
	norm := make([]string, 0, n)
	matched := 0
	done := make([]bool, n) // expected line matched
	used := make([]bool, m) // actual line matched
	for i, j := 0, 0; i < n || j < m; {
		switch {
		case i < n && j < m && match[i][j] && lcs[i][j] == lcs[i+1][j+1]+1:
			// re-match under the bindings recorded so far in this output
			nb, ok := b.matchLine(b.compileLine(expected[i], elide), actual[j])
			var err error
			if ok {
				for _, sg := range tokenize(expected[i]) {
					if v, has := nb[sg.tok]; has && sg.class >= 0 {
						if err = b.bindOne(sg.tok, v, sg.class, where); err != nil {
							break
						}
					}
				}
			}
			if ok && err == nil {
				norm = append(norm, actual[j])
				matched++
				done[i], used[j] = true, true
			} else {
				if err != nil {
					res.Notes = append(res.Notes, err.Error())
				}
				norm = append(norm, b.rewrite(expected[i]))
			}
			i++
			j++
		case j < m && (i >= n || lcs[i][j+1] >= lcs[i+1][j]):
			j++
		default:
			norm = append(norm, b.rewrite(expected[i]))
			i++
		}
	}
	res.OK = matched == n && n == m
	if !res.OK {
		res.Notes = append(res.Notes, explainUnmatched(b, expected, actual, done, used, elide)...)
	}
	if !res.OK {
		res.Diff = unifiedDiff(norm, actual, "README (volatile values replaced by the run's)", "run")
	}
	return res
}

var (
	tableSep = regexp.MustCompile(`^-+(-\+-+)*$`)
	rowCount = regexp.MustCompile(`^\([0-9]+ rows?\b`)
	number   = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
)

// noisyShape rewrites the result tables in lines to their shape: cells
// without padding, numbers replaced by "<noisy number>". The header, the
// labels and the row count stay as they are. It also returns the numbers
// it replaced, in order.
func noisyShape(lines []string) ([]string, []string) {
	out := make([]string, len(lines))
	copy(out, lines)
	var values []string
	for s := 1; s < len(out); s++ {
		if !tableSep.MatchString(out[s]) {
			continue
		}
		out[s-1] = joinCells(splitCells(out[s-1]))
		out[s] = "-"
		for r := s + 1; r < len(out) && out[r] != "" && !rowCount.MatchString(out[r]); r++ {
			cells := splitCells(out[r])
			for c, v := range cells {
				if number.MatchString(v) {
					values = append(values, v)
					cells[c] = "<noisy number>"
				}
			}
			out[r] = joinCells(cells)
		}
	}
	return out, values
}

func splitCells(line string) []string {
	cells := strings.Split(line, " | ")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

func joinCells(cells []string) string { return strings.Join(cells, " | ") }

// explainUnmatched pairs README lines that did not match with run lines
// that have their shape (volatile values aside), in order, and says which
// volatile value broke the match: one the README uses for two run values,
// or two README values the run prints as one.
func explainUnmatched(b *bindings, expected, actual []string, done, used []bool, elide bool) []string {
	var notes []string
	loose := newBindings()
	j := 0
	for i, e := range expected {
		if done[i] {
			continue
		}
		p := loose.compileLine(e, elide)
		for k := j; k < len(actual); k++ {
			if used[k] {
				continue
			}
			m := p.re.FindStringSubmatch(actual[k])
			if m == nil {
				continue
			}
			trial := b.clone()
			for c, sg := range p.capture {
				if classes[sg.class].mode != bind {
					continue
				}
				if err := trial.bindOne(sg.tok, m[c+1], sg.class, ""); err != nil {
					notes = append(notes, fmt.Sprintf("README line %q: %v", short(e), err))
					break
				}
			}
			j = k + 1
			break
		}
	}
	return notes
}

func short(s string) string {
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > 60 {
		return string(r[:59]) + "…"
	}
	return s
}
