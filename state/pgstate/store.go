package pgstate

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	ids        idMemory
	// wmu is held by the writes that queue events (Commit, RetryDead),
	// from their lookups in the id memory until it has their changes.
	wmu  sync.Mutex
	bufs pageBufs // under wmu
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

// Remote says that a commit mostly waits on the server (pipeline.Remote).
func (s *Store) Remote() bool { return true }

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

// querier runs statements: a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// wtx is a write transaction on one connection, and the changes to the id
// memory that apply once it committed.
//
// Statements whose results nothing reads (BEGIN, the lease check, writes,
// COMMIT) are queued (later) and sent in one pipeline with the next
// statement that returns something: a commit takes two round trips to the
// server (one when it reads nothing), which matters most when the state
// lives on another machine.
type wtx struct {
	conn    *pgxpool.Conn
	changes []idChange
	last    map[string]uint64 // the last sequence number given, per destination
	pending pgx.Batch
}

// later queues a statement, sent with the next one or at commit.
func (w *wtx) later(sql string, args ...any) { w.pending.Queue(sql, args...) }

// send sends the queued statements and then sql, and returns sql's
// results (with the batch to close after them).
func (w *wtx) send(ctx context.Context, sql string, args []any) pgx.BatchResults {
	w.pending.Queue(sql, args...)
	b := w.pending
	w.pending = pgx.Batch{}
	br := w.conn.SendBatch(ctx, &b)
	return &skipped{BatchResults: br, n: b.Len() - 1}
}

// skipped is a batch's results past its first n statements, whose errors
// it returns first.
type skipped struct {
	pgx.BatchResults
	n   int
	err error
}

func (r *skipped) skip() error {
	for ; r.n > 0 && r.err == nil; r.n-- {
		_, r.err = r.BatchResults.Exec()
	}
	return r.err
}

func (r *skipped) Exec() (pgconn.CommandTag, error) {
	if err := r.skip(); err != nil {
		return pgconn.CommandTag{}, err
	}
	return r.BatchResults.Exec()
}

// flush sends the queued statements.
func (w *wtx) flush(ctx context.Context) error {
	if w.pending.Len() == 0 {
		return nil
	}
	b := w.pending
	w.pending = pgx.Batch{}
	return w.conn.SendBatch(ctx, &b).Close()
}

