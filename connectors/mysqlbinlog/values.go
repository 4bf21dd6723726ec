package mysqlbinlog

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/capisync/capisync/internal/cdc"
)

// binaryCollation is the collation id of binary strings (BINARY,
// VARBINARY, BLOB): their values are bytes, the others' text.
const binaryCollation = 63

// shape is how a table map's columns decode: names, and per column what
// the polling reader would make of it, so that a rule sees the same value
// whichever source reads the row (internal/cdc lists the types).
type shape struct {
	table string // as in the config
	cols  *cdc.Columns
	key   []int // primary-key column indexes, in name order
	// keyCols names the key columns in name order (as cdc.RowOf would),
	// made once for every change's Key.
	keyCols *cdc.Columns
	kinds   []colKind
}

type colKind struct {
	typ      byte // the column's real type (mysql.MYSQL_TYPE_*)
	unsigned bool
	binary   bool     // bytes, not text
	names    []string // ENUM or SET members
	bits     int      // BIT width
	// decode turns a text column's bytes into UTF-8 (nil: they are).
	decode func([]byte) (string, error)
}

// newShape reads a table map with full metadata (binlog_row_metadata=FULL);
// charsets maps collation ids to character sets (see charsets).
func newShape(table string, tm *replication.TableMapEvent, charsets map[uint64]string) (*shape, error) {
	names := tm.ColumnNameString()
	if len(names) != int(tm.ColumnCount) {
		return nil, fmt.Errorf("table %s: the binlog carries no column names (binlog_row_metadata is not FULL)", table)
	}
	if len(tm.PrimaryKey) == 0 {
		return nil, fmt.Errorf("table %s has no primary key: a binlog source needs one to tell rows apart", table)
	}
	sh := &shape{table: table, cols: cdc.NewColumns(names...), kinds: make([]colKind, len(names))}
	for _, k := range tm.PrimaryKey {
		sh.key = append(sh.key, int(k))
	}
	slices.SortFunc(sh.key, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	keyNames := make([]string, len(sh.key))
	for j, i := range sh.key {
		keyNames[j] = names[i]
	}
	sh.keyCols = cdc.NewColumns(keyNames...)
	unsigned := tm.UnsignedMap()
	collations, enumSetCollations := tm.CollationMap(), tm.EnumSetCollationMap()
	enums, sets := tm.EnumStrValueMap(), tm.SetStrValueMap()
	for i := range names {
		k := colKind{typ: tm.ColumnType[i], unsigned: unsigned[i]}
		meta := tm.ColumnMeta[i]
		if k.typ == mysql.MYSQL_TYPE_STRING && meta >= 256 {
			// The real type of a fixed-length string column is in its metadata.
			if rt := byte(meta >> 8); rt == mysql.MYSQL_TYPE_ENUM || rt == mysql.MYSQL_TYPE_SET {
				k.typ = rt
			}
		}
		switch k.typ {
		case mysql.MYSQL_TYPE_ENUM, mysql.MYSQL_TYPE_SET:
			k.names = enums[i]
			if k.typ == mysql.MYSQL_TYPE_SET {
				k.names = sets[i]
			}
			if dec, err := decoderFor(charsets[enumSetCollations[i]]); err != nil {
				return nil, fmt.Errorf("table %s column %s: %w", table, names[i], err)
			} else if dec != nil {
				for j, n := range k.names {
					if k.names[j], err = dec([]byte(n)); err != nil {
						return nil, fmt.Errorf("table %s column %s: member %q: %w", table, names[i], n, err)
					}
				}
			}
		case mysql.MYSQL_TYPE_BIT:
			k.bits = int(meta>>8)*8 + int(meta&0xFF)
		case mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_BLOB:
			c, ok := collations[i]
			if ok && c == binaryCollation {
				k.binary = true
				break
			}
			dec, err := decoderFor(charsets[c])
			if err != nil {
				return nil, fmt.Errorf("table %s column %s: %w", table, names[i], err)
			}
			k.decode = dec
		case mysql.MYSQL_TYPE_GEOMETRY:
			k.binary = true
		}
		sh.kinds[i] = k
	}
	return sh, nil
}

// row converts one row image. A value that does not convert (a corrupt
// ENUM index, text invalid in its character set) is kept as the library
// gave it, as text or bytes, and reported to odd: one row's odd value
// never stops the source, and a rule that needs it fails on that event
// alone, which is dead-lettered with the field named.
//
// skipped are the columns the image leaves out (binlog_row_image MINIMAL
// or NOBLOB): absent from the row, not NULL.
func (sh *shape) row(vals []any, skipped []int, loc *time.Location, odd func(col string, err error)) (cdc.Row, error) {
	out := make([]any, len(vals))
	for i, v := range vals {
		if i >= len(sh.kinds) {
			return cdc.Row{}, fmt.Errorf("table %s: a row of %d values for %d columns", sh.table, len(vals), len(sh.kinds))
		}
		if len(skipped) > 0 && slices.Contains(skipped, i) {
			out[i] = cdc.Absent
			continue
		}
		c, err := convert(sh.kinds[i], v, loc)
		if err != nil {
			switch x := v.(type) {
			case []byte:
				c = append([]byte(nil), x...)
			case string:
				c = strings.Clone(x)
			default:
				c = fmt.Sprint(v)
			}
			odd(sh.cols.Names()[i], err)
		}
		out[i] = c
	}
	return cdc.NewRow(sh.cols, out), nil
}

// keyOf is the key columns of row, or of other for those row leaves out
// (a MINIMAL after image holds only the columns that changed).
func (sh *shape) keyOf(row, other cdc.Row) cdc.Row {
	vals := make([]any, len(sh.key))
	names := sh.cols.Names()
	for j, i := range sh.key {
		v, ok := row.Get(names[i])
		if !ok {
			v = other.Value(names[i])
		}
		vals[j] = v
	}
	return cdc.NewRow(sh.keyCols, vals)
}

// convert maps a decoded binlog value to capisync's value types as the
// polling reader makes them from the same column.
func convert(k colKind, v any, loc *time.Location) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch k.typ {
	case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_YEAR:
		return integer(k, v)
	case mysql.MYSQL_TYPE_FLOAT:
		if f, ok := v.(float32); ok {
			// As the text protocol writes it: the shortest decimal that
			// reads back as this float32, not its float64 expansion.
			return strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
		}
	case mysql.MYSQL_TYPE_DOUBLE:
		if f, ok := v.(float64); ok {
			return f, nil
		}
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		if s, ok := v.(string); ok {
			return cdc.Decimal(s), nil
		}
		return cdc.Decimal(fmt.Sprint(v)), nil
	case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		if t, ok := v.(time.Time); ok {
			// The wall-clock fields, read in the source's timezone (as
			// ParseInLocation does: a time in a DST gap moves the same way).
			y, m, d := t.Date()
			hh, mm, ss := t.Clock()
			return time.Date(y, m, d, hh, mm, ss, t.Nanosecond(), loc).UTC(), nil
		}
		return parseTime(fmt.Sprint(v), loc) // wall-clock digits, in the source's timezone
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
		if t, ok := v.(time.Time); ok {
			return t.UTC(), nil // the instant
		}
		return parseTime(fmt.Sprint(v), time.UTC) // a zero TIMESTAMP's text
	case mysql.MYSQL_TYPE_ENUM:
		n, err := integer(colKind{unsigned: true}, v)
		if err != nil {
			return nil, err
		}
		i, _ := n.(int64)
		if i == 0 {
			return "", nil // the empty string an invalid value became
		}
		if int(i) > len(k.names) {
			return nil, fmt.Errorf("ENUM index %d of %d members", i, len(k.names))
		}
		return k.names[i-1], nil
	case mysql.MYSQL_TYPE_SET:
		n, err := integer(colKind{unsigned: true}, v)
		if err != nil {
			return nil, err
		}
		bits, _ := n.(int64)
		var members []string
		for i, name := range k.names {
			if bits&(1<<i) != 0 {
				members = append(members, name)
			}
		}
		return strings.Join(members, ","), nil
	case mysql.MYSQL_TYPE_BIT:
		i, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("BIT column holds %T", v)
		}
		// As the text protocol sends it: the bits big-endian, in whole bytes.
		b := binary.BigEndian.AppendUint64(nil, uint64(i))
		return b[8-(k.bits+7)/8:], nil
	case mysql.MYSQL_TYPE_JSON:
		// MySQL's binary JSON, decoded to its text by the library.
		return text(colKind{}, v, false)
	case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
		return fmt.Sprint(v), nil
	}
	return text(k, v, k.binary)
}

