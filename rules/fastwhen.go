package rules

import (
	"github.com/expr-lang/expr/ast"

	"github.com/capisync/capisync/internal/cdc"
)

// A cond is a `when` evaluated without the expression VM: most rules'
// conditions are of a few simple forms — changed_to("status", "won"),
// changed_from(...), op == "insert", new.col == "text", joined by && and ||
// — and a VM run per rule and change cost more than the rest of a
// non-matching rule's evaluation. Conditions of other forms run in the VM.
// Each form gives what the VM gives (FuzzFastWhen checks it).
type cond func(st *state) bool

// fastWhen returns the cond of a compiled `when` (its patched tree), or
// nil when the tree has a form that needs the VM.
func fastWhen(n ast.Node) cond {
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*state) bool { return v }
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil
		}
		if a := fastWhen(n.Node); a != nil {
			return func(st *state) bool { return !a(st) }
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			a, b := fastWhen(n.Left), fastWhen(n.Right)
			if a == nil || b == nil {
				return nil
			}
			if n.Operator == "&&" || n.Operator == "and" {
				return func(st *state) bool { return a(st) && b(st) }
			}
			return func(st *state) bool { return a(st) || b(st) }
		case "==", "!=":
			eq := textEquals(n.Left, n.Right)
			if eq == nil {
				eq = textEquals(n.Right, n.Left)
			}
			if eq == nil || n.Operator == "==" {
				return eq
			}
			return func(st *state) bool { return !eq(st) }
		}
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || len(n.Arguments) == 0 {
			return nil
		}
		col, ok := n.Arguments[0].(*ast.StringNode)
		if !ok {
			return nil
		}
		c := col.Value
		switch {
		case id.Value == "changed" && len(n.Arguments) == 1:
			return func(st *state) bool { return st.changed(c) }
		case (id.Value == "changed_to" || id.Value == "changed_from") && len(n.Arguments) == 2:
			v, ok := literal(n.Arguments[1])
			if !ok {
				return nil
			}
			if id.Value == "changed_to" {
				return func(st *state) bool { return st.changed(c) && equalValues(st.c.New.Value(c), v) }
			}
			return func(st *state) bool { return st.changed(c) && equalValues(st.c.Old.Value(c), v) }
		}
	}
	return nil
}

// textEquals is x == "text" for x one of op, source, table, new.col or
// old.col: true only for a string equal to the text, as in the VM.
func textEquals(x, text ast.Node) cond {
	s, ok := text.(*ast.StringNode)
	if !ok {
		return nil
	}
	want := s.Value
	switch x := x.(type) {
	case *ast.IdentifierNode:
		switch x.Value {
		case "op":
			return func(st *state) bool { return string(st.c.Op) == want }
		case "source":
			return func(st *state) bool { return st.c.Source == want }
		case "table":
			return func(st *state) bool { return st.c.Table == want }
		}
	case *ast.CallNode:
		id, ok := x.Callee.(*ast.IdentifierNode)
		if !ok || (id.Value != newCol && id.Value != oldCol) || len(x.Arguments) != 1 {
			return nil
		}
		col, ok := x.Arguments[0].(*ast.StringNode)
		if !ok {
			return nil
		}
		c := col.Value
		row := func(st *state) cdc.Row { return st.c.New }
		if id.Value == oldCol {
			row = func(st *state) cdc.Row { return st.c.Old }
		}
		return func(st *state) bool {
			got, ok := row(st).Value(c).(string)
			return ok && got == want
		}
	}
	return nil
}

// literal is the value the VM passes for a literal argument.
func literal(n ast.Node) (any, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.IntegerNode:
		return n.Value, true
	case *ast.FloatNode:
		return n.Value, true
	case *ast.BoolNode:
		return n.Value, true
	case *ast.NilNode:
		return nil, true
	}
	return nil, false
}
