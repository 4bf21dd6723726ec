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
