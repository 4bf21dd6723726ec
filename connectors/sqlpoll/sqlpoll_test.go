package sqlpoll_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/connectors/sqlpoll"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

// TestTransitions: status transitions give exactly the expected events,
// idle polls give none, and a restart does not emit again — on MariaDB,
// PostgreSQL and SQLite.
func TestTransitions(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, k, "", "")
			for i := 1; i <= 5; i++ { // existing rows: baseline, no events
				e.exec("INSERT INTO TABLE (id, status, email, total, updated_at) VALUES (?, 'new', ?, '10.00', NOW)", i, "buyer"+string(rune('0'+i))+"@example.com")
			}
			e.start()
			e.polls(1)
			if got := e.events(); len(got) != 0 {
				t.Fatalf("baseline sent %v", got)
			}
			e.exec("UPDATE TABLE SET status = 'qualified', updated_at = NOW WHERE id = 1")
			e.exec("UPDATE TABLE SET email = 'other@example.com', updated_at = NOW WHERE id = 2") // status unchanged
			e.exec("INSERT INTO TABLE (id, status, email, total, updated_at) VALUES (6, 'qualified', 'six@example.com', '1.00', NOW)")
			e.exec("UPDATE TABLE SET status = 'paid', total = '1234.50', updated_at = NOW WHERE id = 3")
			e.waitEvents("Lead lead-1", "Lead lead-6", "Purchase order-3-paid")
			e.exec("UPDATE TABLE SET status = 'refunded', updated_at = NOW WHERE id = 3")
			e.waitEvents("Lead lead-1", "Lead lead-6", "Purchase order-3-paid", "CancelledOrder order-3-refunded")
			for _, ev := range e.fake.Events() {
				if ev.Name == "Purchase" {
					cd := ev.Raw["custom_data"].(map[string]any)
					if v, _ := cd["value"].(json.Number); v.String() != "1234.50" && v.String() != "1234.5" {
						t.Errorf("value = %v", cd["value"])
					}
					if k.name != "sqlite" && cd["value"].(json.Number).String() != "1234.50" {
						t.Errorf("%s: money not exact: %v", k.name, cd["value"])
					}
				}
				if ev.Name == "CancelledOrder" && ev.Raw["custom_data"].(map[string]any)["previous"] != "paid" {
					t.Errorf("old value missing: %v", ev.Raw["custom_data"])
				}
			}
			e.polls(2)
			e.waitEvents("Lead lead-1", "Lead lead-6", "Purchase order-3-paid", "CancelledOrder order-3-refunded")
			e.stop()
			e.start()
			e.polls(2)
			e.waitEvents("Lead lead-1", "Lead lead-6", "Purchase order-3-paid", "CancelledOrder order-3-refunded")
			if st := e.fake.Stats(); st.Duplicates != 0 {
				t.Errorf("duplicates: %+v", st)
			}
		})
	}
}

// TestLateCommitCaughtByLookback: a transaction stamped before a poll but
// committed after it is still read, thanks to the lookback window.
func TestLateCommitCaughtByLookback(t *testing.T) {
	for _, k := range kinds[:2] { // MariaDB and PostgreSQL: SQLite has one writer
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, k, "", "")
			e.exec("INSERT INTO TABLE (id, status, email, total, updated_at) VALUES (1, 'new', 'a@example.com', '5.00', NOW)")
			e.exec("INSERT INTO TABLE (id, status, email, total, updated_at) VALUES (2, 'new', 'b@example.com', '5.00', NOW)")
			e.start()
			e.polls(1)
			tx, err := e.db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			q := strings.ReplaceAll(strings.ReplaceAll("UPDATE TABLE SET status = 'qualified', updated_at = NOW WHERE id = 1", "TABLE", e.table), "NOW", k.now)
			if _, err := tx.Exec(q); err != nil { // stamped now, committed later
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			e.exec("UPDATE TABLE SET status = 'qualified', updated_at = NOW WHERE id = 2") // a newer stamp, committed first
			e.waitEvents("Lead lead-2")
			e.polls(1) // a poll ran with the high-water mark past row 1's stamp
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			e.waitEvents("Lead lead-2", "Lead lead-1")
		})
	}
}

