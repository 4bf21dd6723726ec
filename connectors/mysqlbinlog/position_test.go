package mysqlbinlog

import (
	"testing"

	"github.com/capisync/capisync/internal/cdc"
)

func TestPositionRoundTrip(t *testing.T) {
	for _, p := range []position{
		{GTID: "0-1-42", File: "capisync-bin.000003", Pos: 1234},
		{GTID: "0-1-42,1-7-3", File: "b.000001", Pos: 4},
		{GTID: "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-77", File: "mysql-bin.000010", Pos: 157},
		{GTID: "", File: "mysql-bin.000001", Pos: 4},
	} {
		got, err := parsePosition(p.encode())
		if err != nil || got != p {
			t.Errorf("%+v -> %q -> %+v, %v", p, p.encode(), got, err)
		}
	}
	for _, bad := range []string{"", "gtid", "pos=1", "file=a pos=x", "gtid=1 what=2", "gtid=0-1-1 row=z"} {
		if _, err := parsePosition(cdc.Position(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzParsePosition: any input is parsed or refused, never a panic, and
// what parses encodes back to a position that parses to the same.
func FuzzParsePosition(f *testing.F) {
	f.Add("gtid=0-1-42 file=capisync-bin.000003 pos=1234")
	f.Add("gtid=- file=a pos=4 row=2")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePosition(cdc.Position(s))
		if err != nil {
			return
		}
		q, err := parsePosition(p.encode())
		if err != nil || q != p {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, p, p.encode(), q, err)
		}
	})
}
