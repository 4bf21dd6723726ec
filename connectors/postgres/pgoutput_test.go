package postgres

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/capisync/capisync/internal/cdc"
)

// tupleBytes builds a pgoutput TupleData: nil is null, "\x00u" unchanged
// TOAST, anything else text.
func tupleBytes(vals ...any) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(vals)))
	for _, v := range vals {
		switch v {
		case nil:
			b = append(b, 'n')
		case "\x00u":
			b = append(b, 'u')
		default:
			s := v.(string)
			b = append(b, 't')
			b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
			b = append(b, s...)
		}
	}
	return b
}

func message(op byte, rel uint32, parts ...any) []byte {
	b := binary.BigEndian.AppendUint32([]byte{op}, rel)
	for _, p := range parts {
		switch x := p.(type) {
		case byte:
			b = append(b, x)
		case []byte:
			b = append(b, x...)
		}
	}
	return b
}

func TestRowMessageMatchesPglogrepl(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"insert", message('I', 16384, byte('N'), tupleBytes("1", nil, "qualified", ""))},
		{"update full", message('U', 7, byte('O'), tupleBytes("1", "new"), byte('N'), tupleBytes("1", "qualified"))},
		{"update key", message('U', 7, byte('K'), tupleBytes("2", nil), byte('N'), tupleBytes("3", "x"))},
		{"update toast", message('U', 7, byte('N'), tupleBytes("1", "\x00u", "won"))},
		{"delete key", message('D', 9, byte('K'), tupleBytes("5", nil, nil))},
		{"delete full", message('D', 9, byte('O'), tupleBytes("5", "a", "日本"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m rowMessage
			if err := m.parse(tt.data); err != nil {
				t.Fatal(err)
			}
			want, err := pglogrepl.Parse(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			var rel uint32
			var oldT, newT *pglogrepl.TupleData
			switch w := want.(type) {
			case *pglogrepl.InsertMessage:
				rel, newT = w.RelationID, w.Tuple
			case *pglogrepl.UpdateMessage:
				rel, oldT, newT = w.RelationID, w.OldTuple, w.NewTuple
			case *pglogrepl.DeleteMessage:
				rel, oldT = w.RelationID, w.OldTuple
			}
			if m.relation != rel || m.op != tt.data[0] {
				t.Errorf("relation %d op %c, want %d %c", m.relation, m.op, rel, tt.data[0])
			}
			same := func(what string, got []column, want *pglogrepl.TupleData) {
				if want == nil {
					if got != nil {
						t.Errorf("%s: got %d columns, want none", what, len(got))
					}
					return
				}
				if len(got) != len(want.Columns) {
					t.Fatalf("%s: %d columns, want %d", what, len(got), len(want.Columns))
				}
				for i, c := range want.Columns {
					if got[i].kind != c.DataType || !bytes.Equal(got[i].data, c.Data) {
						t.Errorf("%s column %d: %c %q, want %c %q", what, i, got[i].kind, got[i].data, c.DataType, c.Data)
					}
				}
			}
			same("old", m.old, oldT)
			same("new", m.new, newT)
		})
	}
}

