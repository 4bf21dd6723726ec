package ops

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/state"
)

// MatchKeys are the user_data keys whose coverage drives Meta's Event
// Match Quality, reported per rule.
var MatchKeys = []string{"em", "ph", "fn", "ln", "external_id", "fbc", "fbp", "client_ip_address", "client_user_agent", "lead_id", "ctwa_clid"}

// Metrics is capisync's Prometheus instrumentation, on a private registry.
// Names follow Prometheus conventions: capisync_<noun>_<unit|total>. No
// label or value ever holds a token, a password or personal data: labels
// are names from the config, Meta's error codes and event names.
type Metrics struct {
	reg *prometheus.Registry

	changes      *prometheus.CounterVec
	ruleMatches  *prometheus.CounterVec
	ruleEvents   *prometheus.CounterVec
	ruleErrors   *prometheus.CounterVec
	ruleRejected *prometheus.CounterVec
	ruleKeys     *prometheus.CounterVec
	ruleDropped  *prometheus.CounterVec
	ruleRepeats  *prometheus.CounterVec
	ruleWhy      *prometheus.CounterVec
	delivered    *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	retried      *prometheus.CounterVec
	requests     *prometheus.CounterVec
	messages     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
}

// Snapshot is what the gauges read at scrape time.
type Snapshot func() (Gauges, error)

// Gauges are point-in-time values.
type Gauges struct {
	Status  state.Status
	Paused  map[string]bool
	Sources map[string]SourceGauges
}

// SourceGauges are a source's lag figures; negative means unknown.
type SourceGauges struct {
	Connected        bool
	RetainedWALBytes float64 // logical replication
	LastCommitAge    float64 // logical replication: seconds since the last commit read
	LastPoll         float64 // polling: unix time of the last successful poll
	RowsScanned      float64 // polling: rows read since start
	// Binlog: bytes the server has written after the last checkpoint, and
	// seconds since the last transaction read (-1: not a binlog source, or
	// not known yet).
	BinlogBehindBytes float64
	BinlogCommitAge   float64
}

// NewMetrics registers the metrics; snap feeds the gauges.
func NewMetrics(snap Snapshot) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		reg.MustRegister(c)
		return c
	}
	m := &Metrics{
		reg:          reg,
		changes:      f("capisync_changes_read_total", "Row changes read from a source.", "source", "table", "op"),
		ruleMatches:  f("capisync_rule_matches_total", "Changes a rule's when held for (events built plus failures).", "rule"),
		ruleEvents:   f("capisync_rule_events_total", "Events a rule built.", "rule"),
		ruleErrors:   f("capisync_rule_errors_total", "Rule evaluations that failed on a row (dead-lettered).", "rule"),
		ruleRejected: f("capisync_rule_events_rejected_total", "Events dead-lettered before queuing because Meta would refuse them.", "rule"),
		ruleKeys:     f("capisync_rule_match_key_events_total", "Events of a rule that carry a user_data key.", "rule", "key"),
		ruleDropped:  f("capisync_rule_dropped_keys_total", "user_data values left out as invalid (never sent raw).", "rule", "key"),
		ruleWhy:      f("capisync_rule_dropped_values_total", "user_data values left out as invalid, by reason (a phone number without country code, ...).", "rule", "key", "reason"),
		ruleRepeats:  f("capisync_rule_repeats_refused_total", "Events not queued: the same event_name and event_id was queued or sent within 48 hours.", "rule"),
		delivered:    f("capisync_events_delivered_total", "Events Meta accepted.", "destination", "event_name"),
		deadLettered: f("capisync_events_dead_lettered_total", "Events moved to the dead letters.", "destination", "event_name"),
		retried:      f("capisync_events_retried_total", "Events that needed another attempt (or wait queued while paused).", "destination", "event_name"),
		requests:     f("capisync_graph_requests_total", "Graph API requests by outcome class and Meta error code.", "destination", "outcome", "code"),
		messages:     f("capisync_graph_messages_total", "Messages (warnings) in Meta's answers to accepted requests.", "destination"),
	}
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "capisync_graph_request_duration_seconds", Help: "Graph API request latency.",
		Buckets: []float64{.025, .05, .1, .25, .5, 1, 1.5, 2.5, 5, 10, 30},
	}, []string{"destination"})
	reg.MustRegister(m.duration)
	if snap != nil {
		reg.MustRegister(&gaugeCollector{snap: snap})
	}
	return m
}

// KnownRule is what the config says of a rule, for Init.
type KnownRule struct {
	Name, Event string
	Keys        []string // its user_data keys
	Dests       []string // the destinations it sends to
}

