package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/capisync/capisync/internal/ops"
	"github.com/capisync/capisync/state"
)

// dlqCmd is `capisync dlq list|retry|drop`.
func dlqCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: capisync dlq list|retry|drop --config FILE [--destination NAME] [--id ID ... | --all] [--json]"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return errHelp
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "retry" && args[0] != "drop") {
		return usagef(usage)
	}
	verb := args[0]
	fs := newFlags("dlq "+verb, stderr)
	file := fs.String("config", "", "config file")
	dest := fs.String("destination", "", "only this destination")
	var ids idList
	fs.Var(&ids, "id", "dead letter id (repeatable)")
	all := fs.Bool("all", false, "every dead letter (of --destination, or of all)")
	asJSON := fs.Bool("json", false, "print JSON (list)")
	if err := parse(fs, args[1:], file); err != nil {
		return err
	}
	cfg, _, err := loadForInspection(*file)
	if err != nil {
		return err
	}
	if *dest != "" {
		if _, ok := cfg.Destinations[*dest]; !ok {
			return usagef("dlq: unknown destination %q", *dest)
		}
	}
	if verb == "list" {
		var letters []state.DeadLetter
		err := withStore(cfg, func(s state.Store) (err error) {
			letters, err = s.DeadLetters(*dest)
			return err
		}, func(c *ops.Client) (err error) {
			letters, err = c.DeadLetters(*dest)
			return err
		})
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetEscapeHTML(false)
			for _, dl := range letters {
				if err := enc.Encode(dl); err != nil {
					return err
				}
			}
			return nil
		}
		printDead(stdout, letters)
		return nil
	}
	if (len(ids) == 0) == !*all {
		return usagef("dlq %s: give --id ID (repeatable) or --all", verb)
	}
	var sel []uint64
	if !*all {
		sel = ids
	}
	dests := []string{*dest}
	if *dest == "" {
		switch {
		case *all:
			dests = sortedNames(cfg.Destinations)
		case len(cfg.Destinations) == 1:
			dests = sortedNames(cfg.Destinations) // ids are per destination; there is one
		default:
			return usagef("dlq %s: --id needs --destination (ids are per destination, and the config has %d)", verb, len(cfg.Destinations))
		}
	}
	total := 0
	for _, d := range dests {
		err := withStore(cfg, func(s state.Store) error {
			n, err := pick(verb, s.RetryDead, s.DropDead)(d, sel)
			total += n
			return err
		}, func(c *ops.Client) error {
			n, err := pick(verb, c.RetryDead, c.DropDead)(d, sel)
			total += n
			return err
		})
		if err != nil {
			return err
		}
	}
	past := map[string]string{"retry": "moved back to the outbox", "drop": "dropped"}[verb]
	fmt.Fprintf(stdout, "%d dead letter(s) %s\n", total, past)
	if !*all && total < len(sel) {
		return fmt.Errorf("dlq %s: %d of the %d id(s) given are not dead letters of destination %s (see capisync dlq list)", verb, len(sel)-total, len(sel), dests[0])
	}
	return nil
}

func pick(verb string, retry, drop func(string, []uint64) (int, error)) func(string, []uint64) (int, error) {
	if verb == "retry" {
		return retry
	}
	return drop
}

func printDead(w io.Writer, letters []state.DeadLetter) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDESTINATION\tRULE\tEVENT\tEVENT_ID\tATTEMPTS\tDEAD-LETTERED\tREASON")
	for _, d := range letters {
		name, id := "-", "-"
		if d.Event != nil {
			name, id = d.Event.EventName, d.Event.EventID
		}
		reason := d.Reason
		if d.FBTraceID != "" && !strings.Contains(reason, d.FBTraceID) {
			reason += " [fbtrace_id " + d.FBTraceID + "]"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Destination, d.Rule, name, id, d.Attempts, d.Created.Format(time.RFC3339), reason)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d dead letter(s)\n", len(letters))
}

// idList is a repeatable --id flag.
type idList []uint64

func (l *idList) String() string { return fmt.Sprint(*l) }

func (l *idList) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(part), 10, 64)
		if err != nil {
			return fmt.Errorf("id %q is not a number", part)
		}
		*l = append(*l, n)
	}
	return nil
}
