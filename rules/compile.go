package rules

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/capisync/capisync/internal/config"
)

// Set is every compiled rule of a config, ready to evaluate changes.
type Set struct {
	rules   []*rule
	byTable map[string][]*rule // source + "\x00" + table -> rules in config order
	// wholeRows holds the tables (keyed as byTable) of which a rule reads
	// new or old as a whole.
	wholeRows map[string]bool
	// now is the clock of now() in expressions; nil means time.Now.
	now func() time.Time
}

// SetClock makes now() in expressions read clock instead of the system
// clock (`rules test --now`, tests). Call it before evaluating.
func (s *Set) SetClock(clock func() time.Time) { s.now = clock }

func (s *Set) clock() func() time.Time {
	if s.now == nil {
		return time.Now
	}
	return s.now
}

type rule struct {
	name, source, table, destination string
	event, actionSource, country     string

	when                           *vm.Program
	whenFast                       cond                    // when, evaluated without the VM (nil: run when)
	combined                       *vm.Program             // every field below in one program (see eval.go)
	scalars                        [numScalars]*vm.Program // nil where not configured
	rawScalars                     [numScalars]colRef      // scalars that read one column
	original, userData, customData []field
	appData, attributionData       []field

	columns     map[string]bool // columns of new/old the rule reads
	oldColumns  map[string]bool // columns of old the rule reads
	readsOld    bool            // reads old.* or uses changed*()
	usesChanged bool            // uses changed(), changed_to() or changed_from()
}

// field is one compiled expression of a map such as user_data.
type field struct {
	key  string
	prog *vm.Program
	raw  colRef // set when the expression reads one column and nothing else
}

// fieldKind says what an expression must produce, for the type check.
type fieldKind int

const (
	kindAny fieldKind = iota
	kindBool
	kindTime   // time.Time, unix seconds or an RFC 3339 string
	kindString // string (or a number, rendered as text)
	kindInt
	kindList
	kindUserData // string, number, time (db) or a list of those
)

var scalarKinds = [numScalars]fieldKind{
	fEventTime: kindTime, fEventID: kindString, fSourceURL: kindString, fReferrer: kindString,
	fChannel: kindString, fOptOut: kindBool, fDPO: kindList, fDPOCountry: kindInt, fDPOState: kindInt,
}

// Compile compiles and type-checks every rule of cfg. Errors are
// config.Problems naming rule, field, file line and expression column.
func Compile(cfg *config.Config) (*Set, error) {
	rep := config.NewReporter(cfg)
	s := &Set{byTable: map[string][]*rule{}, wholeRows: map[string]bool{}}
	for _, rc := range cfg.Rules {
		c := &compiler{rep: rep, rc: rc, r: &rule{
			name: rc.Name, source: rc.Source, table: rc.Table, destination: rc.Destination,
			event: rc.Event, actionSource: rc.ActionSource, country: rc.DefaultCountry,
			columns: map[string]bool{}, oldColumns: map[string]bool{},
		}}
		r := c.r
		r.when = c.compile("when", rc.When, kindBool)
		if r.when != nil {
			r.whenFast = fastWhen(r.when.Node())
		}
		for i, src := range [numScalars]config.Expr{
			fEventTime: rc.EventTime, fEventID: rc.EventID, fSourceURL: rc.EventSourceURL,
			fReferrer: rc.ReferrerURL, fChannel: rc.MessagingChannel, fOptOut: rc.OptOut,
			fDPO: rc.DataProcessingOptions, fDPOCountry: rc.DataProcessingOptionsCountry,
			fDPOState: rc.DataProcessingOptionsState,
		} {
			r.scalars[i] = c.compile(scalarNames[i], src, scalarKinds[i])
			r.rawScalars[i] = columnRead(r.scalars[i])
		}
		r.original = c.compileMap("original_event_data", rc.OriginalEventData, func(k string) fieldKind {
			if k == "event_time" {
				return kindTime
			}
			return kindString
		})
		r.userData = c.compileMap("user_data", rc.UserData, func(string) fieldKind { return kindUserData })
		r.customData = c.compileMap("custom_data", rc.CustomData, func(string) fieldKind { return kindAny })
		r.appData = c.compileMap("app_data", rc.AppData, func(string) fieldKind { return kindAny })
		r.attributionData = c.compileMap("attribution_data", rc.AttributionData, func(string) fieldKind { return kindAny })
		r.combined = c.combine()
		s.rules = append(s.rules, r)
		key := r.source + "\x00" + r.table
		s.byTable[key] = append(s.byTable[key], r)
		if r.columns[AllColumns] {
			s.wholeRows[key] = true
		}
	}
	if err := rep.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

type compiler struct {
	rep *config.Reporter
	rc  *config.Rule
	r   *rule
}

// knownNames are the variables of the rule environment.
var knownNames = envTypes()

var baseOptions = append([]expr.Option{expr.Env(envTypes()), expr.Patch(columnPatch{})}, helpers...)

func (c *compiler) compile(name string, e config.Expr, kind fieldKind) *vm.Program {
	if !e.IsSet() {
		return nil
	}
	path := c.rc.Path() + "." + name
	opts := baseOptions
	if kind == kindBool && name == "when" {
		opts = append(append([]expr.Option{}, baseOptions...), expr.AsBool())
	}
	prog, err := expr.Compile(e.Src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			col := fe.Column + 1
			c.rep.AddAt(e.At(col), path, "rule %q: %s (at column %d of the expression %q)", c.rc.Name, fe.Message, col, e.Src)
		} else {
			c.rep.AddAt(e.Pos, path, "rule %q: %v", c.rc.Name, err)
		}
		return nil
	}
	if bad, at := unknownName(prog.Node(), knownNames); bad != "" {
		col := at + 1
		c.rep.AddAt(e.At(col), path, "rule %q: unknown name %s (at column %d of the expression %q); a column is read as new.%s or old.%s, and changed(), changed_to() and changed_from() take its name as a string: changed_to(\"%s\", ...)",
			c.rc.Name, bad, col, e.Src, bad, bad, bad)
		return nil
	}
	if t := prog.Node().Type(); !kindAccepts(kind, t) {
		c.rep.AddAt(e.Pos, path, "rule %q: the expression gives %s, but %s needs %s", c.rc.Name, t, name, kindWant(kind))
		return nil
	}
	c.collectColumns(prog.Node())
	return prog
}