func TestRowMessageRejectsDamage(t *testing.T) {
	good := message('U', 7, byte('O'), tupleBytes("1", "new"), byte('N'), tupleBytes("1", "qualified"))
	for n := 0; n < len(good); n++ {
		var m rowMessage
		if n == 0 {
			continue
		}
		if err := m.parse(good[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	for _, bad := range [][]byte{
		message('I', 1, byte('X'), tupleBytes("1")),
		message('D', 1, byte('N'), tupleBytes("1")),
		message('U', 1, byte('O'), tupleBytes("1")),
		append(message('I', 1, byte('N'), tupleBytes("1")), 0),
		message('I', 1, byte('N'), []byte{0, 1, 'z'}),
	} {
		var m rowMessage
		if err := m.parse(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestChangePositionIsTheLSNText(t *testing.T) {
	for _, lsn := range []pglogrepl.LSN{0, 1, 0x16B3748, 0xABCDEF0123456789, 0xFFFFFFFFFFFFFFFF} {
		want := fmt.Sprintf("%s#%d", lsn, 42)
		if got := string(changePosition(lsn, 42)); got != want {
			t.Errorf("changePosition(%d) = %s, want %s", uint64(lsn), got, want)
		}
	}
}

func FuzzRowMessage(f *testing.F) {
	f.Add(message('U', 7, byte('O'), tupleBytes("1", "new"), byte('N'), tupleBytes("1", nil, "\x00u")))
	f.Add(message('I', 1, byte('N'), tupleBytes("x")))
	f.Add(message('D', 1, byte('K'), tupleBytes("x")))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || (data[0] != 'I' && data[0] != 'U' && data[0] != 'D') {
			return
		}
		var m rowMessage
		err := m.parse(data) // must not panic
		if err != nil {
			return
		}
		for _, c := range append(m.old, m.new...) {
			if c.kind != 'n' && c.kind != 'u' && c.kind != 't' && c.kind != 'b' {
				t.Fatalf("accepted kind %q", c.kind)
			}
		}
	})
}

func TestTupleTakesUnchangedValuesFromOld(t *testing.T) {
	rel := &pglogrepl.RelationMessage{Namespace: "public", RelationName: "leads", Columns: []*pglogrepl.RelationMessageColumn{
		{Name: "id", DataType: pgtype.Int8OID}, {Name: "status", DataType: pgtype.TextOID},
		{Name: "doc", DataType: pgtype.JSONBOID}, {Name: "at", DataType: pgtype.TimestamptzOID}}}
	d := &decoder{types: pgtype.NewMap(), loc: time.UTC}
	var m rowMessage
	data := message('U', 1,
		byte('O'), tupleBytes("7", "new", `{"a":1}`, "2026-11-26 10:00:00+00"),
		byte('N'), tupleBytes("7", "qualified", `{"a":1}`, "2026-11-26 10:00:00+00"))
	if err := m.parse(data); err != nil {
		t.Fatal(err)
	}
	sh := (&streamer{}).shapeOf(1, rel, &tableInfo{})
	old, err := d.tuple(rel, sh, m.old, false, nil, cdc.Row{})
	if err != nil {
		t.Fatal(err)
	}
	row, err := d.tuple(rel, sh, m.new, false, m.old, old)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": int64(7), "status": "qualified", "doc": map[string]any{"a": int64(1)},
		"at": time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	if !reflect.DeepEqual(row.Map(), want) {
		t.Fatalf("new row = %v\nwant %v", row, want)
	}
	if old.Value("status") != "new" {
		t.Errorf("old status = %v", old.Value("status"))
	}
	// A map is never shared: changing one row's must not change the other's.
	row.Value("doc").(map[string]any)["a"] = "changed"
	if old.Value("doc").(map[string]any)["a"] != int64(1) {
		t.Error("old and new rows share the jsonb map")
	}
}

// TestKeyTupleLeavesOutUnknownColumns: a delete's 'K' tuple (REPLICA
// IDENTITY DEFAULT) carries the key and NULL for every other column; those
// are unknown, so left out of the old row (a shadow may give them), while
// an 'O' tuple's NULL is a NULL.
func TestKeyTupleLeavesOutUnknownColumns(t *testing.T) {
	rel := &pglogrepl.RelationMessage{Namespace: "public", RelationName: "orders", Columns: []*pglogrepl.RelationMessageColumn{
		{Name: "id", DataType: pgtype.Int8OID, Flags: 1}, {Name: "status", DataType: pgtype.TextOID}, {Name: "note", DataType: pgtype.TextOID}}}
	d := &decoder{types: pgtype.NewMap(), loc: time.UTC}
	sh := (&streamer{}).shapeOf(1, rel, &tableInfo{})
	for _, tc := range []struct {
		kind byte
		want map[string]any
	}{
		{'K', map[string]any{"id": int64(7)}},
		{'O', map[string]any{"id": int64(7), "status": nil, "note": nil}},
	} {
		var m rowMessage
		if err := m.parse(message('D', 1, tc.kind, tupleBytes("7", nil, nil))); err != nil {
			t.Fatal(err)
		}
		if m.oldKey != (tc.kind == 'K') {
			t.Fatalf("%c: oldKey = %v", tc.kind, m.oldKey)
		}
		old, err := d.tuple(rel, sh, m.old, m.oldKey, nil, cdc.Row{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(old.Map(), tc.want) {
			t.Errorf("%c tuple: old = %v, want %v", tc.kind, old, tc.want)
		}
	}
}
