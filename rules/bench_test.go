package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/testenv"
)

// benchRules is 10 rules on one table; only the first matches benchChange.
func benchRules(t testing.TB) *Set {
	var b strings.Builder
	stages := []string{"qualified", "contacted", "won", "lost", "nurture", "demo", "proposal", "negotiation", "churned", "onboarded"}
	for i, st := range stages {
		fmt.Fprintf(&b, `
  - name: stage-%d
    source: crm
    table: public.leads
    when: changed_to("status", %q)
    event: Lead
    event_time: new.updated_at
    event_id: '"lead-" + string(new.id) + "-%s"'
    user_data:
      em: new.email
      ph: new.phone
      fn: new.first_name
      ln: new.last_name
      ct: new.city
      external_id: string(new.id)
      lead_id: new.meta_lead_id
    custom_data:
      value: new.deal_value
      currency: '"USD"'
      event_source: '"crm"'`, i, st, st)
	}
	set, err := Compile(parse(t, b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func benchChange() *cdc.Change {
	ts := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	row := func(status string) cdc.Row {
		return cdc.RowOf(map[string]any{
			"id": int64(42), "status": status, "email": "Jane.Doe@Example.com", "phone": "+1 (650) 555-1234",
			"first_name": "Jane", "last_name": "Doe", "city": "San Francisco", "state": "CA", "zip": "94105",
			"meta_lead_id": "1234567890123456", "deal_value": "12500.50", "owner_id": int64(7),
			"score": float64(87.5), "created_at": ts.Add(-48 * time.Hour), "updated_at": ts,
		})
	}
	return &cdc.Change{Source: "crm", Table: "public.leads", Op: cdc.Update, Key: cdc.RowOf(map[string]any{"id": int64(42)}),
		Old: row("contacted"), New: row("qualified"), Position: cdc.Position("0/16B3748"), CommitTime: ts}
}

// BenchmarkEvaluate: 10 compiled rules, one matching, a 15-column row,
// user_data with 6 hashed keys (em, ph, fn, ln, ct, external_id).
func BenchmarkEvaluate(b *testing.B) {
	set := benchRules(b)
	c := benchChange()
	if res := set.Eval(c); len(res) != 1 || res[0].Err != nil || len(res[0].Event.UserData) != 7 {
		b.Fatalf("bench setup: %+v", res)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		set.Eval(c)
	}
}

// FuzzEval evaluates the golden rules on rows built from random values:
// whatever the row holds, evaluation returns results or errors, never
// panics.
func FuzzEval(f *testing.F) {
	f.Add("qualified", "contacted", "jane@example.com", "+1 650 555 1234", int64(42), 3.5, "2026-11-20T10:00:00Z", true)
	f.Add("won", "qualified", "", "", int64(-1), -0.0, "", false)
	set := compileFile(f, "testdata/config.yaml")
	f.Fuzz(func(t *testing.T, status, oldStatus, email, phone string, id int64, value float64, ts string, insert bool) {
		var updated any = ts
		if tt, err := time.Parse(time.RFC3339, ts); err == nil {
			updated = tt
		}
		row := cdc.RowOf(map[string]any{"id": id, "status": status, "stage": status, "email": email, "phone": phone, "wa_phone": phone,
			"deal_value": value, "total": fmt.Sprint(value), "updated_at": updated, "zip": phone, "country": email,
			"first_name": email, "last_name": status, "meta_lead_id": id, "currency": oldStatus, "customer_id": value})
		old := cdc.RowOf(map[string]any{"id": id, "status": oldStatus, "stage": oldStatus})
		for _, table := range []struct{ source, table string }{{"crm", "public.leads"}, {"crm", "public.chats"}, {"shop", "orders"}} {
			c := &cdc.Change{Source: table.source, Table: table.table, Op: cdc.Update, Key: cdc.RowOf(map[string]any{"id": id}), Old: old, New: row}
			if insert {
				c.Op, c.Old = cdc.Insert, cdc.Row{}
			}
			for _, r := range set.Eval(c) {
				if r.Err == nil && r.Event.EventName == "" {
					t.Fatal("event without a name")
				}
			}
			c.Op, c.Old, c.New = cdc.Delete, row, cdc.Row{}
			set.Eval(c)
		}
	})
}

// BenchmarkEvaluateOrder: the polling benchmark's rules (three on one
// table, one matching) on one of its changes: an order paid.
func BenchmarkEvaluateOrder(b *testing.B) {
	set, err := Compile(parse(b, testenv.OrderRules("crm", "public.leads")))
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	newCols := cdc.NewColumns("id", "updated_at", "email", "status", "total")
	oldCols := cdc.NewColumns("id", "email", "status", "total")
	c := &cdc.Change{Source: "crm", Table: "public.leads", Op: cdc.Update,
		Key:        cdc.NewRow(cdc.NewColumns("id"), []any{int64(4200)}),
		Old:        cdc.NewRow(oldCols, []any{int64(4200), "buyer4200@example.com", "new", "10.00"}),
		New:        cdc.NewRow(newCols, []any{int64(4200), at, "buyer4200@example.com", "paid", "42.50"}),
		Position:   cdc.Position("orders\x00key\x00t2026-11-26T10:00:00Z"),
		CommitTime: at}
	if res := set.Eval(c); len(res) != 1 || res[0].Err != nil || res[0].Event.EventID != "order-4200-paid" {
		b.Fatalf("bench setup: %+v", res)
	}
	var out []Result
	b.ReportAllocs()
	for b.Loop() {
		out = set.EvalAppend(out[:0], c)
	}
}
