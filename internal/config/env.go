package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// expand replaces ${VAR} and ${VAR:-default} in a scalar from the
// environment. "$$" stands for a literal "$". A bare $name is left alone (it
// may be part of a password or an expression), unlike os.Expand.
//
// Rules are never expanded: a rule's values end up in events sent to Meta,
// and an environment variable there (an access token, say) would leak into
// them. A ${ in a rule is reported instead of being sent as it is.
func (d *decoder) expand(n *yaml.Node, path string) {
	if !strings.Contains(n.Value, "$") {
		return
	}
	if path == "rules" || strings.HasPrefix(path, "rules[") {
		if strings.Contains(n.Value, "${") {
			d.fail(n, path, "${...} is not expanded in rules: environment variables (which may hold secrets) never go into rules or the events they make; write the value in the rule itself")
		}
		return
	}
	lookup := d.lookup
	if d.unset != nil {
		lookup = func(name string) (string, bool) {
			v, ok := d.lookup(name)
			if !ok {
				d.unset[path] = true
			}
			return v, true
		}
	}
	out, err := Expand(n.Value, lookup)
	if err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	if out == n.Value {
		return
	}
	n.Value = out
	if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		// An unquoted ${VAR} takes the type of what it expands to, so that
		// batch_size: ${BATCH:-500} is a number.
		n.Tag = ""
	}
}

// Expand expands ${VAR} and ${VAR:-default} in s using lookup. A variable
// that is unset (or, for the :- form, empty) with no default is an error
// naming the variable.
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
		default:
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ at byte %d (write $$ for a literal $)", i)
		}
		body := s[i+2 : i+2+end]
		name, def, hasDef := strings.Cut(body, ":-")
		if !validVarName(name) {
			return "", fmt.Errorf("invalid variable name %q in ${%s}", name, body)
		}
		val, ok := lookup(name)
		switch {
		case hasDef && (!ok || val == ""):
			val = def
		case !ok:
			return "", fmt.Errorf("environment variable %s is not set (set it, or write ${%s:-default})", name, name)
		}
		b.WriteString(val)
		i += 2 + end
	}
	return b.String(), nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