// Init exports, at zero, the counters whose labels the config already
// knows (per rule, key, destination and event name), so that they exist
// from the first scrape: rate() and alerts on them work before the first
// event, and a dashboard shows 0 rather than nothing.
func (m *Metrics) Init(rules []KnownRule) {
	for _, r := range rules {
		m.ruleMatches.WithLabelValues(r.Name)
		m.ruleEvents.WithLabelValues(r.Name)
		m.ruleErrors.WithLabelValues(r.Name)
		m.ruleRejected.WithLabelValues(r.Name)
		m.ruleRepeats.WithLabelValues(r.Name)
		for _, k := range r.Keys {
			m.ruleKeys.WithLabelValues(r.Name, k)
			m.ruleDropped.WithLabelValues(r.Name, k)
		}
		for _, d := range r.Dests {
			m.delivered.WithLabelValues(d, r.Event)
			m.deadLettered.WithLabelValues(d, r.Event)
			m.retried.WithLabelValues(d, r.Event)
		}
	}
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveCommit counts what a commit made of its changes, from the
// counters the pipeline computed for the store.
func (m *Metrics) ObserveCommit(batches []state.Batch) {
	for _, b := range batches {
		for name, n := range b.Counters {
			v := float64(n)
			parts := strings.Split(name, "/")
			switch {
			case parts[0] == "changes" && len(parts) == 4:
				m.changes.WithLabelValues(parts[1], parts[2], parts[3]).Add(v)
			case parts[0] == "rule_events" && len(parts) == 2:
				m.ruleEvents.WithLabelValues(parts[1]).Add(v)
				m.ruleMatches.WithLabelValues(parts[1]).Add(v)
			case parts[0] == "rule_errors" && len(parts) == 2:
				m.ruleErrors.WithLabelValues(parts[1]).Add(v)
				m.ruleMatches.WithLabelValues(parts[1]).Add(v)
			case parts[0] == "rule_rejected" && len(parts) == 2:
				m.ruleRejected.WithLabelValues(parts[1]).Add(v)
			case parts[0] == "rule_keys" && len(parts) == 3:
				m.ruleKeys.WithLabelValues(parts[1], parts[2]).Add(v)
			case parts[0] == "rule_dropped" && len(parts) == 3:
				m.ruleDropped.WithLabelValues(parts[1], parts[2]).Add(v)
			case parts[0] == state.DroppedReasonKind && len(parts) == 4:
				m.ruleWhy.WithLabelValues(parts[1], parts[2], parts[3]).Add(v)
			}
		}
	}
}

// ObserveRepeats counts the events a commit did not queue as repeats.
func (m *Metrics) ObserveRepeats(repeats map[string]int) {
	for rule, n := range repeats {
		m.ruleRepeats.WithLabelValues(rule).Add(float64(n))
	}
}

// ObserveSettle counts delivery outcomes.
func (m *Metrics) ObserveSettle(dest string, outcomes []metacapi.Outcome) {
	// Counted per (status, event name) first: a settle holds up to a
	// batch of events, mostly of one name, and each labelled counter
	// lookup hashes its labels.
	type key struct {
		status metacapi.Status
		name   string
	}
	counts := map[key]float64{}
	for _, o := range outcomes {
		counts[key{o.Status, o.EventName}]++
		if o.Status != metacapi.Deferred && o.Attempts > 1 {
			counts[key{metacapi.Deferred, o.EventName}]++ // retried, then settled
		}
	}
	for k, n := range counts {
		switch k.status {
		case metacapi.Delivered:
			m.delivered.WithLabelValues(dest, k.name).Add(n)
		case metacapi.DeadLettered:
			m.deadLettered.WithLabelValues(dest, k.name).Add(n)
		case metacapi.Deferred:
			m.retried.WithLabelValues(dest, k.name).Add(n)
		}
	}
}

// Requests returns a metacapi.Observer for dest.
func (m *Metrics) Requests(dest string) metacapi.Observer { return requestObserver{m, dest} }

type requestObserver struct {
	m    *Metrics
	dest string
}

func (o requestObserver) Messages(msgs []string) {
	o.m.messages.WithLabelValues(o.dest).Add(float64(len(msgs)))
}

func (o requestObserver) Request(outcome string, code int, took time.Duration, _ int) {
	o.m.requests.WithLabelValues(o.dest, outcome, strconv.Itoa(code)).Inc()
	if took > 0 {
		o.m.duration.WithLabelValues(o.dest).Observe(took.Seconds())
	}
}

// gaugeCollector reads point-in-time values at scrape time.
type gaugeCollector struct{ snap Snapshot }

var (
	dOutboxDepth = prometheus.NewDesc("capisync_outbox_depth", "Events queued for a destination.", []string{"destination"}, nil)
	dOutboxAge   = prometheus.NewDesc("capisync_outbox_oldest_age_seconds", "Age of the oldest queued event (0 when empty).", []string{"destination"}, nil)
	dDead        = prometheus.NewDesc("capisync_dead_letters", "Dead letters held for a destination.", []string{"destination"}, nil)
	dPaused      = prometheus.NewDesc("capisync_destination_paused", "1 while a destination is paused (token or permission refused).", []string{"destination"}, nil)
	dCheckpoint  = prometheus.NewDesc("capisync_checkpoint_age_seconds", "Time since a source's last checkpoint.", []string{"source"}, nil)
	dConnected   = prometheus.NewDesc("capisync_source_connected", "1 while a source is connected.", []string{"source"}, nil)
	dRetained    = prometheus.NewDesc("capisync_postgres_slot_retained_wal_bytes", "WAL the replication slot retains.", []string{"source"}, nil)
	dCommitAge   = prometheus.NewDesc("capisync_postgres_last_commit_age_seconds", "Time since the last transaction read from the slot.", []string{"source"}, nil)
	dBinBehind   = prometheus.NewDesc("capisync_binlog_behind_bytes", "Binlog the server has written after the source's last checkpoint.", []string{"source"}, nil)
	dBinAge      = prometheus.NewDesc("capisync_binlog_last_commit_age_seconds", "Time since the last transaction read from the binlog.", []string{"source"}, nil)
	dLastPoll    = prometheus.NewDesc("capisync_poll_last_success_timestamp_seconds", "Unix time of the last successful poll.", []string{"source"}, nil)
	dRows        = prometheus.NewDesc("capisync_poll_rows_scanned_total", "Rows read by polls.", []string{"source"}, nil)
	dCoverage    = prometheus.NewDesc("capisync_rule_match_key_coverage_ratio", "Share of a rule's events carrying a match key, since the store was created.", []string{"rule", "key"}, nil)
)

func (g *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dOutboxDepth, dOutboxAge, dDead, dPaused, dCheckpoint, dConnected, dRetained, dCommitAge, dBinBehind, dBinAge, dLastPoll, dRows, dCoverage} {
		ch <- d
	}
}