// TestDatetimeInSourceTimezone: a MySQL DATETIME is wall-clock time in the
// source's timezone; event_time must be the right instant.
func TestDatetimeInSourceTimezone(t *testing.T) {
	e := newEnv(t, kinds[0], "    timezone: Europe/Berlin", "")
	e.exec("INSERT INTO TABLE (id, status, email, total, updated_at) VALUES (1, 'new', 'a@example.com', '5.00', NOW)")
	e.start()
	e.polls(1)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	wall := time.Now().In(berlin).Add(-time.Hour).Truncate(time.Second) // an hour ago, Berlin wall clock
	e.exec("UPDATE TABLE SET status = 'paid', updated_at = ? WHERE id = 1", wall.Format("2006-01-02 15:04:05"))
	e.waitEvents("Purchase order-1-paid")
	got := e.fake.Events()[0].Time
	if got != wall.Unix() {
		t.Errorf("event_time = %s, want %s", time.Unix(got, 0).UTC(), wall.UTC())
	}
}

// TestMissingColumnFailsAtStartup names the column and the rule.
func TestMissingColumnFailsAtStartup(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, k, "", `
  - name: needs-phone
    source: shop
    table: TABLE
    when: new.status == "paid"
    event: Purchase
    user_data: {ph: new.phone}
    custom_data: {value: new.total, currency: '"EUR"'}
`)
			e.start()
			err := <-e.done
			e.cancel = nil
			if err == nil || !strings.Contains(err.Error(), "phone") || !strings.Contains(err.Error(), "needs-phone") || !strings.Contains(err.Error(), "does not exist") {
				t.Errorf("startup error = %v", err)
			}
		})
	}
}

// TestInitialEmitAndDeletes: initial: emit backfills existing rows as
// inserts; deletes: full_scan sees rows that are gone.
func TestInitialEmitAndDeletes(t *testing.T) {
	e := newEnv(t, kinds[2], "    initial: emit\n    deletes: full_scan\n    deletes_schedule: \"@every 1s\"", `
  - name: paid
    source: shop
    table: TABLE
    when: op == "insert" && new.status == "paid"
    event: Purchase
    event_id: '"order-" + string(new.id)'
    user_data: {em: new.email}
    custom_data: {value: new.total, currency: '"EUR"'}
  - name: gone
    source: shop
    table: TABLE
    when: op == "delete"
    event: OrderDeleted
    event_id: '"deleted-" + string(old.id)'
    user_data: {em: old.email}
`)
	for i := 1; i <= 4; i++ {
		e.exec("INSERT INTO TABLE (id, status, email, total, updated_at) VALUES (?, 'paid', 'x@example.com', '3.00', NOW)", i)
	}
	e.start()
	e.waitEvents("Purchase order-1", "Purchase order-2", "Purchase order-3", "Purchase order-4")
	e.exec("DELETE FROM TABLE WHERE id = 2")
	e.waitEvents("Purchase order-1", "Purchase order-2", "Purchase order-3", "Purchase order-4", "OrderDeleted deleted-2")
}

// TestManyPages: a change set of several pages, on a cursor all rows share
// (so pages continue by key), gives every event exactly once, and a
// restart sends nothing again. The pages' shadows are looked up in parts
// of 1,000 rows while a page is read: pages of 2,000 (two parts) and
// 1,500 rows (a part and the rest); polls that read the rows again with
// nothing changed find every row equal to its shadow.
func TestManyPages(t *testing.T) {
	const rows = 3500
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, k, "", "")
			e.cfg.Sources["shop"].Options.(*sqlpoll.Config).PageSize = 2000
			for from := 1; from <= rows; from += 400 {
				var vals []string
				for id := from; id < from+400 && id <= rows; id++ {
					vals = append(vals, fmt.Sprintf("(%d, 'new', 'buyer%d@example.com', '10.00', NOW)", id, id))
				}
				e.exec("INSERT INTO TABLE (id, status, email, total, updated_at) VALUES " + strings.Join(vals, ", "))
			}
			e.start()
			e.polls(1)
			if got := e.events(); len(got) != 0 {
				t.Fatalf("baseline sent %d events", len(got))
			}
			e.exec("UPDATE TABLE SET status = 'qualified', updated_at = NOW")
			want := make([]string, rows)
			for i := range want {
				want[i] = fmt.Sprintf("Lead lead-%d", i+1)
			}
			e.waitEvents(want...)
			if st := e.src.Stats(); st.ChangesEmitted != rows {
				t.Errorf("changes emitted = %d, want %d", st.ChangesEmitted, rows)
			}
			e.polls(2)
			if st := e.src.Stats(); st.ChangesEmitted != rows {
				t.Errorf("changes emitted after polls with nothing changed = %d, want %d", st.ChangesEmitted, rows)
			}
			e.stop()
			e.start()
			e.polls(2)
			e.waitEvents(want...)
			if st := e.fake.Stats(); st.Duplicates != 0 {
				t.Errorf("duplicates: %+v", st)
			}
		})
	}
}
