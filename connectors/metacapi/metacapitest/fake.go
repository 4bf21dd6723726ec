// Package metacapitest provides a fake Graph API that validates server
// events the way Meta documents it (docs/rules.md, "Checks before
// sending", lists the rules and their sources), and an
// in-memory Queue, for tests over real HTTP.
//
// The fake rejects the whole request for one bad event, as Meta does; it
// checks the token (code 190), the pixel (100/33), at most 1000 events, the
// age window (7 days; 62 for physical_store), event_time not in the future,
// required fields per action_source, Purchase value and currency, hashed
// user_data keys as 64-char lowercase hex, and unknown keys. It records
// accepted events, counts duplicate (event_name, event_id) pairs, and can
// inject 5xx answers, throttling, latency and token expiry.
package metacapitest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"golang.org/x/text/currency"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Failure is an error answer to inject.
type Failure struct {
	Status    int // HTTP status
	Code      int
	Subcode   int
	Transient bool
	Message   string
	// RetryAfter, when set, is sent as the Retry-After header (seconds),
	// as Meta's edge does with a 429 or 503.
	RetryAfter int
}

// Common failures.
var (
	ServerError  = Failure{Status: 500, Code: 2, Transient: true, Message: "An unexpected error has occurred. Please retry your request later."}
	Throttle     = Failure{Status: 400, Code: 17, Message: "User request limit reached"}
	TooMany      = Failure{Status: 429, Code: 4, Message: "Application request limit reached"}
	TokenExpired = Failure{Status: 400, Code: 190, Subcode: 463, Message: "Error validating access token: Session has expired"}
)

// Event is an accepted event as the fake received it.
type Event struct {
	Name, ID     string
	ActionSource string
	Time         int64
	Raw          map[string]any // the event as received (numbers as json.Number)
	wire         *wireEvent
}

// Server is the fake Graph API.
type Server struct {
	*httptest.Server
	PixelID    string
	APIVersion string
	Now        func() time.Time
	// CountOnly keeps counters and duplicate detection but not the events
	// themselves (benchmarks with hundreds of thousands of events).
	CountOnly bool
	// SampleEvery, above 1, validates only every SampleEvery-th request
	// in full (the first among them); the others are framed — the token
	// checked, the events counted, the body's top level read — and
	// accepted without duplicate detection. For benchmarks, where decoding
	// every event would take the measured process's CPU.
	SampleEvery int
	// Path, when set, is the path events are posted to instead of
	// /<version>/<pixel>/events (a Conversions API Gateway or a proxy).
	Path string
	// Messages are put in the answer to every accepted request, as
	// Meta's warnings about the events.
	Messages []string

	mu         sync.Mutex
	token      string
	accepted   []Event
	count      int
	seen       map[[2]string]int
	duplicates int
	requests   int
	rejected   int
	tokenInURL int
	failNext   []Failure
	failRate   float64
	failWith   Failure
	latency    time.Duration
	requestLog []time.Time
	testCodes  map[string]int
	traces     int
	appSecret  string            // non-empty: requests need its appsecret_proof
	refused    map[string]string // event_id -> why Meta refuses it (RefuseEvent)
}

// New starts a fake Graph API for pixel with token as the valid access
// token. Close it when done.
func New(pixelID, token string) *Server {
	s := &Server{PixelID: pixelID, APIVersion: "v24.0", token: token, Now: time.Now,
		seen: map[[2]string]int{}, testCodes: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// messages is the answer's messages list, never null.
func (s *Server) messages() []string {
	if s.Messages == nil {
		return []string{}
	}
	return s.Messages
}

// RefuseEvent makes the fake refuse, with code 100 and an event subcode,
// every event with this event_id, for a reason capisync cannot check
// before sending (Meta knows things of its own: a lead id of another
// page, say). Requests that hold such an event are refused whole, as Meta
// refuses them.
func (s *Server) RefuseEvent(eventID, reason string) {
	s.mu.Lock()
	if s.refused == nil {
		s.refused = map[string]string{}
	}
	s.refused[eventID] = reason
	s.mu.Unlock()
}

// RequireAppSecretProof makes the fake refuse, as Meta does for an app
// with "Require App Secret" on, every request without the right
// appsecret_proof (HMAC-SHA256 of the access token keyed by secret):
// code 100 with no subcode, about the request and not about any event.
func (s *Server) RequireAppSecretProof(secret string) {
	s.mu.Lock()
	s.appSecret = secret
	s.mu.Unlock()
}

// SetToken changes the valid token: revoke with SetToken("other"), restore
// with the original.
func (s *Server) SetToken(t string) { s.mu.Lock(); s.token = t; s.mu.Unlock() }

// FailNext makes the next requests fail with f, one each.
func (s *Server) FailNext(f ...Failure) {
	s.mu.Lock()
	s.failNext = append(s.failNext, f...)
	s.mu.Unlock()
}

// FailRate makes each request fail with f with probability p.
func (s *Server) FailRate(p float64, f Failure) {
	s.mu.Lock()
	s.failRate, s.failWith = p, f
	s.mu.Unlock()
}

// SetLatency delays every answer.
func (s *Server) SetLatency(d time.Duration) { s.mu.Lock(); s.latency = d; s.mu.Unlock() }

// Events returns the accepted events in arrival order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.accepted { // decoded once, on first demand
		if e := &s.accepted[i]; e.Raw == nil && e.wire != nil {
			b, _ := json.Marshal(e.wire) // raw user_data and custom_data values are kept byte for byte
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			dec.Decode(&e.Raw)
			e.wire = nil
		}
	}
	return append([]Event(nil), s.accepted...)
}

