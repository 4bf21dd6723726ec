package metacapitest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestFrame(t *testing.T) {
	for _, c := range []struct {
		body, token, code string
		n                 int
		err               string
	}{
		{body: `{"data":[{"a":1},{"b":"]}\"{"}],"access_token":"T"}`, token: "T", n: 2},
		{body: ` { "data" : [ { "a" : [1, {"x": null}] } ] , "test_event_code" : "TEST1", "access_token":"T\u0041" } `, token: "TA", code: "TEST1", n: 1},
		{body: `{"data":[],"access_token":"T"}`, token: "T", n: 0},
		{body: `{"data":[{"a":1}],"access_token":"T","extra":1}`, err: "unknown field"},
		{body: `{"data":[1],"access_token":"T"}`, err: "not an object"},
		{body: `{"data":{"a":1}}`, err: "not an array"},
		{body: `{"data":[{"a":"unterminated}]}`, err: "unexpected end"},
		{body: `[1]`, err: "not a JSON object"},
		{body: `{"data":[{"a":1}]`, err: "unexpected end"},
	} {
		n, token, code, err := frame([]byte(c.body))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.body, err, c.err)
			}
			continue
		}
		if err != nil || n != c.n || token != c.token || code != c.code {
			t.Errorf("%s: %d %q %q %v, want %d %q %q", c.body, n, token, code, err, c.n, c.token, c.code)
		}
	}
}

// FuzzFrame: whatever encoding/json reads as a request whose data holds
// objects, frame reads alike — the same number of events and token.
func FuzzFrame(f *testing.F) {
	f.Add([]byte(`{"data":[{"event_name":"Lead","user_data":{"em":["a\"b"]}}],"access_token":"T"}`))
	f.Add([]byte(`{"access_token":"x","data":[{},{}],"partner_agent":"p"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, token, _, err := frame(b)
		var req struct {
			Data          []json.RawMessage `json:"data"`
			AccessToken   string            `json:"access_token"`
			TestEventCode string            `json:"test_event_code"`
			PartnerAgent  string            `json:"partner_agent"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if dec.Decode(&req) != nil || dec.More() {
			return // frame may be laxer about malformed bodies: full validation is sampled
		}
		for _, d := range req.Data {
			if len(d) == 0 || d[0] != '{' {
				return
			}
		}
		if err != nil {
			if !strings.Contains(err.Error(), "unknown field") { // encoding/json matches keys case-insensitively
				t.Fatalf("frame refused what encoding/json reads: %v\n%s", err, b)
			}
			return
		}
		if n != len(req.Data) || token != req.AccessToken {
			t.Fatalf("frame read %d events and token %q; encoding/json %d and %q\n%s", n, token, len(req.Data), req.AccessToken, b)
		}
	})
}

// TestSampleEvery: with SampleEvery 3, requests 1 and 4 are validated in
// full, 2 and 3 framed — a bad event is counted there, a bad token is not.
func TestSampleEvery(t *testing.T) {
	s := New("1", token)
	s.SampleEvery = 3
	defer s.Close()
	now := time.Now()
	bad := validEvent(now)
	bad["event_time"] = now.Add(-10 * 24 * time.Hour).Unix()
	req := map[string]any{"access_token": token, "data": []any{bad}}
	if st, _, _ := post(t, s, "", req); st != 400 {
		t.Errorf("request 1 (validated): status %d, want 400", st)
	}
	if st, _, _ := post(t, s, "", req); st != 200 {
		t.Errorf("request 2 (framed): status %d, want 200", st)
	}
	if _, code, _ := post(t, s, "", map[string]any{"access_token": "other", "data": []any{bad}}); code != 190 {
		t.Errorf("request 3 (framed), wrong token: code %d, want 190", code)
	}
	if st, _, _ := post(t, s, "", req); st != 400 {
		t.Errorf("request 4 (validated): status %d, want 400", st)
	}
	if got := s.Stats().Accepted; got != 1 {
		t.Errorf("accepted %d, want 1", got)
	}
}
