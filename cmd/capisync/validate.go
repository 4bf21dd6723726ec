package main

import (
	"context"
	"fmt"
	"io"

	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/rules"
)

func validateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	file := fs.String("config", "", "config file")
	connect := fs.Bool("connect", false, "also reach every source and destination")
	if err := parse(fs, args, file); err != nil {
		return err
	}
	cfg, _, err := loadRules(*file)
	if err != nil {
		return err
	}
	if *connect {
		return usagef("validate --connect waits for the sources and delivery issues (#4, #6, #7); run without --connect to check the config")
	}
	fmt.Fprintf(stdout, "%s: ok (%d sources, %d destinations, %d rules)\n", cfg.File, len(cfg.Sources), len(cfg.Destinations), len(cfg.Rules))
	return nil
}

// loadRules loads and validates the config and compiles every rule.
func loadRules(file string) (*config.Config, *rules.Set, error) {
	cfg, err := config.Load(file)
	if err != nil {
		if _, ok := err.(config.Problems); ok {
			return nil, nil, err
		}
		return nil, nil, usagef("%v", err)
	}
	set, err := rules.Compile(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, set, nil
}
