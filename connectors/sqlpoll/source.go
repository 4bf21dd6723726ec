package sqlpoll

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/capisync/capisync/internal/backoff"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
)

// Shadows is the store's view of remembered rows; the source reads them,
// and writes them through the batches it emits.
type Shadows interface {
	Shadows(source, table string, keys [][]byte) ([][]byte, error)
	ScanShadows(source, table string, fn func(key, value []byte) error) error
	// RewriteShadows replaces the table's shadows for which fn says ok
	// (used at start to bring older shadows to format); once done for a
	// format, it returns at once.
	RewriteShadows(source, table, format string, fn func(value []byte) ([]byte, bool)) (int, error)
}

// Options tune a Source.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// ColumnUsers returns, for a table, the columns rules read and the
	// rules that read each (rules.Set.ColumnUsers).
	ColumnUsers func(table string) map[string][]string
	// OldColumns returns, for a table, the columns whose old values rules
	// read (rules.Set.OldColumns; "*" for every column): only these are
	// kept in a row's shadow, the others rules read only as a fingerprint
	// that tells they changed. Nil keeps every column rules read.
	OldColumns func(table string) []string
	// ProgressEvery is how often a baseline logs progress (default 5 s).
	ProgressEvery time.Duration
	// Slots, shared with the pipeline (internal/slots), bounds the
	// CPU-bound steps running at once: each part of a page takes one while
	// its shadows are looked up and it is diffed (nil: no bound). The page
	// queries take none.
	Slots Slots
}

// Slots bounds steps running at once: Take waits for a free slot, Give
// gives it back.
type Slots interface {
	Take()
	Give()
}

// unbounded is the Slots of a source given none.
type unbounded struct{}

func (unbounded) Take() {}
func (unbounded) Give() {}

// Source polls one database.
type Source struct {
	name    string
	cfg     config.Source
	o       *Config // the type's own keys
	d       dialect
	db      *sql.DB
	shadows Shadows
	opt     Options
	log     *slog.Logger
	loc     *time.Location
	sched   cron.Schedule
	delSch  cron.Schedule
	tables  []*table
	// Pages are handed over without waiting; a poll ends by waiting until
	// the pipeline has committed every page it handed over (acked catches
	// up with emitted), so the next poll reads committed shadows.
	emitted   int64
	acked     atomic.Int64
	ackNotify chan struct{}
	// unacked are the positions handed over and not yet acknowledged, in
	// order, each with the emitted count its batch made (Ack is
	// cumulative by position).
	ackMu   sync.Mutex
	unacked []sentPosition

	mu     sync.Mutex
	stats  Stats
	waited time.Duration // in emit, during the current poll
}

// Stats describe the source for status and metrics.
type Stats struct {
	Connected      bool
	LastError      string
	LastPoll       time.Time     // end of the last successful poll
	LastPollTook   time.Duration // reading every page and handing it over
	LastPollWait   time.Duration // of which spent waiting while the pipeline pushed back
	LastPollCommit time.Duration // from the start until every page was committed
	LastPollRows   int64         // rows the last poll read
	Polls          int64
	SkippedPolls   int64 // scheduled polls skipped because the previous one still ran
	RowsScanned    int64
	ChangesEmitted int64
}

