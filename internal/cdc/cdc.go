// Package cdc is the shared vocabulary of capisync's change flow: the Change
// every source produces, its Op, its opaque Position, and the Batch a source
// hands to the pipeline. It imports nothing of capisync's.
//
// # Column values
//
// Every source maps column values to the same small set of Go types, so a
// rule reads the same way whatever database it runs on:
//
//	SQL type                                  Go value
//	NULL                                      nil
//	text, varchar, char, enum, uuid, inet     string
//	smallint, integer, bigint (and unsigned   int64 (an unsigned value above
//	  MySQL types that fit)                     MaxInt64 becomes a Decimal)
//	real, double precision, float             float64
//	numeric, decimal, money                   Decimal: the exact decimal text
//	                                            ("1234.50"), never rounded
//	boolean, tinyint(1) in MySQL              bool (MySQL tinyint(1) as int64 0/1)
//	timestamp with time zone, MySQL TIMESTAMP time.Time in UTC
//	timestamp without time zone, DATETIME     time.Time in UTC, read as wall-clock
//	                                            time in the source's `timezone`
//	date                                      time.Time at 00:00 UTC
//	±infinity timestamps                      the strings "infinity" / "-infinity"
//	MySQL's zero date                         the strings "0000-00-00 00:00:00" /
//	                                            "0000-00-00" (DATE)
//	bytea, blob, binary                       []byte
//	json, jsonb                               map[string]any / []any / scalars
//	arrays                                    []any of the above
//	anything else                             its text form as a string
package cdc

import (
	"fmt"
	"time"
)

// Decimal is an exact decimal number as its database wrote it ("1234.50",
// also "NaN" for PostgreSQL's numeric): money is read without rounding. Rules
// compare and compute with it as a number and send it with these digits.
type Decimal string

// Op is the kind of change.
type Op string

// The three operations a source reports.
const (
	Insert Op = "insert"
	Update Op = "update"
	Delete Op = "delete"
)

// ParseOp accepts "insert", "update" or "delete".
func ParseOp(s string) (Op, error) {
	switch Op(s) {
	case Insert, Update, Delete:
		return Op(s), nil
	}
	return "", fmt.Errorf("op %q is not insert, update or delete", s)
}

// Position is where a source stands in its stream. It is opaque: only the
// source that made it parses it. Reading the same change again yields the
// same Position.
type Position []byte

// Change is one row change read from a source.
type Change struct {
	Source     string    // source name as in the config
	Table      string    // table name as in the config
	Op         Op        //
	Key        Row       // primary-key columns and their values
	Old        Row       // the zero Row on insert; on update, what the source knows of the old row
	New        Row       // the zero Row on delete
	Position   Position  // position of this change (identical when read again)
	CommitTime time.Time // when the source committed it (poll time for polling), UTC
}

// Batch is a group of changes a source hands over at once: one transaction
// (or a chunk of a large one) or one poll page. After the batch's events are
// durable, the source may acknowledge Position.
type Batch struct {
	Source   string
	Changes  []Change
	Position Position // the source's position after the batch; nil for a chunk that moves no checkpoint
	// Shadows are the rows a polling source remembers, committed in the
	// same transaction as the batch's events and checkpoint.
	Shadows []Shadow
}

// Shadow is a remembered row of a polling source: its key and the tracked
// values, in the source's own encoding. A nil Value forgets the row.
type Shadow struct {
	Table string
	Key   []byte
	Value []byte
}
