package main

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime/pprof"

	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/gctune"
	"github.com/capisync/capisync/state/stores"
)

// runCmd is `capisync run`: the daemon. It exits 0 after a clean shutdown
// on SIGINT/SIGTERM.
func runCmd(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	file := fs.String("config", "", "config file")
	if err := parse(fs, args, file); err != nil {
		return err
	}
	cfg, set, err := loadRules(*file)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	for _, n := range cfg.Notes() {
		log.Warn("config: " + n.Error())
	}
	gctune.Apply()
	if path := os.Getenv("CAPISYNC_CPUPROFILE"); path != "" {
		// A debugging aid: a CPU profile of the whole run.
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	store, err := stores.Open(ctx, cfg.State)
	if err != nil {
		return err
	}
	defer store.Close()
	d, err := wire(cfg, set, store, log)
	if err != nil {
		return err
	}
	defer d.close()
	where := cfg.State.Path
	if cfg.State.Type == config.StatePostgres {
		where = "postgres schema " + cfg.State.Schema
	}
	log.Info("capisync running", "config", cfg.File, "state", where, "sources", len(cfg.Sources), "destinations", len(cfg.Destinations), "rules", set.Len())
	if err := d.run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("capisync stopped")
	return nil
}
