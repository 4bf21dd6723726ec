package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/capisync/capisync/connectors/mysqlbinlog"
	"github.com/capisync/capisync/connectors/postgres"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/state"
	"github.com/capisync/capisync/state/stores"
)

// slotCmd is `capisync slot drop|reset`. drop is for a DBA retiring a
// logical source, since capisync never drops its slot by itself (a
// dropped slot loses the position; an abandoned one retains WAL). reset
// forgets the store's checkpoint of a source whose slot is gone, for an
// operator who accepts the gap: the next start makes a new slot and reads
// from then on.
func slotCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: capisync slot drop --config FILE --source NAME [--publication]\n       capisync slot reset --config FILE --source NAME"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return errHelp
	}
	if len(args) == 0 || (args[0] != "drop" && args[0] != "reset") {
		return usagef(usage)
	}
	verb := args[0]
	fs := newFlags("slot "+verb, stderr)
	file := fs.String("config", "", "config file")
	source := fs.String("source", "", "the postgres source")
	pub := false
	if verb == "drop" {
		fs.BoolVar(&pub, "publication", false, "drop the publication too")
	}
	if err := parse(fs, args[1:], file); err != nil {
		return err
	}
	cfg, _, err := loadRules(*file)
	if err != nil {
		return err
	}
	src, ok := cfg.Sources[*source]
	if verb == "reset" && ok && src.Type == mysqlbinlog.Type {
		// A binlog reader holds no slot: forgetting the checkpoint is all.
		return resetCheckpoint(cfg, *source, "", stdout)
	}
	if !ok || src.Type != postgres.Type {
		return usagef("slot %s: --source must name a source of type postgres (or mysql_binlog, for reset)", verb)
	}
	pg := src.Options.(*postgres.Config)
	if verb == "reset" {
		return resetCheckpoint(cfg, *source, pg.Slot, stdout)
	}
	s, err := postgres.New(*source, *src, nil, postgres.Options{})
	if err != nil {
		return err
	}
	if err := s.DropSlot(ctx, pub); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dropped replication slot %s", pg.Slot)
	if pub {
		fmt.Fprintf(stdout, " and publication %s", pg.Publication)
	}
	fmt.Fprintln(stdout)
	return nil
}

// resetCheckpoint forgets source's checkpoint in the store (the daemon must
// be stopped: it holds the store).
func resetCheckpoint(cfg *config.Config, source, slot string, stdout io.Writer) error {
	st, err := stores.Open(context.Background(), cfg.State)
	if errors.Is(err, state.ErrLocked) {
		return fmt.Errorf("%w: stop capisync before resetting a checkpoint", err)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	pos, err := st.ForgetCheckpoint(source)
	if errors.Is(err, state.ErrLocked) {
		return fmt.Errorf("%w: stop capisync before resetting a checkpoint", err)
	}
	if err != nil {
		return fmt.Errorf("reset the checkpoint of %s: %w", source, err)
	}
	if pos == nil {
		fmt.Fprintf(stdout, "source %s had no checkpoint: nothing to reset\n", source)
		return nil
	}
	if slot == "" {
		fmt.Fprintf(stdout, "forgot the checkpoint of source %s (%s): the next start reads the binlog from the server's position then; changes after %s and before that are not read\n", source, pos, pos)
		return nil
	}
	fmt.Fprintf(stdout, "forgot the checkpoint of source %s (LSN %s): the next start creates slot %s if it is missing and reads from then on; changes after %s and before that are not read\n", source, pos, slot, pos)
	return nil
}
