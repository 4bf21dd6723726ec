package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
)

// TestDecimalsAreNumbers: NUMERIC/DECIMAL columns compare and compute as
// numbers in rules, and a field that is the column itself is sent with the
// column's exact digits.
func TestDecimalsAreNumbers(t *testing.T) {
	set := mustCompile(t, `
  - name: big-deal
    source: crm
    table: public.leads
    when: new.total > 100 && new.total - old.total >= 12400 && changed_to("total", 12500.5)
    event: Purchase
    event_id: new.order_no
    user_data: {em: '"a@example.com"'}
    custom_data:
      value: new.total
      doubled: new.total * 2
      previous: old.total
      currency: '"USD"'
  - name: whole-row
    source: crm
    table: public.leads
    when: len(new) > 0 && new["total"] > 100
    event: Lead
    user_data: {em: '"a@example.com"'}
    custom_data: {value: new.total}`)
	c := &cdc.Change{Source: "crm", Table: "public.leads", Op: cdc.Update, CommitTime: time.Now().UTC(),
		Key: cdc.RowOf(map[string]any{"id": int64(1)}),
		Old: cdc.RowOf(map[string]any{"id": int64(1), "total": cdc.Decimal("99.99")}),
		New: cdc.RowOf(map[string]any{"id": int64(1), "total": cdc.Decimal("12500.50"), "order_no": cdc.Decimal("12345678901234567890")})}
	res := set.Eval(c)
	if len(res) != 2 {
		t.Fatalf("%d results, want 2: %+v", len(res), res)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("rule %s: %v", r.Rule, r.Err)
		}
	}
	got, _ := capi.Marshal(&res[0].Event)
	for _, want := range []string{`"event_id":"12345678901234567890"`, `"value":12500.50`, `"doubled":25001`, `"previous":99.99`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("event lacks %s: %s", want, got)
		}
	}
	if got, _ := capi.Marshal(&res[1].Event); !strings.Contains(string(got), `"value":12500.50`) {
		t.Errorf("whole-row rule: %s", got)
	}
}

func mustCompile(t testing.TB, rules string) *Set {
	t.Helper()
	set, err := Compile(parse(t, rules))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestUnusableValuesAreRefused: values Meta cannot use fail the one event
// with the field named, rather than going out as null or being replaced
// in silence.
func TestUnusableValuesAreRefused(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	tests := []struct {
		name, field, expr string
		wantErr           string // "" for no error
	}{
		{"division by zero", "custom_data.value", "new.total / new.zero", "custom_data.value"},
		{"zero by zero", "custom_data.value", "new.zero / new.zero", "custom_data.value"},
		{"infinity in a list", "custom_data.contents", "[{'id': 'a', 'item_price': new.total / new.zero}]", "custom_data.contents"},
		{"decimal beyond float64", "custom_data.value", "new.huge", "custom_data.value"},
		{"decimal NaN", "custom_data.value", "new.nan", "custom_data.value"},
		{"event_time of 1970", "event_time", "new.epoch", "event_time is 1970-01-01T00:00:00Z"},
		{"event_time zero seconds", "event_time", "0", "event_time is 1970-01-01T00:00:00Z"},
		{"event_time NULL is the commit time", "event_time", "new.missing", ""},
		{"value NULL is left out", "custom_data.value", "new.missing", ""},
		{"fine decimal", "custom_data.value", "new.total", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			field := tt.field
			yaml := "\n  - name: r\n    source: crm\n    table: public.leads\n    when: \"true\"\n    event: Lead\n    user_data: {em: '\"a@example.com\"'}\n"
			if k, ok := strings.CutPrefix(field, "custom_data."); ok {
				yaml += "    custom_data: {" + k + ": \"" + tt.expr + "\"}"
			} else {
				yaml += "    " + field + ": \"" + tt.expr + "\""
			}
			set := mustCompile(t, yaml)
			c := &cdc.Change{Source: "crm", Table: "public.leads", Op: cdc.Insert, CommitTime: now,
				Key: cdc.RowOf(map[string]any{"id": int64(1)}),
				New: cdc.RowOf(map[string]any{"id": int64(1), "total": cdc.Decimal("10.00"), "zero": int64(0),
					"huge": cdc.Decimal("1e400"), "nan": cdc.Decimal("NaN"), "epoch": time.Unix(0, 0).UTC(), "missing": nil})}
			res := set.Eval(c)
			if len(res) != 1 {
				t.Fatalf("%d results", len(res))
			}
			switch {
			case tt.wantErr == "" && res[0].Err != nil:
				t.Fatalf("unexpected error: %v", res[0].Err)
			case tt.wantErr != "" && (res[0].Err == nil || !strings.Contains(res[0].Err.Error(), tt.wantErr)):
				b, _ := capi.Marshal(&res[0].Event)
				t.Fatalf("error = %v, want it to name %q; event %s", res[0].Err, tt.wantErr, b)
			case tt.wantErr == "":
				b, _ := capi.Marshal(&res[0].Event)
				if strings.Contains(string(b), "null") {
					t.Errorf("a null is sent: %s", b)
				}
				if field == "event_time" && res[0].Event.EventTime != now.Unix() {
					t.Errorf("event_time = %d, want the commit time %d", res[0].Event.EventTime, now.Unix())
				}
			}
		})
	}
}

// TestMoneyTextIsSentAsNumbers: decimal text in the keys Meta reads as
// numbers (value, net_revenue, predicted_ltv, contents[].item_price) goes
// out as a JSON number with the same digits; other keys keep their text.
func TestMoneyTextIsSentAsNumbers(t *testing.T) {
	set := mustCompile(t, `
  - name: r
    source: crm
    table: public.leads
    when: "true"
    event: Purchase
    user_data: {em: '"a@example.com"'}
    custom_data:
      value: '"12.50"'
      currency: '"EUR"'
      net_revenue: '"10.05"'
      predicted_ltv: '"300"'
      order_id: '"00042"'
      contents: '[{"id": "sku-1", "quantity": 2, "item_price": "6.25"}]'`)
	c := &cdc.Change{Source: "crm", Table: "public.leads", Op: cdc.Insert, CommitTime: time.Now().UTC(),
		Key: cdc.RowOf(map[string]any{"id": int64(1)}), New: cdc.RowOf(map[string]any{"id": int64(1)})}
	res := set.Eval(c)
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("%+v", res)
	}
	got, _ := capi.Marshal(&res[0].Event)
	for _, want := range []string{`"value":12.50`, `"net_revenue":10.05`, `"predicted_ltv":300`, `"item_price":6.25`, `"order_id":"00042"`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("event lacks %s: %s", want, got)
		}
	}
}
