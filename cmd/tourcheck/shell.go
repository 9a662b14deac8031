package main

import (
	"errors"
	"fmt"
	"strings"
)

// errIncomplete says a command line continues on the next line: it ends
// with a backslash or inside an open quote.
var errIncomplete = errors.New("the command continues on the next line")

// splitWords splits a command line into words as a POSIX shell would for
// the small subset the README uses: blanks and newlines separate words,
// 'single' and "double" quotes group them, a backslash escapes the next
// character and a backslash-newline joins two lines. Anything that would
// make the shell expand or redirect ($, backquotes, globs, |, ;, &, <, >,
// parentheses, comments, ~) is refused rather than passed on literally, so
// a command the tool cannot run faithfully is reported, not guessed at.
func splitWords(s string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	end := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\n':
			end()
		case r == '\\':
			if i+1 >= len(rs) {
				return nil, errIncomplete
			}
			i++
			if rs[i] == '\n' {
				continue // line continuation
			}
			cur.WriteRune(rs[i])
			inWord = true
		case r == '\'':
			inWord = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j >= len(rs) {
				return nil, errIncomplete
			}
			cur.WriteString(string(rs[i+1 : j]))
			i = j
		case r == '"':
			inWord = true
			j := i + 1
			for ; ; j++ {
				if j >= len(rs) {
					return nil, errIncomplete
				}
				c := rs[j]
				if c == '"' {
					break
				}
				if c == '$' || c == '`' {
					return nil, fmt.Errorf("unsupported shell syntax: %q inside double quotes would be expanded by a shell", string(c))
				}
				if c == '\\' {
					if j+1 >= len(rs) {
						return nil, errIncomplete
					}
					switch n := rs[j+1]; n {
					case '\n':
						j++
						continue
					case '$', '`', '"', '\\':
						cur.WriteRune(n)
						j++
						continue
					}
				}
				cur.WriteRune(c)
			}
			i = j
		case strings.ContainsRune("$`|;&<>()*?[", r):
			return nil, fmt.Errorf("unsupported shell syntax: unquoted %q", string(r))
		case (r == '#' || r == '~') && !inWord:
			return nil, fmt.Errorf("unsupported shell syntax: %q at the start of a word", string(r))
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	end()
	return words, nil
}

// shellQuote renders args for display, quoting where a shell would need it.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`|;&<>()*?[#~") {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
