// Package sqlpoll reads changes by polling tables on a cron schedule, for
// MySQL/MariaDB, PostgreSQL (read replicas, where logical replication is
// not allowed) and SQLite. One engine serves the three; each database has a
// dialect_<db>.go with its driver setup, identifier quoting, catalog query
// and type names.
//
// # What changed
//
// Each table is read with keyset pagination over (cursor, key...): rows
// whose cursor lies at or after the high-water mark minus `lookback`,
// ordered by cursor then key, page_size rows per short query — never one
// long transaction on the source. Re-reading the lookback window catches
// transactions that commit out of cursor order (a row stamped 10:00:00 that
// commits after one stamped 10:00:01); the row shadows make the overlap
// harmless. A poll with nothing changed reads only the lookback window, so
// with an index on (cursor, key) it costs O(rows in the window), not O(table).
// Lookback applies to time cursors (and text timestamps); an integer cursor
// is read from its high-water mark.
//
// # Old values
//
// For every row read, its tracked columns (`track`, by default every column
// the table's rules reference) are compared with the shadow stored for its
// key: no shadow -> insert; different -> update, with old values from the
// shadow; equal -> nothing. Shadows, the checkpoint and the events of a page
// are committed in one transaction, and the source waits for that commit
// before reading on, so a page never reads a shadow older than the last.
//
// # First run
//
// `initial: baseline` (default) records shadows without emitting anything
// (Meta rejects events older than 7 days, so a history would mostly be
// dead-lettered) and logs progress; an interrupted baseline resumes by key.
// `initial: emit` treats existing rows as inserts (a backfill).
//
// # Deletes
//
// A cursor cannot see a deleted row. With `deletes: full_scan`, on
// deletes_schedule the source reads every key of the table (one keyset scan
// of the key columns, in pages) and every shadow, and emits a delete for
// each shadow whose key is gone. Its cost is a full read of the key index
// plus O(keys) memory on every run: schedule it accordingly (hourly for a
// million rows is cheap, every 30 s is not).
//
// # Time zones
//
// Columns without a zone (MySQL DATETIME, PostgreSQL timestamp, SQLite
// text timestamps) are read as wall-clock time in the source's `timezone`
// (default UTC) and converted to UTC. MySQL sessions are pinned to
// time_zone '+00:00' with the driver's loc = UTC, so TIMESTAMP columns (which
// MySQL converts to the session zone) come back as the right instant.
//
// # Money in SQLite
//
// SQLite stores NUMERIC as a float; keep money in SQLite as TEXT or integer
// cents to keep it exact. MySQL DECIMAL and PostgreSQL numeric are read as
// exact decimal strings.
package sqlpoll