// combine compiles every field of the rule into one program returning a
// list, in the order evaluation reads them: one VM run per matching change
// instead of one per field. The fields are still compiled one by one (for
// type checks and positions, and to find which field failed at run time).
func (c *compiler) combine() *vm.Program {
	var parts []string
	add := func(e config.Expr) {
		if e.IsSet() {
			parts = append(parts, "("+e.Src+")")
		}
	}
	rc := c.rc
	for _, e := range [numScalars]config.Expr{rc.EventTime, rc.EventID, rc.EventSourceURL, rc.ReferrerURL, rc.MessagingChannel,
		rc.OptOut, rc.DataProcessingOptions, rc.DataProcessingOptionsCountry, rc.DataProcessingOptionsState} {
		add(e)
	}
	for _, m := range []map[string]config.Expr{rc.OriginalEventData, rc.UserData, rc.CustomData, rc.AppData, rc.AttributionData} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			add(m[k])
		}
	}
	if len(parts) == 0 {
		return nil
	}
	prog, err := expr.Compile("[\n"+strings.Join(parts, ",\n")+"\n]", baseOptions...)
	if err != nil {
		return nil // the fields then run one by one
	}
	return prog
}

func (c *compiler) compileMap(name string, m map[string]config.Expr, kind func(string) fieldKind) []field {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []field
	for _, k := range keys {
		if p := c.compile(name+"."+k, m[k], kind(k)); p != nil {
			out = append(out, field{key: k, prog: p, raw: columnRead(p)})
		}
	}
	return out
}

// columnRead returns the column a program reads when reading it is all the
// program does (new.total, old.status).
func columnRead(p *vm.Program) colRef {
	if p == nil {
		return colRef{}
	}
	call, ok := p.Node().(*ast.CallNode)
	if !ok || len(call.Arguments) != 1 {
		return colRef{}
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok || (id.Value != newCol && id.Value != oldCol) {
		return colRef{}
	}
	s, ok := call.Arguments[0].(*ast.StringNode)
	if !ok {
		return colRef{}
	}
	return colRef{col: s.Value, old: id.Value == oldCol}
}

var timeType = reflect.TypeOf(time.Time{})

func kindAccepts(k fieldKind, t reflect.Type) bool {
	if t == nil || t.Kind() == reflect.Interface || k == kindAny {
		return true
	}
	isNum := func() bool {
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
			return true
		}
		return false
	}
	isList := t.Kind() == reflect.Slice || t.Kind() == reflect.Array
	switch k {
	case kindBool:
		return t.Kind() == reflect.Bool
	case kindTime:
		return t == timeType || t.Kind() == reflect.String || isNum()
	case kindString:
		return t.Kind() == reflect.String || isNum()
	case kindInt:
		return isNum()
	case kindList:
		return isList
	case kindUserData:
		return t.Kind() == reflect.String || isNum() || t == timeType || isList
	}
	return true
}

