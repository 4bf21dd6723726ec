package mysqlbinlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/testenv"
)

// rig is a binlog source on a table of its own in the test database.
type rig struct {
	t     *testing.T
	db    *sql.DB
	table string
	src   *Source
	out   chan cdc.Batch
	stop  context.CancelFunc
	done  chan error
}

var serverIDs = make(chan uint32, 1)

func init() { serverIDs <- 42000 }

// nextServerID gives each reader of a test run its own server_id.
func nextServerID() uint32 {
	id := <-serverIDs
	serverIDs <- id + 1
	return id
}

func newRig(t *testing.T, ddl string) *rig {
	t.Helper()
	return newRigAt(t, testenv.MySQLDSN(t), ddl)
}

func newRigAt(t *testing.T, dsn, ddl string) *rig {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, db: db, table: fmt.Sprintf("binlog_%d", time.Now().UnixNano()%1e9)}
	r.exec(fmt.Sprintf(ddl, r.table))
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + r.table); db.Close() })
	r.src, err = New("shop", config.Source{Type: Type, DSN: config.Secret(dsn), Timezone: "UTC",
		Options: &Config{ServerID: nextServerID(), Initial: "skip"}, Tables: config.TableSet{Names: []string{r.table}}}, Options{IdleCheckpoint: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) exec(qs ...string) {
	r.t.Helper()
	for _, q := range qs {
		if _, err := r.db.Exec(q); err != nil {
			r.t.Fatalf("%s: %v", q, err)
		}
	}
}

// tx runs statements in one transaction.
func (r *rig) tx(qs ...string) {
	r.t.Helper()
	tx, err := r.db.Begin()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, q := range qs {
		if _, err := tx.Exec(q); err != nil {
			tx.Rollback()
			r.t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		r.t.Fatal(err)
	}
}

// insertSQL inserts a row of shopDDL with id and nothing else set.
func (r *rig) insertSQL(id int) string {
	return fmt.Sprintf("INSERT INTO %s VALUES (%d, 'new', NULL, NULL)", r.table, id)
}

// now is the server's binlog position.
func (r *rig) now() cdc.Position {
	r.t.Helper()
	p, err := current(context.Background(), r.db, flavorOf(r.t, r.db))
	if err != nil {
		r.t.Fatal(err)
	}
	return p.encode()
}

func flavorOf(t *testing.T, db *sql.DB) string {
	flavor, problems, err := check(context.Background(), db, 1<<31)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("the test server is not ready for a binlog source (scripts/services.sh sets it up): %s", strings.Join(problems, "; "))
	}
	return flavor
}

// start runs the source from from.
func (r *rig) start(from cdc.Position) {
	ctx, cancel := context.WithCancel(context.Background())
	r.out, r.stop, r.done = make(chan cdc.Batch, 100), cancel, make(chan error, 1)
	go func() { r.done <- r.src.Run(ctx, from, r.out) }()
	r.t.Cleanup(r.halt)
}

func (r *rig) halt() {
	if r.stop == nil {
		return
	}
	r.stop()
	if err := <-r.done; err != nil {
		r.t.Errorf("Run: %v", err)
	}
	r.stop = nil
}

// changes reads batches until n changes have come and a checkpoint after
// them; it returns the changes and the last checkpoint.
func (r *rig) changes(n int) ([]cdc.Change, cdc.Position) {
	r.t.Helper()
	var got []cdc.Change
	var pos cdc.Position
	deadline := time.After(20 * time.Second)
	for len(got) < n || pos == nil {
		select {
		case b := <-r.out:
			got = append(got, b.Changes...)
			if b.Position != nil {
				pos = b.Position
			} else {
				pos = nil
			}
		case err := <-r.done:
			r.t.Fatalf("Run ended: %v (after %d changes)", err, len(got))
		case <-deadline:
			r.t.Fatalf("%d of %d changes after 20 s: %v", len(got), n, got)
		}
	}
	if len(got) != n {
		r.t.Fatalf("%d changes, want %d: %v", len(got), n, got)
	}
	return got, pos
}

const shopDDL = "CREATE TABLE %s (id BIGINT PRIMARY KEY, status VARCHAR(20) NOT NULL, email VARCHAR(100), total DECIMAL(12,2))"

// TestRowChanges: inserts, updates (two of one row in one transaction,
// both seen in order), a key change, deletes and NULLs arrive with old and
// new values, each with a position of its own; the checkpoint follows the
// commit.
func TestRowChanges(t *testing.T) {
	r := newRig(t, shopDDL)
	r.start(r.now())
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', 'a@example.com', 10.50), (2, 'new', NULL, NULL)", r.table))
	got, _ := r.changes(2)
	if got[0].Op != cdc.Insert || got[0].New.Value("email") != "a@example.com" || got[0].New.Value("total") != cdc.Decimal("10.50") ||
		got[0].Key.Value("id") != int64(1) || !got[0].Old.IsZero() {
		t.Errorf("insert 1: %+v", got[0])
	}
	if v, ok := got[1].New.Get("email"); !ok || v != nil {
		t.Errorf("insert 2: email = %v, %v; want NULL", v, ok)
	}
	r.tx(fmt.Sprintf("UPDATE %s SET status = 'qualified' WHERE id = 1", r.table),
		fmt.Sprintf("UPDATE %s SET status = 'won', total = 99.99 WHERE id = 1", r.table))
	got, _ = r.changes(2)
	if got[0].Op != cdc.Update || got[0].Old.Value("status") != "new" || got[0].New.Value("status") != "qualified" ||
		got[1].Old.Value("status") != "qualified" || got[1].New.Value("status") != "won" || got[1].New.Value("total") != cdc.Decimal("99.99") {
		t.Errorf("two updates in one transaction: %v / %v", got[0], got[1])
	}
	if string(got[0].Position) == string(got[1].Position) {
		t.Errorf("two changes share position %s", got[0].Position)
	}
	r.exec(fmt.Sprintf("UPDATE %s SET id = 3 WHERE id = 2", r.table))
	got, _ = r.changes(1)
	if got[0].Old.Value("id") != int64(2) || got[0].New.Value("id") != int64(3) || got[0].Key.Value("id") != int64(3) {
		t.Errorf("key change: %v", got[0])
	}
	r.exec(fmt.Sprintf("DELETE FROM %s WHERE id = 3", r.table))
	got, pos := r.changes(1)
	if got[0].Op != cdc.Delete || got[0].Old.Value("id") != int64(3) || got[0].Key.Value("id") != int64(3) || !got[0].New.IsZero() {
		t.Errorf("delete: %v", got[0])
	}
	p, err := parsePosition(pos)
	if err != nil || p.GTID == "" || p.File == "" || p.Pos == 0 {
		t.Errorf("checkpoint %q: %+v %v", pos, p, err)
	}
}

// TestResumeAfterCheckpoint: started again from a checkpoint, the source
// reads exactly the transactions after it; a change read again has the
// position it had.
func TestResumeAfterCheckpoint(t *testing.T) {
	r := newRig(t, shopDDL)
	r.start(r.now())
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', 'a@example.com', 1)", r.table))
	first, cp := r.changes(1)
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (2, 'new', 'b@example.com', 2)", r.table))
	second, _ := r.changes(1)
	r.halt()

	r.start(cp)
	again, _ := r.changes(1)
	if again[0].New.Value("id") != int64(2) {
		t.Errorf("after the checkpoint of row 1, read %v", again[0])
	}
	if string(again[0].Position) != string(second[0].Position) {
		t.Errorf("row 2 read again at %s, first at %s", again[0].Position, second[0].Position)
	}
	if string(first[0].Position) == string(second[0].Position) {
		t.Error("rows 1 and 2 share a position")
	}
}

// TestFirstStartCheckpoints: with no checkpoint the source starts at the
// server's position now and hands that over as a checkpoint at once, so
// that a daemon stopped before the first change comes back to it.
func TestFirstStartCheckpoints(t *testing.T) {
	r := newRig(t, shopDDL)
	r.start(nil)
	var first cdc.Batch
	select {
	case first = <-r.out:
	case <-time.After(20 * time.Second):
		t.Fatal("no first checkpoint")
	}
	if len(first.Changes) != 0 || first.Position == nil {
		t.Fatalf("first batch %+v, want a checkpoint", first)
	}
	r.halt()
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', NULL, NULL)", r.table))
	r.start(first.Position)
	got, _ := r.changes(1)
	if got[0].New.Value("id") != int64(1) {
		t.Errorf("after restarting from the first checkpoint: %v", got[0])
	}
}

// TestOtherTablesMoveTheCheckpoint: transactions on tables the source does
// not watch hand over no change but move the checkpoint (at most every
// IdleCheckpoint), so that a restart does not read them again.
func TestOtherTablesMoveTheCheckpoint(t *testing.T) {
	r := newRig(t, shopDDL)
	other := r.table + "_other"
	r.exec(fmt.Sprintf(shopDDL, other))
	t.Cleanup(func() { r.db.Exec("DROP TABLE IF EXISTS " + other) })
	r.src.opt.IdleCheckpoint = time.Millisecond
	start := r.now()
	r.start(start)
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', NULL, NULL)", other))
	select {
	case b := <-r.out:
		if len(b.Changes) != 0 || b.Position == nil || string(b.Position) == string(start) {
			t.Errorf("batch %+v after a change of another table", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no checkpoint after a transaction on another table")
	}
}

// TestPositionTheServerLacks: a checkpoint the server cannot serve (a
// purged binlog, a GTID it never had) is never skipped: Run keeps trying,
// and Status says why, naming the position, until an operator acts.
func TestPositionTheServerLacks(t *testing.T) {
	r := newRig(t, shopDDL)
	gone := position{GTID: "0-1-999999999", File: "capisync-bin.000001", Pos: 4}
	r.start(gone.encode())
	deadline := time.Now().Add(20 * time.Second)
	for r.src.Status().Err == "" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	st := r.src.Status()
	t.Logf("status: %s", st.Err)
	if !strings.Contains(st.Err, "cannot send the binlog after "+gone.String()) || !strings.Contains(st.Err, "slot reset") || st.Connected {
		t.Fatalf("status %+v, want an error naming %s and what to do", st, gone)
	}
	select {
	case err := <-r.done:
		t.Fatalf("Run ended (%v); it must keep trying", err)
	case b := <-r.out:
		t.Fatalf("batch %+v from a position the server lacks", b)
	case <-time.After(1500 * time.Millisecond):
	}
}

// TestServerNotReady: a server without what a binlog reader needs is a
// SetupError naming the setting and what to do, at Check and at Run.
func TestServerNotReady(t *testing.T) {
	r := newRig(t, shopDDL)
	var own uint32
	if err := r.db.QueryRow("SELECT @@server_id").Scan(&own); err != nil {
		t.Fatal(err)
	}
	r.src.o.ServerID = own
	_, problems, err := r.src.Check(context.Background())
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0], "is the server's own") {
		t.Fatalf("Check with the server's own server_id: %v %v", problems, err)
	}
	err = r.src.Run(context.Background(), nil, make(chan cdc.Batch, 1))
	var se *SetupError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "server_id") {
		t.Fatalf("Run: %v, want a SetupError about server_id", err)
	}
}

