package sqlpoll_test

import (
	"cmp"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/gctune"
)

// TestBenchBackfill is the backfill benchmark (scripts/bench-backfill.sh):
// a polling source with `initial: emit` over a 1,000,000-row MariaDB
// table, every row an event, delivered to the fake Graph API; its rows/s
// next to a raw SELECT of the table. CAPISYNC_BENCH_IDS is default (no
// event_id: the hash, the default) or given ("order-" + id).
func TestBenchBackfill(t *testing.T) {
	if os.Getenv("CAPISYNC_BENCH") == "" {
		t.Skip("a benchmark: run scripts/bench-backfill.sh")
	}
	rows := 1_000_000
	if n, err := strconv.Atoi(os.Getenv("CAPISYNC_BENCH_ROWS")); err == nil {
		rows = n
	}
	ids := cmp.Or(os.Getenv("CAPISYNC_BENCH_IDS"), "default")
	eventID := ""
	switch ids {
	case "default":
	case "given":
		eventID = `event_id: '"order-" + string(new.id)'`
	default:
		t.Fatalf("CAPISYNC_BENCH_IDS=%s: given or default", ids)
	}
	defer gctune.Apply()() // the daemon's collector settings
	e := newEnv(t, kinds[0], "    initial: emit", `
  - name: customer
    source: shop
    table: TABLE
    when: changed("status")
    event: Purchase
    event_time: new.updated_at
    `+eventID+`
    user_data: {em: new.email, external_id: string(new.id)}
    custom_data: {value: new.total, currency: '"EUR"'}
`)
	e.cfg.Sources["shop"].PageSize = 5000 // the default
	start := time.Now()
	e.exec(fmt.Sprintf(`INSERT INTO TABLE (id, status, email, total, updated_at)
		SELECT seq, 'new', CONCAT('buyer', seq, '@example.com'), 10.00, NOW - INTERVAL 1 HOUR - INTERVAL ((%d - seq) * 50000) MICROSECOND
		FROM seq_1_to_%d`, rows, rows))
	t.Logf("loaded %d rows in %s", rows, time.Since(start).Round(time.Millisecond))
	// The raw SELECT first (twice, the second counts: the table is then
	// as warm for it as for the backfill after it).
	q := strings.ReplaceAll("SELECT id, status, email, total, updated_at FROM TABLE ORDER BY updated_at, id", "TABLE", e.table)
	timeQuery(t, e, q)
	rawTook, rawRows := timeQuery(t, e, q)

	e.fake.SampleEvery = 10
	start = time.Now()
	e.start()
	deadline := time.Now().Add(20 * time.Minute)
	for e.fake.Stats().Accepted < rows && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	if got := e.fake.Stats().Accepted; got != rows {
		t.Fatalf("backfill delivered %d of %d events", got, rows)
	}
	t.Logf("backfill (initial: emit) of %d rows, event ids %s: %s, %.0f rows/s, read, evaluated, committed and delivered", rows, ids, took.Round(time.Millisecond), float64(rows)/took.Seconds())
	t.Logf("raw SELECT of the table: %s for %d rows, %.0f rows/s; backfill / raw SELECT rows/s = %.2f",
		rawTook.Round(time.Millisecond), rawRows, float64(rawRows)/rawTook.Seconds(), rawTook.Seconds()/took.Seconds())
}
