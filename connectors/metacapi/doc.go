// Package metacapi delivers server events to Meta's Conversions API.
//
// A Destination takes queued events (Items), checks each one before it can
// poison a batch (age window, fields required per action_source, Purchase
// value and currency, a usable user_data key), sends batches of at most
// batch_size events with in_flight requests at once, and reports one
// Outcome per event through a Reporter right after each Graph API
// response — the store persists them, so the window in which a delivered
// batch could be sent again is as small as it can be.
//
// Meta's answers are classified by what the Graph API's error handling
// documents (see docs/architecture.md):
//
//	delivered  2xx and events_received equal to the batch size (messages in
//	           the answer are logged and counted)
//	transient  network errors, 5xx, codes 1, 2, 341, 368, is_transient: retry with
//	           exponential backoff and full jitter (1 s base, 5 min cap) while the
//	           event is inside Meta's age window; the first success wakes every
//	           batch waiting to retry
//	throttled  codes 4, 17, 32, 613, 80003, 80004, HTTP 429: the whole destination
//	           slows down (a shared rate limiter that backs off and recovers), retry
//	auth       190, 102, 3, 10, 200-299, 100 without an event subcode (such as a
//	           missing appsecret_proof) or with 33: about the request, not an
//	           event: pause the destination, keep every event queued, probe with
//	           one event every 30 s, resume by itself
//	invalid    100 / 2804xxx and other 4xx: split the batch in halves until the
//	           offending events stand alone, dead-letter those with Meta's message,
//	           code, subcode and fbtrace_id, deliver the rest. An error that names
//	           no event and comes back for both halves is the request's: pause.
//
// The access token travels in the request body, never in the URL, and never
// appears in errors, logs or dry-run output.
package metacapi
