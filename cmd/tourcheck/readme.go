package main

import (
	"bufio"
	"fmt"
	"regexp"
	"strings"
)

// step is one command of the tour with the output the README shows for it.
type step struct {
	Line     int      // README line of the "$ " prompt
	Text     string   // the command as written, continuation lines included
	Words    []string // the command split into words as a shell would
	Err      error    // why the command cannot be run as written, if so
	Expected []string // the README's output lines, trailing blank lines dropped
	// Assign names the variable of a NAME=$(command) line: Words are the
	// inner command's, its stdout becomes NAME for later commands ($NAME),
	// and Expected is what the terminal shows: its stderr.
	Assign string
	// Noisy is set when the paragraph that leads into the command's console
	// block says the released values carry noise (differential privacy);
	// then the numbers of a query's result table are compared by shape.
	Noisy     bool
	NoiseWhy  string // the sentence of the prose that says so
	Block     int    // 1-based index of the console block
	BlockLine int    // README line of the block's opening fence
}

// noiseWords find prose that announces noisy values.
var noiseWords = regexp.MustCompile(`(?i)\bnois(e|y|ed)\b`)

// parseReadme returns the commands of the README's ```console blocks in
// order. A command starts at a line "$ "; it continues on the next line
// after a trailing backslash or while a quote is open (the README's SQL
// spans lines inside double quotes). Every following line up to the next
// prompt or the end of the block is its output.
func parseReadme(text string) ([]step, error) {
	var (
		steps   []step
		prose   []string
		inBlock bool
		fence   string
		console bool
		block   int
		blockLn int
		noisy   bool
		why     string
		// the paragraph before the next block
		paraEnded bool
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var lines []string
	for sc.Scan() {
		lines = append(lines, strings.TrimSuffix(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	cur := -1 // index in steps of the command whose output is being read
	for i := 0; i < len(lines); i++ {
		ln := lines[i]
		trimmed := strings.TrimSpace(ln)
		if !inBlock {
			if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
				inBlock = true
				fence = trimmed[:3]
				info := strings.TrimSpace(strings.TrimLeft(trimmed, fence[:1]))
				console = info == "console" || strings.HasPrefix(info, "console ")
				if console {
					block++
					blockLn = i + 1
					noisy, why = false, ""
					p := strings.Join(prose, "\n")
					if loc := noiseWords.FindStringIndex(p); loc != nil {
						noisy, why = true, sentenceAround(p, loc[0], loc[1])
					}
				}
				prose, paraEnded = nil, false
				cur = -1
				continue
			}
			// Keep the last paragraph before a block: the one that leads
			// into it (a blank line before the fence does not end it).
			switch {
			case trimmed == "":
				paraEnded = true
			case strings.HasPrefix(trimmed, "#"):
				prose, paraEnded = nil, false
			default:
				if paraEnded {
					prose, paraEnded = nil, false
				}
				prose = append(prose, ln)
			}
			continue
		}
		if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]) == "" {
			inBlock, console, cur = false, false, -1
			continue
		}
		if !console {
			continue
		}
		if strings.HasPrefix(ln, "$ ") || ln == "$" {
			st := step{Line: i + 1, Block: block, BlockLine: blockLn, Noisy: noisy, NoiseWhy: why}
			text := strings.TrimPrefix(strings.TrimPrefix(ln, "$"), " ")
			words, assign, err := splitCommand(text)
			for err == errIncomplete && i+1 < len(lines) && !isFence(lines[i+1], fence) {
				i++
				text += "\n" + lines[i]
				words, assign, err = splitCommand(text)
			}
			st.Assign = assign
			if err == errIncomplete {
				err = fmt.Errorf("the command does not end before the block does (open quote or trailing backslash)")
			}
			st.Text, st.Words, st.Err = text, words, err
			steps = append(steps, st)
			cur = len(steps) - 1
			continue
		}
		if cur < 0 {
			if trimmed != "" {
				return nil, fmt.Errorf("line %d: output before any command in the console block at line %d", i+1, blockLn)
			}
			continue
		}
		steps[cur].Expected = append(steps[cur].Expected, ln)
	}
	if inBlock {
		return nil, fmt.Errorf("the code block opened at line %d is not closed", blockLn)
	}
	for i := range steps {
		steps[i].Expected = trimTrailingBlank(steps[i].Expected)
	}
	return steps, nil
}

// splitCommand splits a command line, or the inner command of a
// NAME=$(command) line, into words, with the variable it assigns.
func splitCommand(text string) ([]string, string, error) {
	name, inner, ok, err := assignment(text)
	if !ok {
		words, err := splitWords(text)
		return words, "", err
	}
	if err != nil {
		return nil, name, err
	}
	words, err := splitWords(inner)
	return words, name, err
}

func isFence(ln, fence string) bool {
	t := strings.TrimSpace(ln)
	return strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]) == ""
}

// trimTrailingBlank drops blank lines at the end: the README separates
// commands within a block with them, and a trailing newline of the output
// is not visible in a README either.
func trimTrailingBlank(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// sentenceAround returns, on one line, the sentence of p around the match
// [from, to): from the previous '.', ':' or '!' followed by a blank to the
// next one.
func sentenceAround(p string, from, to int) string {
	before, match, after := p[:from], p[from:to], p[to:]
	start := 0
	for _, sep := range []string{". ", ".\n", ": ", ":\n", "! "} {
		if k := strings.LastIndex(before, sep); k >= 0 && k+len(sep) > start {
			start = k + len(sep)
		}
	}
	end := len(after)
	for _, sep := range []string{". ", ".\n", ": ", ":\n", "! "} {
		if k := strings.Index(after, sep); k >= 0 && k+1 < end {
			end = k + 1
		}
	}
	if strings.HasSuffix(after[:end], ":") && end == len(after) {
		end--
	}
	return strings.Join(strings.Fields(before[start:]+match+after[:end]), " ")
}
