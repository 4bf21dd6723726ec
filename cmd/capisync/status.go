package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/ops"
	"github.com/capisync/capisync/state"
	"github.com/capisync/capisync/state/stores"
)

// statusCmd is `capisync status`: from the store file when no daemon
// holds it, else from the daemon's /status.
func statusCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	file := fs.String("config", "", "config file")
	asJSON := fs.Bool("json", false, "print JSON")
	window := fs.Duration("window", ops.DefaultWindow, "match-key coverage over this past window (hourly buckets, kept 8 days)")
	htmlFile := fs.String("html", "", "write the status page (as the daemon serves it at /) to this file")
	if err := parse(fs, args, file); err != nil {
		return err
	}
	cfg, set, err := loadForInspection(*file)
	if err != nil {
		return err
	}
	var rep ops.Report
	var dead []state.DeadLetter
	err = withStore(cfg, func(s state.Store) error {
		st, err := s.Status()
		if err != nil {
			return err
		}
		rep = ops.Build(st, sourceTypes(cfg), sortedNames(cfg.Destinations), set.Names(), *window, nil)
		dead, err = s.DeadLetters("")
		return err
	}, func(c *ops.Client) error {
		if rep, err = c.Status(*window); err != nil {
			return err
		}
		dead, err = c.DeadLetters("")
		return err
	})
	if err != nil {
		return err
	}
	if *htmlFile != "" {
		var buf bytes.Buffer
		if err := ops.WritePage(&buf, ops.PageData{Report: rep, DeadLetters: dead}); err != nil {
			return err
		}
		if err := os.WriteFile(*htmlFile, buf.Bytes(), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", *htmlFile)
		return nil
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
func withStore(cfg *config.Config, local func(state.Store) error, remote func(*ops.Client) error) error {
	s, err := stores.Open(context.Background(), cfg.State)
	if errors.Is(err, state.ErrLocked) {
		if cfg.HTTP.Listen == "" {
			return fmt.Errorf("%w; set http.listen in the config so that this command can ask the running daemon", err)
		}
		return remote(ops.NewClient(cfg.HTTP.Listen, cfg.HTTP.Token.Reveal()))
	}
	if err != nil {
		return err
	}
	err = local(s)
	s.Close()
	if errors.Is(err, state.ErrLocked) && cfg.HTTP.Listen != "" {
		// A shared state whose leader is running: ask the daemon.
		return remote(ops.NewClient(cfg.HTTP.Listen, cfg.HTTP.Token.Reveal()))
	}
	return err
}
