package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/rules"
	"github.com/capisync/capisync/state"
	"github.com/capisync/capisync/state/stores"
)

func validateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	file := fs.String("config", "", "config file")
	connect := fs.Bool("connect", false, "also reach every source and destination")
	if err := parse(fs, args, file); err != nil {
		return err
	}
	cfg, set, err := loadRules(*file)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d sources, %d destinations, %d rules)\n", cfg.File, len(cfg.Sources), len(cfg.Destinations), len(cfg.Rules))
	for _, n := range cfg.Notes() {
		fmt.Fprintf(stdout, "note: %s\n", n.Error())
	}
	if !*connect {
		return nil
	}
	return reachAll(ctx, cfg, set, stdout)
}

// reachAll connects to every source (checking tables, columns, slots and
// publications without changing anything) and every destination's host.
func reachAll(ctx context.Context, cfg *config.Config, set *rules.Set, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	failed := 0
	report := func(kind, name, note string, err error) {
		switch {
		case err != nil:
			failed++
			// A source's own errors may already name it.
			fmt.Fprintf(stdout, "%s %s: %s\n", kind, name, strings.TrimPrefix(err.Error(), kind+" "+name+": "))
		case note != "":
			fmt.Fprintf(stdout, "%s %s: ok (%s)\n", kind, name, note)
		default:
			fmt.Fprintf(stdout, "%s %s: ok\n", kind, name)
		}
	}
	if cfg.State.Type == config.StatePostgres {
		// Opening creates or checks the schema (as the daemon would),
		// which also proves the role may.
		st, err := stores.Open(ctx, cfg.State)
		note := ""
		if err == nil {
			if l, ok := st.(state.Leaser); ok {
				switch lease, lerr := l.Leader(ctx); {
				case lerr != nil:
					err = lerr
				case lease.Holder == "" || time.Now().After(lease.Expires):
					note = "schema " + cfg.State.Schema + "; no capisync leads"
				default:
					note = fmt.Sprintf("schema %s; %s leads (epoch %d)", cfg.State.Schema, lease.Holder, lease.Epoch)
				}
			}
			st.Close()
		}
		report("state", "postgres", note, err)
	}
	for _, name := range sortedNames(cfg.Sources) {
		src := cfg.Sources[name]
		kind, ok := sourceKinds[src.Type]
		if !ok {
			report("source", name, "", fmt.Errorf("unknown type %q", src.Type))
			continue
		}
		note, err := kind.verify(ctx, name, src, set)
		report("source", name, note, err)
	}
	for _, name := range sortedNames(cfg.Destinations) {
		d := cfg.Destinations[name]
		if d.DryRun {
			report("destination", name, "dry run: nothing to reach", nil)
			continue
		}
		// Reach the Graph API host without sending the token or an event;
		// the token is checked on the first delivery (a refused one pauses
		// the destination and turns /readyz red).
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.BaseURL, nil)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		report("destination", name, "host reachable; the token is checked on the first delivery", err)
	}
	if failed > 0 {
		return fmt.Errorf("%d source(s) or destination(s) cannot be reached", failed)
	}
	return nil
}

// loadRules loads and validates the config and compiles every rule.
func loadRules(file string) (*config.Config, *rules.Set, error) {
	return compileConfig(config.Load(file))
}

// loadForInspection is loadRules for status and dlq, which only read the
// store (or ask the daemon): secrets missing from their environment are
// not an error (see config.LoadForInspection).
func loadForInspection(file string) (*config.Config, *rules.Set, error) {
	return compileConfig(config.LoadForInspection(file))
}

func compileConfig(cfg *config.Config, err error) (*config.Config, *rules.Set, error) {
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