// TestSchemaChangeMidStream: rows written before and after an ALTER TABLE
// (a column added in the middle, one dropped, one renamed) are read by the
// names the binlog gives at their own position: no value lands in another
// column.
func TestSchemaChangeMidStream(t *testing.T) {
	r := newRig(t, shopDDL)
	r.start(r.now())
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', 'a@example.com', 1.00)", r.table))
	r.exec(fmt.Sprintf("ALTER TABLE %s ADD COLUMN plan VARCHAR(10) NOT NULL DEFAULT 'free' AFTER id, DROP COLUMN email, RENAME COLUMN status TO stage", r.table))
	r.exec(fmt.Sprintf("INSERT INTO %s (id, plan, stage, total) VALUES (2, 'pro', 'won', 2.00)", r.table))
	r.exec(fmt.Sprintf("UPDATE %s SET stage = 'lost' WHERE id = 1", r.table))
	got, _ := r.changes(3)
	before, after, upd := got[0].New.Map(), got[1].New.Map(), got[2]
	if before["status"] != "new" || before["email"] != "a@example.com" || before["total"] != cdc.Decimal("1.00") {
		t.Errorf("row written before the ALTER: %v", before)
	}
	if after["plan"] != "pro" || after["stage"] != "won" || after["total"] != cdc.Decimal("2.00") {
		t.Errorf("row written after the ALTER: %v", after)
	}
	if _, ok := after["email"]; ok {
		t.Errorf("a dropped column in a row written after the ALTER: %v", after)
	}
	if upd.Old.Value("stage") != "new" || upd.New.Value("stage") != "lost" || upd.New.Value("plan") != "free" {
		t.Errorf("update after the ALTER: %v -> %v", upd.Old, upd.New)
	}
}

