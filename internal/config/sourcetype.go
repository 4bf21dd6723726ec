package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// SourceType is what the config knows of one type of source: the keys it
// reads, their defaults and their checks. The connector package that reads
// the type declares it and registers it from init (RegisterSource), so a
// program knows the types of the connectors it imports and the config
// package knows none by itself. The keys all types share (type, dsn,
// timezone, default_country, tables) are checked here.
type SourceType struct {
	// DSN is the form of the type's dsn: DSNPostgres, DSNMySQL or
	// DSNSQLite, checked when the config is read.
	DSN string
	// Options returns a new options struct (a pointer), whose fields'
	// yaml tags are the keys under sources.NAME the type reads besides
	// the shared ones; decoded, it is the Source's Options. A key only
	// other types read is refused, naming them.
	Options func() any
	// TableOptions: tables maps each table to its polling options
	// ({orders: {key: [id], cursor: updated_at}}); otherwise it is a list
	// of names.
	TableOptions bool
	// DefaultSchema is put in front of a table name written without one,
	// in the source's tables and in its rules ("" for none).
	DefaultSchema string
	// Example is a tables line of the type's form, shown when tables has
	// the other form.
	Example string
	// Defaults fills in what the file left out; written reports whether a
	// key (relative to the source: "heartbeat", "tables.orders.lookback")
	// was in the file.
	Defaults func(name string, s *Source, written func(key string) bool)
	// Validate reports what is wrong with the type's own keys and tables.
	Validate func(s *Source, p SourceProblems)
}

// The forms of DSN a source type may take.
const (
	DSNPostgres = "postgres" // a URL or key=value string, as pgx reads it
	DSNMySQL    = "mysql"    // user:password@tcp(host:port)/database, as go-sql-driver/mysql reads it
	DSNSQLite   = "sqlite"   // a file path
)

var (
	sourceTypesMu sync.RWMutex
	sourceTypes   = map[string]SourceType{}
	// keyTypes maps each key a type reads (its options' yaml keys) to the
	// types that read it, sorted: made once, as types register.
	keyTypes = map[string][]string{}
)

// RegisterSource makes a source type known. It panics when the name is
// taken: two connectors claiming one type is a build mistake.
func RegisterSource(name string, t SourceType) {
	sourceTypesMu.Lock()
	defer sourceTypesMu.Unlock()
	if _, dup := sourceTypes[name]; dup {
		panic(fmt.Sprintf("config: source type %q registered twice", name))
	}
	sourceTypes[name] = t
	for _, k := range t.keys() {
		keyTypes[k] = append(keyTypes[k], name)
		slices.Sort(keyTypes[k])
	}
}

// SourceTypeNames returns the registered source types, sorted.
func SourceTypeNames() []string {
	sourceTypesMu.RLock()
	defer sourceTypesMu.RUnlock()
	return sortedKeys(sourceTypes)
}

func sourceType(name string) (SourceType, bool) {
	sourceTypesMu.RLock()
	defer sourceTypesMu.RUnlock()
	t, ok := sourceTypes[name]
	return t, ok
}

// typesReading returns the registered types whose own keys include key,
// sorted (none: no type reads it).
func typesReading(key string) []string {
	sourceTypesMu.RLock()
	defer sourceTypesMu.RUnlock()
	return keyTypes[key]
}

// sourceKeys are the keys of every registered type, sorted.
func sourceKeys() []string {
	sourceTypesMu.RLock()
	defer sourceTypesMu.RUnlock()
	return sortedKeys(keyTypes)
}

// SourceProblems reports the problems of one source, each at the line of
// the key it names (relative to the source: "slot", "tables[0]",
// "tables.orders.key").
type SourceProblems struct {
	r    *Reporter
	path string
}

// Add reports a problem with key.
func (p SourceProblems) Add(key, format string, args ...any) {
	p.r.Add(keyPath(p.path, key), format, args...)
}

// OneOf reports key's value v unless it is one of allowed (with a
// suggestion when it is close to one); it says whether v was allowed.
func (p SourceProblems) OneOf(key, v string, allowed ...string) bool {
	return oneOf(p.r, keyPath(p.path, key), v, allowed...)
}

// IndexKey is the key of a list's element i ("tables[2]").
func IndexKey(list string, i int) string { return indexPath(list, i) }

// Ident reports whether s is a plain SQL identifier (letters, digits, _
// and $, not starting with a digit or $; at most 63).
func Ident(s string) bool { return identRe.MatchString(s) }

// Qualified reports whether name is a plain identifier or two joined by a
// dot (table or schema.table).
func Qualified(name string) bool {
	for part := range strings.SplitSeq(name, ".") {
		if !identRe.MatchString(part) {
			return false
		}
	}
	return strings.Count(name, ".") <= 1
}

// keys are the yaml keys of the type's options (RegisterSource reads them
// once into keyTypes).
func (t SourceType) keys() []string {
	if t.Options == nil {
		return nil
	}
	var keys []string
	v := reflect.TypeOf(t.Options()).Elem()
	for i := range v.NumField() {
		if tag := strings.Split(v.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	return keys
}
