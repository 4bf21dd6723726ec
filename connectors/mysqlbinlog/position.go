package mysqlbinlog

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/capisync/capisync/internal/cdc"
)

// position is where the source stands in the binlog: after the
// transaction that ended at File:Pos, whose server GTID set then was GTID
// (empty when the server has none: file and position are used). A
// change's position adds its place in its transaction (Row, from 1), so
// that reading the transaction again yields the same positions.
//
// Encoded as text, so that `capisync status` shows it:
// "gtid=0-1-42 file=capisync-bin.000003 pos=1234 row=7".
type position struct {
	GTID string
	File string
	Pos  uint32
	Row  int
}

func (p position) encode() cdc.Position { return p.appendTo(nil) }

// appendTo appends the encoded position to b.
func (p position) appendTo(b []byte) cdc.Position {
	start := len(b)
	b = append(append(b, "gtid="...), p.GTID...)
	if p.File != "" {
		b = append(append(b, " file="...), p.File...)
		b = strconv.AppendUint(append(b, " pos="...), uint64(p.Pos), 10)
	}
	if p.Row > 0 {
		b = strconv.AppendInt(append(b, " row="...), int64(p.Row), 10)
	}
	return cdc.Position(b[start:len(b):len(b)])
}

func (p position) String() string { return string(p.encode()) }

func parsePosition(b cdc.Position) (position, error) {
	var p position
	for _, f := range strings.Fields(string(b)) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return position{}, fmt.Errorf("binlog position %q: field %q is not key=value", b, f)
		}
		switch k {
		case "gtid":
			p.GTID = v
		case "file":
			p.File = v
		case "pos":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return position{}, fmt.Errorf("binlog position %q: pos: %w", b, err)
			}
			p.Pos = uint32(n)
		case "row":
			n, err := strconv.Atoi(v)
			if err != nil {
				return position{}, fmt.Errorf("binlog position %q: row: %w", b, err)
			}
			p.Row = n
		default:
			return position{}, fmt.Errorf("binlog position %q: unknown field %q", b, k)
		}
	}
	if p.GTID == "" && p.File == "" {
		return position{}, fmt.Errorf("binlog position %q: neither a GTID set nor a file", b)
	}
	if p.File == "" && p.Pos != 0 {
		return position{}, fmt.Errorf("binlog position %q: a pos without a file", b)
	}
	return p, nil
}
