package cdc

import (
	"fmt"
	"iter"
	"maps"
	"slices"
)

// Row is a row's column values (see the package doc for their types). The zero Row is no row (Old of an insert,
// New of a delete); a row with no columns is not the zero Row.
//
// A Row is a slice of values under a list of column names that the rows of
// one table share, not a map: a source makes one per row read, and a map's
// allocations were most of what reading a change cost. A row keeps the
// values it was made with; nothing changes them after.
type Row struct {
	cols *Columns
	vals []any
}

// Columns are the column names of rows of one shape, made once and shared
// by every such row.
type Columns struct {
	names []string
	index map[string]int // for wide rows; few columns are found by looking through names
}

// indexFrom is the column count from which a lookup goes through a map:
// below it, comparing names in turn is as fast and needs no map.
const indexFrom = 12

// NewColumns returns the column names; a name given twice is kept once,
// at its first place.
func NewColumns(names ...string) *Columns {
	c := &Columns{names: make([]string, 0, len(names))}
	for _, n := range names {
		if !slices.Contains(c.names, n) {
			c.names = append(c.names, n)
		}
	}
	if len(c.names) >= indexFrom {
		c.index = make(map[string]int, len(c.names))
		for i, n := range c.names {
			c.index[n] = i
		}
	}
	return c
}

// Names returns the names in order. The caller must not change them.
func (c *Columns) Names() []string { return c.names }

// Index returns name's place, or -1.
func (c *Columns) Index(name string) int {
	if c.index != nil {
		if i, ok := c.index[name]; ok {
			return i
		}
		return -1
	}
	for i, n := range c.names {
		if n == name {
			return i
		}
	}
	return -1
}

// Absent, as a value given to NewRow, leaves its column out of the row:
// the source does not know it (an unchanged TOASTed value, say). It is not
// NULL, which is nil.
var Absent any = absent{}

type absent struct{}

func isAbsent(v any) bool {
	_, ok := v.(absent)
	return ok
}

// NewRow returns the row whose column cols.Names()[i] holds vals[i]; the
// row keeps vals. It panics when the lengths differ.
func NewRow(cols *Columns, vals []any) Row {
	if len(vals) != len(cols.names) {
		panic(fmt.Sprintf("cdc.NewRow: %d values for %d columns", len(vals), len(cols.names)))
	}
	return Row{cols: cols, vals: vals}
}

// RowOf returns a row with m's columns, in name order; a nil map is the
// zero Row. It is for tests and for rows read from JSON.
func RowOf(m map[string]any) Row {
	if m == nil {
		return Row{}
	}
	names := slices.Sorted(maps.Keys(m))
	vals := make([]any, len(names))
	for i, n := range names {
		vals[i] = m[n]
	}
	return Row{cols: NewColumns(names...), vals: vals}
}

// IsZero says the row is no row.
func (r Row) IsZero() bool { return r.cols == nil }

// Get returns the value of column name and whether the row has it.
func (r Row) Get(name string) (any, bool) {
	if r.cols == nil {
		return nil, false
	}
	i := r.cols.Index(name)
	if i < 0 || isAbsent(r.vals[i]) {
		return nil, false
	}
	return r.vals[i], true
}

// Value returns the value of column name, nil when the row has no such
// column.
func (r Row) Value(name string) any {
	v, _ := r.Get(name)
	return v
}

// Len returns how many columns the row has.
func (r Row) Len() int {
	n := 0
	for _, v := range r.vals {
		if !isAbsent(v) {
			n++
		}
	}
	return n
}

// All yields the row's columns and values in column order.
func (r Row) All() iter.Seq2[string, any] {
	return func(yield func(string, any) bool) {
		if r.cols == nil {
			return
		}
		for i, v := range r.vals {
			if !isAbsent(v) && !yield(r.cols.names[i], v) {
				return
			}
		}
	}
}

// Map returns the row as a new map; nil for the zero Row.
func (r Row) Map() map[string]any {
	if r.cols == nil {
		return nil
	}
	m := make(map[string]any, len(r.vals))
	for k, v := range r.All() {
		m[k] = v
	}
	return m
}

// String renders the row as its Map is rendered (columns in name order).
func (r Row) String() string {
	if r.cols == nil {
		return "<no row>"
	}
	return fmt.Sprint(r.Map())
}
