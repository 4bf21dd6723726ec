// Package state is what capisync keeps between runs, as the pipeline,
// the sources and the commands see it: per-source checkpoints,
// per-destination outboxes with a 48-hour memory of event ids, dead
// letters, row shadows for polling sources, and counters for status. The
// types here are storage-neutral; an implementation (state/bolt, one
// embedded file) stores them, and the acceptance suite state/statetest
// says what every implementation guarantees.
//
// # Guarantees
//
// Commit is atomic: the events of a batch, its dead letters, its shadow
// updates and the source's new checkpoint are written in one transaction,
// so after a crash either all of them are there or none is and the source
// reads the batch again. An event whose (event_name, event_id) is still
// queued, or was queued in the last SentTTL, is not queued again, so
// reading a change twice never sends it twice; checking that costs the
// same whatever the ids look like and however many are remembered.
//
// Settle is atomic: delivered events leave the outbox and dead-lettered
// ones move to the dead letters (and are forgotten, so that the same change
// read again is queued again) in one transaction.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
)

// Enqueue is an event to queue for a destination.
type Enqueue struct {
	Destination string
	Rule        string
	Event       capi.Event
	// JSON is the event as it will be sent (the request's data array
	// element), set by Encode; nil: the store encodes Event itself.
	JSON []byte
}

// Encode encodes the event's JSON now, so that Commit only stores it: call
// it outside the store's writer lock. Afterwards the event's user_data and
// custom_data may be dropped (Commit reads only its name, id, time and
// action source), and copies of e for other destinations share the JSON.
// scratch is reused between calls.
func (e *Enqueue) Encode(scratch *bytes.Buffer) error {
	scratch.Reset()
	if err := capi.AppendJSON(scratch, &e.Event); err != nil {
		return fmt.Errorf("encode event %s/%s: %w", e.Event.EventName, e.Event.EventID, err)
	}
	e.JSON = bytes.Clone(scratch.Bytes()) // one allocation of the exact size
	return nil
}

// Batch is what one source commits at once.
type Batch struct {
	Source      string
	Position    cdc.Position // the source's new checkpoint; nil leaves it
	Events      []Enqueue
	DeadLetters []DeadLetter // events that failed before they could be queued (rule errors)
	Shadows     []cdc.Shadow
	Counters    map[string]int64 // added to the store's counters
}

// CommitResult says what a Commit queued.
type CommitResult struct {
	Enqueued   int
	Duplicates int // events already queued or recently delivered, skipped
	// Repeats counts Duplicates by rule. They are also added to the
	// store's counters (RepeatCounter), for status.
	Repeats map[string]int
	// Queued are the events queued, in sequence order per destination,
	// as Pending would read them back (for events built with Encode; a
	// sender can take them from here instead of reading the store).
	Queued []Queued
}

// DroppedReasonKind starts the counters of user_data values left out as
// invalid, by rule, key and reason: rule_dropped_why/<rule>/<key>/<reason>.
const DroppedReasonKind = "rule_dropped_why"

// DepthCounter names the counter of events queued for dest.
func DepthCounter(dest string) string { return "outbox_depth/" + dest }

// DeadCounter names the counter of dest's dead letters.
func DeadCounter(dest string) string { return "dead_letters/" + dest }

// AddCounter puts a stored counter into the snapshot: a destination's
// depth and dead letters into Destinations, any other into Counters.
func (st *Status) AddCounter(name string, v int64) {
	if d, ok := strings.CutPrefix(name, "outbox_depth/"); ok {
		o := st.Destinations[d]
		o.Depth = v
		st.Destinations[d] = o
	} else if d, ok := strings.CutPrefix(name, "dead_letters/"); ok {
		o := st.Destinations[d]
		o.DeadLetters = v
		st.Destinations[d] = o
	} else {
		st.Counters[name] = v
	}
}

// DecodeDeadLetter reads a stored dead letter (JSON, numbers kept exact).
func DecodeDeadLetter(raw []byte) (DeadLetter, error) {
	var dl DeadLetter
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dl, dec.Decode(&dl)
}