// New prepares a polling source; nothing is connected until Run or Check.
func New(name string, cfg config.Source, shadows Shadows, opt Options) (*Source, error) {
	d, err := newDialect(cfg.Type)
	if err != nil {
		return nil, err
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.ProgressEvery <= 0 {
		opt.ProgressEvery = 5 * time.Second
	}
	if opt.Slots == nil {
		opt.Slots = unbounded{}
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, fmt.Errorf("source %s: timezone: %w", name, err)
	}
	o := configOf(cfg)
	sched, err := config.CronParser.Parse(o.Schedule)
	if err != nil {
		return nil, fmt.Errorf("source %s: schedule: %w", name, err)
	}
	s := &Source{name: name, cfg: cfg, o: o, d: d, shadows: shadows, opt: opt, loc: loc, sched: sched,
		log: opt.Logger.With("source", name), ackNotify: make(chan struct{}, 1)}
	if o.Deletes == "full_scan" {
		if s.delSch, err = config.CronParser.Parse(o.DeletesSchedule); err != nil {
			return nil, fmt.Errorf("source %s: deletes_schedule: %w", name, err)
		}
	}
	db, err := d.open(cfg.DSN.Reveal(), s.log)
	if err != nil {
		return nil, fmt.Errorf("source %s (%s): %s", name, config.DescribeDSN(cfg.Type, cfg.DSN), config.Scrub(err.Error(), cfg.DSN.Reveal()))
	}
	db.SetMaxOpenConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s.db = db
	return s, nil
}

// Close closes the connection pool.
func (s *Source) Close() error { return s.db.Close() }

// Stats returns the source's counters.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Source) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Connected = err == nil
	if err != nil {
		s.stats.LastError = err.Error()
	} else {
		s.stats.LastError = ""
	}
}

// scrub removes the DSN's password from a driver message.
func (s *Source) scrub(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(config.Scrub(err.Error(), s.cfg.DSN.Reveal()))
}

// Check connects and checks every table and column against the catalog.
// A missing table or column is a *ConfigError.
func (s *Source) Check(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("source %s: connect to %s: %w", s.name, config.DescribeDSN(s.cfg.Type, s.cfg.DSN), s.scrub(err))
	}
	var tables []*table
	var problems []string
	for _, name := range s.cfg.Tables.Names {
		t, err := s.prepareTable(ctx, name)
		if err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				problems = append(problems, ce.Msg)
				continue
			}
			return err
		}
		tables = append(tables, t)
	}
	if len(problems) > 0 {
		return &ConfigError{Msg: strings.Join(problems, "; ")}
	}
	s.tables = tables
	return nil
}

// ConfigError is a mismatch between the config and the database (a table
// or column that does not exist): restarting will not fix it.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// sentPosition is a position handed over and the emitted count its batch
// made.
type sentPosition struct {
	pos     string
	emitted int64
}

// Ack implements pipeline.Source: every batch handed over up to the one
// with position pos is committed (the pipeline acks in order; an ack may
// stand for several batches).
func (s *Source) Ack(_ context.Context, pos cdc.Position) error {
	s.ackMu.Lock()
	for i, u := range s.unacked {
		if u.pos == string(pos) {
			s.acked.Store(u.emitted)
			s.unacked = s.unacked[i+1:]
			break
		}
	}
	s.ackMu.Unlock()
	select {
	case s.ackNotify <- struct{}{}:
	default:
	}
	return nil
}

