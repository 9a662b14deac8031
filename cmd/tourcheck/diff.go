package main

import (
	"fmt"
	"strings"
)

// unifiedDiff returns a unified diff of a and b with three lines of
// context, or "" when they are equal.
func unifiedDiff(a, b []string, nameA, nameB string) string {
	type op struct {
		kind byte // ' ', '-', '+'
		text string
		ai   int // line in a (0-based) of ' ' and '-'
		bi   int // line in b of ' ' and '+'
	}
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, op{' ', a[i], i, j})
			i++
			j++
		case i < n && (j >= m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i], i, j})
			i++
		default:
			ops = append(ops, op{'+', b[j], i, j})
			j++
		}
	}
	changed := false
	for _, o := range ops {
		if o.kind != ' ' {
			changed = true
		}
	}
	if !changed {
		return ""
	}
	const ctx = 3
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", nameA, nameB)
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		// a hunk: from ctx lines before this change to ctx lines after the
		// last change that is at most 2*ctx unchanged lines further
		start := max(k-ctx, 0)
		end := k
		for e := k; e < len(ops); e++ {
			if ops[e].kind != ' ' {
				end = e
				continue
			}
			if e-end > 2*ctx {
				break
			}
		}
		stop := min(end+ctx+1, len(ops))
		aStart, bStart, aLen, bLen := -1, -1, 0, 0
		for _, o := range ops[start:stop] {
			if o.kind != '+' {
				if aStart < 0 {
					aStart = o.ai
				}
				aLen++
			}
			if o.kind != '-' {
				if bStart < 0 {
					bStart = o.bi
				}
				bLen++
			}
		}
		if aStart < 0 {
			aStart = ops[start].ai - 1
		}
		if bStart < 0 {
			bStart = ops[start].bi - 1
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(aStart, aLen), hunkRange(bStart, bLen))
		for _, o := range ops[start:stop] {
			fmt.Fprintf(&out, "%c%s\n", o.kind, o.text)
		}
		k = stop
	}
	return out.String()
}

// hunkRange formats a hunk's line range as diff -u does (1-based; an empty
// range names the line before it).
func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start+1)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}
