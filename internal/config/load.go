package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads, expands, decodes, defaults and validates the config file at
// path. A config that is wrong yields Problems listing every mistake; a file
// that cannot be read yields an ordinary error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// LoadForInspection is Load for the commands that only look at the store
// (status, dlq): an environment variable that is not set (the access token,
// a DSN, which such a command does not need) expands to nothing instead of
// being an error, and the problems of the values it left empty are not
// reported. Every other problem is.
func LoadForInspection(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return parse(path, data, os.LookupEnv, true)
}

// Parse is Load on bytes already read; lookup resolves ${VAR} (os.LookupEnv
// in production, a map in tests).
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	return parse(file, data, lookup, false)
}

func parse(file string, data []byte, lookup func(string) (string, bool), lenient bool) (*Config, error) {
	cfg := &Config{File: file, pos: positions{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{{File: file, Pos: yamlErrorPos(err), Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	d := &decoder{cfg: cfg, lookup: lookup}
	if lenient {
		d.unset = map[string]bool{}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, Problems{{File: file, Pos: Pos{1, 1}, Msg: "the config is empty"}}
	}
	d.decode(doc.Content[0], reflect.ValueOf(cfg).Elem(), "")
	cfg.applyDefaults()
	cfg.validate(d.rep())
	err := d.rep().Err()
	if ps, ok := err.(Problems); ok && len(d.unset) > 0 {
		kept := ps[:0]
		for _, p := range ps {
			if !d.unset[p.Path] {
				kept = append(kept, p)
			}
		}
		if len(kept) == 0 {
			return cfg, nil
		}
		return cfg, kept
	}
	return cfg, err
}

// yamlErrorPos pulls "line N" out of a yaml syntax error.
func yamlErrorPos(err error) Pos {
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		rest := msg[i+5:]
		j := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if j < 0 {
			j = len(rest)
		}
		if n, err := strconv.Atoi(rest[:j]); err == nil {
			return Pos{n, 1}
		}
	}
	return Pos{}
}

// decoder walks the YAML node tree and the Go value side by side. Doing the
// walk ourselves (rather than node.Decode on the whole tree) lets it record
// the position of every path, reject unknown keys with a suggestion, and go
// on after a bad value so that every problem is reported at once.
type decoder struct {
	cfg      *Config
	lookup   func(string) (string, bool)
	reporter *Reporter
	// unset, when not nil (LoadForInspection), collects the paths whose
	// ${VAR} was not set and expanded to nothing.
	unset map[string]bool
}

func (d *decoder) rep() *Reporter {
	if d.reporter == nil {
		d.reporter = NewReporter(d.cfg)
	}
	return d.reporter
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.rep().AddAt(Pos{n.Line, n.Column}, path, format, args...)
}

var (
	unmarshalerType  = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	tableSetType     = reflect.TypeOf(TableSet{})
	sourceStructType = reflect.TypeOf(Source{})
)

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	d.cfg.pos[path] = Pos{n.Line, n.Column}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // an empty value leaves the default in place
	}
	if n.Kind == yaml.ScalarNode {
		d.expand(n, path)
	}
	switch {
	case v.Type() == tableSetType:
		d.decodeTables(n, v.Addr().Interface().(*TableSet), path)
	case reflect.PointerTo(v.Type()).Implements(unmarshalerType) || v.Kind() == reflect.Pointer && v.Type().Elem().Kind() != reflect.Struct:
		d.leaf(n, v, path)
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case v.Type() == sourceStructType:
		d.decodeSource(n, v, path)
	case v.Kind() == reflect.Struct:
		d.decodeStruct(n, v, path)
	case v.Kind() == reflect.Map:
		d.decodeMap(n, v, path)
	case v.Kind() == reflect.Slice:
		d.decodeSlice(n, v, path)
	default:
		d.leaf(n, v, path)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	d.decodeStructs(n, path, nil, v)
}

// decodeSource decodes a source: the keys all types share into Source,
// the type's own into its options (SourceType.Options), and a key only
// other types read is noted (validation names the types that read it).
func (d *decoder) decodeSource(n *yaml.Node, v reflect.Value, path string) {
	src := v.Addr().Interface().(*Source)
	vals := []reflect.Value{v}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value != "type" {
				continue
			}
			if t, ok := sourceType(n.Content[i+1].Value); ok && t.Options != nil {
				src.Options = t.Options()
				vals = append(vals, reflect.ValueOf(src.Options).Elem())
			}
		}
	}
	d.decodeStructs(n, path, func(key string) bool { return len(typesReading(key)) > 0 }, vals...)
}

// decodeStructs decodes a mapping into the fields of one or more structs
// (by their yaml tags). A key none of them has is an error, unless noted
// says to only note where it is.
func (d *decoder) decodeStructs(n *yaml.Node, path string, noted func(key string) bool, vals ...reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of keys to values, got %s", describe(n))
		return
	}
	fields := map[string]reflect.Value{}
	var names []string
	for _, v := range vals {
		for i := 0; i < v.NumField(); i++ {
			tag := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = v.Field(i)
			names = append(names, tag)
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := keyPath(path, k.Value)
		field, ok := fields[k.Value]
		if !ok && noted != nil && noted(k.Value) {
			d.cfg.pos[p] = Pos{val.Line, val.Column}
			continue
		}
		if !ok {
			msg := fmt.Sprintf("unknown key %q", k.Value)
			if s := Suggest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.fail(k, p, "%s", msg)
			continue
		}
		if seen[k.Value] {
			d.fail(k, p, "key %q is given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		d.decode(val, field, p)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of names to values, got %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := keyPath(path, k.Value)
		if v.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			d.fail(k, p, "key %q is given twice", k.Value)
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, elem, p)
		v.SetMapIndex(reflect.ValueOf(k.Value), elem)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String {
		// A single string where a list is expected: accept it as a list of one.
		n = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{n}, Line: n.Line, Column: n.Column}
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list, got %s", describe(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, c := range n.Content {
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(c, elem, indexPath(path, i))
		out = reflect.Append(out, elem)
	}
	v.Set(out)
}

// decodeTables accepts the list form (logical replication) or the map form
// (polling) of a source's tables; which one a source needs is checked in
// validation, where the source's type is known.
func (d *decoder) decodeTables(n *yaml.Node, ts *TableSet, path string) {
	switch n.Kind {
	case yaml.SequenceNode:
		d.decodeSlice(n, reflect.ValueOf(&ts.Names).Elem(), path)
	case yaml.MappingNode:
		d.decodeMap(n, reflect.ValueOf(&ts.Tables).Elem(), path)
		for i := 0; i+1 < len(n.Content); i += 2 {
			ts.Names = append(ts.Names, n.Content[i].Value)
		}
		for name, t := range ts.Tables {
			if t == nil {
				ts.Tables[name] = &PollTable{}
			}
		}
	default:
		d.fail(n, path, "expected a list of table names or a mapping of table names to options, got %s", describe(n))
	}
}

// leaf decodes a scalar (or a type with its own UnmarshalYAML).
func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	target := reflect.New(v.Type())
	if err := n.Decode(target.Interface()); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) || strings.Contains(err.Error(), "cannot unmarshal") {
			d.fail(n, path, "expected %s, got %s", kindName(v.Type()), describe(n))
		} else {
			d.fail(n, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return
	}
	v.Set(target.Elem())
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return t.String()
}

// describe names what a node holds without echoing long or secret values.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if len(n.Value) > 40 {
		return "a long " + strings.TrimPrefix(n.ShortTag(), "!!") + " value"
	}
	return strconv.Quote(n.Value)
}

// sortedKeys returns a map's keys in order, for deterministic validation.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
