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
	return append(append(positionHead(table, key, len(cursor.Type)+len(cursor.Value)), cursor.Type...), cursor.Value...)
}

// cursorPosition is changePosition(table, key, toNative(cursor)), built in
// one allocation: polls call it for every changed row.
func cursorPosition(table string, key []byte, cursor any) (cdc.Position, error) {
	b := positionHead(table, key, 40)
	switch x := cursor.(type) {
	case time.Time:
		return x.AppendFormat(append(b, 't'), time.RFC3339Nano), nil
	case int64:
		return strconv.AppendInt(append(b, 'i'), x, 10), nil
	}
	n, err := toNative(cursor)
	if err != nil {
		return nil, err
	}
	return append(append(b, n.Type...), n.Value...), nil
}

// positionHead is a position's table and key, with room for n more bytes.
func positionHead(table string, key []byte, n int) []byte {
	b := make([]byte, 0, len(table)+len(key)+2+n)
	return append(append(append(append(b, table...), 0), key...), 0)
}