// RepeatCounter names the counter of a rule's events that were not queued
// because an event with the same name and id was queued or delivered
// within SentTTL (Meta would drop the repeat too).
func RepeatCounter(rule string) string { return "rule_repeats/" + rule }

// Counters named h/<unix hour>/... are hourly buckets (for status over a
// window); they are kept WindowRetention and pruned on the first commit of
// each hour.
const WindowRetention = 8 * 24 * time.Hour

// DeadLetter is an event Meta will not take (or a rule failure that never
// became one), kept with the reason for an operator to inspect, retry or
// drop.
type DeadLetter struct {
	ID           uint64      `json:"id"`
	Destination  string      `json:"destination"`
	Rule         string      `json:"rule,omitempty"`
	Key          string      `json:"key,omitempty"` // the change's key, for rule failures
	Event        *capi.Event `json:"event,omitempty"`
	Reason       string      `json:"reason"`
	Code         int         `json:"code,omitempty"`
	Subcode      int         `json:"error_subcode,omitempty"`
	Message      string      `json:"message,omitempty"`
	FBTraceID    string      `json:"fbtrace_id,omitempty"`
	Attempts     int         `json:"attempts"`
	Enqueued     time.Time   `json:"enqueued,omitzero"`
	FirstAttempt time.Time   `json:"first_attempt,omitzero"`
	LastAttempt  time.Time   `json:"last_attempt,omitzero"`
	Created      time.Time   `json:"dead_lettered"`
}

// Tally counts one event of a commit: queued, or refused as a repeat of
// an event the store remembers (counted by rule).
func (r *CommitResult) Tally(rule string, repeat bool) {
	if !repeat {
		r.Enqueued++
		return
	}
	r.Duplicates++
	if r.Repeats == nil {
		r.Repeats = map[string]int{}
	}
	r.Repeats[rule]++
}

// Queued is an event waiting in an outbox: its JSON as it will be sent,
// and the fields delivery needs without parsing it.
type Queued struct {
	Seq          uint64
	Destination  string // set in CommitResult.Queued
	Rule         string
	EventName    string
	EventID      string
	EventTime    int64
	ActionSource string
	JSON         []byte // the event, exactly as it goes into the request's data array
	Enqueued     time.Time
	Attempts     int
}

// Event parses the queued event (numbers kept exact).
func (q *Queued) Event() (capi.Event, error) {
	var e capi.Event
	return e, DecodeEvent(q.JSON, &e)
}

// OutcomeStatus is what became of a queued event.
type OutcomeStatus int

// What became of a queued event.
const (
	Delivered OutcomeStatus = iota + 1
	DeadLettered
	Deferred
)

// Outcome is what became of one queued event.
type Outcome struct {
	Seq       uint64
	Status    OutcomeStatus
	Reason    string
	Code      int
	Subcode   int
	Message   string
	FBTraceID string
	Attempts  int // requests that carried it this time
}

// Status is a snapshot of the store for `capisync status`.
type Status struct {
	Checkpoints  map[string]CheckpointStatus `json:"checkpoints"`
	Destinations map[string]OutboxStatus     `json:"destinations"`
	Counters     map[string]int64            `json:"counters"`
}

// CheckpointStatus is a source's checkpoint.
type CheckpointStatus struct {
	Position []byte    `json:"position"`
	At       time.Time `json:"at"`
}

// OutboxStatus is a destination's queue.
type OutboxStatus struct {
	Depth          int64     `json:"outbox_depth"`
	OldestEnqueued time.Time `json:"oldest_enqueued,omitzero"`
	DeadLetters    int64     `json:"dead_letters"`
}

// SentTTL is how long queued event ids are remembered (and for as long as
// the event is still queued): Meta's own de-duplication window.
const SentTTL = 48 * time.Hour

// ErrLocked is returned (wrapped) when another process holds the store.
var ErrLocked = errors.New("store is in use by another process")

// DecodeEvent reads a stored event keeping numbers as json.Number, so that
// money queued as 1234.50 is sent as 1234.50, digit for digit.
func DecodeEvent(raw []byte, e *capi.Event) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(e); err != nil {
		return fmt.Errorf("decode event: %w", err)
	}
	return nil
}
