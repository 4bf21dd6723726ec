package postgres

import (
	"encoding/binary"
	"fmt"
)

// column is one value of a pgoutput TupleData, still in the message's
// bytes: kind 'n' (null), 'u' (unchanged TOASTed value) or 't' (text).
type column struct {
	kind byte
	data []byte
}

// rowMessage is an Insert, Update or Delete message of pgoutput protocol
// version 1. Rows are parsed here rather than by pglogrepl, which copies
// every column into a new slice: these messages are nearly all of the
// stream, and their values are decoded straight from the message bytes.
// The slices are reused from message to message.
type rowMessage struct {
	op       byte // 'I', 'U' or 'D'
	relation uint32
	old, new []column // nil when the message carries no such tuple
	// oldKey: old is a 'K' tuple (REPLICA IDENTITY DEFAULT or an index):
	// the identity's columns, every other one NULL for want of its value.
	oldKey bool
	oldBuf []column
	newBuf []column
}

// parse reads data (the whole pgoutput message) into m.
func (m *rowMessage) parse(data []byte) error {
	if len(data) < 6 {
		return fmt.Errorf("%c message of %d bytes is too short", data[0], len(data))
	}
	m.op, m.relation = data[0], binary.BigEndian.Uint32(data[1:5])
	m.old, m.new, m.oldKey = nil, nil, false
	b := data[5:]
	var err error
	switch m.op {
	case 'I':
		if b[0] != 'N' {
			return fmt.Errorf("insert: expected tuple N, got %q", b[0])
		}
		m.new, b, err = parseTuple(b[1:], m.newBuf[:0])
		m.newBuf = m.new
	case 'U':
		if b[0] == 'K' || b[0] == 'O' {
			m.oldKey = b[0] == 'K'
			if m.old, b, err = parseTuple(b[1:], m.oldBuf[:0]); err != nil {
				return fmt.Errorf("update: old tuple: %w", err)
			}
			m.oldBuf = m.old
		}
		if len(b) == 0 || b[0] != 'N' {
			return fmt.Errorf("update: expected new tuple N")
		}
		m.new, b, err = parseTuple(b[1:], m.newBuf[:0])
		m.newBuf = m.new
	case 'D':
		if b[0] != 'K' && b[0] != 'O' {
			return fmt.Errorf("delete: expected tuple K or O, got %q", b[0])
		}
		m.oldKey = b[0] == 'K'
		m.old, b, err = parseTuple(b[1:], m.oldBuf[:0])
		m.oldBuf = m.old
	default:
		return fmt.Errorf("not a row message: %q", m.op)
	}
	if err != nil {
		return fmt.Errorf("%c message: %w", m.op, err)
	}
	if len(b) != 0 {
		return fmt.Errorf("%c message: %d bytes after the tuples", m.op, len(b))
	}
	return nil
}

// parseTuple reads one TupleData into cols and returns what follows it.
func parseTuple(b []byte, cols []column) ([]column, []byte, error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("tuple truncated")
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	for i := 0; i < n; i++ {
		if len(b) < 1 {
			return nil, nil, fmt.Errorf("tuple truncated at column %d of %d", i+1, n)
		}
		c := column{kind: b[0]}
		b = b[1:]
		switch c.kind {
		case 'n', 'u':
		case 't', 'b':
			if len(b) < 4 {
				return nil, nil, fmt.Errorf("tuple truncated at column %d of %d", i+1, n)
			}
			l := int(binary.BigEndian.Uint32(b))
			if l < 0 || len(b)-4 < l {
				return nil, nil, fmt.Errorf("column %d of %d: length %d past the message end", i+1, n, l)
			}
			c.data, b = b[4:4+l], b[4+l:]
		default:
			return nil, nil, fmt.Errorf("column %d of %d: unknown kind %q", i+1, n, c.kind)
		}
		cols = append(cols, c)
	}
	return cols, b, nil
}
