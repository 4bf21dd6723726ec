package rules

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/capisync/capisync/internal/cdc"
)

// state is what evaluation of one change needs: a VM and the variables
// expressions see. States are pooled and rebound to each change, so that
// evaluation allocates nothing for its environment: the helper closures are
// made once per state and read the change the state is bound to.
type state struct {
	vm     vm.VM
	c      *cdc.Change
	vars   map[string]any     // the expression environment
	hashes map[hashKey]hashed // see cachedHash
	// What vars holds of the last change bound: a change from the same
	// source, table and commit as the one before (the rest of its page or
	// transaction) sets nothing again, and boxes nothing.
	op, source, table string
	commitTime        time.Time
	whole             bool             // vars holds rows as maps
	now               func() time.Time // the Set's clock, read by now()
}

// envNames are the variables of the rule environment, with values of the
// types the checker should assume.
func envTypes() map[string]any {
	return newState().vars
}

func newState() *state {
	s := &state{}
	s.vars = map[string]any{
		"op": "", "source": "", "table": "",
		"new": map[string]any(nil), "old": map[string]any(nil),
		"commit_time": time.Time{},
		// Signatures among those expr calls without reflection
		// (vm/func_types), which keeps evaluation fast.
		newCol: func(col any) any {
			c, _ := col.(string)
			return exprValue(s.c.New.Value(c))
		},
		oldCol: func(col any) any {
			c, _ := col.(string)
			return exprValue(s.c.Old.Value(c))
		},
		"changed": func(col string) bool { return s.changed(col) },
		"changed_to": func(col, v any) bool {
			c, _ := col.(string)
			return s.changed(c) && equalValues(s.c.New.Value(c), v)
		},
		"changed_from": func(col, v any) bool {
			c, _ := col.(string)
			return s.changed(c) && equalValues(s.c.Old.Value(c), v)
		},
		// now() is expr's builtin read from the Set's clock, so that
		// `rules test --now` gives the same events on any day.
		"now": func() time.Time { return s.now() },
		"days_since": func(t any) float64 {
			tt, err := toTime(t)
			if err != nil {
				// expr turns a panic in a helper into this evaluation's error.
				panic(fmt.Errorf("days_since: %w", err))
			}
			return s.c.CommitTime.Sub(tt).Hours() / 24
		},
	}
	return s
}

// bind points the state at a change. Rules read columns through the
// column helpers (see patch.go); wholeRows says a rule of the change's
// table reads new or old as a whole (len(new), new[x], old == nil), which
// then get the rows as maps (nil for no row).
func (s *state) bind(c *cdc.Change, wholeRows bool, now func() time.Time) {
	s.c = c
	s.now = now
	// newState's vars hold "" and the zero time, as these fields do.
	if op := string(c.Op); op != s.op {
		s.op, s.vars["op"] = op, op
	}
	if c.Source != s.source {
		s.source, s.vars["source"] = c.Source, c.Source
	}
	if c.Table != s.table {
		s.table, s.vars["table"] = c.Table, c.Table
	}
	if c.CommitTime != s.commitTime { // the same value (and zone), not only the same instant
		s.commitTime, s.vars["commit_time"] = c.CommitTime, c.CommitTime
	}
	if wholeRows {
		s.vars["new"], s.vars["old"] = exprRow(c.New.Map()), exprRow(c.Old.Map())
		s.whole = true
	}
}

// unbind drops the state's references to the last change's rows, so
// that a pooled state does not keep them alive.
func (s *state) unbind() {
	s.c = nil
	if s.whole {
		s.vars["new"], s.vars["old"] = map[string]any(nil), map[string]any(nil)
		s.whole = false
	}
}

func (s *state) changed(col string) bool {
	switch s.c.Op {
	case cdc.Insert:
		return s.c.New.Value(col) != nil
	case cdc.Update:
		return !equalValues(s.c.Old.Value(col), s.c.New.Value(col))
	}
	return false
}

