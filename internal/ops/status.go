// Package ops is what operators see of a running capisync: the status
// report (for `capisync status` and /status), dead-letter operations over
// HTTP (so `capisync dlq` works while the daemon holds the store), health
// and readiness, and Prometheus metrics.
package ops

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/capisync/capisync/state"
)

// Report is the status of a capisync: checkpoints, outboxes, rules.
type Report struct {
	Running bool `json:"running"` // read from the daemon (true) or the store file (false)
	// Role, with a state several daemons share: leader, standby or
	// stepping down; Leader names who leads.
	Role         string       `json:"role,omitempty"`
	Leader       string       `json:"leader,omitempty"`
	Generated    time.Time    `json:"generated"`
	Sources      []SourceInfo `json:"sources"`
	Destinations []DestInfo   `json:"destinations"`
	Rules        []RuleInfo   `json:"rules"`
	Backpressure string       `json:"backpressure,omitempty"`
	Window       string       `json:"coverage_window"` // of the Window* rule figures
}

// SourceInfo is one source's status.
type SourceInfo struct {
	Name         string    `json:"name"`
	Type         string    `json:"type"`
	Checkpoint   string    `json:"checkpoint,omitempty"`
	CheckpointAt time.Time `json:"checkpoint_at,omitzero"`
	Connected    *bool     `json:"connected,omitempty"` // known only while running
	LastError    string    `json:"last_error,omitempty"`
	Lag          string    `json:"lag,omitempty"`
	Changes      int64     `json:"changes"`
}

// DestInfo is one destination's status.
type DestInfo struct {
	Name        string    `json:"name"`
	Depth       int64     `json:"outbox_depth"`
	Oldest      time.Time `json:"oldest_queued,omitzero"`
	DeadLetters int64     `json:"dead_letters"`
	Paused      bool      `json:"paused"`
	Reason      string    `json:"reason,omitempty"`
}

// RuleInfo is one rule's counts since the store was created, and over
// the report's window (for match-key coverage).
type RuleInfo struct {
	Name   string `json:"name"`
	Events int64  `json:"events"`
	Errors int64  `json:"errors"`
	// Repeats are events not queued because the same event_name and
	// event_id was queued or sent within the last 48 hours.
	Repeats int64 `json:"repeats_refused"`
	// Refused are events dead-lettered before sending (Meta would have
	// refused them; the dead letters say why).
	Refused int64 `json:"refused_before_sending"`
	// Hourly are the rule's events in each of the last 24 hours, oldest
	// first.
	Hourly  []int64          `json:"events_by_hour,omitempty"`
	Dropped map[string]int64 `json:"dropped_invalid_keys,omitempty"`
	// DroppedWhy counts the values left out by key and reason, as
	// "ph: a phone number without country code (set default_country)".
	DroppedWhy map[string]int64 `json:"dropped_invalid_values,omitempty"`
	Keys       map[string]int64 `json:"match_keys,omitempty"` // events carrying each user_data key

	WindowEvents  int64            `json:"window_events"`
	WindowErrors  int64            `json:"window_errors"`
	WindowKeys    map[string]int64 `json:"window_match_keys,omitempty"`
	WindowDropped map[string]int64 `json:"window_dropped_invalid_keys,omitempty"`
}

// Coverage is the share of the rule's events in the window carrying key.
func (r RuleInfo) Coverage(key string) float64 {
	if r.WindowEvents == 0 {
		return 0
	}
	return float64(r.WindowKeys[key]) / float64(r.WindowEvents)
}

// Live is what only a running daemon knows.
type Live struct {
	Source      func(name string) (connected bool, lastError, lag string)
	Destination func(name string) (ok bool, reason string)
	Blocked     func() string
}

