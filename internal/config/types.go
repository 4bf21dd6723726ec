package config

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Secret is a string that never shows itself: String, GoString,
// MarshalText, MarshalJSON and slog all print REDACTED. Use Reveal where the
// value is really needed (connecting, signing a request).
type Secret string

const redacted = "REDACTED"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string                { return s.mask() }
func (s Secret) GoString() string              { return `config.Secret("` + s.mask() + `")` }
func (s Secret) MarshalText() ([]byte, error)  { return []byte(s.mask()), nil }
func (s Secret) MarshalJSON() ([]byte, error)  { return []byte(`"` + s.mask() + `"`), nil }
func (s Secret) LogValue() slog.Value          { return slog.StringValue(s.mask()) }
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, s.mask()) }
func (s Secret) MarshalYAML() (any, error)     { return s.mask(), nil }
func (s Secret) mask() string {
	if s == "" {
		return ""
	}
	return redacted
}

// UnmarshalYAML reads a duration written as Go writes it ("2m", "90s").
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration such as \"30s\" or \"2m\"")
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("%q is not a duration: write a number with a unit, such as \"30s\", \"2m\" or \"1h30m\"", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", n.Value)
	}
	d.Duration = v
	return nil
}

// UnmarshalYAML keeps the expression's text and where it was written.
func (e *Expr) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected an expression (a string), got a %s; quote it, e.g. '\"USD\"'", map[yaml.Kind]string{yaml.MappingNode: "mapping", yaml.SequenceNode: "list"}[n.Kind])
	}
	e.Src = n.Value
	e.Pos = Pos{n.Line, n.Column}
	switch {
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 || strings.Contains(n.Value, "\n"):
		e.Offset = -1
	case n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0:
		e.Offset = 1
	}
	return nil
}

// At returns where the expression's column col (1-based, on its first
// line) sits in the file. Quoted text with escapes is approximate.
func (e Expr) At(col int) Pos {
	if e.Offset < 0 || col < 1 {
		return e.Pos
	}
	return Pos{e.Pos.Line, e.Pos.Col + e.Offset + col - 1}
}
