package capi

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// reference is what AppendJSON must write: encoding/json's output for Event.
func reference(t testing.TB, e *Event) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	yes, country, zero := true, 1, 0
	tests := []struct {
		name string
		e    Event
	}{
		{"minimal", Event{EventName: "Lead", EventTime: 1700000000, ActionSource: "system_generated"}},
		{"nil user_data", Event{EventName: "Lead", UserData: nil}},
		{"full", Event{EventName: "Purchase", EventTime: 1, EventID: "order-1", ActionSource: "website",
			EventSourceURL: "https://shop.example/p?a=1&b=<2>", ReferrerURL: "https://r.example", OptOut: &yes,
			MessagingChannel: "whatsapp", DataProcessingOptions: []string{"LDU"}, DataProcessingOptionsCountry: &country,
			DataProcessingOptionsState: &zero, OriginalEventData: &OriginalEvent{EventName: "Lead", EventTime: 5},
			UserData: map[string]any{"em": []string{"a", "b"}, "ph": "c", "lead_id": "123", "external_id": []string{}},
			CustomData: map[string]any{"value": json.Number("12.50"), "currency": "USD", "n": int64(-3), "i": 7, "f": 0.000001,
				"g": 1e21, "h": 1.5, "ok": false, "none": nil, "list": []any{"x", 1.25, map[string]any{"z": "y", "a": nil}},
				"nested": map[string]any{"b": []string{"q"}, "a": true}}}},
		{"empty original", Event{EventName: "X", OriginalEventData: &OriginalEvent{}}},
		{"original by order", Event{EventName: "X", OriginalEventData: &OriginalEvent{EventName: "Purchase", OrderID: "o-1", EventID: "e\"1"}}},
		{"app and attribution", Event{EventName: "X", ActionSource: "app",
			AppData:         map[string]any{"advertiser_tracking_enabled": true, "extinfo": []any{"a2", "com.example"}},
			AttributionData: map[string]any{"ad_id": "123", "attribution_share": 0.5}}},
		{"escapes", Event{EventName: "tab\there \"q\" back\\slash\n\r\b\f\x01 é 日本 \u2028\u2029 \xff bad",
			UserData: map[string]any{"k\"ey": "v<&>"}, CustomData: map[string]any{"content_name": "Ünïcödé"}}},
		{"empty custom_data omitted", Event{EventName: "X", CustomData: map[string]any{}}},
		{"nil typed values", Event{EventName: "X", CustomData: map[string]any{"a": []string(nil), "b": []any(nil), "c": map[string]any(nil)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := reference(t, &tt.e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Marshal(&tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestAppendJSONRejectsWhatJSONCannotHold(t *testing.T) {
	for _, v := range []any{math.NaN(), math.Inf(1), json.Number("12abc"), make(chan int)} {
		e := Event{EventName: "X", CustomData: map[string]any{"value": v}}
		if _, err := Marshal(&e); err == nil {
			t.Errorf("%v: no error", v)
		}
	}
}

func TestValidNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "12", "12.50", "-1.5e10", "1E+2", "1e-7", "0.0"} {
		if !validNumber(s) {
			t.Errorf("%q: not valid", s)
		}
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "12abc", "NaN", "1.2.3", "0x10", " 1"} {
		if validNumber(s) {
			t.Errorf("%q: valid", s)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("Lead", "lead-1", "https://x?a=1&b=2", "em", "ab\u2028", "value", "12.5", int64(17), 1.5)
	f.Add("\xff", "\x00", "\"", "\\", "日本", "k", "-0", int64(-1), 1e-7)
	f.Fuzz(func(t *testing.T, name, id, url, key, val, ckey, num string, n int64, fl float64) {
		e := Event{EventName: name, EventID: id, EventTime: n, EventSourceURL: url,
			UserData:   map[string]any{key: val, "ph": []string{val, name}},
			CustomData: map[string]any{ckey: val, "n": n, "list": []any{val, n, true, nil}}}
		if !math.IsNaN(fl) && !math.IsInf(fl, 0) {
			e.CustomData["f"] = fl
		}
		e.CustomData["num"] = json.Number(num) // valid or not: both must agree
		want, wantErr := reference(t, &e)
		got, err := Marshal(&e)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("error %v, encoding/json error %v", err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON:\n got %s\nwant %s", got, want)
		}
	})
}
