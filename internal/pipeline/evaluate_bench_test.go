package pipeline

import (
	"fmt"
	"testing"
	"time"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/testenv"
	"github.com/capisync/capisync/rules"
)

// checkOnly is a destination that only checks events, as metacapi does.
type checkOnly struct{ Destination }

func (checkOnly) Check(e *capi.Event, now time.Time) error { return metacapi.Check(e, now) }

// BenchmarkEvaluatePage: the polling benchmark's rules (three on one
// table, one matching) over a page of 5,000 paid orders, as the committer
// evaluates them: rules, checks, encoding, counters.
func BenchmarkEvaluatePage(b *testing.B) {
	cfg, err := config.Parse("b.yaml", []byte(`sources:
  shop: {type: mysql, dsn: "u:p@tcp(h)/db", schedule: "@every 30s", tables: {orders: {key: [id], cursor: updated_at}}}
destinations:
  meta: {type: meta_capi, pixel_id: "1234567890", access_token: EAAgood}
rules:`+testenv.OrderRules("shop", "orders")), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	set, err := rules.Compile(cfg)
	if err != nil {
		b.Fatal(err)
	}
	p := &Pipeline{cfg: Config{Rules: set, Routes: func(string) []string { return []string{"meta"} }}, dests: map[string]Destination{"meta": checkOnly{}}}
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	keyCols := cdc.NewColumns("id")
	oldCols := cdc.NewColumns("id", "email", "status", "total")
	newCols := cdc.NewColumns("id", "updated_at", "email", "status", "total")
	page := make([]cdc.Change, 5000)
	for i := range page {
		id, email := int64(i*100), fmt.Sprintf("buyer%d@example.com", i*100)
		page[i] = cdc.Change{Source: "shop", Table: "orders", Op: cdc.Update, CommitTime: at,
			Key:      cdc.NewRow(keyCols, []any{id}),
			Old:      cdc.NewRow(oldCols, []any{id, email, "new", "10.00"}),
			New:      cdc.NewRow(newCols, []any{id, at, email, "paid", "42.50"}),
			Position: cdc.Position(fmt.Sprintf("orders\x00%d\x00t%s", id, at.Format(time.RFC3339Nano)))}
	}
	batch := cdc.Batch{Source: "shop", Changes: page}
	if sb := p.evaluate(&batch); len(sb.Events) != len(page) || len(sb.DeadLetters) != 0 {
		b.Fatalf("bench setup: %d events, %d dead letters", len(sb.Events), len(sb.DeadLetters))
	}
	b.ReportAllocs()
	for b.Loop() {
		p.evaluate(&batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(page)), "ns/change")
}