// helpers are the functions that need no change: compiled in as expr
// functions with their signatures, so calls are type-checked.
var helpers = []expr.Option{
	expr.Function("coalesce", func(args ...any) (any, error) {
		for _, a := range args {
			if a != nil && a != "" {
				return a, nil
			}
		}
		return nil, nil
	}),
	// fbc builds Meta's fbc from a raw fbclid (as a CRM keeps it from the
	// landing URL) and the click time: fb.1.<click time in ms>.<fbclid>
	// ("fbp and fbc parameters"; subdomain index 1, as the pixel writes
	// it for a site's own domain). A missing fbclid gives nil (no key).
	expr.Function("fbc", func(args ...any) (any, error) {
		if args[0] == nil || args[0] == "" {
			return nil, nil
		}
		id, err := toText(args[0])
		if err != nil {
			return nil, fmt.Errorf("fbc: fbclid: %w", err)
		}
		t, err := toTime(args[1])
		if err != nil {
			return nil, fmt.Errorf("fbc: click time: %w", err)
		}
		return "fb.1." + strconv.FormatInt(t.UnixMilli(), 10) + "." + id, nil
	}, new(func(any, any) any)),
	expr.Function("unix", func(args ...any) (any, error) {
		t, err := toTime(args[0])
		if err != nil {
			return nil, fmt.Errorf("unix: %w", err)
		}
		return t.Unix(), nil
	}, new(func(any) int64)),
}

// exprValue is a column value as expressions see it: a decimal is a
// number (float64), so that new.total > 100 and new.total * 2 work. The
// exact digits are still what is sent when a field is the column itself
// (see colRef).
func exprValue(v any) any {
	if d, ok := v.(cdc.Decimal); ok {
		f, _ := strconv.ParseFloat(string(d), 64) // "NaN" too; out of range: ±Inf
		return f
	}
	return v
}

// exprRow is exprValue on a whole row.
func exprRow(m map[string]any) map[string]any {
	for k, v := range m {
		if _, ok := v.(cdc.Decimal); ok {
			m[k] = exprValue(v)
		}
	}
	return m
}

// colRef is a field that reads one column and nothing else (new.total):
// it sends the column's value as read.
type colRef struct {
	col string
	old bool
}

func (r colRef) value(c *cdc.Change) any {
	if r.old {
		return c.Old.Value(r.col)
	}
	return c.New.Value(r.col)
}

// equalValues compares column values and literals: numbers by value
// whatever their Go type, times by instant, bytes by content. A decimal
// equals a string of the same digits (old values read from a store
// written before decimals had their own type).
func equalValues(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if x, ok := a.(cdc.Decimal); ok {
		if y, ok := b.(string); ok {
			return string(x) == y
		}
	}
	if x, ok := b.(cdc.Decimal); ok {
		if y, ok := a.(string); ok {
			return string(x) == y
		}
	}
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa == fb
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	}
	return reflect.DeepEqual(a, b)
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case cdc.Decimal:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, true
	case int32:
		return float64(x), true
	case float32:
		return float64(x), true
	}
	return 0, false
}

// toTime reads a time: time.Time, unix seconds, or an RFC 3339 (or
// "YYYY-MM-DD HH:MM:SS" UTC, or "YYYY-MM-DD") string.
func toTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case int64:
		return time.Unix(x, 0).UTC(), nil
	case int:
		return time.Unix(int64(x), 0).UTC(), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return time.Time{}, fmt.Errorf("%v is not a time", x)
		}
		sec, frac := math.Modf(x)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
			if t, err := time.Parse(layout, x); err == nil {
				return t.UTC(), nil
			}
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return time.Unix(n, 0).UTC(), nil
		}
		return time.Time{}, fmt.Errorf("%q is not a time (want RFC 3339, e.g. 2026-11-20T10:00:00Z)", x)
	case nil:
		return time.Time{}, fmt.Errorf("the time is null")
	}
	return time.Time{}, fmt.Errorf("a %T is not a time", v)
}
