package rules

import "github.com/expr-lang/expr/ast"

// Column reads are the hottest operation of evaluation. expr reads a map
// member (new.email) through reflection, which allocates on every read;
// columnPatch rewrites new.<col> and old.<col> (and new["col"]) into calls
// of two helpers whose signature expr calls directly. Semantics are kept:
// a missing column, or old on an insert, reads as nil.
const (
	newCol = "__new_column"
	oldCol = "__old_column"
)

type columnPatch struct{}

func (columnPatch) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok || m.Method {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || (id.Value != "new" && id.Value != "old") {
		return
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	fn := newCol
	if id.Value == "old" {
		fn = oldCol
	}
	ast.Patch(node, &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: fn},
		Arguments: []ast.Node{&ast.StringNode{Value: prop.Value}},
	})
}
