package capi

import (
	"bytes"
	"encoding/json"
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
}

// OriginalEvent names the earlier event an update refers to.
type OriginalEvent struct {
	EventName string `json:"event_name,omitempty"`
	EventTime int64  `json:"event_time,omitempty"`
}

// AppendJSON appends e's JSON (as sent in the request's data array) to
// buf. HTML characters (&, <, >) are kept as they are, not escaped: an
// event_source_url often holds &.
func AppendJSON(buf *bytes.Buffer, e *Event) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // the encoder's newline
	return nil
}

// Marshal returns e's JSON as AppendJSON writes it.
func Marshal(e *Event) ([]byte, error) {
	var b bytes.Buffer
	if err := AppendJSON(&b, e); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
