package pgstate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/state"
)

// Options tune Open.
type Options struct {
	// Schema holds the tables (default capisync); Open creates it.
	Schema string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Timeout bounds each call (default 60 s).
	Timeout time.Duration
	// IdleInTransaction is how long the server lets one of this store's
	// transactions sit idle before it ends the session (default 5 s): a
	// daemon frozen in the middle of a commit must not hold the lease row
	// locked, keeping a standby from taking over. Give it less than the
	// lease TTL.
	IdleInTransaction time.Duration
}

// Store is the PostgreSQL store. It is safe for concurrent use.
type Store struct {
	pool       *pgxpool.Pool
	schema, q  string // the schema's name and its quoted form
	now        func() time.Time
	timeout    time.Duration
	ctx        context.Context
	cancel     context.CancelFunc
	prunedHour atomic.Int64
	fence      atomic.Pointer[fence] // the lease epoch writes check (lease.go); nil: none
}

// Open connects to the server at dsn and creates or checks the schema.
// Errors never carry the DSN's password.
func Open(ctx context.Context, dsn string, opt Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("state dsn: not a valid PostgreSQL connection string")
	}
	cfg.MaxConns = 4
	idle := opt.IdleInTransaction
	if idle <= 0 {
		idle = 5 * time.Second
	}
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = fmt.Sprint(idle.Milliseconds())
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the state database %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	s := &Store{pool: pool, schema: opt.Schema, now: opt.Now, timeout: opt.Timeout}
	if s.schema == "" {
		s.schema = "capisync"
	}
	s.q = pgx.Identifier{s.schema}.Sanitize()
	if s.now == nil {
		s.now = time.Now
	}
	if s.timeout <= 0 {
		s.timeout = time.Minute
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("state database %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return s, nil
}

// Schema is the schema the store's tables are in.
func (s *Store) Schema() string { return s.schema }

// Close cancels calls in progress and closes the connections.
func (s *Store) Close() error {
	s.cancel()
	s.pool.Close()
	return nil
}

func (s *Store) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.timeout)
}

// inTx runs fn in one transaction, committed when fn returns nil.
func (s *Store) inTx(fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := s.call()
	defer cancel()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
}

// writeTx is inTx for a transaction that writes: it first checks that
// the store still holds the leader lease it was fenced with.
func (s *Store) writeTx(fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.inTx(func(ctx context.Context, tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		return fn(ctx, tx)
	})
}

// Commit writes the batches in one transaction (see state.Batch).
func (s *Store) Commit(batches ...state.Batch) (state.CommitResult, error) {
	var res state.CommitResult
	now := s.clock()
	err := s.writeTx(func(ctx context.Context, tx pgx.Tx) error {
		res = state.CommitResult{}
		counters := map[string]int64{}
		for _, b := range batches {
			dups, queued, err := s.enqueue(ctx, tx, b.Events, now, 0)
			if err != nil {
				return fmt.Errorf("commit %s: %w", b.Source, err)
			}
			res.Queued = append(res.Queued, queued...)
			for i, dup := range dups {
				res.Tally(b.Events[i].Rule, dup)
				if !dup {
					counters[state.DepthCounter(b.Events[i].Destination)]++
				}
			}
			for _, dl := range b.DeadLetters {
				if err := s.putDead(ctx, tx, dl, now, counters); err != nil {
					return fmt.Errorf("commit %s: %w", b.Source, err)
				}
			}
			if err := s.putShadows(ctx, tx, b.Source, b.Shadows); err != nil {
				return fmt.Errorf("commit %s: shadows: %w", b.Source, err)
			}
			for name, d := range b.Counters {
				counters[name] += d
			}
			if b.Position != nil {
				if _, err := tx.Exec(ctx, s.sql(`INSERT INTO %s.checkpoints VALUES ($1, $2, $3)
					ON CONFLICT (source) DO UPDATE SET position = excluded.position, at = excluded.at`), b.Source, []byte(b.Position), now); err != nil {
					return fmt.Errorf("commit %s: checkpoint: %w", b.Source, err)
				}
			}
		}
		for rule, n := range res.Repeats {
			counters[state.RepeatCounter(rule)] += int64(n)
		}
		if err := s.addCounters(ctx, tx, counters); err != nil {
			return err
		}
		return s.pruneWindows(ctx, tx, now)
	})
	return res, err
}

