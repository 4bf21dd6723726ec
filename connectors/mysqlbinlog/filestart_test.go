package mysqlbinlog

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/capisync/capisync/internal/testenv"
)

// fallback is what the source logs when a checkpoint's file and position
// do not lead to the transaction after its GTID.
const fallback = "reading the binlog from the checkpoint's GTID"

// TestResumeAtFileAndPosition: on MariaDB a checkpoint is read from its
// binlog file and position, and the GTID set of the checkpoints that
// follow keeps moving (the library keeps none when not asked for a GTID).
// A checkpoint whose file and position do not lead to the transaction
// after its GTID (behind it, past it, or a file the server lacks) is read
// from its GTID instead: no change is lost or read again.
func TestResumeAtFileAndPosition(t *testing.T) {
	r := newRig(t, shopDDL)
	if flavorOf(t, r.db) != gomysql.MariaDBFlavor {
		t.Skip("the file-and-position start is MariaDB's")
	}
	var logs testenv.Buffer
	r.src.log = slog.New(slog.NewTextHandler(&logs, nil))
	r.start(r.now())
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', NULL, NULL)", r.table))
	_, cp0 := r.changes(1)
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (2, 'new', NULL, NULL)", r.table))
	_, cp1 := r.changes(1)
	r.halt()
	p0, _ := parsePosition(cp0)
	p1, _ := parsePosition(cp1)

	// The checkpoint as written: read from its file, the GTID moving on.
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (3, 'new', NULL, NULL)", r.table))
	r.start(cp1)
	got, cp2 := r.changes(1)
	r.halt()
	if got[0].New.Value("id") != int64(3) {
		t.Errorf("after the checkpoint of row 2, read %v", got[0])
	}
	if strings.Contains(logs.String(), fallback) {
		t.Errorf("a checkpoint as written was read from its GTID:\n%s", logs.String())
	}
	change, _ := parsePosition(got[0].Position)
	p2, _ := parsePosition(cp2)
	txn, _ := gomysql.ParseMariadbGTID(change.GTID)
	set, _ := gomysql.ParseMariadbGTIDSet(p2.GTID)
	if g := set.(*gomysql.MariadbGTIDSet).Sets[txn.DomainID]; g == nil || g.SequenceNumber != txn.SequenceNumber {
		t.Errorf("checkpoint after row 3 is %s; its transaction was %s", cp2, change.GTID)
	}

	for _, tt := range []struct {
		name string
		from position
		want []int64
	}{
		{"file behind the GTID", position{GTID: p1.GTID, File: p0.File, Pos: p0.Pos}, []int64{3}},
		{"file past the GTID", position{GTID: p0.GTID, File: p1.File, Pos: p1.Pos}, []int64{2, 3}},
		{"a file the server lacks", position{GTID: p1.GTID, File: "capisync-none-bin.000999", Pos: 4}, []int64{3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(logs.String())
			r.start(tt.from.encode())
			got, _ := r.changes(len(tt.want))
			r.halt()
			for i, c := range got {
				if c.New.Value("id") != tt.want[i] {
					t.Errorf("change %d: %v, want id %d", i, c, tt.want[i])
				}
			}
			if !strings.Contains(logs.String()[before:], fallback) {
				t.Errorf("not read from the GTID:\n%s", logs.String()[before:])
			}
		})
	}
}
