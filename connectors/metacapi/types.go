package metacapi

import (
	"context"
	"time"

	"github.com/capisync/capisync/internal/capi"
)

// Item is one queued event.
type Item struct {
	Seq   uint64 // the outbox's sequence number, unique per destination
	Event capi.Event
	// JSON, when set, is the event already encoded exactly as it is sent
	// (as the outbox keeps it). Event then needs only event_name, event_id,
	// event_time and action_source: the full Check ran when the event was
	// queued, and only its age is checked again.
	JSON     []byte
	Enqueued time.Time // when it entered the outbox
}

// Status is what became of an event.
type Status int

// Outcomes of an event.
const (
	Delivered    Status = iota + 1 // Meta accepted it: remove it from the outbox
	DeadLettered                   // Meta will never accept it: move it to the dead letters
	Deferred                       // not sent now (destination paused, shutting down): keep it queued
)

func (s Status) String() string {
	return map[Status]string{Delivered: "delivered", DeadLettered: "dead_lettered", Deferred: "deferred"}[s]
}

// Outcome is what became of one event.
type Outcome struct {
	Seq       uint64
	EventName string
	Status    Status
	Reason    string // why it was dead-lettered or deferred
	Err       *Error // Meta's answer, when there was one
	Attempts  int    // requests that carried the event in this delivery
}

// Reporter persists outcomes. Report is called right after each Graph API
// response (and once for events rejected before sending); an error stops
// delivery.
type Reporter interface {
	Report(ctx context.Context, outcomes []Outcome) error
}

// ReporterFunc adapts a function to Reporter.
type ReporterFunc func(ctx context.Context, outcomes []Outcome) error

// Report calls f.
func (f ReporterFunc) Report(ctx context.Context, o []Outcome) error { return f(ctx, o) }

// Observer is told about each Graph API request, for metrics. Outcome is
// "delivered" or an error Kind's name.
type Observer interface {
	Request(outcome string, code int, took time.Duration, events int)
	// Messages is called with the messages (warnings) Meta's answer to an
	// accepted request carries.
	Messages(messages []string)
}

type nopObserver struct{}

func (nopObserver) Request(string, int, time.Duration, int) {}
func (nopObserver) Messages([]string)                       {}
