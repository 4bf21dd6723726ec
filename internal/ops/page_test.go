package ops

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/state"
)

// pageDLQ is a dead-letter store with one letter, for the page.
type pageDLQ struct{ countingDLQ }

func (p *pageDLQ) DeadLetters(string) ([]state.DeadLetter, error) {
	return []state.DeadLetter{{ID: 7, Destination: "meta", Rule: "won", Reason: "rejected by Meta: invalid currency",
		Event: &capi.Event{EventName: "Purchase", EventID: "order-7"}, Created: time.Now().Add(-time.Minute)}}, nil
}

func pageServer(g Guard) (*Server, *pageDLQ) {
	dlq := &pageDLQ{}
	s := &Server{DLQ: dlq, Guard: g, Status: func(time.Duration) (Report, error) {
		return Report{Running: true, Generated: time.Now(), Window: "24h0m0s",
			Destinations: []DestInfo{{Name: "meta", Paused: true, Reason: "paused: Meta refuses the requests themselves"}},
			Rules:        []RuleInfo{{Name: "won", Events: 5, WindowEvents: 4, WindowKeys: map[string]int64{"em": 4, "ph": 2}, Hourly: []int64{0, 1, 2, 2}}}}, nil
	}}
	return s, dlq
}

// TestStatusPage: the page shows what a person needs (rules, a paused
// destination's reason, dead letters with their reasons), and acts on a
// dead letter only with its CSRF token and from its own origin.
func TestStatusPage(t *testing.T) {
	s, dlq := pageServer(Guard{Loopback: true})
	h := s.Handler()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	page := w.Body.String()
	for _, want := range []string{"won", "Meta refuses the requests themselves", "invalid currency", "order-7", "<svg", `name="csrf"`, "width:100%", "width:50%"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	csrf := s.auth.token()
	post := func(form url.Values, origin string) int {
		r := httptest.NewRequest("POST", "http://example.com/ui/dlq", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := post(url.Values{"op": {"drop"}, "id": {"7"}, "destination": {"meta"}}, ""); code != 403 || dlq.dropped != 0 {
		t.Errorf("without the CSRF token: %d, dropped %d", code, dlq.dropped)
	}
	if code := post(url.Values{"op": {"drop"}, "id": {"7"}, "destination": {"meta"}, "csrf": {csrf}}, "http://evil.example"); code != 403 || dlq.dropped != 0 {
		t.Errorf("cross-site: %d, dropped %d", code, dlq.dropped)
	}
	if code := post(url.Values{"op": {"retry"}, "id": {"7"}, "destination": {"meta"}, "csrf": {csrf}}, "http://example.com"); code != 303 || dlq.retried != 1 {
		t.Errorf("same origin with the token: %d, retried %d", code, dlq.retried)
	}

	// A non-loopback listener without http.token: no buttons, no action.
	s, dlq = pageServer(Guard{})
	h = s.Handler()
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if strings.Contains(w.Body.String(), "<button") {
		t.Error("buttons on a non-loopback listener without a token")
	}
	r := httptest.NewRequest("POST", "/ui/dlq", strings.NewReader(url.Values{"op": {"drop"}, "id": {"7"}, "csrf": {s.auth.token()}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 403 || dlq.dropped != 0 {
		t.Errorf("non-loopback without token: %d, dropped %d", w.Code, dlq.dropped)
	}
	// With http.token, the form must give it.
	s, dlq = pageServer(Guard{Token: "tok"})
	h = s.Handler()
	for _, tt := range []struct {
		token string
		want  int
	}{{"", 401}, {"nope", 401}, {"tok", 303}} {
		r := httptest.NewRequest("POST", "/ui/dlq", strings.NewReader(url.Values{"op": {"drop"}, "id": {"7"}, "destination": {"meta"}, "csrf": {s.auth.token()}, "token": {tt.token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("token %q: %d, want %d", tt.token, w.Code, tt.want)
		}
	}
	if dlq.dropped != 1 {
		t.Errorf("dropped %d, want 1", dlq.dropped)
	}
}
