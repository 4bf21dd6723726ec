// Package pipeline runs capisync: sources feed batches of changes to one
// committer, which evaluates the rules and writes events, dead letters,
// shadows and the source's checkpoint to the store in one transaction, then
// lets the source acknowledge; one sender per destination drains its
// outbox and settles each Graph API answer at once.
//
// # Crash safety
//
// A crash can happen anywhere; this is why nothing is lost or sent twice:
//
//   - Before Commit returns, nothing of the batch is durable and the source
//     has not acknowledged it: after a restart it is read again, from the
//     last checkpoint, and yields the same events with the same event ids.
//   - After Commit and before Ack: the events are queued and the checkpoint
//     is moved, so the restarted source resumes after the batch. (For
//     PostgreSQL the server may still resend it, since the ack did not
//     reach it; the outbox ignores event ids it already holds.)
//   - After a batch is sent and before Settle records it: the only window
//     for a duplicate. The batch is sent again after the restart; Meta
//     de-duplicates it by (event_name, event_id). Settle runs right after
//     each response to keep this window small.
//   - After Settle: delivered events are remembered for 48 hours, so a
//     replayed change cannot queue them again.
//
// # Backpressure and shutdown
//
// When any destination's outbox holds more than its max_outbox events, the
// committer stops taking batches; sources block on their channel (the
// PostgreSQL source keeps answering keepalives meanwhile). Nothing is
// dropped. On shutdown the sources stop first, senders keep delivering
// until the outboxes are empty or shutdown_timeout has passed, then
// everything stops; what is left stays queued for the next start.
package pipeline
