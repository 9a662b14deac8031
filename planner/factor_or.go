package planner

// factorOr takes the conditions every branch of an OR shares out of it:
// (A AND B AND x) OR (A AND B AND y) is A AND B AND (x OR y), also in
// SQL's three-valued logic (AND distributes over OR there too). Queries
// write join conditions this way (TPC-H Q19 repeats p_partkey = l_partkey
// in each branch); factored out, they become join keys instead of a
// condition no join can use. It returns the conjuncts e stands for.
func factorOr(e *Expr) []*Expr {
	if e == nil || e.Kind != KindBinary || e.Op != "OR" {
		return []*Expr{e}
	}
	var branches [][]*Expr
	var disj func(x *Expr)
	disj = func(x *Expr) {
		if x.Kind == KindBinary && x.Op == "OR" && len(x.Args) == 2 {
			disj(x.Args[0])
			disj(x.Args[1])
			return
		}
		branches = append(branches, splitConj(x))
	}
	disj(e)
	var common []*Expr
	for _, c := range branches[0] {
		inAll := true
		for _, b := range branches[1:] {
			if indexExpr(b, c) < 0 {
				inAll = false
				break
			}
		}
		if inAll && indexExpr(common, c) < 0 {
			common = append(common, c)
		}
	}
	if len(common) == 0 {
		return []*Expr{e}
	}
	var rest *Expr
	for _, b := range branches {
		var left []*Expr
		for _, c := range b {
			if indexExpr(common, c) < 0 {
				left = append(left, c)
			}
		}
		if len(left) == 0 {
			// One branch is the common part alone: the OR adds nothing.
			return common
		}
		if rest == nil {
			rest = andAll(left)
		} else {
			rest = &Expr{Kind: KindBinary, Op: "OR", Args: []*Expr{rest, andAll(left)}}
		}
	}
	return append(common, rest)
}

// indexExpr is the position of an expression equal to e in es, or -1.
func indexExpr(es []*Expr, e *Expr) int {
	for i, x := range es {
		if exprEqual(x, e) {
			return i
		}
	}
	return -1
}
