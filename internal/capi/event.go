package capi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Event is one server event exactly as it is sent in the request's data
// array. user_data values are already normalized and hashed where Meta
// hashes them.
type Event struct {
	EventName                    string         `json:"event_name"`
	EventTime                    int64          `json:"event_time"`
	EventID                      string         `json:"event_id,omitempty"`
	ActionSource                 string         `json:"action_source"`
	EventSourceURL               string         `json:"event_source_url,omitempty"`
	ReferrerURL                  string         `json:"referrer_url,omitempty"`
	OptOut                       *bool          `json:"opt_out,omitempty"`
	MessagingChannel             string         `json:"messaging_channel,omitempty"`
	DataProcessingOptions        []string       `json:"data_processing_options,omitempty"`
	DataProcessingOptionsCountry *int           `json:"data_processing_options_country,omitempty"`
	DataProcessingOptionsState   *int           `json:"data_processing_options_state,omitempty"`
	OriginalEventData            *OriginalEvent `json:"original_event_data,omitempty"`
	UserData                     map[string]any `json:"user_data"`
	CustomData                   map[string]any `json:"custom_data,omitempty"`
	// AppData is app_data, for action_source app: advertiser and
	// application tracking flags, extinfo and the rest of Meta's AppData.
	AppData map[string]any `json:"app_data,omitempty"`
	// AttributionData is attribution_data: the advertiser's own
	// attribution of the event (ad, campaign, share, model, ...).
	AttributionData map[string]any `json:"attribution_data,omitempty"`
}

// OriginalEvent names the earlier event an update refers to.
type OriginalEvent struct {
	EventName string `json:"event_name,omitempty"`
	EventTime int64  `json:"event_time,omitempty"`
	OrderID   string `json:"order_id,omitempty"`
	EventID   string `json:"event_id,omitempty"`
}

// AppendJSON appends e's JSON (as sent in the request's data array) to
// buf: byte for byte what encoding/json writes for Event with HTML escaping
// off (an event_source_url often holds &), map keys sorted. It is written by
// hand because every event is encoded once into the outbox and encoding/json
// spent most of that time in reflection and key sorting; values of a type it
// does not know (rare in custom_data) go through encoding/json.
func AppendJSON(buf *bytes.Buffer, e *Event) error {
	b := buf.AvailableBuffer()
	b, err := appendEvent(b, e)
	if err != nil {
		return err
	}
	buf.Write(b)
	return nil
}

func appendEvent(b []byte, e *Event) ([]byte, error) {
	b = append(b, `{"event_name":`...)
	b = appendString(b, e.EventName)
	b = append(b, `,"event_time":`...)
	b = strconv.AppendInt(b, e.EventTime, 10)
	if e.EventID != "" {
		b = append(b, `,"event_id":`...)
		b = appendString(b, e.EventID)
	}
	b = append(b, `,"action_source":`...)
	b = appendString(b, e.ActionSource)
	b = appendOptString(b, `,"event_source_url":`, e.EventSourceURL)
	b = appendOptString(b, `,"referrer_url":`, e.ReferrerURL)
	if e.OptOut != nil {
		b = append(b, `,"opt_out":`...)
		b = strconv.AppendBool(b, *e.OptOut)
	}
	b = appendOptString(b, `,"messaging_channel":`, e.MessagingChannel)
	if len(e.DataProcessingOptions) > 0 {
		b = append(b, `,"data_processing_options":`...)
		b = appendStrings(b, e.DataProcessingOptions)
	}
	if e.DataProcessingOptionsCountry != nil {
		b = append(b, `,"data_processing_options_country":`...)
		b = strconv.AppendInt(b, int64(*e.DataProcessingOptionsCountry), 10)
	}
	if e.DataProcessingOptionsState != nil {
		b = append(b, `,"data_processing_options_state":`...)
		b = strconv.AppendInt(b, int64(*e.DataProcessingOptionsState), 10)
	}
	if o := e.OriginalEventData; o != nil {
		b = append(b, `,"original_event_data":{`...)
		n := len(b)
		if o.EventName != "" {
			b = append(b, `"event_name":`...)
			b = appendString(b, o.EventName)
		}
		if o.EventTime != 0 {
			if len(b) > n {
				b = append(b, ',')
			}
			b = append(b, `"event_time":`...)
			b = strconv.AppendInt(b, o.EventTime, 10)
		}
		for _, f := range [...]struct{ name, v string }{{"order_id", o.OrderID}, {"event_id", o.EventID}} {
			if f.v == "" {
				continue
			}
			if len(b) > n {
				b = append(b, ',')
			}
			b = appendString(append(append(append(b, '"'), f.name...), `":`...), f.v)
		}
		b = append(b, '}')
	}
	b = append(b, `,"user_data":`...)
	var err error
	if e.UserData == nil {
		b = append(b, "null"...)
	} else if b, err = appendMap(b, e.UserData); err != nil {
		return b, err
	}
	for _, m := range [...]struct {
		name string
		m    map[string]any
	}{{`,"custom_data":`, e.CustomData}, {`,"app_data":`, e.AppData}, {`,"attribution_data":`, e.AttributionData}} {
		if len(m.m) > 0 {
			if b, err = appendMap(append(b, m.name...), m.m); err != nil {
				return b, err
			}
		}
	}
	return append(b, '}'), nil
}

