// Package postgres is the PostgreSQL logical replication source: it reads
// every committed change of the configured tables, in commit order, from a
// pgoutput slot (github.com/jackc/pglogrepl), and acknowledges a position
// only once its events are durable in the outbox.
//
// # Protocol
//
// pgoutput proto_version 1, as every connector that capisync learned from
// uses: the server sends a transaction when it commits. (Version 2 would
// stream large in-progress transactions, which could later abort; v1 keeps
// "everything read is committed" simple.) Relation, Type, Begin, Insert,
// Update, Delete, Truncate (logged and counted, no events), Origin and
// Commit messages are handled.
//
// # Acknowledgement
//
// The checkpoint and the flush position sent in StandbyStatusUpdate are the
// end LSN of the commit (CommitMessage.TransactionEndLSN) of the last
// transaction whose events are in the outbox — never a commit's start (the
// server would resend it), never a position merely received. Write, flush
// and apply are all set explicitly every time (pglogrepl copies write into
// flush when flush is left zero). A transaction larger than a chunk is
// written to the outbox in chunks as it streams, with no checkpoint until
// its commit: if capisync stops midway the transaction is read again and
// the outbox ignores the event ids it already holds.
//
// # Keeping the slot healthy
//
// Status is sent at least every 10 s and at once when the server asks,
// also while the pipeline applies backpressure (the loop that hands over
// batches keeps sending status while it waits). When nothing is pending the
// source acknowledges the server's WAL end, so an idle slot does not hold
// WAL; a transactional pg_logical_emit_message heartbeat (`heartbeat`,
// default 5m) gives a busy database with idle watched tables something to
// move the slot with. Lost connections are retried with backoff from the
// last acknowledged position; an invalidated slot (wal_status lost) stops
// the source with instructions, never silently skipping.
//
// # Old values
//
// With REPLICA IDENTITY FULL the old row is complete. With DEFAULT only the
// key is known: a rule that reads old values on such a table fails startup
// naming the ALTER TABLE to run, unless `old_values: shadow`, where the
// source keeps shadows of the tracked columns in the store like the
// polling source. An unchanged TOASTed value ('u') is taken from the old row
// when there is one, and is otherwise left out of both rows — it is never
// "changed".
package postgres
