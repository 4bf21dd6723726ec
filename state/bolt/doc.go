// Package bolt is capisync's embedded store (state.Store): one bbolt file
// holding per-source checkpoints, per-destination outboxes, dead letters,
// row shadows, and counters for status. It passes state/statetest.
//
// bbolt was chosen because it is one file, fully ACID with fsync on commit,
// needs no server, and allows a single writer — which is exactly capisync's
// shape (one committer, one settler per destination).
//
// # How it keeps the guarantees
//
// Commit and Settle are each one bbolt transaction. Event ids are kept in
// a log in queueing order, found through a hash map in memory (ids.go), so
// a commit appends whatever the ids look like and however many are
// remembered.
//
// Commit writes shadows to a small delta tree, merged into the main tree in
// the background once commits pause (and on Open after a crash): reads see
// the delta first, so where a shadow sits is never visible.
//
// The file is opened exclusively. A second process fails fast with a
// message naming the file and the process that holds it (its PID is written
// beside the file, in FILE.lock).
//
// # Layout
//
//	meta                      "schema" -> uint64 schema version
//	checkpoints               source -> position bytes
//	checkpoint_times          source -> unix nanos of the last checkpoint
//	outbox/<dest>             seq (8-byte big endian) -> record
//	id_log/<dest>             seq (8 BE) -> queued unix nanos (8 BE) + event_name 0x00 event_id;
//	                          kept while queued and for 48 h after queueing (schema 4 and
//	                          older kept these in outbox_ids, keyed by the event's key)
//	outbox record             see record.go: a binary header, then the event's JSON
//	dead/<dest>               seq -> dead letter (JSON)
//	shadows/<source>\x00<table>  key -> tracked values (the source's own encoding)
//	shadow_delta/<source>\x00<table>  key -> 'v' + tracked values, or 'd' (deleted):
//	                          shadows Commit wrote that are not yet merged into
//	                          shadows/ (see shadow.go); they win over shadows/
//	counters                  name -> int64 (8 BE)
//
// Sequence numbers come from the outbox bucket's own sequence, so they grow
// monotonically per destination and give the outbox its order.
package bolt
