package metacapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Kind is how capisync treats a failed request.
type Kind int

// The classes of Meta's answers.
const (
	Transient Kind = iota + 1 // retry with backoff
	Throttled                 // slow the destination down, retry
	Auth                      // pause the destination, keep events queued
	Invalid                   // isolate the offending events and dead-letter them
)

func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case Throttled:
		return "throttled"
	case Auth:
		return "auth"
	case Invalid:
		return "invalid"
	}
	return "unknown"
}

// Error is a failed Graph API request, with what Meta said about it.
type Error struct {
	Kind       Kind
	HTTPStatus int    // 0 for network errors
	Code       int    `json:"code"`
	Subcode    int    `json:"error_subcode"`
	Type       string `json:"type"`
	Message    string `json:"message"`
	UserTitle  string `json:"error_user_title"`
	UserMsg    string `json:"error_user_msg"`
	FBTraceID  string `json:"fbtrace_id"`
	IsTrans    bool   `json:"is_transient"`
	retryAfter time.Duration
}

func (e *Error) Error() string {
	msg := e.Message
	if e.UserMsg != "" {
		msg += ": " + e.UserMsg
	}
	s := fmt.Sprintf("graph api %s error", e.Kind)
	if e.HTTPStatus != 0 {
		s += fmt.Sprintf(" (HTTP %d", e.HTTPStatus)
		if e.Code != 0 {
			s += fmt.Sprintf(", code %d", e.Code)
			if e.Subcode != 0 {
				s += fmt.Sprintf("/%d", e.Subcode)
			}
		}
		s += ")"
	}
	if msg != "" {
		s += ": " + msg
	}
	if e.FBTraceID != "" {
		s += " [fbtrace_id " + e.FBTraceID + "]"
	}
	return s
}

// RetryAfter is how long the server asked us to wait (Retry-After), or 0.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// classify turns a non-2xx response into an Error.
func classify(status int, header http.Header, body []byte) *Error {
	var wrapper struct {
		Error *Error `json:"error"`
	}
	e := &Error{}
	if json.Unmarshal(body, &wrapper) == nil && wrapper.Error != nil {
		e = wrapper.Error
	} else {
		e.Message = http.StatusText(status)
	}
	e.HTTPStatus = status
	if ra := header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs > 0 {
			e.retryAfter = time.Duration(secs) * time.Second
		}
	}
	e.Kind = kindOf(status, e.Code, e.Subcode, e.IsTrans)
	return e
}

// kindOf is Meta's error taxonomy. From the Graph API's error handling
// page: 190 is an access token problem, 102 a session, 3 a capability the
// app lacks, 10 and 200-299 permissions — all about the request, never
// about one event. Code 100 is "invalid parameter": about an event only
// with an event-specific subcode (the Conversions API's 2804xxx, such as
// 2804019 for a bad currency); without one ("API calls from the server
// require an appsecret_proof argument") or with 33 (no such object) it is
// about the request.
func kindOf(status, code, subcode int, transient bool) Kind {
	switch {
	case code == 190, code == 10, code == 102, code == 3, code >= 200 && code <= 299,
		code == 100 && (subcode == 0 || subcode == 33):
		return Auth
	case code == 4, code == 17, code == 32, code == 613, code == 80003, code == 80004, status == http.StatusTooManyRequests:
		return Throttled
	case transient, code == 1, code == 2, code == 341, code == 368, status >= 500, status == http.StatusRequestTimeout:
		return Transient
	case code == 0 && (status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusProxyAuthRequired):
		// No Graph error body: a proxy or gateway refused us. Never
		// dead-letter a backlog for that.
		return Auth
	}
	return Invalid
}

// EventLevel reports whether Meta's error names something wrong with an
// event of the request (code 100 with a 2804xxx subcode), as opposed to
// an error whose cause is unknown.
func (e *Error) EventLevel() bool {
	return e.Code == 100 && e.Subcode >= 2804000 && e.Subcode <= 2804999
}

// sameAs reports whether two errors say the same thing.
func (e *Error) sameAs(o *Error) bool {
	return o != nil && e.Kind == o.Kind && e.Code == o.Code && e.Subcode == o.Subcode && e.Message == o.Message
}

// networkError wraps a failure to get any answer.
func networkError(err error) *Error {
	return &Error{Kind: Transient, Message: err.Error()}
}