// TestLargeTransactionInChunks: a transaction larger than ChunkSize is
// handed over in chunks, only the last with the checkpoint. Stopped after
// the first chunk and started again from the checkpoint before it, the
// source reads the whole transaction again, each change at the position it
// had (so the store's id memory refuses what was already queued).
func TestLargeTransactionInChunks(t *testing.T) {
	r := newRig(t, shopDDL)
	r.src.opt.ChunkSize = 10
	before := r.now()
	r.start(before)
	var vals []string
	for i := 1; i <= 25; i++ {
		vals = append(vals, fmt.Sprintf("(%d, 'new', NULL, NULL)", i))
	}
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES %s", r.table, strings.Join(vals, ",")))
	var first cdc.Batch
	select {
	case first = <-r.out:
	case <-time.After(20 * time.Second):
		t.Fatal("no first chunk")
	}
	if len(first.Changes) != 10 || first.Position != nil {
		t.Fatalf("first chunk: %d changes, position %q; want 10 and none", len(first.Changes), first.Position)
	}
	r.halt()

	r.start(before)
	again, pos := r.changes(25)
	if pos == nil {
		t.Fatal("no checkpoint after the transaction")
	}
	for i, c := range first.Changes {
		if string(again[i].Position) != string(c.Position) || again[i].New.Value("id") != c.New.Value("id") {
			t.Errorf("change %d read again at %s (id %v), first at %s (id %v)", i, again[i].Position, again[i].New.Value("id"), c.Position, c.New.Value("id"))
		}
	}
}

