package sqlpoll

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/capisync/capisync/internal/cdc"
)

// position is the polling source's checkpoint: per table, the high-water
// mark (the last (cursor, key) read) and whether its baseline is done.
type position struct {
	Tables map[string]*tableState `json:"tables"`
}

type tableState struct {
	Cursor    *native  `json:"cursor,omitempty"` // nil: nothing read yet
	Key       []native `json:"key,omitempty"`
	Baselined bool     `json:"baselined,omitempty"`
}

// native is a value exactly as the driver gave it, kept so that binding it
// back as a parameter compares exactly.
type native struct {
	Type  string `json:"t"`
	Value string `json:"v"`
}

func toNative(v any) (native, error) {
	switch x := v.(type) {
	case int64:
		return native{"i", strconv.FormatInt(x, 10)}, nil
	case int32:
		return native{"i", strconv.FormatInt(int64(x), 10)}, nil
	case uint64:
		return native{"u", strconv.FormatUint(x, 10)}, nil
	case float64:
		return native{"f", strconv.FormatFloat(x, 'g', -1, 64)}, nil
	case string:
		return native{"s", x}, nil
	case []byte:
		return native{"b", base64.StdEncoding.EncodeToString(x)}, nil
	case time.Time:
		return native{"t", x.Format(time.RFC3339Nano)}, nil
	case bool:
		return native{"o", strconv.FormatBool(x)}, nil
	}
	return native{}, fmt.Errorf("a %T cannot be a cursor or key value", v)
}

func (n native) value() (any, error) {
	switch n.Type {
	case "i":
		return strconv.ParseInt(n.Value, 10, 64)
	case "u":
		return strconv.ParseUint(n.Value, 10, 64)
	case "f":
		return strconv.ParseFloat(n.Value, 64)
	case "s":
		return n.Value, nil
	case "b":
		return base64.StdEncoding.DecodeString(n.Value)
	case "t":
		return time.Parse(time.RFC3339Nano, n.Value)
	case "o":
		return strconv.ParseBool(n.Value)
	}
	return nil, fmt.Errorf("unknown value type %q in position", n.Type)
}

func decodePosition(p cdc.Position) (*position, error) {
	pos := &position{Tables: map[string]*tableState{}}
	if len(p) == 0 {
		return pos, nil
	}
	if err := json.Unmarshal(p, pos); err != nil {
		return nil, fmt.Errorf("decode checkpoint: %w (was it written by another source type?)", err)
	}
	if pos.Tables == nil {
		pos.Tables = map[string]*tableState{}
	}
	return pos, nil
}

func (p *position) encode() cdc.Position {
	b, _ := json.Marshal(p)
	return b
}

// changePosition identifies one row version: table, key and cursor. The
// same row read again yields the same position (and so the same default
// event_id); the row changed again yields another.
func changePosition(table string, key []byte, cursor native) cdc.Position {
	b := appendPositionHead(make([]byte, 0, len(table)+len(key)+2+len(cursor.Type)+len(cursor.Value)), table, key)
	return append(append(b, cursor.Type...), cursor.Value...)
}

// cursorPosition is changePosition(table, key, toNative(cursor)), cut from
// arena (a new one when it runs short): polls call it for every changed
// row. It returns the arena to cut the next one from.
func cursorPosition(arena []byte, table string, key []byte, cursor any) (cdc.Position, []byte, error) {
	if cap(arena)-len(arena) < len(table)+len(key)+2+40 {
		arena = make([]byte, 0, max(16<<10, len(table)+len(key)+2+40))
	}
	start := len(arena)
	b := appendPositionHead(arena, table, key)
	switch x := cursor.(type) {
	case time.Time:
		b = x.AppendFormat(append(b, 't'), time.RFC3339Nano)
	case int64:
		b = strconv.AppendInt(append(b, 'i'), x, 10)
	default:
		n, err := toNative(cursor)
		if err != nil {
			return nil, arena, err
		}
		b = append(append(b, n.Type...), n.Value...)
	}
	return b[start:len(b):len(b)], b, nil
}

// appendPositionHead appends a position's table and key to b.
func appendPositionHead(b []byte, table string, key []byte) []byte {
	return append(append(append(append(b, table...), 0), key...), 0)
}
