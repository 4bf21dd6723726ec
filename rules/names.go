package rules

import (
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
)

// helperNames are the functions compiled in as expr functions (helpers).
var helperNames = map[string]bool{"coalesce": true, "unix": true, "fbc": true}

// unknownName returns the first identifier in the tree that names nothing
// the rule environment knows (and where it is), or "". expr's own check
// misses some, such as a bare column name given to a helper that takes any
// value (changed_to(status, "refunded")), which would then read as nil and
// the rule would never fire.
func unknownName(root ast.Node, env map[string]any) (string, int) {
	declared := map[string]bool{}
	ast.Find(root, func(n ast.Node) bool {
		if v, ok := n.(*ast.VariableDeclaratorNode); ok {
			declared[v.Name] = true
		}
		return false
	})
	var name string
	var at int
	ast.Find(root, func(n ast.Node) bool {
		id, ok := n.(*ast.IdentifierNode)
		if !ok || name != "" {
			return false
		}
		v := id.Value
		if _, ok := env[v]; ok || helperNames[v] || declared[v] || v == "$env" {
			return false
		}
		if _, ok := builtin.Index[v]; ok {
			return false
		}
		name, at = v, id.Location().From
		return true
	})
	return name, at
}