func appendOptString(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, name...), s)
}

func appendStrings(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendMap writes m with its keys sorted, as encoding/json does.
func appendMap(b []byte, m map[string]any) ([]byte, error) {
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, k), ':')
		if b, err = appendValue(b, m[k]); err != nil {
			return b, fmt.Errorf("%s: %w", k, err)
		}
	}
	return append(b, '}'), nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, x), nil
	case []string:
		if x == nil {
			return append(b, "null"...), nil
		}
		return appendStrings(b, x), nil
	case json.Number:
		if x != "" && validNumber(string(x)) {
			return append(b, x...), nil // money, as exact decimal text
		}
	case bool:
		return strconv.AppendBool(b, x), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case map[string]any:
		if x == nil {
			return append(b, "null"...), nil
		}
		return appendMap(b, x)
	case []any:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		var err error
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendValue(b, e); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
	// json.Number, float64 and anything else: encoding/json's own rules
	// (number validation, float formatting, Marshalers).
	return appendEncoded(b, v)
}

// appendEncoded appends v as encoding/json writes it without HTML escaping.
func appendEncoded(b []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return b, err
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...), nil
}

// appendString quotes s as encoding/json does without HTML escaping; a
// string that needs more than plain copying (control characters, quotes,
// backslashes, invalid UTF-8, U+2028/U+2029) goes through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' {
				return appendQuoted(b, s)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return appendQuoted(b, s)
		}
		i += size
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendQuoted(b []byte, s string) []byte {
	b, _ = appendEncoded(b, s) // a string always encodes
	return b
}

// Marshal returns e's JSON as AppendJSON writes it.
func Marshal(e *Event) ([]byte, error) {
	var b bytes.Buffer
	if err := AppendJSON(&b, e); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// validNumber reports whether s is a JSON number (RFC 8259 grammar, as
// encoding/json checks a json.Number).
func validNumber(s string) bool {
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	digits := func() int {
		n := 0
		for n < len(s) && '0' <= s[n] && s[n] <= '9' {
			n++
		}
		return n
	}
	switch n := digits(); {
	case n == 0:
		return false
	case s[0] == '0' && n > 1:
		return false
	default:
		s = s[n:]
	}
	if s != "" && s[0] == '.' {
		s = s[1:]
		n := digits()
		if n == 0 {
			return false
		}
		s = s[n:]
	}
	if s != "" && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s != "" && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
		n := digits()
		if n == 0 {
			return false
		}
		s = s[n:]
	}
	return s == ""
}