// TestInitialEmit: with initial: emit and no checkpoint, the rows already
// there are handed over as inserts, read in one snapshot, and the binlog
// is streamed from the snapshot's position: a row inserted during the
// load's transaction window and after it arrives once, none twice.
func TestInitialEmit(t *testing.T) {
	r := newRig(t, shopDDL)
	r.src.o.Initial = "emit"
	r.src.opt.ChunkSize = 2
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', 'a@example.com', 1), (2, 'qualified', NULL, 2), (3, 'won', NULL, 3)", r.table))
	r.start(nil)
	loaded, pos := r.changes(3)
	ids := map[any]bool{}
	for _, c := range loaded {
		if c.Op != cdc.Insert || string(c.Position) != snapshotPosition || c.Key.Value("id") != c.New.Value("id") {
			t.Errorf("loaded change %v at %s", c, c.Position)
		}
		ids[c.New.Value("id")] = true
	}
	if len(ids) != 3 || loaded[1].New.Value("total") != cdc.Decimal("2.00") {
		t.Errorf("loaded %v", loaded)
	}
	if p, err := parsePosition(pos); err != nil || p.File == "" || p.GTID == "" {
		t.Errorf("checkpoint after the load %q: %v", pos, err)
	}
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (4, 'new', NULL, NULL)", r.table),
		fmt.Sprintf("UPDATE %s SET status = 'lost' WHERE id = 1", r.table))
	got, _ := r.changes(2)
	if got[0].New.Value("id") != int64(4) || got[1].Old.Value("status") != "new" || got[1].New.Value("status") != "lost" {
		t.Errorf("streamed after the load: %v", got)
	}
}

// TestInitialEmitUnderWrites: rows inserted while the initial load runs
// are read once, by the load or by the stream after it, never by both and
// never by neither.
func TestInitialEmitUnderWrites(t *testing.T) {
	t.Run("mariadb snapshot position", func(t *testing.T) { emitUnderWrites(t, newRig(t, shopDDL)) })
	// MySQL gives no snapshot position: its snapshot starts under a global
	// read lock, on a server of the test's own (the lock stops every
	// write to the server for a moment).
	t.Run("global read lock", func(t *testing.T) {
		srv, dsn := privateBinlogServer(t)
		srv.Exec(t, "GRANT RELOAD ON *.* TO reader@'127.0.0.1'")
		r := newRigAt(t, dsn, shopDDL)
		r.src.lockSnapshot = true
		emitUnderWrites(t, r)
	})
}

func emitUnderWrites(t *testing.T, r *rig) {
	r.src.o.Initial = "emit"
	r.src.opt.ChunkSize = 100
	var vals []string
	for i := 1; i <= 5000; i++ {
		vals = append(vals, fmt.Sprintf("(%d, 'new', NULL, NULL)", i))
	}
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES %s", r.table, strings.Join(vals, ",")))
	const extra = 300
	writing := make(chan error, 1)
	go func() {
		for i := 5001; i <= 5000+extra; i++ {
			if _, err := r.db.Exec(fmt.Sprintf("INSERT INTO %s VALUES (%d, 'new', NULL, NULL)", r.table, i)); err != nil {
				writing <- err
				return
			}
		}
		writing <- nil
	}()
	r.start(nil)
	seen := map[int64]int{}
	loadedExtra := 0 // rows written during the load that the load read
	deadline := time.After(60 * time.Second)
	for len(seen) < 5000+extra {
		select {
		case b := <-r.out:
			for _, c := range b.Changes {
				id := c.New.Value("id").(int64)
				seen[id]++
				if id > 5000 && string(c.Position) == snapshotPosition {
					loadedExtra++
				}
			}
		case err := <-r.done:
			t.Fatalf("Run ended: %v", err)
		case <-deadline:
			t.Fatalf("%d of %d rows after 60 s", len(seen), 5000+extra)
		}
	}
	if err := <-writing; err != nil {
		t.Fatal(err)
	}
	select { // anything more would be a row read twice
	case b := <-r.out:
		for _, c := range b.Changes {
			seen[c.New.Value("id").(int64)]++
		}
	case <-time.After(500 * time.Millisecond):
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("row %d read %d times", id, n)
		}
	}
	t.Logf("of the %d rows written during the load, %d were read by the load and %d by the stream", extra, loadedExtra, extra-loadedExtra)
}