func (w *wtx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br := w.send(ctx, sql, args)
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (w *wtx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	br := w.send(ctx, sql, args).(*skipped)
	if err := br.skip(); err != nil {
		br.Close()
		return nil, err
	}
	rows, err := br.BatchResults.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (w *wtx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := w.Query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return rowOf{rows}
}

// batchRows closes its batch with the rows.
type batchRows struct {
	pgx.Rows
	br pgx.BatchResults
}

func (r *batchRows) Close() {
	r.Rows.Close()
	r.br.Close()
}

// rowOf is the first row of rows, as pgx.Conn.QueryRow returns it.
type rowOf struct{ rows pgx.Rows }

func (r rowOf) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// errRow is a pgx.Row that fails with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// writeTx runs fn in a transaction that writes: it first checks that the
// store still holds the leader lease it was fenced with (see checkFence).
func (s *Store) writeTx(fn func(ctx context.Context, tx querier) error) error {
	return s.write(false, func(ctx context.Context, w *wtx) error { return fn(ctx, w) })
}

// write runs fn in a transaction that writes (see writeTx) and applies
// its id memory changes once it committed. queues says that fn queues
// events: it then holds wmu, and the id memory is loaded first.
func (s *Store) write(queues bool, fn func(ctx context.Context, w *wtx) error) error {
	if queues {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		defer s.bufs.reset() // after the transaction: it sent them
	}
	ctx, cancel := s.call()
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release() // a connection left in a transaction is closed, not reused
	w := &wtx{conn: conn, last: map[string]uint64{}}
	w.later("BEGIN")
	s.checkFence(w)
	err = func() error {
		if queues {
			if err := s.loadIDs(ctx, w); err != nil {
				return err
			}
		}
		if err := fn(ctx, w); err != nil {
			return err
		}
		w.later("COMMIT")
		return w.flush(ctx)
	}()
	if err != nil {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			conn.Exec(rctx, "ROLLBACK")
			rcancel()
		}
		return s.leaseError(err)
	}
	s.ids.apply(w.changes, w.last)
	return nil
}

// Commit writes the batches in one transaction (see state.Batch).
func (s *Store) Commit(batches ...state.Batch) (state.CommitResult, error) {
	var res state.CommitResult
	now := s.clock()
	n := 0
	for _, b := range batches {
		n += len(b.Events)
	}
	events := make([]*state.Enqueue, 0, n) // pointers: an Enqueue is large
	for _, b := range batches {
		for i := range b.Events {
			events = append(events, &b.Events[i])
		}
	}
	err := s.write(true, func(ctx context.Context, w *wtx) error {
		res = state.CommitResult{}
		counters := map[string]int64{}
		dups, queued, err := s.enqueue(ctx, w, events, now)
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		res.Queued = queued
		for i, dup := range dups {
			res.Tally(events[i].Rule, dup)
			if !dup {
				counters[state.DepthCounter(events[i].Destination)]++
			}
		}
		var sources []string
		var positions [][]byte
		for _, b := range batches {
			for _, dl := range b.DeadLetters {
				if err := s.putDead(ctx, w, dl, now, counters); err != nil {
					return fmt.Errorf("commit %s: %w", b.Source, err)
				}
			}
			if err := s.putShadows(ctx, w, b.Source, b.Shadows); err != nil {
				return fmt.Errorf("commit %s: shadows: %w", b.Source, err)
			}
			for name, d := range b.Counters {
				counters[name] += d
			}
			if b.Position != nil {
				sources, positions = append(sources, b.Source), append(positions, []byte(b.Position))
			}
		}
		if len(sources) > 0 {
			// Of two positions of one source, the later.
			w.later(s.sql(`INSERT INTO %s.checkpoints
				SELECT DISTINCT ON (src) src, pos, $3 FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS u(src, pos, ord) ORDER BY src, ord DESC
				ON CONFLICT (source) DO UPDATE SET position = excluded.position, at = excluded.at`), sources, positions, now)
		}
		for rule, n := range res.Repeats {
			counters[state.RepeatCounter(rule)] += int64(n)
		}
		s.addCounters(w, counters)
		return s.pruneWindows(ctx, w, now)
	})
	return res, err
}

// enqueue queues events, in order, refusing those the id memory holds,
// and says which were refused. Each destination's events go in one page.
func (s *Store) enqueue(ctx context.Context, w *wtx, events []*state.Enqueue, now time.Time) ([]bool, []state.Queued, error) {
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
		keys, khashes := make([]string, len(idx)), make([]uint32, len(idx))
		for j, i := range idx {
			keys[j] = idKey(events[i].Event.EventName, events[i].Event.EventID)
			khashes[j] = keyHash(keys[j])
		}
		found, err := s.findIDs(ctx, w, dest, keys, khashes)
		if err != nil {
			return nil, nil, err
		}
		seen := make(map[string]bool, len(idx)) // a repeat later in the same commit
		take := make([]int, 0, len(idx))        // indexes into idx of the events queued
		for j, i := range idx {
			rem := seen[keys[j]]
			for _, m := range found[j] {
				rem = rem || m.remembered(now)
			}
			if rem {
				dups[i] = true
				continue
			}
			seen[keys[j]] = true
			take = append(take, j)
		}
		if len(take) == 0 {
			continue
		}
		first, err := s.nextSeqs(ctx, w, "outbox/"+dest, len(take))
		if err != nil {
			return nil, nil, err
		}
		size, keySize := 0, 0
		for _, j := range take {
			e := events[idx[j]]
			size += len(e.JSON) + len(e.Rule) + len(e.Event.EventName) + len(e.Event.EventID) + len(e.Event.ActionSource) + 32
			keySize += len(keys[j]) + 4
		}
		// The raw pages in the store's buffers (queueing writes hold wmu),
		// kept for the next commit; the compressed ones and the hashes in
		// its arena, until the transaction has sent them.
		evBlob, keyBlob := slices.Grow(s.bufs.ev[:0], size), slices.Grow(s.bufs.key[:0], keySize)
		hashes := s.bufs.take(4 * len(take))
		for k, j := range take {
			e := events[idx[j]]
			js := e.JSON
			if js == nil {
				scratch.Reset()
				if err := capi.AppendJSON(&scratch, &e.Event); err != nil {
					return nil, nil, fmt.Errorf("encode event %s/%s: %w", e.Event.EventName, e.Event.EventID, err)
				}
				js = scratch.Bytes()
			}
			seq := uint64(first) + uint64(k)
			evBlob = appendPageEvent(evBlob, pageEvent{rule: e.Rule, name: e.Event.EventName, id: e.Event.EventID,
				source: e.Event.ActionSource, time: e.Event.EventTime, json: js})
			h := khashes[j]
			keyBlob = appendPageKey(keyBlob, keys[j])
			hashes = binary.LittleEndian.AppendUint32(hashes, h)
			w.changes = append(w.changes, idChange{dest: dest, h: h, seq: seq})
			if e.JSON != nil {
				queued = append(queued, state.Queued{Seq: seq, Destination: dest, Rule: e.Rule, EventName: e.Event.EventName,
					EventID: e.Event.EventID, EventTime: e.Event.EventTime, ActionSource: e.Event.ActionSource, JSON: e.JSON, Enqueued: now})
			}
		}
		w.last[dest] = uint64(first) + uint64(len(take)) - 1
		s.bufs.ev, s.bufs.key = evBlob, keyBlob
		// One statement per page, with plain parameters: an array
		// parameter would copy the page once more.
		bits := newBitmap(len(take))
		w.later(s.sql(`INSERT INTO %s.outbox (dest, first_seq, n, enqueued, events, done) VALUES ($1, $2, $3, $4, $5, $6)`),
			dest, first, int32(len(take)), now, s.bufs.compress(evBlob), []byte(bits))
		w.later(s.sql(`INSERT INTO %s.ids (dest, first_seq, n, queued, hashes, keys, forgotten) VALUES ($1, $2, $3, $4, $5, $6, $7)`),
			dest, first, int32(len(take)), now, hashes, s.bufs.compress(keyBlob), []byte(bits))
	}
	return dups, queued, nil
}

