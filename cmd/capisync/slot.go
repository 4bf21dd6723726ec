package main

import (
	"context"
	"fmt"
	"io"

	"github.com/capisync/capisync/connectors/postgres"
	"github.com/capisync/capisync/internal/config"
)

// slotCmd is `capisync slot drop`: for a DBA retiring a logical source,
// since capisync never drops its slot by itself (a dropped slot loses the
// position; an abandoned one retains WAL).
func slotCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: capisync slot drop --config FILE --source NAME [--publication]"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return errHelp
	}
	if len(args) == 0 || args[0] != "drop" {
		return usagef(usage)
	}
	fs := newFlags("slot drop", stderr)
	file := fs.String("config", "", "config file")
	source := fs.String("source", "", "the postgres source whose slot to drop")
	pub := fs.Bool("publication", false, "drop the publication too")
	if err := parse(fs, args[1:], file); err != nil {
		return err
	}
	cfg, _, err := loadRules(*file)
	if err != nil {
		return err
	}
	src, ok := cfg.Sources[*source]
	if !ok || src.Type != config.TypePostgres {
		return usagef("slot drop: --source must name a source of type postgres")
	}
	s, err := postgres.New(*source, *src, nil, postgres.Options{})
	if err != nil {
		return err
	}
	if err := s.DropSlot(ctx, *pub); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dropped replication slot %s", src.Slot)
	if *pub {
		fmt.Fprintf(stdout, " and publication %s", src.Publication)
	}
	fmt.Fprintln(stdout)
	return nil
}