// TestInitialEmitNeedsReload: MySQL's way to start the snapshot takes a
// global read lock, which a user without RELOAD may not: the source
// stops with an error that says so, never a load at an unknown position.
func TestInitialEmitNeedsReload(t *testing.T) {
	r := newRig(t, shopDDL) // the shared server's test user has no RELOAD
	r.src.o.Initial = "emit"
	r.src.lockSnapshot = true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := r.src.Run(ctx, nil, make(chan cdc.Batch, 10))
	var se *SetupError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "RELOAD") {
		t.Errorf("Run: %v, want a SetupError naming RELOAD", err)
	}
}

// TestTablesChecked: a watched table that is missing, or lacks a column a
// rule reads, is an error naming the table, the column, the rules and the
// columns there are, at Check (validate --connect) and at Run.
func TestTablesChecked(t *testing.T) {
	r := newRig(t, shopDDL)
	r.src.opt.ColumnUsers = func(table string) map[string][]string {
		return map[string][]string{"emial": {"qualified"}, "status": {"qualified", "won"}}
	}
	_, problems, err := r.src.Check(context.Background())
	if len(problems) != 0 || err == nil || !strings.Contains(err.Error(), "has no column emial, read by rule(s) qualified (did you mean email?)") {
		t.Fatalf("Check: %v %v", problems, err)
	}
	runErr := r.src.Run(context.Background(), nil, make(chan cdc.Batch, 1))
	var se *SetupError
	if !errors.As(runErr, &se) || !strings.Contains(runErr.Error(), "emial") {
		t.Fatalf("Run: %v, want a SetupError naming the column", runErr)
	}
	r.src.opt.ColumnUsers = nil
	r.src.cfg.Tables.Names = append(r.src.cfg.Tables.Names, "no_such_table")
	if _, _, err := r.src.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "table no_such_table does not exist") {
		t.Fatalf("Check with a missing table: %v", err)
	}
}

// TestZeroDates: a zero date stays its text and a date with a zero month
// or day is normalized (as the polling reader does it); neither stops the
// source, which used to retry such a row forever.
func TestZeroDates(t *testing.T) {
	r := newRig(t, "CREATE TABLE %s (id BIGINT PRIMARY KEY, d DATETIME, dd DATE, ts TIMESTAMP NULL)")
	r.start(r.now())
	r.tx("SET SESSION sql_mode = ''",
		fmt.Sprintf("INSERT INTO %s VALUES (1, '2024-00-15 10:00:00', '2024-05-00', '0000-00-00 00:00:00')", r.table),
		fmt.Sprintf("INSERT INTO %s VALUES (2, '0000-00-00 00:00:00', '0000-00-00', NULL)", r.table))
	got, _ := r.changes(2)
	for _, tt := range []struct {
		change int
		col    string
		want   any
	}{
		{0, "d", time.Date(2023, 12, 15, 10, 0, 0, 0, time.UTC)},
		{0, "dd", time.Date(2024, 4, 30, 0, 0, 0, 0, time.UTC)},
		{0, "ts", "0000-00-00 00:00:00"},
		{1, "d", "0000-00-00 00:00:00"},
		{1, "dd", "0000-00-00"},
	} {
		if v := got[tt.change].New.Value(tt.col); v != tt.want {
			t.Errorf("row %d %s = %#v, want %#v", tt.change+1, tt.col, v, tt.want)
		}
	}
}

