package metacapitest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/capi"
)

const token = "EAAfaketoken"

func validEvent(now time.Time) map[string]any {
	return map[string]any{
		"event_name": "Lead", "event_time": now.Unix() - 60, "event_id": "lead-1",
		"action_source": "system_generated",
		"user_data":     map[string]any{"em": capi.Hash("jane@example.com"), "lead_id": "1234567890123456"},
	}
}

// ud is an event's user_data.
func ud(e map[string]any) map[string]any { return e["user_data"].(map[string]any) }

// post sends data to the fake and returns the HTTP status and error code/subcode.
func post(t *testing.T, s *Server, path string, body map[string]any) (status, code, subcode int) {
	t.Helper()
	b, _ := json.Marshal(body)
	if path == "" {
		path = "/v24.0/" + s.PixelID + "/events"
	}
	resp, err := http.Post(s.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		EventsReceived int `json:"events_received"`
		Error          struct {
			Code    int `json:"code"`
			Subcode int `json:"error_subcode"`
		} `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Error.Code, out.Error.Subcode
}

// TestFakeRejectsWhatMetaRejects: one case per documented rule.
func TestFakeRejectsWhatMetaRejects(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name    string
		mutate  func(e map[string]any, body map[string]any)
		path    string
		code    int
		subcode int
	}{
		{"valid", func(e, b map[string]any) {}, "", 0, 0},
		{"wrong token", func(e, b map[string]any) { b["access_token"] = "EAAother" }, "", 190, 463},
		{"no token", func(e, b map[string]any) { delete(b, "access_token") }, "", 190, 463},
		{"unknown pixel", func(e, b map[string]any) {}, "/v24.0/999/events", 100, 33},
		{"too many events", func(e, b map[string]any) {
			data := make([]any, 1001)
			for i := range data {
				data[i] = e
			}
			b["data"] = data
		}, "", 100, 2804018},
		{"no data", func(e, b map[string]any) { b["data"] = []any{} }, "", 100, 2804019},
		{"8 days old", func(e, b map[string]any) { e["event_time"] = now.Add(-8 * 24 * time.Hour).Unix() }, "", 100, 2804003},
		{"63 days old in store", func(e, b map[string]any) {
			e["event_time"] = now.Add(-63 * 24 * time.Hour).Unix()
			e["action_source"] = "physical_store"
		}, "", 100, 2804003},
		{"30 days old in store is fine", func(e, b map[string]any) {
			e["event_time"] = now.Add(-30 * 24 * time.Hour).Unix()
			e["action_source"] = "physical_store"
		}, "", 0, 0},
		{"in the future", func(e, b map[string]any) { e["event_time"] = now.Add(5 * time.Minute).Unix() }, "", 100, 2804004},
		{"event_time as string", func(e, b map[string]any) { e["event_time"] = "1700000000" }, "", 100, 2804019},
		{"no event_name", func(e, b map[string]any) { delete(e, "event_name") }, "", 100, 2804019},
		{"bad action_source", func(e, b map[string]any) { e["action_source"] = "crm" }, "", 100, 2804019},
		{"website without url", func(e, b map[string]any) {
			e["action_source"] = "website"
			e["user_data"].(map[string]any)["client_user_agent"] = "Mozilla/5.0"
		}, "", 100, 2804019},
		{"website without user agent", func(e, b map[string]any) {
			e["action_source"] = "website"
			e["event_source_url"] = "https://shop.example.com/"
		}, "", 100, 2804019},
		{"business_messaging without channel", func(e, b map[string]any) { e["action_source"] = "business_messaging" }, "", 100, 2804019},
		{"em not hashed", func(e, b map[string]any) { e["user_data"].(map[string]any)["em"] = "jane@example.com" }, "", 100, 2804050},
		{"em upper-case hash", func(e, b map[string]any) {
			e["user_data"].(map[string]any)["em"] = strings.ToUpper(capi.Hash("x"))
		}, "", 100, 2804050},
		{"unknown user_data key", func(e, b map[string]any) { e["user_data"].(map[string]any)["email"] = "x" }, "", 100, 2804050},
		{"no user_data", func(e, b map[string]any) { delete(e, "user_data") }, "", 100, 2804050},
		{"unknown top-level key", func(e, b map[string]any) { e["eventname"] = "x" }, "", 100, 2804019},
		{"purchase without currency", func(e, b map[string]any) {
			e["event_name"] = "Purchase"
			e["custom_data"] = map[string]any{"value": 10}
		}, "", 100, 2804019},
		{"value as string", func(e, b map[string]any) { e["custom_data"] = map[string]any{"value": "10", "currency": "USD"} }, "", 100, 2804019},
		{"bad currency", func(e, b map[string]any) { e["custom_data"] = map[string]any{"value": 10, "currency": "DOLLARS"} }, "", 100, 2804019},
		// The rules capisync checks before queuing (metacapi.Check), one
		// case each: the fake refuses what Meta refuses.
		{"currency not in ISO 4217", func(e, b map[string]any) { e["custom_data"] = map[string]any{"value": 10, "currency": "XYZ"} }, "", 100, 2804019},
		{"event_source_url without scheme", func(e, b map[string]any) { e["event_source_url"] = "shop.example.com/cart" }, "", 100, 2804019},
		{"unknown messaging_channel", func(e, b map[string]any) {
			e["action_source"] = "business_messaging"
			e["messaging_channel"] = "sms"
		}, "", 100, 2804019},
		{"client_ip_address not an address", func(e, b map[string]any) { ud(e)["client_ip_address"] = "999.1.1.1" }, "", 100, 2804050},
		{"client_ip_address IPv6 is fine", func(e, b map[string]any) { ud(e)["client_ip_address"] = "2001:db8::1" }, "", 0, 0},
		{"fbc as a list", func(e, b map[string]any) {
			ud(e)["fbc"] = []any{"fb.1.1554763741205.AbCdEf", "fb.1.1554763741206.GhIjKl"}
		}, "", 100, 2804050},
		{"fbc a raw fbclid", func(e, b map[string]any) { ud(e)["fbc"] = "IwAR2i2gk7IDUbQ3vjz_1M" }, "", 100, 2804050},
		{"fbc with the builder's appendix is fine", func(e, b map[string]any) { ud(e)["fbc"] = "fb.1.1554763741205.AbCdEf.AQ" }, "", 0, 0},
		{"lead_id not numeric", func(e, b map[string]any) { ud(e)["lead_id"] = "lead-42" }, "", 100, 2804050},
		{"item_price as text", func(e, b map[string]any) {
			e["custom_data"] = map[string]any{"contents": []any{map[string]any{"id": "a", "quantity": 1, "item_price": "9.99"}}}
		}, "", 100, 2804019},
		{"net_revenue as text", func(e, b map[string]any) { e["custom_data"] = map[string]any{"net_revenue": "9.99"} }, "", 100, 2804019},
		{"only first name and gender", func(e, b map[string]any) {
			e["user_data"] = map[string]any{"fn": capi.Hash("jane"), "ge": capi.Hash("f")}
		}, "", 100, 2804050},
		{"only geography", func(e, b map[string]any) {
			e["user_data"] = map[string]any{"ct": capi.Hash("paris"), "zp": capi.Hash("75001"), "country": capi.Hash("fr")}
		}, "", 100, 2804050},
		{"app without app_data", func(e, b map[string]any) { e["action_source"] = "app" }, "", 100, 2804019},
		{"app with app_data, attribution and original order", func(e, b map[string]any) {
			e["action_source"] = "app"
			e["app_data"] = map[string]any{"advertiser_tracking_enabled": true, "application_tracking_enabled": true, "extinfo": []any{"a2"}}
			e["attribution_data"] = map[string]any{"ad_id": "1", "attribution_share": 0.5}
			e["original_event_data"] = map[string]any{"event_name": "Purchase", "order_id": "A-7", "event_id": "order-A-7"}
		}, "", 0, 0},
		{"name, gender and email is fine", func(e, b map[string]any) {
			e["user_data"] = map[string]any{"fn": capi.Hash("jane"), "ge": capi.Hash("f"), "em": capi.Hash("jane@example.com")}
		}, "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New("1234567890", token)
			defer s.Close()
			e := validEvent(now)
			body := map[string]any{"access_token": token}
			body["data"] = []any{e}
			tt.mutate(e, body)
			status, code, sub := post(t, s, tt.path, body)
			if tt.code == 0 {
				if status != 200 || s.Stats().Accepted != 1 {
					t.Fatalf("status %d code %d/%d, want accepted", status, code, sub)
				}
				return
			}
			if status/100 != 4 || code != tt.code || sub != tt.subcode {
				t.Errorf("got HTTP %d code %d/%d, want 4xx %d/%d", status, code, sub, tt.code, tt.subcode)
			}
			if s.Stats().Accepted != 0 {
				t.Error("a rejected request accepted events")
			}
		})
	}
}

func TestFakeRejectsWholeBatchAndCountsDuplicates(t *testing.T) {
	s := New("1", token)
	defer s.Close()
	now := time.Now()
	good, bad := validEvent(now), validEvent(now)
	bad["event_time"] = now.Add(-10 * 24 * time.Hour).Unix()
	if status, _, _ := post(t, s, "", map[string]any{"access_token": token, "data": []any{good, bad, good}}); status != 400 {
		t.Fatalf("status %d", status)
	}
	if s.Stats().Accepted != 0 {
		t.Fatal("one bad event must reject the whole request")
	}
	post(t, s, "", map[string]any{"access_token": token, "data": []any{good}})
	post(t, s, "", map[string]any{"access_token": token, "data": []any{good}})
	if st := s.Stats(); st.Accepted != 2 || st.Duplicates != 1 {
		t.Errorf("stats = %+v", st)
	}
	b, _ := json.Marshal(map[string]any{"data": []any{good}})
	resp, err := http.Post(fmt.Sprintf("%s/v24.0/1/events?access_token=%s", s.URL, token), "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s.Stats().TokenInURL != 1 || resp.StatusCode != 400 {
		t.Errorf("token in the URL must be noticed and refused: %+v %d", s.Stats(), resp.StatusCode)
	}
}

func TestFakeInjection(t *testing.T) {
	s := New("1", token)
	defer s.Close()
	body := map[string]any{"access_token": token, "data": []any{validEvent(time.Now())}}
	s.FailNext(ServerError, Throttle)
	if st, code, _ := post(t, s, "", body); st != 500 || code != 2 {
		t.Errorf("5xx injection: %d %d", st, code)
	}
	if st, code, _ := post(t, s, "", body); st != 400 || code != 17 {
		t.Errorf("throttle injection: %d %d", st, code)
	}
	s.SetToken("new")
	if _, code, _ := post(t, s, "", body); code != 190 {
		t.Errorf("revoked token: code %d", code)
	}
}

// TestFakeRequiresAppSecretProof: with RequireAppSecretProof, a request
// without the proof, or with a wrong one, is refused as Meta refuses it
// (code 100, no subcode: about the request); the right proof passes.
func TestFakeRequiresAppSecretProof(t *testing.T) {
	s := New("1234567890", token)
	defer s.Close()
	s.RequireAppSecretProof("app-secret")
	now := time.Now()
	mac := hmac.New(sha256.New, []byte("app-secret"))
	mac.Write([]byte(token))
	for _, tt := range []struct {
		proof any
		code  int
	}{
		{nil, 100},
		{"0000", 100},
		{hex.EncodeToString(mac.Sum(nil)), 0},
	} {
		body := map[string]any{"access_token": token, "data": []any{validEvent(now)}}
		if tt.proof != nil {
			body["appsecret_proof"] = tt.proof
		}
		status, code, sub := post(t, s, "", body)
		if code != tt.code || sub != 0 || (tt.code == 0) != (status == 200) {
			t.Errorf("proof %v: HTTP %d code %d/%d, want code %d", tt.proof, status, code, sub, tt.code)
		}
	}
}
