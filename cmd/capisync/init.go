package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/capisync/capisync/connectors/postgres"
	"github.com/capisync/capisync/connectors/sqlpoll"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/initcfg"
	"github.com/capisync/capisync/rules"
)

// initCmd is `capisync init`: a starter config (and a changes file for
// rules test) drafted from tables read through a read-only session. It
// prints column names and status values, never a row's value.
func initCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init", stderr)
	typ := fs.String("source-type", "", "postgres (logical replication), postgres_poll, mysql or sqlite")
	dsn := fs.String("dsn", "", "the database to read (a SQLite file's path); prefer --dsn-env for one with a password")
	dsnEnv := fs.String("dsn-env", "", "the environment variable that holds the DSN; the config reads it from there too")
	name := fs.String("source-name", "db", "the source's name in the config")
	out := fs.String("out", "capisync.yaml", "the config to write")
	changes := fs.String("changes", "", "the changes file to write for rules test (default: changes.jsonl beside --out)")
	force := fs.Bool("force", false, "overwrite files that exist")
	var tables stringList
	fs.Var(&tables, "table", "a table to read (repeatable)")
	if err := parse(fs, args, nil); err != nil {
		return err
	}
	switch *typ {
	case postgres.Type, sqlpoll.TypePostgres, sqlpoll.TypeMySQL, sqlpoll.TypeSQLite:
	default:
		return usagef("init: --source-type must be postgres, postgres_poll, mysql or sqlite")
	}
	if len(tables) == 0 {
		return usagef("init: give at least one --table")
	}
	raw, envName := *dsn, *dsnEnv
	if envName != "" {
		raw = os.Getenv(envName)
		if raw == "" {
			return usagef("init: environment variable %s is empty", envName)
		}
	}
	if raw == "" {
		return usagef("init: give --dsn or --dsn-env")
	}
	if envName == "" {
		envName = strings.ToUpper(*name) + "_DSN"
	}
	if *changes == "" {
		*changes = filepath.Join(filepath.Dir(*out), "changes.jsonl")
	}
	for _, f := range []string{*out, *changes} {
		if _, err := os.Stat(f); err == nil && !*force {
			return usagef("init: %s exists (give --force to overwrite it)", f)
		}
	}
	samples, err := sqlpoll.Sample(ctx, *typ, config.Secret(raw), tables, 1000)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	in := initcfg.Input{SourceName: *name, SourceType: *typ, DSNVar: envName}
	if *typ == sqlpoll.TypeSQLite {
		in.DSNDefault = raw // a path, no secret
	}
	for _, s := range samples {
		in.Samples = append(in.Samples, initcfg.Sample{Table: s.Table, Columns: s.Columns, Key: s.Key, Rows: s.Rows})
	}
	draft, err := initcfg.Make(in)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	// The draft must pass validate as written (with the DSN it was read from).
	cfg, err := config.Parse(*out, draft.Config, func(v string) (string, bool) {
		if v == envName {
			return raw, true
		}
		return os.LookupEnv(v)
	})
	if err == nil {
		_, err = rules.Compile(cfg)
	}
	if err != nil {
		return fmt.Errorf("init: the drafted config does not validate (a bug to report): %w", errors.Join(err))
	}
	if err := os.WriteFile(*out, draft.Config, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(*changes, draft.Changes, 0o600); err != nil {
		return err
	}
	for _, line := range draft.Summary {
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "wrote %s and %s (%d rule(s))\nnext: export %s=...; capisync validate --config %s --connect; capisync rules test --config %s --changes %s\n",
		*out, *changes, len(cfg.Rules), envName, *out, *out, *changes)
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
