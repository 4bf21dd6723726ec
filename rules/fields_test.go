package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
)

// TestMetaFields: app_data, attribution_data, original_event_data with
// order_id and event_id, and fbc() built from a raw fbclid and its click
// time, all reach the event as Meta reads them.
func TestMetaFields(t *testing.T) {
	set := mustCompile(t, `
  - name: app-purchase
    source: crm
    table: public.leads
    when: "true"
    event: Purchase
    action_source: app
    user_data:
      em: new.email
      fbc: fbc(new.fbclid, new.clicked_at)
      fbp: fbc(new.missing, new.clicked_at)
    custom_data: {value: new.total, currency: '"EUR"'}
    app_data:
      advertiser_tracking_enabled: "true"
      application_tracking_enabled: "false"
      extinfo: '["a2", "com.example.shop", "1.0", "1.0", "14", "Pixel 8", "en_US", "CET", "", 1080, 2400, "2.6", 8, 128, 64, "Europe/Berlin"]'
    attribution_data:
      ad_id: '"120200000000000001"'
      attribution_share: "0.5"
    original_event_data:
      event_name: '"Purchase"'
      order_id: new.order_no
      event_id: '"order-" + new.order_no'`)
	clicked := time.Date(2026, 12, 1, 9, 30, 0, 123e6, time.UTC)
	c := &cdc.Change{Source: "crm", Table: "public.leads", Op: cdc.Insert, CommitTime: time.Now().UTC(),
		Key: cdc.RowOf(map[string]any{"id": int64(1)}),
		New: cdc.RowOf(map[string]any{"id": int64(1), "email": "a@example.com", "fbclid": "IwAR0abcDEF", "clicked_at": clicked,
			"total": cdc.Decimal("19.90"), "order_no": "A-7", "missing": nil})}
	res := set.Eval(c)
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("%+v", res)
	}
	got, _ := capi.Marshal(&res[0].Event)
	for _, want := range []string{
		`"fbc":"fb.1.1796117400123.IwAR0abcDEF"`,
		`"original_event_data":{"event_name":"Purchase","order_id":"A-7","event_id":"order-A-7"}`,
		`"app_data":{"advertiser_tracking_enabled":true,"application_tracking_enabled":false,"extinfo":["a2","com.example.shop"`,
		`"attribution_data":{"ad_id":"120200000000000001","attribution_share":0.5}`,
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("event lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), `"fbp"`) {
		t.Errorf("fbc() of a NULL fbclid should give no key: %s", got)
	}
}