// waitCommitted waits until every batch handed over is committed.
func (s *Source) waitCommitted(ctx context.Context) error {
	for s.acked.Load() < s.emitted {
		select {
		case <-s.ackNotify:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Run polls on the schedule until ctx ends: once at start, then at every
// scheduled time. A poll still running when the next is due makes that one
// skipped (and counted), never overlapped.
func (s *Source) Run(ctx context.Context, from cdc.Position, out chan<- cdc.Batch) error {
	pos, err := decodePosition(from)
	if err != nil {
		return fmt.Errorf("source %s: %w", s.name, err)
	}
	bo := backoff.Backoff{Base: time.Second, Cap: time.Minute}
	for s.tables == nil {
		err := s.Check(ctx)
		var ce *ConfigError
		if errors.As(err, &ce) {
			return err
		}
		if err == nil {
			break
		}
		s.setErr(err)
		wait := bo.Next()
		s.log.Warn("cannot reach the database; retrying", "error", err, "in", wait.Round(time.Millisecond))
		if !backoff.Sleep(ctx, wait, nil) {
			return nil
		}
	}
	s.setErr(nil)
	if err := s.upgradeShadows(); err != nil {
		return err
	}
	nextPoll := s.opt.Now()
	var nextDel time.Time
	if s.delSch != nil {
		nextDel = s.delSch.Next(nextPoll)
	}
	for {
		due := nextPoll
		if s.delSch != nil && nextDel.Before(due) {
			due = nextDel
		}
		if !backoff.Sleep(ctx, time.Until(due), nil) {
			return nil
		}
		if s.delSch != nil && !s.opt.Now().Before(nextDel) {
			err := s.scanDeletes(ctx, pos, out)
			if err == nil {
				err = s.waitCommitted(ctx)
			}
			if err != nil && ctx.Err() == nil {
				s.log.Error("delete scan failed; will retry at the next scheduled scan", "error", err)
			}
			nextDel = s.delSch.Next(s.opt.Now())
			continue
		}
		start := s.opt.Now()
		rowsBefore := s.Stats().RowsScanned
		s.mu.Lock()
		s.waited = 0
		s.mu.Unlock()
		err := s.poll(ctx, pos, out)
		read := s.opt.Now().Sub(start)
		// Even after a failed poll: the next one must read committed shadows.
		if werr := s.waitCommitted(ctx); err == nil {
			err = werr
		}
		if ctx.Err() != nil {
			return nil
		}
		s.setErr(err)
		if err != nil {
			s.log.Error("poll failed; will retry at the next scheduled poll", "error", err)
		} else {
			s.mu.Lock()
			s.stats.Polls++
			s.stats.LastPoll = s.opt.Now()
			s.stats.LastPollTook = read
			s.stats.LastPollCommit = s.stats.LastPoll.Sub(start)
			s.stats.LastPollRows = s.stats.RowsScanned - rowsBefore
			s.stats.LastPollWait = s.waited
			s.mu.Unlock()
			s.log.Debug("poll done", "took", time.Since(start).Round(time.Millisecond))
		}
		next, skipped := s.sched.Next(nextPoll), int64(0)
		for now := s.opt.Now(); !next.After(now); next = s.sched.Next(next) {
			skipped++
		}
		if skipped > 0 {
			s.mu.Lock()
			s.stats.SkippedPolls += skipped
			s.mu.Unlock()
			s.log.Warn("poll took longer than the schedule; skipped polls", "skipped", skipped)
		}
		nextPoll = next
	}
}

// emit hands a batch to the pipeline (waiting only while the pipeline
// pushes back); waitCommitted waits for the commits.
func (s *Source) emit(ctx context.Context, out chan<- cdc.Batch, b cdc.Batch) error {
	start := time.Now()
	defer func() {
		s.mu.Lock()
		s.waited += time.Since(start)
		s.mu.Unlock()
	}()
	// A page's changes go in parts of at most batchChanges: the pipeline
	// holds a few batches at a time, and 5,000 changes each made that a
	// working set that kept the collector busy. Only the last part carries
	// the page's shadows and position: a crash between parts leaves the
	// shadows as they were, so the page is read and diffed again, and the
	// events already queued are refused as repeats by their ids.
	for len(b.Changes) > batchChanges {
		part := cdc.Batch{Source: b.Source, Changes: b.Changes[:batchChanges:batchChanges]}
		b.Changes = b.Changes[batchChanges:]
		if err := s.send(ctx, out, part); err != nil {
			return err
		}
	}
	return s.send(ctx, out, b)
}

// batchChanges is the most changes emit hands over in one batch.
const batchChanges = 1000

func (s *Source) send(ctx context.Context, out chan<- cdc.Batch, b cdc.Batch) error {
	select {
	case out <- b:
		if b.Position != nil { // the pipeline acks only batches with a position
			s.emitted++
			s.ackMu.Lock()
			s.unacked = append(s.unacked, sentPosition{string(b.Position), s.emitted})
			s.ackMu.Unlock()
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sortedUnique returns the strings sorted, without repeats.
func sortedUnique(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