func kindWant(k fieldKind) string {
	return map[fieldKind]string{
		kindBool: "true or false", kindTime: "a time (time, unix seconds or RFC 3339 string)",
		kindString: "a string", kindInt: "a whole number", kindList: "a list such as [\"LDU\"]",
		kindUserData: "a string, a number or a list of them",
	}[k]
}

// collectColumns records the columns a rule reads from new and old, and
// whether it needs old values at all.
func (c *compiler) collectColumns(root ast.Node) {
	ast.Find(root, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.MemberNode:
			if id, ok := n.Node.(*ast.IdentifierNode); ok && (id.Value == "new" || id.Value == "old") {
				if s, ok := n.Property.(*ast.StringNode); ok {
					c.r.columns[s.Value] = true
				}
				if id.Value == "old" {
					c.r.readsOld = true
					if s, ok := n.Property.(*ast.StringNode); ok {
						c.r.oldColumns[s.Value] = true
					}
				}
			}
		case *ast.CallNode:
			id, ok := n.Callee.(*ast.IdentifierNode)
			if ok && (id.Value == newCol || id.Value == oldCol) {
				if s, ok := n.Arguments[0].(*ast.StringNode); ok {
					c.r.columns[s.Value] = true
					if id.Value == oldCol {
						c.r.oldColumns[s.Value] = true
					}
				}
				c.r.readsOld = c.r.readsOld || id.Value == oldCol
			}
			if ok && strings.HasPrefix(id.Value, "changed") && len(n.Arguments) > 0 {
				c.r.readsOld, c.r.usesChanged = true, true
				if s, ok := n.Arguments[0].(*ast.StringNode); ok {
					c.r.columns[s.Value] = true
					c.r.oldColumns[s.Value] = true
				} else {
					c.r.oldColumns[AllColumns] = true // a column named at run time
				}
			}
		case *ast.IdentifierNode:
			// new or old read as a whole (old == nil, new[x], len(new)):
			// every column may be needed.
			if n.Value == "old" {
				c.r.readsOld = true
				c.r.oldColumns[AllColumns] = true
			}
			if n.Value == "new" || n.Value == "old" {
				c.r.columns[AllColumns] = true
			}
		}
		return false
	})
}

// AllColumns in Columns means a rule reads a whole row (len(new), new[x]).
const AllColumns = "*"

// Columns returns, sorted, every column of source.table that some rule
// reads; AllColumns among them means every column.
func (s *Set) Columns(source, table string) []string {
	return s.union(source, table, func(r *rule) map[string]bool { return r.columns })
}

// OldColumns returns, sorted, the columns of source.table whose old
// values some rule needs: read through old.<col> or named in changed(),
// changed_to() or changed_from(). AllColumns among them means a rule
// reads the old row as a whole. Sources remember only these (and the key)
// of a row: what they keep on disk holds no other column's value.
func (s *Set) OldColumns(source, table string) []string {
	return s.union(source, table, func(r *rule) map[string]bool { return r.oldColumns })
}

// union is the sorted union of set(r) over the rules of source.table.
func (s *Set) union(source, table string, set func(*rule) map[string]bool) []string {
	seen := map[string]bool{}
	for _, r := range s.byTable[source+"\x00"+table] {
		for c := range set(r) {
			seen[c] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// ColumnUsers maps each column of source.table that rules read to the
// names of those rules, for messages such as "column x, used by rule y,
// does not exist".
func (s *Set) ColumnUsers(source, table string) map[string][]string {
	out := map[string][]string{}
	for _, r := range s.byTable[source+"\x00"+table] {
		for c := range r.columns {
			out[c] = append(out[c], r.name)
		}
	}
	return out
}

// RulesReadingOld returns the names of the rules on source.table that read
// old values other than the key columns given (old.<col>, or changed*()),
// which a source must be able to supply.
func (s *Set) RulesReadingOld(source, table string, key ...string) []string {
	isKey := map[string]bool{}
	for _, k := range key {
		isKey[k] = true
	}
	var out []string
	for _, r := range s.byTable[source+"\x00"+table] {
		needs := r.usesChanged
		for c := range r.oldColumns {
			needs = needs || !isKey[c]
		}
		if needs {
			out = append(out, r.name)
		}
	}
	return out
}

// Len is the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// Names returns the rule names in config order.
func (s *Set) Names() []string {
	out := make([]string, len(s.rules))
	for i, r := range s.rules {
		out[i] = r.name
	}
	return out
}

// Reads reports whether any rule reads source.table.
func (s *Set) Reads(source, table string) bool { return len(s.byTable[source+"\x00"+table]) > 0 }
