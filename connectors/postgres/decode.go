package postgres

import (
	"bytes"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/capisync/capisync/internal/cdc"
)

// decoder turns pgoutput's text values into capisync's common value types
// (internal/cdc): numeric as its exact decimal text, timestamptz as UTC,
// timestamp without zone read in the source's timezone, ±infinity as the
// strings "infinity" / "-infinity", json as maps and lists, arrays as
// lists, domains as their base type, anything unknown (enums too) as text.
type decoder struct {
	types   *pgtype.Map
	domains map[uint32]uint32
	loc     *time.Location
}

// tuple decodes a row: only the columns of the relation's shape (sh.want,
// by position; nil: all), since rules read few of a wide table's columns.
// An unchanged TOASTed value ('u') is taken from old when old has it, and
// otherwise left out. A value whose text is the same as in the old tuple
// (oldT, decoded as old) is taken from old rather than decoded again: an
// UPDATE under REPLICA IDENTITY FULL carries every column twice and
// changes few. In a key tuple (keyOnly: the old row under REPLICA
// IDENTITY DEFAULT) a NULL outside the identity's columns is a value the
// message does not carry, and is left out (a shadow may then give it).
func (d *decoder) tuple(rel *pglogrepl.RelationMessage, sh *shape, t []column, keyOnly bool, oldT []column, old cdc.Row) (cdc.Row, error) {
	names := sh.cols.Names()
	vals := make([]any, len(names))
	j := 0 // the next of names
	for i, col := range t {
		if i >= len(rel.Columns) {
			return cdc.Row{}, fmt.Errorf("tuple has more columns than relation %s.%s", rel.Namespace, rel.RelationName)
		}
		if sh.want != nil && (i >= len(sh.want) || !sh.want[i]) {
			continue
		}
		if j >= len(vals) {
			break
		}
		name := rel.Columns[i].Name
		switch col.kind {
		case 'n':
			vals[j] = nil
			if keyOnly && rel.Columns[i].Flags&1 == 0 {
				vals[j] = cdc.Absent
			}
		case 'u':
			v, ok := old.Get(name)
			if !ok {
				v = cdc.Absent
			}
			vals[j] = v
		case 't':
			if i < len(oldT) && oldT[i].kind == 't' && bytes.Equal(oldT[i].data, col.data) {
				if v, ok := old.Get(name); ok && immutable(v) {
					vals[j] = v
					j++
					continue
				}
			}
			v, err := d.value(rel.Columns[i].DataType, col.data)
			if err != nil {
				return cdc.Row{}, fmt.Errorf("column %s: %w", name, err)
			}
			vals[j] = v
		default:
			return cdc.Row{}, fmt.Errorf("column %s: unexpected tuple data kind %q (binary values are not requested)", name, col.kind)
		}
		j++
	}
	for ; j < len(vals); j++ {
		vals[j] = cdc.Absent // a tuple shorter than its relation
	}
	return cdc.NewRow(sh.cols, vals), nil
}

func (d *decoder) value(oid uint32, data []byte) (any, error) {
	if base, ok := d.domains[oid]; ok {
		oid = base
	}
	switch oid {
	case pgtype.NumericOID:
		return cdc.Decimal(data), nil // exact, never rounded ("NaN" too)
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID:
		return strconv.ParseInt(string(data), 10, 64)
	case pgtype.Float4OID, pgtype.Float8OID:
		return strconv.ParseFloat(string(data), 64)
	case pgtype.BoolOID:
		return string(data) == "t", nil
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.UUIDOID:
		return string(data), nil
	case pgtype.TimestamptzOID, pgtype.TimestampOID, pgtype.DateOID:
		if s := string(data); s == "infinity" || s == "-infinity" {
			return s, nil
		}
	case pgtype.JSONOID, pgtype.JSONBOID:
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		return normalize(v), nil
	}
	t, ok := d.types.TypeForOID(oid)
	if !ok {
		return string(data), nil // enums and other types we do not know: text
	}
	v, err := t.Codec.DecodeValue(d.types, oid, pgtype.TextFormatCode, data)
	if err != nil {
		return string(data), nil
	}
	if tm, ok := v.(time.Time); ok && oid == pgtype.TimestampOID {
		return time.Date(tm.Year(), tm.Month(), tm.Day(), tm.Hour(), tm.Minute(), tm.Second(), tm.Nanosecond(), d.loc).UTC(), nil
	}
	return normalize(v), nil
}

// normalize maps pgtype's decoded values to the common types.
func normalize(v any) any {
	switch x := v.(type) {
	case nil, string, int64, float64, bool, []byte:
		return x
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case float32:
		return float64(x)
	case time.Time:
		return x.UTC()
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case driver.Valuer:
		if dv, err := x.Value(); err == nil {
			return normalize(dv)
		}
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// immutable reports whether v can be shared by the old and new rows of a
// change: anything but a map, list or byte slice.
func immutable(v any) bool {
	switch v.(type) {
	case map[string]any, []any, []byte:
		return false
	}
	return true
}
