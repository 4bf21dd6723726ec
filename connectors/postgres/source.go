package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/capisync/capisync/internal/backoff"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
)

// Shadows is the store's view of remembered rows, for old_values: shadow.
type Shadows interface {
	Shadows(source, table string, keys [][]byte) ([][]byte, error)
	// RewriteShadows replaces the table's shadows for which fn says ok
	// (used at start to bring older shadows to format); once done for a
	// format, it returns at once.
	RewriteShadows(source, table, format string, fn func(value []byte) ([]byte, bool)) (int, error)
}

// Options tune a Source.
type Options struct {
	Logger *slog.Logger
	// RulesReadingOld names the rules on a table that read old values
	// other than the key columns given.
	RulesReadingOld func(table string, key ...string) []string
	// ColumnUsers maps each column rules read on a table to the names of
	// those rules: a column the table lacks is an error naming them, at
	// validate --connect and at start, rather than a key that is silently
	// never sent.
	ColumnUsers func(table string) map[string][]string
	// OldColumns lists the columns whose old values rules read on a table
	// ("*": all): with old_values: shadow, only these (and the key) are
	// kept in shadows. Nil keeps every column of Track.
	OldColumns func(table string) []string
	// Track lists the columns rules read on a table ("*": all): only these
	// (and the key) are decoded, and they are the tracked columns for
	// old_values: shadow. Nil decodes every column.
	Track func(table string) []string
	// StatusInterval is the longest time between two status updates
	// (default 10 s).
	StatusInterval time.Duration
	// ChunkSize is how many changes of one transaction are handed over at
	// once (default 500).
	ChunkSize int
}

// tableInfo is what setup learned of a table.
type tableInfo struct {
	name     string
	oid      uint32
	key      []string
	identity string          // relreplident: d, f, i, n
	want     map[string]bool // columns to decode (nil: all)
}

// Source is a logical replication source.
type Source struct {
	name    string
	cfg     config.Source
	o       *Config // the type's own keys
	opt     Options
	log     *slog.Logger
	loc     *time.Location
	shadows Shadows
	tables  map[string]*tableInfo // by schema.table
	domains map[uint32]uint32     // domain type -> base type

	flushed atomic.Uint64 // LSN whose events are durable (the last acked commit end)
	// checkpointed is set when Run started from a checkpoint of the store:
	// the slot must then exist (see ensureSlot).
	checkpointed bool
	// verifyOnly makes setup look without creating anything (Verify).
	verifyOnly bool
	acked      chan struct{} // signalled by Ack

	mu    sync.Mutex
	stats Stats
}

// Stats describe the source for status and metrics.
type Stats struct {
	Connected      bool
	LastError      string
	LastCommit     time.Time // commit time of the last transaction read
	LastCommitSeen time.Time // when it was read
	Flushed        string    // the acknowledged LSN
	RetainedWAL    int64     // bytes the slot keeps (-1 unknown)
	Transactions   int64
	Changes        int64
	Truncates      int64
	Reconnects     int64
}

// New prepares a source; nothing connects until Run.
func New(name string, cfg config.Source, shadows Shadows, opt Options) (*Source, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.StatusInterval <= 0 {
		opt.StatusInterval = 10 * time.Second
	}
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = 500
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, fmt.Errorf("source %s: timezone: %w", name, err)
	}
	if _, err := pgconn.ParseConfig(cfg.DSN.Reveal()); err != nil {
		return nil, fmt.Errorf("source %s: dsn: %s", name, config.Scrub(err.Error(), cfg.DSN.Reveal()))
	}
	s := &Source{name: name, cfg: cfg, o: configOf(name, cfg), opt: opt, log: opt.Logger.With("source", name), loc: loc, shadows: shadows,
		tables: map[string]*tableInfo{}, domains: map[uint32]uint32{}, acked: make(chan struct{}, 1)}
	s.stats.RetainedWAL = -1
	return s, nil
}