func (g *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	s, err := g.snap()
	if err != nil {
		return
	}
	now := time.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// Every destination the daemon runs (Paused names them all), also
	// one whose outbox was never written: it is empty, not unknown.
	dests := map[string]state.OutboxStatus{}
	for dest := range s.Paused {
		dests[dest] = s.Status.Destinations[dest]
	}
	for dest, o := range s.Status.Destinations {
		dests[dest] = o
	}
	for dest, o := range dests {
		gauge(dOutboxDepth, float64(o.Depth), dest)
		age := 0.0
		if !o.OldestEnqueued.IsZero() && o.Depth > 0 {
			age = now.Sub(o.OldestEnqueued).Seconds()
		}
		gauge(dOutboxAge, age, dest)
		gauge(dDead, float64(o.DeadLetters), dest)
	}
	for dest, p := range s.Paused {
		gauge(dPaused, b2f(p), dest)
	}
	for src, cp := range s.Status.Checkpoints {
		gauge(dCheckpoint, now.Sub(cp.At).Seconds(), src)
	}
	for src, sg := range s.Sources {
		gauge(dConnected, b2f(sg.Connected), src)
		if sg.RetainedWALBytes >= 0 {
			gauge(dRetained, sg.RetainedWALBytes, src)
		}
		if sg.LastCommitAge >= 0 {
			gauge(dCommitAge, sg.LastCommitAge, src)
		}
		if sg.BinlogBehindBytes >= 0 {
			gauge(dBinBehind, sg.BinlogBehindBytes, src)
		}
		if sg.BinlogCommitAge >= 0 {
			gauge(dBinAge, sg.BinlogCommitAge, src)
		}
		if sg.LastPoll > 0 {
			gauge(dLastPoll, sg.LastPoll, src)
		}
		if sg.RowsScanned >= 0 {
			ch <- prometheus.MustNewConstMetric(dRows, prometheus.CounterValue, sg.RowsScanned, src)
		}
	}
	for name, total := range s.Status.Counters {
		rule, ok := strings.CutPrefix(name, "rule_events/")
		if !ok || total == 0 {
			continue
		}
		for _, key := range MatchKeys {
			gauge(dCoverage, float64(s.Status.Counters["rule_keys/"+rule+"/"+key])/float64(total), rule, key)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
