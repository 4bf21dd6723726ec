package capi

import "encoding/json"

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
}

// OriginalEvent names the earlier event an update refers to.
type OriginalEvent struct {
	EventName string `json:"event_name,omitempty"`
	EventTime int64  `json:"event_time,omitempty"`
}

// MarshalJSON keeps HTML characters (&, <, >) unescaped, as they were in
// the source (event_source_url often holds &).
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	return marshalNoEscape(plain(e))
}

func marshalNoEscape(v any) ([]byte, error) {
	var b jsonBuffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.bytes(), nil
}

type jsonBuffer struct{ buf []byte }

func (b *jsonBuffer) Write(p []byte) (int, error) { b.buf = append(b.buf, p...); return len(p), nil }

// bytes returns the encoded value without the encoder's trailing newline.
func (b *jsonBuffer) bytes() []byte {
	if n := len(b.buf); n > 0 && b.buf[n-1] == '\n' {
		return b.buf[:n-1]
	}
	return b.buf
}