func (s *Source) create() bool { return config.Bool(s.o.Create, true) }

// Stats returns the counters.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Flushed = pglogrepl.LSN(s.flushed.Load()).String()
	return st
}

func (s *Source) update(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// Ack implements pipeline.Source: every transaction up to pos (a commit
// end LSN) has its events in the outbox.
func (s *Source) Ack(_ context.Context, pos cdc.Position) error {
	lsn, err := pglogrepl.ParseLSN(string(pos))
	if err != nil {
		return fmt.Errorf("source %s: ack %q: %w", s.name, pos, err)
	}
	for {
		cur := s.flushed.Load()
		if uint64(lsn) <= cur || s.flushed.CompareAndSwap(cur, uint64(lsn)) {
			break
		}
	}
	select {
	case s.acked <- struct{}{}:
	default:
	}
	return nil
}

// connect opens a regular connection (for setup, heartbeats and lag).
func (s *Source) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.cfg.DSN.Reveal())
	if err != nil {
		return nil, errors.New(config.Scrub(err.Error(), s.cfg.DSN.Reveal()))
	}
	cfg.RuntimeParams["application_name"] = "capisync " + s.name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %s", config.DescribeDSN(s.cfg.Type, s.cfg.DSN), config.Scrub(err.Error(), s.cfg.DSN.Reveal()))
	}
	return conn, nil
}

// connectReplication opens the replication=database connection.
func (s *Source) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(s.cfg.DSN.Reveal())
	if err != nil {
		return nil, errors.New(config.Scrub(err.Error(), s.cfg.DSN.Reveal()))
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "capisync " + s.name
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replication connection to %s: %s", config.DescribeDSN(s.cfg.Type, s.cfg.DSN), config.Scrub(err.Error(), s.cfg.DSN.Reveal()))
	}
	return conn, nil
}

// Run streams from the checkpoint until ctx ends, reconnecting with
// backoff after a lost connection or a server restart. It returns an error
// only for what reconnecting cannot fix (a SetupError, an invalidated slot).
func (s *Source) Run(ctx context.Context, from cdc.Position, out chan<- cdc.Batch) error {
	if len(from) > 0 {
		lsn, err := pglogrepl.ParseLSN(string(from))
		if err != nil {
			return fmt.Errorf("source %s: checkpoint %q is not an LSN (was it written by another source type?)", s.name, from)
		}
		s.flushed.Store(uint64(lsn))
		s.checkpointed = true
	}
	bo := backoff.Backoff{Base: time.Second, Cap: 30 * time.Second}
	for {
		err := s.session(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		var se *SetupError
		if errors.As(err, &se) {
			s.update(func(st *Stats) { st.Connected, st.LastError = false, err.Error() })
			return err
		}
		if s.Stats().Connected {
			bo.Reset() // this session streamed: the next failure starts over
		}
		s.update(func(st *Stats) { st.Connected, st.LastError = false, err.Error(); st.Reconnects++ })
		wait := bo.Next()
		if slotInUse(err) {
			// Another reader has the slot: a daemon that led before this
			// one, whose connection the server has not yet seen end. Never
			// a reason to stop or to touch the slot; ask again soon.
			wait = min(wait, 2*time.Second)
			s.log.Warn("the replication slot is in use by another reader; waiting for it to let go", "slot", s.o.Slot, "error", err, "in", wait.Round(time.Millisecond))
		} else {
			s.log.Warn("replication stopped; reconnecting", "error", err, "in", wait.Round(time.Millisecond))
		}
		if !backoff.Sleep(ctx, wait, nil) {
			return nil
		}
	}
}

// session is one connection's life: setup, then streaming.
func (s *Source) session(ctx context.Context, out chan<- cdc.Batch) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := s.setup(ctx, conn); err != nil {
		return err
	}
	if s.flushed.Load() == 0 {
		// A new slot starts at its consistent point.
		si, err := s.readSlot(ctx, conn)
		if err != nil {
			return err
		}
		lsn, err := pglogrepl.ParseLSN(si.confirmedFlush)
		if err != nil {
			return fmt.Errorf("slot %s has no confirmed_flush_lsn", s.o.Slot)
		}
		s.flushed.Store(uint64(lsn))
	}
	repl, err := s.connectReplication(ctx)
	if err != nil {
		return err
	}
	defer repl.Close(context.Background())
	start := pglogrepl.LSN(s.flushed.Load())
	err = pglogrepl.StartReplication(ctx, repl, s.o.Slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + s.o.Publication + "'"},
	})
	if err != nil {
		if isSlotLost(err) {
			return setupErr("source %s: slot %s can no longer stream (%v); it was invalidated. Drop it (capisync slot drop) and let capisync recreate it; changes in the gap must be re-sent.", s.name, s.o.Slot, err)
		}
		return fmt.Errorf("start replication at %s: %w", start, err)
	}
	s.update(func(st *Stats) { st.Connected, st.LastError = true, "" })
	s.log.Info("streaming", "slot", s.o.Slot, "from", start.String())

	// The monitor owns conn until it has stopped; stop it before conn closes.
	mctx, stopMonitor := context.WithCancel(ctx)
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		s.monitor(mctx, conn)
	}()
	defer func() {
		stopMonitor()
		<-monitorDone
	}()
	return s.stream(ctx, repl, out)
}

func isSlotLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "55000" && (strings.Contains(pgErr.Message, "invalidated") || strings.Contains(pgErr.Message, "no longer"))
	}
	return false
}

// monitor emits heartbeats when the watched tables are idle and reads the
// slot's retained WAL for lag, on the regular connection.
func (s *Source) monitor(ctx context.Context, conn *pgx.Conn) {
	lag := time.NewTicker(10 * time.Second)
	defer lag.Stop()
	var beat <-chan time.Time
	if s.o.Heartbeat.Duration > 0 {
		t := time.NewTicker(s.o.Heartbeat.Duration)
		defer t.Stop()
		beat = t.C
	}
	readLag := func() {
		var retained *int64
		if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots WHERE slot_name = $1", s.o.Slot).Scan(&retained); err == nil && retained != nil {
			s.update(func(st *Stats) { st.RetainedWAL = *retained })
		}
	}
	readLag()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lag.C:
			readLag()
		case <-beat:
			if time.Since(s.Stats().LastCommitSeen) < s.o.Heartbeat.Duration {
				continue // the watched tables move the slot themselves
			}
			if _, err := conn.Exec(ctx, "SELECT pg_logical_emit_message(true, 'capisync_heartbeat', $1)", s.name); err != nil && ctx.Err() == nil {
				s.log.Warn("heartbeat failed", "error", err)
			}
		}
	}
}

// DropSlot drops the source's replication slot, and its publication when
// asked (for `capisync slot drop`). It refuses while the slot is in use.
func (s *Source) DropSlot(ctx context.Context, publication bool) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	si, err := s.readSlot(ctx, conn)
	if err != nil {
		return fmt.Errorf("read slot %s: %w", s.o.Slot, err)
	}
	switch {
	case !si.exists:
		return fmt.Errorf("slot %s does not exist", s.o.Slot)
	case si.active:
		return fmt.Errorf("slot %s is in use (is capisync running?); stop the consumer first", s.o.Slot)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", s.o.Slot); err != nil {
		return fmt.Errorf("drop slot %s: %w", s.o.Slot, err)
	}
	if publication {
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{s.o.Publication}.Sanitize()); err != nil {
			return fmt.Errorf("drop publication %s: %w", s.o.Publication, err)
		}
	}
	return nil
}

// slotInUse says whether err is PostgreSQL's "replication slot ... is
// active for PID ..." (SQLSTATE 55006, object in use).
func slotInUse(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55006"
}
