package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/ops"
	"github.com/capisync/capisync/state"
)

// statusCmd is `capisync status`: from the store file when no daemon
// holds it, else from the daemon's /status.
func statusCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	file := fs.String("config", "", "config file")
	asJSON := fs.Bool("json", false, "print JSON")
	window := fs.Duration("window", ops.DefaultWindow, "match-key coverage over this past window (hourly buckets, kept 8 days)")
	if err := parse(fs, args, file); err != nil {
		return err
	}
	cfg, set, err := loadForInspection(*file)
	if err != nil {
		return err
	}
	var rep ops.Report
	err = withStore(cfg, func(s *state.Store) error {
		st, err := s.Status()
		rep = ops.Build(st, sourceTypes(cfg), sortedNames(cfg.Destinations), set.Names(), *window, nil)
		return err
	}, func(c *ops.Client) error {
		rep, err = c.Status(*window)
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.Print(stdout)
	return nil
}

// withStore runs local on the store file, or remote on the running daemon
// when the daemon holds the file (bbolt allows one process).
func withStore(cfg *config.Config, local func(*state.Store) error, remote func(*ops.Client) error) error {
	s, err := state.Open(cfg.State.Path, state.Options{})
	if errors.Is(err, state.ErrLocked) {
		if cfg.HTTP.Listen == "" {
			return fmt.Errorf("%w; set http.listen in the config so that this command can ask the running daemon", err)
		}
		return remote(ops.NewClient(cfg.HTTP.Listen, cfg.HTTP.Token.Reveal()))
	}
	if err != nil {
		return err
	}
	defer s.Close()
	return local(s)
}