// enqueue queues events, in order, refusing those the id memory holds,
// and says which were refused.
func (s *Store) enqueue(ctx context.Context, tx pgx.Tx, events []state.Enqueue, now time.Time, attempts int) ([]bool, []state.Queued, error) {
	dups := make([]bool, len(events))
	var queued []state.Queued
	byDest := map[string][]int{}
	var order []string
	for i, e := range events {
		if byDest[e.Destination] == nil {
			order = append(order, e.Destination)
		}
		byDest[e.Destination] = append(byDest[e.Destination], i)
	}
	var scratch bytes.Buffer
	for _, dest := range order {
		idx := byDest[dest]
		keys := make([]string, len(idx))
		bkeys := make([][]byte, len(idx))
		for j, i := range idx {
			keys[j] = events[i].Event.EventName + "\x00" + events[i].Event.EventID
			bkeys[j] = []byte(keys[j])
		}
		// What the memory holds of these keys: remembered (queued within
		// SentTTL, or still queued) or forgotten but not yet pruned.
		remembered, stale := map[string]bool{}, [][]byte{}
		// A join with the keys, so that every key is an index lookup
		// whatever plan the prepared statement settles on (with = ANY a
		// generic plan may scan the whole table, whose size is the 48
		// hours' ids).
		rows, err := tx.Query(ctx, s.sql(`SELECT i.event_key, i.queued > $3, EXISTS (SELECT 1 FROM %s.outbox o WHERE o.dest = i.dest AND o.seq = i.seq)
			FROM unnest($2::bytea[]) AS k(key) JOIN %s.ids i ON i.dest = $1 AND i.event_key = k.key`), dest, bkeys, now.Add(-state.SentTTL))
		if err != nil {
			return nil, nil, err
		}
		for rows.Next() {
			var key []byte
			var recent, inOutbox bool
			if err := rows.Scan(&key, &recent, &inOutbox); err != nil {
				rows.Close()
				return nil, nil, err
			}
			if recent || inOutbox {
				remembered[string(key)] = true
			} else {
				stale = append(stale, key)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
		var take []int // indexes into idx of the events queued
		for j, i := range idx {
			if remembered[keys[j]] {
				dups[i] = true
				continue
			}
			remembered[keys[j]] = true // a repeat later in the same commit
			take = append(take, j)
		}
		if len(stale) > 0 {
			if _, err := tx.Exec(ctx, s.sql("DELETE FROM %s.ids WHERE dest = $1 AND event_key = ANY($2)"), dest, stale); err != nil {
				return nil, nil, err
			}
		}
		if len(take) == 0 {
			continue
		}
		first, err := s.nextSeqs(ctx, tx, "outbox/"+dest, len(take))
		if err != nil {
			return nil, nil, err
		}
		n := len(take)
		seqs, times := make([]int64, n), make([]int64, n)
		rules, names, sources := make([]string, n), make([]string, n), make([]string, n)
		ids, qkeys, jsons := make([][]byte, n), make([][]byte, n), make([][]byte, n)
		for k, j := range take {
			e := &events[idx[j]]
			js := e.JSON
			if js == nil {
				scratch.Reset()
				if err := capi.AppendJSON(&scratch, &e.Event); err != nil {
					return nil, nil, fmt.Errorf("encode event %s/%s: %w", e.Event.EventName, e.Event.EventID, err)
				}
				js = bytes.Clone(scratch.Bytes())
			}
			seqs[k], times[k] = first+int64(k), e.Event.EventTime
			rules[k], names[k], ids[k], sources[k], qkeys[k] = e.Rule, e.Event.EventName, []byte(e.Event.EventID), e.Event.ActionSource, bkeys[j]
			jsons[k] = js
			if e.JSON != nil {
				queued = append(queued, state.Queued{Seq: uint64(seqs[k]), Destination: dest, Rule: e.Rule, EventName: e.Event.EventName,
					EventID: e.Event.EventID, EventTime: e.Event.EventTime, ActionSource: e.Event.ActionSource, JSON: e.JSON, Enqueued: now, Attempts: attempts})
			}
		}
		if _, err := tx.Exec(ctx, s.sql(`INSERT INTO %s.outbox (dest, seq, rule, event_name, event_id, event_time, action_source, json, enqueued, attempts)
			SELECT $1, * , $9, $10 FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::text[], $8::bytea[])`),
			dest, seqs, rules, names, ids, times, sources, jsons, now, attempts); err != nil {
			return nil, nil, fmt.Errorf("queue for %s: %w", dest, err)
		}
		if _, err := tx.Exec(ctx, s.sql(`INSERT INTO %s.ids (dest, event_key, seq, queued) SELECT $1, k, q, $4 FROM unnest($2::bytea[], $3::bigint[]) AS u(k, q)`),
			dest, qkeys, seqs, now); err != nil {
			return nil, nil, fmt.Errorf("remember ids for %s: %w", dest, err)
		}
	}
	return dups, queued, nil
}

// nextSeqs takes n numbers of the sequence name and returns the first.
func (s *Store) nextSeqs(ctx context.Context, tx pgx.Tx, name string, n int) (int64, error) {
	var last int64
	err := tx.QueryRow(ctx, s.sql(`INSERT INTO %s.sequences VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET last = sequences.last + excluded.last RETURNING last`), name, n).Scan(&last)
	return last - int64(n) + 1, err
}

func (s *Store) addCounters(ctx context.Context, tx pgx.Tx, counters map[string]int64) error {
	if len(counters) == 0 {
		return nil
	}
	names, vals := make([]string, 0, len(counters)), make([]int64, 0, len(counters))
	for k, v := range counters {
		names, vals = append(names, k), append(vals, v)
	}
	_, err := tx.Exec(ctx, s.sql(`INSERT INTO %s.counters SELECT * FROM unnest($1::text[], $2::bigint[])
		ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value`), names, vals)
	return err
}

// pruneWindows drops hourly counters older than state.WindowRetention,
// on the first commit of each hour.
func (s *Store) pruneWindows(ctx context.Context, tx pgx.Tx, now time.Time) error {
	hour := now.Unix() / 3600
	if s.prunedHour.Load() == hour {
		return nil
	}
	oldest := now.Add(-state.WindowRetention).Unix() / 3600
	if _, err := tx.Exec(ctx, s.sql(`DELETE FROM %s.counters WHERE name LIKE 'h/%%'
		AND (CASE WHEN split_part(name, '/', 2) ~ '^[0-9]+$' THEN split_part(name, '/', 2)::bigint END) < $1`), oldest); err != nil {
		return err
	}
	s.prunedHour.Store(hour)
	return nil
}

func (s *Store) putDead(ctx context.Context, tx pgx.Tx, dl state.DeadLetter, now time.Time, counters map[string]int64) error {
	id, err := s.nextSeqs(ctx, tx, "dead/"+dl.Destination, 1)
	if err != nil {
		return err
	}
	dl.ID, dl.Created = uint64(id), now.UTC()
	v, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	if _, err := tx.Exec(ctx, s.sql("INSERT INTO %s.dead VALUES ($1, $2, $3)"), dl.Destination, id, v); err != nil {
		return err
	}
	counters[state.DeadCounter(dl.Destination)]++
	return nil
}

// putShadows writes a batch's shadows; of two writes of one key the later
// wins, a nil value deletes.
func (s *Store) putShadows(ctx context.Context, tx pgx.Tx, source string, shadows []cdc.Shadow) error {
	if len(shadows) == 0 {
		return nil
	}
	type tk struct{ table, key string }
	last := map[tk]int{}
	for i, sh := range shadows {
		last[tk{sh.Table, string(sh.Key)}] = i
	}
	type group struct {
		putKeys, putVals [][]byte
		delKeys          [][]byte
	}
	groups := map[string]*group{}
	for i, sh := range shadows {
		if last[tk{sh.Table, string(sh.Key)}] != i {
			continue
		}
		g := groups[sh.Table]
		if g == nil {
			g = &group{}
			groups[sh.Table] = g
		}
		if sh.Value == nil {
			g.delKeys = append(g.delKeys, sh.Key)
		} else {
			g.putKeys, g.putVals = append(g.putKeys, sh.Key), append(g.putVals, sh.Value)
		}
	}
	for table, g := range groups {
		if len(g.delKeys) > 0 {
			if _, err := tx.Exec(ctx, s.sql("DELETE FROM %s.shadows WHERE source = $1 AND tbl = $2 AND key = ANY($3)"), source, table, g.delKeys); err != nil {
				return err
			}
		}
		if len(g.putKeys) > 0 {
			if _, err := tx.Exec(ctx, s.sql(`INSERT INTO %s.shadows SELECT $1, $2, * FROM unnest($3::bytea[], $4::bytea[])
				ON CONFLICT (source, tbl, key) DO UPDATE SET value = excluded.value`), source, table, g.putKeys, g.putVals); err != nil {
				return err
			}
		}
	}
	return nil
}

// Checkpoint returns a source's last committed position (nil when none).
func (s *Store) Checkpoint(source string) (cdc.Position, error) {
	ctx, cancel := s.call()
	defer cancel()
	var pos []byte
	err := s.pool.QueryRow(ctx, s.sql("SELECT position FROM %s.checkpoints WHERE source = $1"), source).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return cdc.Position(pos), err
}

// ForgetCheckpoint removes source's checkpoint and returns what it was.
func (s *Store) ForgetCheckpoint(source string) (cdc.Position, error) {
	var pos []byte
	err := s.writeTx(func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, s.sql("DELETE FROM %s.checkpoints WHERE source = $1 RETURNING position"), source).Scan(&pos)
		if errors.Is(err, pgx.ErrNoRows) {
			pos, err = nil, nil
		}
		return err
	})
	if pos == nil {
		return nil, err
	}
	return cdc.Position(pos), err
}

// clock is now as PostgreSQL keeps it: microseconds, no monotonic reading.
func (s *Store) clock() time.Time { return s.now().Round(0).Truncate(time.Microsecond) }
