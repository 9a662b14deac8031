package sandbox

import "unicode/utf8"

// likePattern is a compiled SQL LIKE pattern: % matches any run of
// characters, _ one character, and a backslash makes the next character
// literal. Matching is case-sensitive, over characters (not bytes).
type likePattern struct {
	toks []likeTok
}

type likeTok struct {
	kind byte // 'c' literal rune, '_' one rune, '%' any run
	r    rune
}

func compileLike(p string) *likePattern {
	lp := &likePattern{}
	esc := false
	for _, r := range p {
		switch {
		case esc:
			lp.toks = append(lp.toks, likeTok{kind: 'c', r: r})
			esc = false
		case r == '\\':
			esc = true
		case r == '%':
			if n := len(lp.toks); n > 0 && lp.toks[n-1].kind == '%' {
				continue
			}
			lp.toks = append(lp.toks, likeTok{kind: '%'})
		case r == '_':
			lp.toks = append(lp.toks, likeTok{kind: '_'})
		default:
			lp.toks = append(lp.toks, likeTok{kind: 'c', r: r})
		}
	}
	if esc {
		lp.toks = append(lp.toks, likeTok{kind: 'c', r: '\\'})
	}
	return lp
}

// match runs the classic wildcard matcher with backtracking to the last %,
// which is linear in practice and O(len(s)·len(p)) at worst.
func (lp *likePattern) match(s string) bool {
	toks := lp.toks
	ti, si := 0, 0
	starT, starS := -1, 0
	for si < len(s) || ti < len(toks) {
		if ti < len(toks) {
			t := toks[ti]
			switch t.kind {
			case '%':
				starT, starS = ti, si
				ti++
				continue
			case '_':
				if si < len(s) {
					_, w := utf8.DecodeRuneInString(s[si:])
					si += w
					ti++
					continue
				}
			default:
				if si < len(s) {
					r, w := utf8.DecodeRuneInString(s[si:])
					if r == t.r {
						si += w
						ti++
						continue
					}
				}
			}
		}
		if starT >= 0 && starS < len(s) {
			_, w := utf8.DecodeRuneInString(s[starS:])
			starS += w
			ti, si = starT+1, starS
			continue
		}
		return false
	}
	return true
}

func likeVec(s, p *vec, constant *likePattern, negate bool) *vec {
	out := boolNull(s.n)
	var lastP string
	var last *likePattern
	for k := 0; k < s.n; k++ {
		if s.isNull(k) || p.isNull(k) {
			out.null[k] = true
			continue
		}
		lp := constant
		if lp == nil {
			if last == nil || p.s[k] != lastP {
				last, lastP = compileLike(p.s[k]), p.s[k]
			}
			lp = last
		}
		out.b[k] = lp.match(s.s[k]) != negate
	}
	return out
}
