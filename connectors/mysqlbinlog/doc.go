// Package mysqlbinlog is a source that reads the binlog of MySQL or
// MariaDB: every committed row change, in commit order, with its old and
// new values, without polling.
//
// It registers as a replica (server_id, unique among the server's replicas
// and readers) with github.com/go-mysql-org/go-mysql's replication
// package and needs log_bin, binlog_format=ROW, binlog_row_image=FULL and
// binlog_row_metadata=FULL, and the grants REPLICATION SLAVE and
// REPLICATION CLIENT (Check says what is missing).
//
// Every table map of a FULL-metadata binlog carries the table's column
// names and primary key, so rows are always read by the names the binlog
// gives for them: an ALTER TABLE in the stream changes the names rows
// arrive with from its position on, and no value is ever mapped to another
// column by a schema read from the server now.
//
// Positions: the checkpoint is the server's GTID set after the last
// transaction handed over (MariaDB domain-server-seq, MySQL uuid:interval)
// with file and position, or only file and position on a server without
// GTIDs; it is taken at a transaction's commit. A change is named by its
// transaction's GTID (or, without GTIDs, where the transaction starts) and
// its place in the transaction, so reading it again yields the same
// position, hence the same default event id. A large transaction is
// handed over in chunks of ChunkSize changes; only the last carries the
// checkpoint, and a restart reads the whole transaction again (the store's
// id memory refuses what was queued).
//
// Values are converted to the types the polling reader makes of the same
// columns (see internal/cdc): DATETIME and DATE as wall-clock time in the
// source's timezone, TIMESTAMP as UTC, DECIMAL as exact text, ENUM and SET
// as their member names, BIT as big-endian bytes, binary strings as bytes
// and text as strings. MariaDB's JSON is text; MySQL's binary JSON is
// rendered as MySQL's text of it, but compact (no space after ':' and
// ','), where the polling reader gets MySQL's spacing.
package mysqlbinlog