// nextSeqs takes n numbers of the sequence name and returns the first.
func (s *Store) nextSeqs(ctx context.Context, tx querier, name string, n int) (int64, error) {
	var last int64
	err := tx.QueryRow(ctx, s.sql(`INSERT INTO %s.sequences VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET last = sequences.last + excluded.last RETURNING last`), name, n).Scan(&last)
	return last - int64(n) + 1, err
}

func (s *Store) addCounters(w *wtx, counters map[string]int64) {
	if len(counters) == 0 {
		return
	}
	names, vals := make([]string, 0, len(counters)), make([]int64, 0, len(counters))
	for k, v := range counters {
		names, vals = append(names, k), append(vals, v)
	}
	w.later(s.sql(`INSERT INTO %s.counters SELECT * FROM unnest($1::text[], $2::bigint[])
		ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value`), names, vals)
}

// pruneWindows drops hourly counters older than state.WindowRetention,
// on the first commit of each hour.
func (s *Store) pruneWindows(ctx context.Context, tx querier, now time.Time) error {
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

func (s *Store) putDead(ctx context.Context, tx querier, dl state.DeadLetter, now time.Time, counters map[string]int64) error {
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
func (s *Store) putShadows(ctx context.Context, tx querier, source string, shadows []cdc.Shadow) error {
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
	err := s.writeTx(func(ctx context.Context, tx querier) error {
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