// TestSessionsThatWriteOtherwise: a session may write its rows with
// binlog_row_image MINIMAL (the columns an image leaves out are absent
// from the change, not NULL, and the key still comes whole), or its
// changes as statements (binlog_format STATEMENT: not read, and said so
// in the log). Neither stops the source.
func TestSessionsThatWriteOtherwise(t *testing.T) {
	r := newRig(t, shopDDL)
	var logs testenv.Buffer
	r.src.log = slog.New(slog.NewTextHandler(&logs, nil))
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', 'a@example.com', 10)", r.table))
	r.start(r.now())
	// One connection, whose session settings hold from statement to
	// statement (binlog_format cannot change inside a transaction).
	conn, err := r.db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		"SET SESSION binlog_row_image = 'MINIMAL'",
		fmt.Sprintf("UPDATE %s SET status = 'qualified' WHERE id = 1", r.table),
		"SET SESSION binlog_format = 'STATEMENT'",
		fmt.Sprintf("UPDATE %s SET status = 'won' WHERE id = 1", r.table),
		"SET SESSION binlog_format = 'ROW'", "SET SESSION binlog_row_image = 'FULL'",
		fmt.Sprintf("UPDATE %s SET total = 20 WHERE id = 1", r.table),
		"TRUNCATE TABLE " + r.table,
	} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	got, _ := r.changes(2)
	c := got[0]
	if c.Key.Value("id") != int64(1) || c.New.Value("status") != "qualified" {
		t.Errorf("minimal image: key %v, new %v", c.Key, c.New)
	}
	if _, ok := c.New.Get("email"); ok {
		t.Errorf("minimal image: email not in the image came as %v", c.New.Value("email"))
	}
	if got[1].Old.Value("status") != "won" || got[1].New.Value("total") != cdc.Decimal("20.00") {
		t.Errorf("after the statement: %v", got[1])
	}
	// The TRUNCATE comes after the last change: wait for it to be read.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "was truncated") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"leaves columns out", "written to the binlog as a statement", "was truncated"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestBehind: how far the server's binlog has gone past a position grows
// with what is written after it; a file the server lacks is -1; a running
// source reports it from its last checkpoint.
func TestBehind(t *testing.T) {
	r := newRig(t, shopDDL)
	ctx := context.Background()
	p, err := current(ctx, r.db, flavorOf(t, r.db))
	if err != nil {
		t.Fatal(err)
	}
	n0, err := behind(ctx, r.db, p.File, p.Pos)
	if err != nil || n0 < 0 {
		t.Fatalf("behind the position now: %d, %v", n0, err)
	}
	var vals []string
	for i := 1; i <= 100; i++ {
		vals = append(vals, fmt.Sprintf("(%d, 'new', 'someone%d@example.com', %d)", i, i, i))
	}
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES %s", r.table, strings.Join(vals, ",")))
	if n1, err := behind(ctx, r.db, p.File, p.Pos); err != nil || n1 < n0+100*30 {
		t.Errorf("after 100 rows of 30+ bytes: %d (before: %d), %v", n1, n0, err)
	}
	if n, err := behind(ctx, r.db, "capisync-none-bin.000999", 4); n != -1 || err != nil {
		t.Errorf("a file the server lacks: %d, %v", n, err)
	}

	if st := r.src.Status(); st.Behind != -1 {
		t.Errorf("before any checkpoint: Behind %d, want -1", st.Behind)
	}
	r.src.opt.LagEvery = 20 * time.Millisecond
	r.start(r.now())
	r.exec(fmt.Sprintf("UPDATE %s SET status = 'qualified' WHERE id = 1", r.table))
	r.changes(1)
	deadline := time.Now().Add(10 * time.Second)
	for r.src.Status().Behind < 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := r.src.Status().Behind; n < 0 {
		t.Errorf("a running source's Behind is %d", n)
	}
}

// TestCompressedRowEvents: a MariaDB with log_bin_compress writes its row
// events compressed (Write/Update/Delete_compressed_rows); they read as
// the plain ones do. The server is one of the test's own, so that the
// shared one's settings are never changed.
func TestCompressedRowEvents(t *testing.T) {
	_, dsn := privateBinlogServer(t, "--log-bin-compress=ON", "--log-bin-compress-min-len=10")
	r := newRigAt(t, dsn, "CREATE TABLE %s (id BIGINT PRIMARY KEY, status VARCHAR(20) NOT NULL, note TEXT, total DECIMAL(12,2))")
	from := r.now()
	start, err := parsePosition(from)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("compressible text ", 50)
	r.tx(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', '%s', 10.50), (2, 'new', NULL, NULL)", r.table, long),
		fmt.Sprintf("UPDATE %s SET status = 'qualified', total = 99.99 WHERE id = 1", r.table),
		fmt.Sprintf("DELETE FROM %s WHERE id = 2", r.table))

	kinds := map[string]int{}
	rows, err := r.db.Query(fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d", start.File, start.Pos))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var logName, eventType, info string
		var pos, serverID, end uint64
		if err := rows.Scan(&logName, &pos, &eventType, &serverID, &end, &info); err != nil {
			t.Fatal(err)
		}
		kinds[eventType]++
	}
	rows.Close()
	for _, want := range []string{"Write_rows_compressed_v1", "Update_rows_compressed_v1", "Delete_rows_compressed_v1"} {
		if kinds[want] == 0 {
			t.Fatalf("the server wrote no %s event (events after the start: %v)", want, kinds)
		}
	}

	r.start(from)
	got, _ := r.changes(4)
	if got[0].Op != cdc.Insert || got[0].New.Value("note") != long || got[0].New.Value("total") != cdc.Decimal("10.50") || got[0].Key.Value("id") != int64(1) {
		t.Errorf("insert 1: %v", got[0])
	}
	if v, ok := got[1].New.Get("note"); got[1].Op != cdc.Insert || !ok || v != nil {
		t.Errorf("insert 2: %v", got[1])
	}
	if got[2].Op != cdc.Update || got[2].Old.Value("status") != "new" || got[2].New.Value("status") != "qualified" ||
		got[2].Old.Value("note") != long || got[2].New.Value("total") != cdc.Decimal("99.99") {
		t.Errorf("update: %v", got[2])
	}
	if got[3].Op != cdc.Delete || got[3].Old.Value("id") != int64(2) || got[3].Key.Value("id") != int64(2) {
		t.Errorf("delete: %v", got[3])
	}
}

