// Package pgstate is a store (state.Store) in PostgreSQL: the state lives
// on a server that is backed up and survives the machine capisync runs on.
// It passes state/statetest, as state/bolt does.
//
// Everything lives in one schema (default capisync), created and migrated
// by Open; its version is in meta. The tables:
//
//	meta            key -> value (schema version)
//	checkpoints     source -> position, when it was written
//	sequences       name -> the last number given: "outbox/<dest>" (outbox
//	                sequence numbers), "dead/<dest>" (dead letter ids)
//	outbox          (dest, first_seq) -> a page: the events one commit
//	                queued for dest (n of them, sequence numbers first_seq
//	                on), when, and a bitmap of those settled; a page goes
//	                once all are (pages.go)
//	attempts        (dest, seq) -> attempts so far of a queued event that
//	                was deferred after an attempt
//	ids             (dest, first_seq) -> the same commit's id memory: the
//	                keys (event_name 0x00 event_id), their hashes, when
//	                queued, a bitmap of those forgotten (ids.go)
//	dead            (dest, id) -> the dead letter (JSON)
//	shadows         (source, tbl, key) -> value
//	shadow_formats  (source, tbl) -> the format of the last finished rewrite
//	counters        name -> value
//	lease           'leader' -> holder, epoch, expires (lease.go)
//
// Commit and Settle are each one transaction (READ COMMITTED is enough:
// the one writer is the daemon that holds the leader lease; a store fenced
// with the lease's epoch checks it in every transaction that writes, see
// lease.go).
//
// The state.Store methods take no context: each call runs under the
// store's own context, which Close cancels, and a timeout (Options).
package pgstate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SchemaVersion is the layout version this code writes.
const SchemaVersion = 2

// schemaSQL creates the tables (version 2); %[1]s is the schema.
const schemaSQL = `
CREATE SCHEMA IF NOT EXISTS %[1]s;
CREATE TABLE IF NOT EXISTS %[1]s.meta (key text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE IF NOT EXISTS %[1]s.checkpoints (source text PRIMARY KEY, position bytea NOT NULL, at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS %[1]s.sequences (name text PRIMARY KEY, last bigint NOT NULL);
CREATE TABLE IF NOT EXISTS %[1]s.outbox (dest text NOT NULL, first_seq bigint NOT NULL, n integer NOT NULL,
	enqueued timestamptz NOT NULL, events bytea NOT NULL, done bytea NOT NULL, PRIMARY KEY (dest, first_seq));
-- Pages are written once and read whole: compressing them costs more CPU
-- than the disk it saves.
ALTER TABLE %[1]s.outbox ALTER COLUMN events SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS %[1]s.attempts (dest text NOT NULL, seq bigint NOT NULL, attempts integer NOT NULL,
	first_attempt timestamptz NOT NULL, last_attempt timestamptz NOT NULL, PRIMARY KEY (dest, seq));
CREATE TABLE IF NOT EXISTS %[1]s.ids (dest text NOT NULL, first_seq bigint NOT NULL, n integer NOT NULL, queued timestamptz NOT NULL,
	hashes bytea NOT NULL, keys bytea NOT NULL, forgotten bytea NOT NULL, PRIMARY KEY (dest, first_seq));
ALTER TABLE %[1]s.ids ALTER COLUMN keys SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS ids_by_time ON %[1]s.ids (dest, queued);
CREATE TABLE IF NOT EXISTS %[1]s.dead (dest text NOT NULL, id bigint NOT NULL, letter bytea NOT NULL, PRIMARY KEY (dest, id));
CREATE TABLE IF NOT EXISTS %[1]s.shadows (source text NOT NULL, tbl text NOT NULL, key bytea NOT NULL, value bytea NOT NULL,
	PRIMARY KEY (source, tbl, key));
CREATE TABLE IF NOT EXISTS %[1]s.shadow_formats (source text NOT NULL, tbl text NOT NULL, format bytea NOT NULL, PRIMARY KEY (source, tbl));
CREATE TABLE IF NOT EXISTS %[1]s.counters (name text PRIMARY KEY, value bigint NOT NULL);
`

// migrate creates the schema, or checks the one there: an older version
// would be upgraded here (none was released), a newer one is refused.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// One capisync migrates at a time (the lock ends with the transaction).
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "capisync schema "+s.schema); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, s.sql("CREATE SCHEMA IF NOT EXISTS %s; CREATE TABLE IF NOT EXISTS %s.meta (key text PRIMARY KEY, value bigint NOT NULL)")); err != nil {
		return fmt.Errorf("create schema %s: %w", s.schema, err)
	}
	var v int64
	err = tx.QueryRow(ctx, s.sql("SELECT value FROM %s.meta WHERE key = 'schema'")).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		v = 0
	case err != nil:
		return err
	case v > SchemaVersion:
		return fmt.Errorf("state schema %s has version %d, newer than this capisync (%d): upgrade capisync", s.schema, v, SchemaVersion)
	case v < SchemaVersion:
		// Version 1 (a row per event) was written only by development
		// builds, never by a release.
		return fmt.Errorf("state schema %s has version %d, written by a development build of capisync: "+
			"stop every daemon, drop it (DROP SCHEMA %s CASCADE) and start again", s.schema, v, s.q)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(schemaSQL+leaseSQL+checkLeaseSQL, s.q)); err != nil {
		return fmt.Errorf("create schema %s: %w", s.schema, err)
	}
	if v == 0 {
		if _, err := tx.Exec(ctx, s.sql("INSERT INTO %s.meta VALUES ('schema', $1)"), SchemaVersion); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// sql puts the quoted schema name where q has %s.
func (s *Store) sql(q string) string { return strings.ReplaceAll(q, "%s", s.q) }