// Stats are the fake's counters.
type Stats struct {
	Requests   int // every request
	Rejected   int // answered with an error (injected or validation)
	Accepted   int // events accepted
	Duplicates int // accepted events whose (event_name, event_id) was seen before
	TokenInURL int // requests that carried access_token in the URL (must stay 0)
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Requests: s.requests, Rejected: s.rejected, Accepted: s.count, Duplicates: s.duplicates, TokenInURL: s.tokenInURL}
}

// RequestTimes returns when each request arrived.
func (s *Server) RequestTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.requestLog...)
}

// TestEventCodes counts events received per test_event_code.
func (s *Server) TestEventCodes() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.testCodes {
		out[k] = v
	}
	return out
}

// trace returns a new fbtrace_id; s.mu is held.
func (s *Server) trace() string { s.traces++; return fmt.Sprintf("AfakeTrace%06d", s.traces) }

func (s *Server) fail(w http.ResponseWriter, f Failure, userMsg string) {
	s.rejected++
	typ := "OAuthException"
	if f.Transient {
		typ = "FacebookApiException"
	}
	body := map[string]any{"error": map[string]any{
		"message": f.Message, "type": typ, "code": f.Code, "error_subcode": f.Subcode,
		"is_transient": f.Transient, "error_user_title": "Server-side API parameter error",
		"error_user_msg": userMsg, "fbtrace_id": s.trace(),
	}}
	w.Header().Set("Content-Type", "application/json")
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	w.WriteHeader(f.Status)
	json.NewEncoder(w).Encode(body)
}

