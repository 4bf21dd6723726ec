package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/capisync/capisync/connectors/mysqlbinlog"
	"github.com/capisync/capisync/connectors/postgres"
	"github.com/capisync/capisync/connectors/sqlpoll"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/ops"
	"github.com/capisync/capisync/internal/pipeline"
	"github.com/capisync/capisync/internal/slots"
	"github.com/capisync/capisync/rules"
	"github.com/capisync/capisync/state"
)

// The source types, in one table: how each is built for the daemon and
// checked by validate --connect. The daemon's metrics, /readyz and
// /status ask every running source the same questions (runningSource).
// The config side of a type (its keys, defaults and checks) is declared by
// its connector package (config.RegisterSource), so a new type is a
// connector package and one entry here (TestEverySourceTypeIsWired).
var sourceKinds = map[string]sourceKind{
	postgres.Type:        {build: buildLogical, verify: verifyLogical},
	sqlpoll.TypeMySQL:    {build: buildPoll, verify: verifyPoll},
	sqlpoll.TypeSQLite:   {build: buildPoll, verify: verifyPoll},
	sqlpoll.TypePostgres: {build: buildPoll, verify: verifyPoll},
	mysqlbinlog.Type:     {build: buildBinlog, verify: verifyBinlog},
}

// sourceKind is what cmd knows of one source type.
type sourceKind struct {
	build  func(env sourceEnv) (runningSource, error)
	verify func(ctx context.Context, name string, src *config.Source, set *rules.Set) (note string, err error)
}

// sourceEnv is what a source is built with.
type sourceEnv struct {
	name  string
	src   *config.Source
	set   *rules.Set
	store state.Store
	log   *slog.Logger
	cpu   *slots.Slots
}

// runningSource is a source as the daemon runs and reports it.
type runningSource interface {
	pipeline.Source
	// health says whether the source is connected (streaming, polling),
	// its last error, and its lag as a phrase for status.
	health() (ok bool, lastErr, lag string)
	gauges() ops.SourceGauges
	Close() error
}

// pollSource is a polling source (mysql, sqlite, postgres_poll).
type pollSource struct{ *sqlpoll.Source }

func buildPoll(e sourceEnv) (runningSource, error) {
	s, err := sqlpoll.New(e.name, *e.src, e.store, sqlpoll.Options{
		Logger:      e.log,
		ColumnUsers: func(table string) map[string][]string { return e.set.ColumnUsers(e.name, table) },
		OldColumns:  func(table string) []string { return e.set.OldColumns(e.name, table) },
		Slots:       e.cpu,
	})
	if err != nil {
		return nil, err
	}
	return pollSource{s}, nil
}

func verifyPoll(ctx context.Context, name string, src *config.Source, set *rules.Set) (string, error) {
	s, err := sqlpoll.New(name, *src, nil, sqlpoll.Options{
		ColumnUsers: func(table string) map[string][]string { return set.ColumnUsers(name, table) },
	})
	if err != nil {
		return "", err
	}
	defer s.Close()
	return "", s.Check(ctx)
}

func (p pollSource) health() (bool, string, string) {
	st := p.Stats()
	lag := ""
	if !st.LastPoll.IsZero() {
		lag = "last poll " + time.Since(st.LastPoll).Round(time.Second).String() + " ago"
	}
	return st.Connected, st.LastError, lag
}

func (p pollSource) gauges() ops.SourceGauges {
	st := p.Stats()
	g := ops.SourceGauges{Connected: st.Connected, RetainedWALBytes: -1, LastCommitAge: -1, RowsScanned: float64(st.RowsScanned), BinlogBehindBytes: -1, BinlogCommitAge: -1}
	if !st.LastPoll.IsZero() {
		g.LastPoll = float64(st.LastPoll.UnixNano()) / 1e9
	}
	return g
}

// logicalSource is a PostgreSQL logical replication source.
type logicalSource struct{ *postgres.Source }

func buildLogical(e sourceEnv) (runningSource, error) {
	s, err := postgres.New(e.name, *e.src, e.store, logicalOptions(e.name, e.set, e.log))
	if err != nil {
		return nil, err
	}
	return logicalSource{s}, nil
}

