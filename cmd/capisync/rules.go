package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/rules"
)

// rulesCmd is `capisync rules test`: one JSON line per event, exactly as
// it would be sent in the request's data array, in change then rule order.
func rulesCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: capisync rules test --config FILE --changes FILE.jsonl [--now TIME]"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return errHelp
	}
	if len(args) == 0 || args[0] != "test" {
		return usagef(usage)
	}
	fs := newFlags("rules test", stderr)
	file := fs.String("config", "", "config file")
	changesFile := fs.String("changes", "", "changes, one JSON object per line (- for stdin)")
	nowFlag := fs.String("now", "", "the clock, as RFC 3339: now() in rules and the commit time of a change that gives none (default: the system clock)")
	if err := parse(fs, args[1:], file); err != nil {
		return err
	}
	now := time.Now()
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339Nano, *nowFlag)
		if err != nil {
			return usagef("rules test: --now %q is not an RFC 3339 time such as 2026-11-20T10:00:00Z", *nowFlag)
		}
		now = t
	}
	if *changesFile == "" {
		return usagef("rules test: --changes FILE is required")
	}
	cfg, set, err := loadRules(*file)
	if err != nil {
		return err
	}
	if *nowFlag != "" {
		set.SetClock(func() time.Time { return now })
	}
	in := io.Reader(os.Stdin)
	if *changesFile != "-" {
		f, err := os.Open(*changesFile)
		if err != nil {
			return usagef("%v", err)
		}
		defer f.Close()
		in = f
	}
	changes, lines, err := rules.ReadChanges(in, now)
	if err != nil {
		return usagef("%s: %v", *changesFile, err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	failed, refused := 0, 0
	for i := range changes {
		c := &changes[i]
		if _, ok := cfg.Sources[c.Source]; !ok || !set.Reads(c.Source, c.Table) {
			fmt.Fprintf(stderr, "%s:%d: no rule reads source %q table %q\n", *changesFile, lines[i], c.Source, c.Table)
		}
		for _, res := range set.Eval(c) {
			if res.Err != nil {
				failed++
				if err := enc.Encode(map[string]any{"change": lines[i], "rule": res.Rule, "error": res.Err.Error()}); err != nil {
					return err
				}
				continue
			}
			for _, d := range res.Dropped {
				fmt.Fprintf(stderr, "%s:%d: rule %q: user_data.%s is not valid (%s) and was left out\n", *changesFile, lines[i], res.Rule, d.Key, d.Reason)
			}
			// The checks the daemon makes before queuing: an event that
			// fails one is dead-lettered, never sent. The age rule depends
			// on when it is sent, so it runs only with --now.
			check := metacapi.CheckShape(&res.Event)
			if check == nil && *nowFlag != "" {
				check = metacapi.Check(&res.Event, now)
			}
			if check != nil {
				refused++
				b, _ := capi.Marshal(&res.Event)
				fmt.Fprintf(stderr, "%s:%d: rule %q: this event would be dead-lettered, not sent: %v\n  %s\n", *changesFile, lines[i], res.Rule, check, b)
				continue
			}
			if err := enc.Encode(res.Event); err != nil {
				return err
			}
		}
	}
	if failed > 0 || refused > 0 {
		fmt.Fprintf(stderr, "capisync: %d rule error(s), %d event(s) Meta would refuse\n", failed, refused)
		return errSilent
	}
	return nil
}
