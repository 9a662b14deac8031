package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// errIncomplete says a command line continues on the next line: it ends
// with a backslash or inside an open quote.
var errIncomplete = errors.New("the command continues on the next line")

// splitWords splits a command line into words as a POSIX shell would for
// the small subset the README uses: blanks and newlines separate words,
// 'single' and "double" quotes group them, a backslash escapes the next
// character and a backslash-newline joins two lines. A variable, $NAME or
// ${NAME} (bare or in double quotes), is left in the word as a mark that
// expandVars replaces with the value an earlier NAME=$(command) captured.
// Anything else that would make the shell expand or redirect (other $
// forms, backquotes, globs, |, ;, &, <, >, parentheses, comments, ~) is
// refused rather than passed on literally, so a command the tool cannot run
// faithfully is reported, not guessed at.
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
				if c == '$' {
					name, n, ok := varRef(rs[j:])
					if !ok {
						return nil, fmt.Errorf("unsupported shell syntax: %q inside double quotes would be expanded by a shell (only $NAME and ${NAME} are supported)", string(c))
					}
					cur.WriteString(varMark(name))
					j += n - 1
					continue
				}
				if c == '`' {
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
		case r == '$':
			name, n, ok := varRef(rs[i:])
			if !ok {
				return nil, fmt.Errorf("unsupported shell syntax: unquoted %q (only $NAME and ${NAME} are supported)", string(r))
			}
			cur.WriteString(varMark(name))
			inWord = true
			i += n - 1
		case strings.ContainsRune("`|;&<>()*?[", r):
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

// varName is a shell variable name.
var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

// varRef reads $NAME or ${NAME} at the start of rs, returning the name and
// the number of runes it spans.
func varRef(rs []rune) (string, int, bool) {
	if len(rs) < 2 || rs[0] != '$' {
		return "", 0, false
	}
	if rs[1] == '{' {
		end := -1
		for k := 2; k < len(rs); k++ {
			if rs[k] == '}' {
				end = k
				break
			}
		}
		if end < 0 {
			return "", 0, false
		}
		name := string(rs[2:end])
		if varName.FindString(name) != name {
			return "", 0, false
		}
		return name, end + 1, true
	}
	name := varName.FindString(string(rs[1:]))
	if name == "" {
		return "", 0, false
	}
	return name, 1 + len([]rune(name)), true
}

// varMark stands for a variable's value in a word until it is known.
func varMark(name string) string { return "\x00" + name + "\x00" }

var varMarks = regexp.MustCompile("\x00([A-Za-z_][A-Za-z0-9_]*)\x00")

// expandVars replaces the variables of word with their values; it fails
// on a variable no earlier command set.
func expandVars(word string, vars map[string]string) (string, error) {
	var missing string
	out := varMarks.ReplaceAllStringFunc(word, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := vars[name]
		if !ok && missing == "" {
			missing = name
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("$%s is used before a NAME=$(command) line of the README sets it", missing)
	}
	return out, nil
}

// showVars renders word for display with its variables as the README
// writes them.
func showVars(word string) string {
	return varMarks.ReplaceAllString(word, "$$$1")
}

// assignment reads a command line of the form NAME=$(command): the shell
// runs command and keeps what it printed on stdout (without trailing
// newlines) as NAME; its stderr still reaches the terminal. It returns the
// name and the inner command, ok=false when the line is not of this form,
// and errIncomplete while the closing parenthesis has not come yet.
func assignment(text string) (name, inner string, ok bool, err error) {
	name = varName.FindString(text)
	if name == "" || !strings.HasPrefix(text[len(name):], "=$(") {
		return "", "", false, nil
	}
	body := []rune(text[len(name)+3:])
	var quote rune
	for i := 0; i < len(body); i++ {
		r := body[i]
		switch {
		case quote != 0:
			if r == '\\' && quote == '"' {
				i++
			} else if r == quote {
				quote = 0
			}
		case r == '\\':
			i++
		case r == '\'' || r == '"':
			quote = r
		case r == '(':
			return "", "", true, fmt.Errorf("unsupported shell syntax: nested parentheses in %s=$(…)", name)
		case r == ')':
			if rest := strings.TrimSpace(string(body[i+1:])); rest != "" {
				return "", "", true, fmt.Errorf("unsupported shell syntax: %q after %s=$(…)", rest, name)
			}
			return name, string(body[:i]), true, nil
		}
	}
	return name, "", true, errIncomplete
}