func logicalOptions(name string, set *rules.Set, log *slog.Logger) postgres.Options {
	return postgres.Options{
		Logger:          log,
		RulesReadingOld: func(table string, key ...string) []string { return set.RulesReadingOld(name, table, key...) },
		ColumnUsers:     func(table string) map[string][]string { return set.ColumnUsers(name, table) },
		Track:           func(table string) []string { return set.Columns(name, table) },
		OldColumns:      func(table string) []string { return set.OldColumns(name, table) },
	}
}

func verifyLogical(ctx context.Context, name string, src *config.Source, set *rules.Set) (string, error) {
	s, err := postgres.New(name, *src, nil, logicalOptions(name, set, nil))
	if err != nil {
		return "", err
	}
	return s.Verify(ctx)
}

func (l logicalSource) health() (bool, string, string) {
	st := l.Stats()
	lag := "slot retains " + bytesText(st.RetainedWAL)
	if !st.LastCommitSeen.IsZero() {
		lag += ", last commit read " + time.Since(st.LastCommitSeen).Round(time.Second).String() + " ago"
	}
	return st.Connected, st.LastError, lag
}

func (l logicalSource) gauges() ops.SourceGauges {
	st := l.Stats()
	g := ops.SourceGauges{Connected: st.Connected, RetainedWALBytes: float64(st.RetainedWAL), LastCommitAge: -1, RowsScanned: -1, BinlogBehindBytes: -1, BinlogCommitAge: -1}
	if !st.LastCommitSeen.IsZero() {
		g.LastCommitAge = time.Since(st.LastCommitSeen).Seconds()
	}
	return g
}

func (logicalSource) Close() error { return nil }

// binlogSource is a MySQL/MariaDB binlog source.
type binlogSource struct{ *mysqlbinlog.Source }

func buildBinlog(e sourceEnv) (runningSource, error) {
	s, err := mysqlbinlog.New(e.name, *e.src, mysqlbinlog.Options{Logger: e.log,
		ColumnUsers: func(table string) map[string][]string { return e.set.ColumnUsers(e.name, table) }})
	if err != nil {
		return nil, err
	}
	return binlogSource{s}, nil
}

func verifyBinlog(ctx context.Context, name string, src *config.Source, set *rules.Set) (string, error) {
	s, err := mysqlbinlog.New(name, *src, mysqlbinlog.Options{
		ColumnUsers: func(table string) map[string][]string { return set.ColumnUsers(name, table) }})
	if err != nil {
		return "", err
	}
	flavor, problems, err := s.Check(ctx)
	if err != nil {
		return "", err
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("not ready for a binlog reader: %s", strings.Join(problems, "; "))
	}
	note := flavor + " binlog: ROW, FULL row image and metadata, grants present"
	if keep, err := s.Retention(ctx); err == nil {
		if keep == 0 {
			note += "; binlog files are kept until purged by hand"
		} else {
			note += "; the server purges binlog files after " + keep.String() + ": capisync must not stay down longer"
		}
	}
	return note, nil
}

func (b binlogSource) health() (bool, string, string) {
	st := b.Status()
	lag := ""
	if st.Position != "" {
		lag = "read " + st.Position
		if st.Behind >= 0 {
			lag += ", " + bytesText(st.Behind) + " of binlog behind"
		}
		if !st.LastCommit.IsZero() {
			lag += ", last commit read " + time.Since(st.LastCommit).Round(time.Second).String() + " ago"
		}
	}
	return st.Connected, st.Err, lag
}

func (b binlogSource) gauges() ops.SourceGauges {
	st := b.Status()
	g := ops.SourceGauges{Connected: st.Connected, RetainedWALBytes: -1, LastCommitAge: -1, RowsScanned: -1,
		BinlogBehindBytes: float64(st.Behind), BinlogCommitAge: -1}
	if !st.LastCommit.IsZero() {
		g.BinlogCommitAge = time.Since(st.LastCommit).Seconds()
	}
	return g
}

func (binlogSource) Close() error { return nil }
