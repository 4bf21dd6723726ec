package mysqlbinlog

import (
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/capisync/capisync/internal/cdc"
)

// TestOddValueKeptAsText: a value that does not convert (here an ENUM
// index past its members) is passed on as its text and reported, and the
// row's other values are converted as usual: the source does not stop.
func TestOddValueKeptAsText(t *testing.T) {
	sh := &shape{table: "orders", cols: cdc.NewColumns("id", "state", "note"), kinds: []colKind{
		{typ: mysql.MYSQL_TYPE_LONGLONG}, {typ: mysql.MYSQL_TYPE_ENUM, names: []string{"new"}}, {typ: mysql.MYSQL_TYPE_VARCHAR}}}
	var odd []string
	row, err := sh.row([]any{int64(7), int64(5), "hi"}, nil, time.UTC, func(col string, err error) { odd = append(odd, col+": "+err.Error()) })
	if err != nil {
		t.Fatal(err)
	}
	if row.Value("id") != int64(7) || row.Value("state") != "5" || row.Value("note") != "hi" {
		t.Errorf("row = %v", row)
	}
	if len(odd) != 1 || odd[0] != "state: ENUM index 5 of 1 members" {
		t.Errorf("reported %q", odd)
	}
}

// FuzzParseTime: parseTime never panics, and a date it reads that Go's
// own parser reads too (no zero month or day) is the same instant.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-03-29 02:30:00.123456", "2024-00-15 10:00:00.5", "2024-05-00", "0000-00-00", "1969-12-31 23:59:59.50", "2026-1-2 3:4:5", ""} {
		f.Add(s)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime(s, berlin)
		if err != nil {
			return
		}
		for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02"} {
			if want, err := time.ParseInLocation(layout, s, berlin); err == nil {
				if g, ok := got.(time.Time); !ok || !g.Equal(want) {
					t.Fatalf("parseTime(%q) = %v, Go reads %v", s, got, want)
				}
			}
		}
	})
}