// Build makes a report from the store's status and, when running, live
// information. sources maps names to types; rules lists rule names in
// config order; dests lists destination names.
func Build(st state.Status, sources map[string]string, dests, rules []string, window time.Duration, live *Live) Report {
	r := Report{Running: live != nil, Generated: time.Now().UTC(), Window: window.String()}
	fromHour := time.Now().Add(-window).Unix() / 3600
	names := make([]string, 0, len(sources))
	for n := range sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		si := SourceInfo{Name: n, Type: sources[n]}
		if cp, ok := st.Checkpoints[n]; ok {
			si.Checkpoint, si.CheckpointAt = printable(cp.Position), cp.At
		}
		for k, v := range st.Counters {
			if strings.HasPrefix(k, "changes/"+n+"/") {
				si.Changes += v
			}
		}
		if live != nil && live.Source != nil {
			c, e, lag := live.Source(n)
			si.Connected, si.LastError, si.Lag = &c, e, lag
		}
		r.Sources = append(r.Sources, si)
	}
	for _, d := range dests {
		o := st.Destinations[d]
		di := DestInfo{Name: d, Depth: o.Depth, Oldest: o.OldestEnqueued, DeadLetters: o.DeadLetters}
		if live != nil && live.Destination != nil {
			ok, reason := live.Destination(d)
			di.Paused, di.Reason = !ok, reason
		}
		r.Destinations = append(r.Destinations, di)
	}
	for _, name := range rules {
		ri := RuleInfo{Name: name, Events: st.Counters["rule_events/"+name], Errors: st.Counters["rule_errors/"+name], Repeats: st.Counters[state.RepeatCounter(name)],
			Refused: st.Counters["rule_rejected/"+name], Hourly: make([]int64, 24), WindowKeys: map[string]int64{}, WindowDropped: map[string]int64{}}
		thisHour := time.Now().Unix() / 3600
		for k, v := range st.Counters {
			if hour, rest, ok := cutHour(k); ok && rest == "rule_events/"+name && thisHour-hour >= 0 && thisHour-hour < 24 {
				ri.Hourly[23-(thisHour-hour)] += v
			}
			if hour, rest, ok := cutHour(k); ok && hour >= fromHour {
				switch {
				case rest == "rule_events/"+name:
					ri.WindowEvents += v
				case rest == "rule_errors/"+name:
					ri.WindowErrors += v
				case strings.HasPrefix(rest, "rule_keys/"+name+"/"):
					ri.WindowKeys[strings.TrimPrefix(rest, "rule_keys/"+name+"/")] += v
				case strings.HasPrefix(rest, "rule_dropped/"+name+"/"):
					ri.WindowDropped[strings.TrimPrefix(rest, "rule_dropped/"+name+"/")] += v
				}
				continue
			}
			if rest, ok := strings.CutPrefix(k, state.DroppedReasonKind+"/"+name+"/"); ok {
				if key, why, ok := strings.Cut(rest, "/"); ok {
					if ri.DroppedWhy == nil {
						ri.DroppedWhy = map[string]int64{}
					}
					ri.DroppedWhy[key+": "+why] = v
				}
			}
			if key, ok := strings.CutPrefix(k, "rule_dropped/"+name+"/"); ok {
				if ri.Dropped == nil {
					ri.Dropped = map[string]int64{}
				}
				ri.Dropped[key] = v
			}
			if key, ok := strings.CutPrefix(k, "rule_keys/"+name+"/"); ok {
				if ri.Keys == nil {
					ri.Keys = map[string]int64{}
				}
				ri.Keys[key] = v
			}
		}
		r.Rules = append(r.Rules, ri)
	}
	if live != nil && live.Blocked != nil {
		r.Backpressure = live.Blocked()
	}
	return r
}

// cutHour splits an hourly counter name h/<hour>/<name>.
func cutHour(name string) (int64, string, bool) {
	rest, ok := strings.CutPrefix(name, "h/")
	if !ok {
		return 0, "", false
	}
	h, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.ParseInt(h, 10, 64)
	return n, rest, err == nil
}

// printable shows a position as text when it is, else as hex.
func printable(p []byte) string {
	s := string(p)
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' }) {
		s = fmt.Sprintf("%x", p)
	}
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// Print writes the report for a terminal.
func (r Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	mode := "store file (daemon not running)"
	if r.Running {
		mode = "running daemon"
	}
	fmt.Fprintf(tw, "capisync status, from the %s, %s\n\n", mode, r.Generated.Format(time.RFC3339))
	fmt.Fprintln(tw, "SOURCE\tTYPE\tCONNECTED\tCHECKPOINTED\tLAG\tCHANGES\tCHECKPOINT")
	for _, s := range r.Sources {
		conn := "-"
		if s.Connected != nil {
			conn = fmt.Sprint(*s.Connected)
			if !*s.Connected && s.LastError != "" {
				conn += " (" + s.LastError + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.Type, conn, ago(s.CheckpointAt), dash(s.Lag), s.Changes, dash(s.Checkpoint))
	}
	fmt.Fprintln(tw, "\nDESTINATION\tQUEUED\tOLDEST\tDEAD LETTERS\tSTATE")
	for _, d := range r.Destinations {
		state := "delivering"
		if !r.Running {
			state = "-"
		}
		if d.Paused {
			state = "PAUSED: " + d.Reason
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", d.Name, d.Depth, ago(d.Oldest), d.DeadLetters, state)
	}
	fmt.Fprintln(tw, "\nRULE\tEVENTS\tERRORS\tREPEATS REFUSED (48H ID MEMORY)\tDROPPED INVALID KEYS")
	for _, ru := range r.Rules {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", ru.Name, ru.Events, ru.Errors, ru.Repeats, counts(ru.Dropped))
	}
	tw.Flush()
	printedWhy := false
	for _, ru := range r.Rules {
		for _, kw := range slices.Sorted(maps.Keys(ru.DroppedWhy)) {
			if !printedWhy {
				fmt.Fprintln(w, "\nuser_data values left out as invalid (never sent raw):")
				printedWhy = true
			}
			fmt.Fprintf(w, "  rule %s, %s: %d\n", ru.Name, kw, ru.DroppedWhy[kw])
		}
	}
	fmt.Fprintf(w, "\nMatch-key coverage over the last %s (share of each rule's events carrying the key; Meta's match quality follows it):\n", r.Window)
	fmt.Fprint(tw, "RULE\tEVENTS")
	for _, k := range MatchKeys {
		fmt.Fprint(tw, "\t"+k)
	}
	fmt.Fprintln(tw, "\tDROPPED INVALID")
	for _, ru := range r.Rules {
		fmt.Fprintf(tw, "%s\t%d", ru.Name, ru.WindowEvents)
		for _, k := range MatchKeys {
			if ru.WindowEvents == 0 {
				fmt.Fprint(tw, "\t-")
				continue
			}
			fmt.Fprintf(tw, "\t%.0f%%", 100*ru.Coverage(k))
		}
		fmt.Fprintf(tw, "\t%s\n", counts(ru.WindowDropped))
	}
	if r.Backpressure != "" {
		fmt.Fprintf(tw, "\nSources paused: %s\n", r.Backpressure)
	}
	tw.Flush()
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