// TestBinlogEndStatements: the binlog's end is read with the first of the
// statements the server knows (MySQL 8.4 knows only SHOW BINARY LOG
// STATUS, older servers and MariaDB SHOW MASTER STATUS); a server that
// knows none says which statement failed.
func TestBinlogEndStatements(t *testing.T) {
	r := newRig(t, shopDDL)
	ctx := context.Background()
	file, pos, err := binlogEnd(ctx, r.db, []string{"SHOW MASTER STATUS"})
	if err != nil || file == "" || pos == 0 {
		t.Fatalf("SHOW MASTER STATUS: %q %d %v", file, pos, err)
	}
	// A statement this server does not know (as MySQL 8.4 does not know
	// SHOW MASTER STATUS) is a syntax error: the next one is tried.
	if f, p, err := binlogEnd(ctx, r.db, []string{"SHOW NO SUCH STATUS", "SHOW MASTER STATUS"}); err != nil || f != file || p != pos {
		t.Errorf("after an unknown statement: %q %d %v, want %q %d", f, p, err, file, pos)
	}
	if _, _, err := binlogEnd(ctx, r.db, []string{"SHOW NO SUCH STATUS"}); err == nil || !strings.Contains(err.Error(), "SHOW NO SUCH STATUS") {
		t.Errorf("no statement known: %v", err)
	}
}