// bodies are request buffers, reused: a benchmark's requests are ~1 MB
// each, and growing a fresh buffer for every one cost the fake more CPU
// than framing it.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	buf := bodies.Get().(*bytes.Buffer)
	defer bodies.Put(buf)
	buf.Reset()
	if r.ContentLength > 0 && r.ContentLength < 64<<20 {
		buf.Grow(int(r.ContentLength))
	}
	buf.ReadFrom(r.Body)
	body := buf.Bytes() // nothing keeps it: decoding copies what it keeps
	s.mu.Lock()
	lat := s.latency
	s.mu.Unlock()
	if lat > 0 {
		time.Sleep(lat)
	}
	// Requests are served concurrently, as by Meta: the lock is held to
	// count and to inject failures, not while a body is decoded.
	reject := func(f Failure, userMsg string) {
		s.mu.Lock()
		s.fail(w, f, userMsg)
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.requests++
	s.requestLog = append(s.requestLog, time.Now())
	if r.URL.Query().Has("access_token") {
		s.tokenInURL++
	}
	if len(s.failNext) > 0 {
		f := s.failNext[0]
		s.failNext = s.failNext[1:]
		s.fail(w, f, "")
		s.mu.Unlock()
		return
	}
	if s.failRate > 0 && rand.Float64() < s.failRate {
		s.fail(w, s.failWith, "")
		s.mu.Unlock()
		return
	}
	token, appSecret := s.token, s.appSecret
	sampled := s.SampleEvery <= 1 || (s.requests-1)%s.SampleEvery == 0 || appSecret != ""
	s.mu.Unlock()
	want := "/" + s.APIVersion + "/" + s.PixelID + "/events"
	if s.Path != "" {
		want = s.Path
	}
	if r.Method != http.MethodPost || r.URL.Path != want {
		reject(Failure{Status: 400, Code: 100, Subcode: 33, Message: fmt.Sprintf("Unsupported post request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation.", r.URL.Path)}, "")
		return
	}
	if !sampled {
		s.framed(w, body, token)
		return
	}
	var req struct {
		Data          []wireEvent `json:"data"`
		AccessToken   string      `json:"access_token"`
		Proof         *string     `json:"appsecret_proof"`
		TestEventCode *string     `json:"test_event_code"`
		PartnerAgent  *string     `json:"partner_agent"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if strings.Contains(err.Error(), "unknown field") {
			reject(invalid(2804019), "unknown parameter: "+err.Error())
			return
		}
		reject(invalid(2804019), "Malformed request body: "+err.Error())
		return
	}
	if req.AccessToken == "" || req.AccessToken != token {
		reject(TokenExpired, "")
		return
	}
	if appSecret != "" {
		mac := hmac.New(sha256.New, []byte(appSecret))
		mac.Write([]byte(token))
		switch {
		case req.Proof == nil:
			reject(Failure{Status: 400, Code: 100, Message: "API calls from the server require an appsecret_proof argument"}, "")
			return
		case *req.Proof != hex.EncodeToString(mac.Sum(nil)):
			reject(Failure{Status: 400, Code: 100, Message: "Invalid appsecret_proof provided in the API argument"}, "")
			return
		}
	}
	if len(req.Data) == 0 {
		reject(invalid(2804019), "The parameter $['data'] is required.")
		return
	}
	if len(req.Data) > 1000 {
		reject(invalid(2804018), fmt.Sprintf("$['data'] holds %d events; at most 1000 are allowed.", len(req.Data)))
		return
	}
	events := make([]Event, len(req.Data))
	for i := range req.Data {
		e, sub, msg := s.validate(&req.Data[i])
		e.wire = &req.Data[i]
		if msg != "" {
			reject(invalid(sub), fmt.Sprintf("$['data'][%d]: %s", i, msg))
			return
		}
		events[i] = e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range events {
		k := [2]string{e.Name, e.ID}
		if e.ID != "" && s.seen[k] > 0 {
			s.duplicates++
		}
		s.seen[k]++
		s.count++
		if !s.CountOnly {
			s.accepted = append(s.accepted, e)
		}
	}
	if req.TestEventCode != nil {
		s.testCodes[*req.TestEventCode] += len(events)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"events_received": len(events), "messages": s.messages(), "fbtrace_id": s.trace()})
}

// framed answers a request that is not validated in full (SampleEvery).
func (s *Server) framed(w http.ResponseWriter, body []byte, token string) {
	n, tok, testCode, err := frame(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		s.fail(w, invalid(2804019), "Malformed request body: "+err.Error())
		return
	case tok == "" || tok != token:
		s.fail(w, TokenExpired, "")
		return
	case n == 0:
		s.fail(w, invalid(2804019), "The parameter $['data'] is required.")
		return
	case n > 1000:
		s.fail(w, invalid(2804018), fmt.Sprintf("$['data'] holds %d events; at most 1000 are allowed.", n))
		return
	}
	s.count += n
	if testCode != "" {
		s.testCodes[testCode] += n
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"events_received": n, "messages": s.messages(), "fbtrace_id": s.trace()})
}

// rawNumber: a JSON number.
func rawNumber(v json.RawMessage) bool {
	return len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9')
}

var (
	fbcRe    = regexp.MustCompile(`^fb\.[0-2]\.[0-9]{13}\.\S+$`)
	leadIDRe = regexp.MustCompile(`^[0-9]{1,20}$`)
)

// checkPlainValues checks the unhashed user_data values Meta reads in a
// shape of their own.
func checkPlainValues(ud map[string]json.RawMessage) string {
	str := func(k string) (string, bool) {
		var s string
		v, ok := ud[k]
		if !ok {
			return "", false
		}
		if json.Unmarshal(v, &s) != nil {
			s = string(v) // a number
		}
		return s, true
	}
	if ip, ok := str("client_ip_address"); ok && net.ParseIP(ip) == nil {
		return fmt.Sprintf("user_data.client_ip_address %q is not a valid IPv4 or IPv6 address", ip)
	}
	if id, ok := str("lead_id"); ok && !leadIDRe.MatchString(id) {
		return "user_data.lead_id must be a numeric lead id"
	}
	if fbc, ok := str("fbc"); ok && !fbcRe.MatchString(fbc) {
		return "user_data.fbc is not in the format fb.1.<creation time in ms>.<fbclid>"
	}
	return ""
}

// weakIdentifiers names the set of user_data keys that does not match a
// person on its own (Meta's customer information best practices), or "".
func weakIdentifiers(ud map[string]json.RawMessage) string {
	for _, w := range []struct {
		name string
		keys map[string]bool
	}{
		{"first name and gender", set("fn", "ge")},
		{"last name and gender", set("ln", "ge")},
		{"geography", set("ct", "st", "zp", "country")},
	} {
		within := true
		for k := range ud {
			if k != "client_user_agent" && !w.keys[k] {
				within = false
				break
			}
		}
		if within {
			return w.name
		}
	}
	return ""
}

// isoCurrency reports whether c is an ISO 4217 code.
func isoCurrency(c string) bool {
	_, err := currency.ParseISO(c)
	return err == nil
}

func invalid(subcode int) Failure {
	return Failure{Status: 400, Code: 100, Subcode: subcode, Message: "Invalid parameter"}
}

var (
	curRe  = regexp.MustCompile(`^[A-Za-z]{3}$`)
	hashed = set("em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id")
	plain  = set("client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id", "fb_login_id",
		"lead_id", "anon_id", "madid", "page_id", "page_scoped_user_id", "ctwa_clid", "ig_account_id",
		"ig_sid", "whatsapp_business_account_id")
	actionSources = set("website", "app", "email", "phone_call", "chat", "physical_store", "system_generated", "business_messaging", "other")
	channels      = set("whatsapp", "messenger", "instagram")
)

func set(keys ...string) map[string]bool {
	m := map[string]bool{}
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// wireEvent is a server event as Meta reads it: every top-level parameter
// Meta knows (any other is an error), user_data and custom_data values kept
// raw to check their JSON types.
type wireEvent struct {
	EventName                    *string                    `json:"event_name,omitempty"`
	EventTime                    json.RawMessage            `json:"event_time,omitempty"`
	EventID                      json.RawMessage            `json:"event_id,omitempty"`
	ActionSource                 string                     `json:"action_source,omitempty"`
	EventSourceURL               string                     `json:"event_source_url,omitempty"`
	ReferrerURL                  string                     `json:"referrer_url,omitempty"`
	OptOut                       *bool                      `json:"opt_out,omitempty"`
	MessagingChannel             string                     `json:"messaging_channel,omitempty"`
	DataProcessingOptions        []string                   `json:"data_processing_options,omitempty"`
	DataProcessingOptionsCountry *int                       `json:"data_processing_options_country,omitempty"`
	DataProcessingOptionsState   *int                       `json:"data_processing_options_state,omitempty"`
	OriginalEventData            json.RawMessage            `json:"original_event_data,omitempty"`
	UserData                     map[string]json.RawMessage `json:"user_data,omitempty"`
	CustomData                   map[string]json.RawMessage `json:"custom_data,omitempty"`
	AppData                      map[string]json.RawMessage `json:"app_data,omitempty"`
	AttributionData              json.RawMessage            `json:"attribution_data,omitempty"`
}

// validate checks one server event as Meta does; msg is empty when valid.
func (s *Server) validate(ev *wireEvent) (e Event, subcode int, msg string) {
	if ev.EventName == nil || strings.TrimSpace(*ev.EventName) == "" {
		return e, 2804019, "The parameter event_name is required."
	}
	e.Name = *ev.EventName
	if len(ev.EventID) > 0 {
		var id string
		if json.Unmarshal(ev.EventID, &id) != nil {
			return e, 2804019, "event_id must be a string"
		}
		e.ID = id
	}
	if len(ev.EventTime) == 0 {
		return e, 2804019, "The parameter event_time is required."
	}
	t, err := strconv.ParseInt(string(ev.EventTime), 10, 64)
	if err != nil {
		return e, 2804019, "event_time must be a unix timestamp in seconds"
	}
	e.Time = t
	src := ev.ActionSource
	if !actionSources[src] {
		return e, 2804019, fmt.Sprintf("action_source %q is not valid", src)
	}
	e.ActionSource = src
	window := 7 * 24 * time.Hour
	if src == "physical_store" {
		window = 62 * 24 * time.Hour
	}
	now := s.Now()
	if now.Sub(time.Unix(t, 0)) > window {
		return e, 2804003, fmt.Sprintf("event_time %d is too far in the past: events must be sent within %d days", t, int(window.Hours()/24))
	}
	if time.Unix(t, 0).Sub(now) > time.Minute {
		return e, 2804004, fmt.Sprintf("event_time %d is in the future", t)
	}
	if len(ev.UserData) == 0 {
		return e, 2804050, "The parameter user_data is required and must hold customer information parameters."
	}
	for k, v := range ev.UserData {
		switch {
		case hashed[k]:
			if !allHashedRaw(v) {
				return e, 2804050, fmt.Sprintf("user_data.%s must be SHA-256 hashed: 64 lowercase hex characters", k)
			}
		case plain[k]:
			if len(v) == 0 || !(v[0] == '"' || v[0] == '-' || v[0] >= '0' && v[0] <= '9') {
				return e, 2804050, fmt.Sprintf("user_data.%s must be a string", k)
			}
		default:
			return e, 2804050, fmt.Sprintf("unknown user_data parameter %q", k)
		}
	}
	if err := checkPlainValues(ev.UserData); err != "" {
		return e, 2804050, err
	}
	if weak := weakIdentifiers(ev.UserData); weak != "" {
		return e, 2804050, "The user_data parameters are not enough to match a person: " + weak + " alone."
	}
	if u := ev.EventSourceURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return e, 2804019, "event_source_url must be an absolute URL (http:// or https://)."
	}
	if c := ev.MessagingChannel; c != "" && !channels[c] {
		return e, 2804019, fmt.Sprintf("messaging_channel %q is not valid: whatsapp, messenger or instagram.", c)
	}
	for _, k := range []string{"net_revenue", "predicted_ltv"} {
		if v, ok := ev.CustomData[k]; ok && !rawNumber(v) {
			return e, 2804019, fmt.Sprintf("custom_data.%s must be a number", k)
		}
	}
	if raw, ok := ev.CustomData["contents"]; ok {
		var contents []map[string]json.RawMessage
		if json.Unmarshal(raw, &contents) != nil {
			return e, 2804019, "custom_data.contents must be a list of objects"
		}
		for i, c := range contents {
			if p, ok := c["item_price"]; ok && !rawNumber(p) {
				return e, 2804019, fmt.Sprintf("custom_data.contents[%d].item_price must be a number", i)
			}
		}
	}
	switch src {
	case "website":
		if ev.EventSourceURL == "" {
			return e, 2804019, "The parameter event_source_url is required for action_source website."
		}
		if ua := ev.UserData["client_user_agent"]; len(ua) < 3 || ua[0] != '"' {
			return e, 2804019, "The parameter user_data.client_user_agent is required for action_source website."
		}
	case "app":
		for _, k := range []string{"advertiser_tracking_enabled", "application_tracking_enabled", "extinfo"} {
			if _, ok := ev.AppData[k]; !ok {
				return e, 2804019, fmt.Sprintf("app_data.%s is required for action_source app.", k)
			}
		}
	case "business_messaging":
		if !channels[ev.MessagingChannel] {
			return e, 2804019, "messaging_channel (whatsapp, messenger or instagram) is required for action_source business_messaging."
		}
	}
	value, hasValue := ev.CustomData["value"]
	if hasValue && !rawNumber(value) {
		return e, 2804019, "custom_data.value must be a number"
	}
	cur, hasCur := ev.CustomData["currency"]
	if hasCur {
		var c string
		if json.Unmarshal(cur, &c) != nil || !curRe.MatchString(c) || !isoCurrency(c) {
			return e, 2804019, fmt.Sprintf("custom_data.currency %s is not an ISO 4217 code", cur)
		}
	}
	if e.Name == "Purchase" && (!hasValue || !hasCur || string(value) == "null" || string(cur) == "null") {
		return e, 2804019, "custom_data.value and custom_data.currency are required for Purchase events."
	}
	s.mu.Lock()
	why, refused := s.refused[e.ID]
	s.mu.Unlock()
	if refused {
		return e, 2804019, why
	}
	return e, 0, ""
}

// allHashedRaw: a hashed user_data value ("<64 lowercase hex>"), or a
// non-empty list of them, read straight from the JSON.
func allHashedRaw(v json.RawMessage) bool {
	quoted := func(b []byte) bool { return len(b) == 66 && b[0] == '"' && b[65] == '"' && isHash(string(b[1:65])) }
	if len(v) > 1 && v[0] == '[' && v[len(v)-1] == ']' {
		items := bytes.Split(bytes.TrimSpace(v[1:len(v)-1]), []byte(","))
		for _, it := range items {
			if !quoted(bytes.TrimSpace(it)) {
				return false
			}
		}
		return len(items) > 0
	}
	return quoted(v)
}

func allHashed(v any) bool {
	switch x := v.(type) {
	case string:
		return isHash(x)
	case []any:
		if len(x) == 0 {
			return false
		}
		for _, e := range x {
			if s, ok := e.(string); !ok || !isHash(s) {
				return false
			}
		}
		return true
	}
	return false
}

// isHash: 64 lowercase hex characters, as Meta wants SHA-256 values.
func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !lowerHex[s[i]] {
			return false
		}
	}
	return true
}

var lowerHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdef" {
		t[c] = true
	}
	return t
}()