// text is a string column's value: a string (in UTF-8), or bytes for a
// binary one. The library's strings share its read buffer: the value is
// copied.
func text(k colKind, v any, binary bool) (any, error) {
	var b []byte
	switch x := v.(type) {
	case string:
		if binary {
			return []byte(x), nil
		}
		if k.decode == nil {
			return strings.Clone(x), nil
		}
		b = []byte(x)
	case []byte:
		if binary {
			return append([]byte(nil), x...), nil
		}
		b = x
	default:
		return fmt.Sprint(v), nil
	}
	if k.decode != nil {
		return k.decode(b)
	}
	return string(b), nil
}

// integer is an integer column's value as int64; an unsigned one above
// MaxInt64 becomes a Decimal, as the polling reader makes it.
func integer(k colKind, v any) (any, error) {
	var n int64
	var width uint
	switch x := v.(type) {
	case int8:
		n, width = int64(x), 8
	case int16:
		n, width = int64(x), 16
	case int32:
		n, width = int64(x), 32
	case int64:
		n, width = x, 64
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return cdc.Decimal(strconv.FormatUint(x, 10)), nil
		}
		return int64(x), nil
	case int:
		return int64(x), nil
	default:
		return nil, fmt.Errorf("integer column holds %T", v)
	}
	if k.unsigned && n < 0 {
		// A signed reading of an unsigned value (MEDIUMINT is 24 bits wide
		// but arrives in an int32, already positive).
		u := uint64(n) & (1<<width - 1)
		if width == 64 {
			u = uint64(n)
		}
		if u > math.MaxInt64 {
			return cdc.Decimal(strconv.FormatUint(u, 10)), nil
		}
		return int64(u), nil
	}
	return n, nil
}