// TestTLS: a DSN that asks for TLS gets it on the binlog connection too,
// not only on the SQL ones: the user here may connect only over TLS.
// tls=preferred takes TLS when the server offers it.
func TestTLS(t *testing.T) {
	dsn := testenv.MySQLTLSDSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	plain := cfg.Clone()
	plain.TLSConfig, plain.TLS = "false", nil
	if db, err := sql.Open("mysql", plain.FormatDSN()); err == nil {
		err = db.Ping()
		db.Close()
		if err == nil {
			t.Fatalf("%s connects without TLS: the test proves nothing (scripts/services.sh makes it REQUIRE SSL)", cfg.User)
		}
	}
	r := newRigAt(t, dsn, shopDDL)
	r.start(r.now())
	r.exec(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', 'a@example.com', 10.50)", r.table))
	if got, _ := r.changes(1); got[0].New.Value("email") != "a@example.com" {
		t.Errorf("over TLS: %v", got[0])
	}

	preferred := cfg.Clone()
	preferred.TLSConfig, preferred.TLS = "preferred", nil
	pcfg, err := mysql.ParseDSN(preferred.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	if c, err := binlogTLS(context.Background(), r.db, pcfg); err != nil || c == nil {
		t.Errorf("tls=preferred on a server that offers TLS: %v, %v; want TLS", c, err)
	}
	// Where the SQL connection went unencrypted (a server without TLS),
	// so does the binlog's.
	unencrypted, err := sql.Open("mysql", testenv.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer unencrypted.Close()
	if c, err := binlogTLS(context.Background(), unencrypted, pcfg); err != nil || c != nil {
		t.Errorf("tls=preferred, the SQL connection unencrypted: %v, %v; want none", c, err)
	}
	if c, err := binlogTLS(context.Background(), r.db, plain); err != nil || c != nil {
		t.Errorf("no tls in the DSN: %v, %v; want none", c, err)
	}
}

// TestXATransactions: an XA transaction's rows are in the binlog from its
// XA PREPARE; they are read at its XA COMMIT and never when it is rolled
// back, and while one is prepared no checkpoint passes it (a restart reads
// it again). A one-phase XA commit is an ordinary transaction.
func TestXATransactions(t *testing.T) {
	r := newRig(t, shopDDL)
	r.start(r.now())
	ctx := context.Background()
	conn, err := r.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	run := func(qs ...string) {
		t.Helper()
		for _, q := range qs {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	insert := r.insertSQL
	// XIDs of this run: a prepared XA transaction outlives its session,
	// so one a failed run leaves is rolled back at the end.
	xid := func(n int) string { return fmt.Sprintf("'%s-x%d'", r.table, n) }
	t.Cleanup(func() { r.db.Exec("XA ROLLBACK " + xid(2)) })
	// next is the next batch with changes (a checkpoint alone may come
	// between: the other tests' transactions move it).
	next := func() cdc.Batch {
		t.Helper()
		for {
			select {
			case b := <-r.out:
				if len(b.Changes) > 0 {
					return b
				}
			case err := <-r.done:
				t.Fatalf("Run ended: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("no batch after 20 s")
			}
		}
	}
	ids := func(b cdc.Batch) (out []any) {
		for _, c := range b.Changes {
			out = append(out, c.Key.Value("id"))
		}
		return out
	}

	run("XA START "+xid(1), insert(1), "XA END "+xid(1), "XA PREPARE "+xid(1), "XA COMMIT "+xid(1))
	if b := next(); !reflect.DeepEqual(ids(b), []any{int64(1)}) || b.Position == nil {
		t.Errorf("committed XA: %v, checkpoint %q", ids(b), b.Position)
	}
	run("XA START "+xid(2), insert(2), "XA END "+xid(2), "XA PREPARE "+xid(2))
	r.exec(insert(3)) // another session: this one holds x2 prepared
	if b := next(); !reflect.DeepEqual(ids(b), []any{int64(3)}) || b.Position != nil {
		t.Errorf("while x2 is prepared: %v, checkpoint %q (want none)", ids(b), b.Position)
	}
	run("XA ROLLBACK " + xid(2))
	run("XA START "+xid(3), insert(4), "XA END "+xid(3), "XA COMMIT "+xid(3)+" ONE PHASE")
	if b := next(); !reflect.DeepEqual(ids(b), []any{int64(4)}) || b.Position == nil {
		t.Errorf("after x2's rollback, a one-phase XA: %v, checkpoint %q", ids(b), b.Position)
	}
}

// TestSavepoints: the SAVEPOINT and ROLLBACK TO statements a transaction
// writes to the binlog end nothing: its changes (those rolled back to a
// savepoint are not in the binlog) arrive together, named by its GTID,
// with one checkpoint after its commit. A checkpoint at a SAVEPOINT would
// be read back as past the whole transaction.
func TestSavepoints(t *testing.T) {
	r := newRig(t, shopDDL)
	r.start(r.now())
	insert := r.insertSQL
	r.tx(insert(1), "SAVEPOINT a", insert(2), "ROLLBACK TO SAVEPOINT a", insert(3), "SAVEPOINT b", insert(4), "RELEASE SAVEPOINT b", insert(5))
	var batches []cdc.Batch
	for n := 0; n < 4; {
		select {
		case b := <-r.out:
			if len(b.Changes) == 0 {
				continue // a checkpoint the other tests' transactions moved
			}
			batches = append(batches, b)
			n += len(b.Changes)
		case err := <-r.done:
			t.Fatalf("Run ended: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatalf("%d changes after 20 s: %v", n, batches)
		}
	}
	if len(batches) != 1 || batches[0].Position == nil {
		t.Fatalf("one transaction came as %d batches: %v", len(batches), batches)
	}
	var ids []any
	for _, c := range batches[0].Changes {
		ids = append(ids, c.Key.Value("id"))
		if p, err := parsePosition(c.Position); err != nil || p.GTID == "" || p.GTID == "-" {
			t.Errorf("change %v named %q, not by the transaction's GTID", c.Key, c.Position)
		}
	}
	if !reflect.DeepEqual(ids, []any{int64(1), int64(3), int64(4), int64(5)}) {
		t.Errorf("ids %v, want 1 3 4 5", ids)
	}
}

// TestSameServerID: two readers with one server_id (a copied config) drop
// each other; the one dropped says so and what to change, rather than a
// read error (MySQL reports it with the code of a purged binlog, whose
// advice, a slot reset, would lose data).
func TestSameServerID(t *testing.T) {
	a, b := newRig(t, shopDDL), newRig(t, shopDDL)
	b.src.o.ServerID = a.src.o.ServerID
	a.start(a.now())
	a.exec(a.insertSQL(1))
	a.changes(1) // a reads
	b.start(b.now())
	want := fmt.Sprintf("another binlog reader connected with this source's server_id %d", a.src.o.ServerID)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(a.src.Status().Err, want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first reader's status after the second connected: %+v", a.src.Status())
		}
	}
}