// parseTime reads a DATETIME, DATE or TIMESTAMP as the library writes it
// ("2006-01-02 15:04:05.999999", "2006-01-02") in loc, and returns UTC. A
// zero date stays its text, as MySQL shows it ("0000-00-00 00:00:00",
// "0000-00-00"). A date with a zero month or
// day (which MariaDB's default sql_mode lets an application write) is
// normalized as the polling reader's driver does it: 2024-00-15 is
// 2023-12-15, 2024-05-00 is 2024-04-30.
func parseTime(s string, loc *time.Location) (any, error) {
	if strings.Trim(s, "0-:. ") == "" && len(s) >= 10 {
		// The zero date, as the polling reader keeps it too (without the
		// fraction the library writes for a DATETIME(n)).
		if len(s) > 10 {
			return "0000-00-00 00:00:00", nil
		}
		return "0000-00-00", nil
	}
	bad := fmt.Errorf("unreadable time %q", s)
	date, clock, _ := strings.Cut(s, " ")
	var f [6]int // year, month, day, hour, minute, second
	if !numbers(date, "-", f[:3]) {
		return nil, bad
	}
	nsec := 0
	if clock != "" {
		hms, frac, _ := strings.Cut(clock, ".")
		if !numbers(hms, ":", f[3:]) {
			return nil, bad
		}
		if frac != "" {
			n, err := strconv.Atoi((frac + "000000000")[:9])
			if err != nil {
				return nil, bad
			}
			nsec = n
		}
	}
	return time.Date(f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], nsec, loc).UTC(), nil
}

// numbers reads len(out) decimal numbers separated by sep.
func numbers(s, sep string, out []int) bool {
	for i := range out {
		part, rest, found := strings.Cut(s, sep)
		if found != (i < len(out)-1) {
			return false
		}
		n, err := strconv.Atoi(part)
		if err != nil {
			return false
		}
		out[i], s = n, rest
	}
	return true
}
