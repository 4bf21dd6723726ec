package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/ops"
	"github.com/capisync/capisync/internal/pipeline"
	"github.com/capisync/capisync/internal/slots"
	"github.com/capisync/capisync/rules"
	"github.com/capisync/capisync/state"
)

// daemon is everything `capisync run` starts, wired together.
type daemon struct {
	cfg      *config.Config
	rules    *rules.Set
	store    state.Store
	log      *slog.Logger
	pipeline *pipeline.Pipeline
	sources  map[string]runningSource
	dests    map[string]*metacapi.Destination
	metrics  *ops.Metrics
	closers  []io.Closer
	// With a shared store (lead.go): leader, standby or stepping down,
	// who leads, and how the lease stops the pipeline.
	role       atomic.Value // string
	leader     atomic.Value // string
	abort      chan error
	validUntil atomic.Pointer[time.Time] // the lease, on this machine's monotonic clock
}

// wire builds sources (from the table of source types, sources.go),
// destinations and the pipeline: no registration magic.
func wire(cfg *config.Config, set *rules.Set, store state.Store, log *slog.Logger) (*daemon, error) {
	d := &daemon{cfg: cfg, rules: set, store: store, log: log, sources: map[string]runningSource{}, dests: map[string]*metacapi.Destination{},
		abort: make(chan error, 1)}
	d.role.Store("leader") // a store of its own: always
	d.leader.Store("")
	d.metrics = ops.NewMetrics(d.gauges)
	d.metrics.Init(knownRules(cfg))
	// One set of slots for the CPU-bound steps of the pipeline and of the
	// polling sources (see package slots).
	cpu := slots.New(0)
	pc := pipeline.Config{Store: store, Rules: set, ShutdownTimeout: cfg.ShutdownTimeout.Duration, Logger: log, Slots: cpu, Abort: d.abort,
		OnCommit: func(b []state.Batch, res state.CommitResult) {
			d.metrics.ObserveCommit(b)
			d.metrics.ObserveRepeats(res.Repeats)
		},
		OnSettle: d.metrics.ObserveSettle}
	for _, name := range sortedNames(cfg.Sources) {
		src := cfg.Sources[name]
		kind, ok := sourceKinds[src.Type]
		if !ok {
			d.close()
			return nil, fmt.Errorf("source %s: unknown type %q", name, src.Type)
		}
		s, err := kind.build(sourceEnv{name: name, src: src, set: set, store: store, log: log, cpu: cpu})
		if err != nil {
			d.close()
			return nil, err
		}
		d.sources[name] = s
		d.closers = append(d.closers, s)
		pc.Sources = append(pc.Sources, pipeline.NamedSource{Name: name, Source: s})
	}
	for _, name := range sortedNames(cfg.Destinations) {
		dc := cfg.Destinations[name]
		switch dc.Type {
		case config.TypeMetaCAPI:
			opt := metacapi.Options{Logger: log, DryRunOut: os.Stdout, Observer: d.metrics.Requests(name)}
			if _, shared := store.(state.Leaser); shared {
				opt.Gate = d.maySend
			}
			m, err := metacapi.New(name, *dc, opt)
			if err != nil {
				d.close()
				return nil, err
			}
			d.dests[name] = m
			d.closers = append(d.closers, m)
			pc.Destinations = append(pc.Destinations, pipeline.NamedDestination{Name: name, Destination: m, MaxOutbox: int64(dc.MaxOutbox)})
		default:
			d.close()
			return nil, fmt.Errorf("destination %s: unknown type %q", name, dc.Type)
		}
	}
	p, err := pipeline.New(pc)
	if err != nil {
		d.close()
		return nil, err
	}
	d.pipeline = p
	return d, nil
}

// recent is the last events the destinations sent, for the status page.
func (d *daemon) recent() [][]byte {
	var out [][]byte
	for _, name := range sortedNames(d.dests) {
		out = append(out, d.dests[name].Recent()...)
	}
	return out
}

// knownRules is what the metrics need to know of the config's rules.
func knownRules(cfg *config.Config) []ops.KnownRule {
	var out []ops.KnownRule
	for _, r := range cfg.Rules {
		k := ops.KnownRule{Name: r.Name, Event: r.Event, Keys: sortedNames(r.UserData), Dests: []string{r.Destination}}
		if r.Destination == "" {
			k.Dests = sortedNames(cfg.Destinations)
		}
		out = append(out, k)
	}
	return out
}

func (d *daemon) close() {
	for _, c := range d.closers {
		c.Close()
	}
}

// gauges reads the point-in-time metrics.
func (d *daemon) gauges() (ops.Gauges, error) {
	st, err := d.store.Status()
	if err != nil {
		return ops.Gauges{}, err
	}
	g := ops.Gauges{Status: st, Paused: map[string]bool{}, Sources: map[string]ops.SourceGauges{}}
	for name, dest := range d.dests {
		ok, _ := dest.Health()
		g.Paused[name] = !ok
	}
	for name, s := range d.sources {
		g.Sources[name] = s.gauges()
	}
	return g, nil
}

// report builds the status report with live information.
func (d *daemon) report(window time.Duration) (ops.Report, error) {
	st, err := d.store.Status()
	if err != nil {
		return ops.Report{}, err
	}
	rep := ops.Build(st, sourceTypes(d.cfg), sortedNames(d.cfg.Destinations), d.rules.Names(), window, &ops.Live{
		Source: func(name string) (bool, string, string) {
			if s, ok := d.sources[name]; ok {
				return s.health()
			}
			return false, "not running", ""
		},
		Destination: func(name string) (bool, string) { return d.dests[name].Health() },
		Blocked:     d.pipeline.Blocked,
	})
	if _, shared := d.store.(state.Leaser); shared {
		rep.Role, rep.Leader = d.role.Load().(string), d.leader.Load().(string)
	}
	return rep, nil
}

// ready is /readyz: every source connected, every destination ready (not
// paused, not failing for more than metacapi.FailingTooLong), and room on
// the store's disk.
func (d *daemon) ready() (bool, []string) {
	if role := d.role.Load().(string); role != "leader" {
		return false, []string{fmt.Sprintf("%s: %s leads", role, cmp.Or(d.leader.Load().(string), "nobody yet"))}
	}
	var reasons []string
	for _, name := range sortedNames(d.cfg.Sources) {
		if ok, lastErr, _ := d.sources[name].health(); !ok {
			reasons = append(reasons, fmt.Sprintf("source %s not connected: %s", name, lastErr))
		}
	}
	for _, name := range sortedNames(d.cfg.Destinations) {
		if ok, why := d.dests[name].Ready(); !ok {
			reasons = append(reasons, fmt.Sprintf("destination %s %s", name, why))
		}
	}
	if full, why := d.pipeline.DiskFull(); full {
		reasons = append(reasons, why)
	}
	return len(reasons) == 0, reasons
}

// run runs the pipeline and the operations listener until ctx ends. A
// listener that cannot be bound is an error before anything starts; one
// that fails later stops the daemon with its error.
func (d *daemon) run(ctx context.Context) error {
	opsCtx, stopOps := context.WithCancel(context.Background())
	defer stopOps()
	opsErr := make(chan error, 1)
	if addr := d.cfg.HTTP.Listen; addr != "" {
		ln, err := ops.Listen(addr)
		if err != nil {
			return err
		}
		guard := ops.Guard{Token: d.cfg.HTTP.Token.Reveal(), Loopback: ops.IsLoopback(addr)}
		if guard.Token == "" && !guard.Loopback {
			d.log.Warn("http.listen is not a loopback address and http.token is not set: dead letters cannot be retried or dropped over HTTP and /debug/pprof is not served; set http.token to allow them", "listen", addr)
		}
		srv := &ops.Server{Status: d.report, DLQ: d.store, Ready: d.ready, Logger: d.log, Metrics: d.metrics.Handler(), Guard: guard, Recent: d.recent}
		go func() { opsErr <- ops.Serve(opsCtx, ln, srv.Handler(), d.log) }()
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-opsErr:
			if err != nil {
				cancel(fmt.Errorf("operations listener: %w", err))
			}
		case <-runCtx.Done():
		}
	}()
	var err error
	if l, ok := d.store.(state.Leaser); ok {
		err = d.lead(runCtx, l, d.pipeline.Run)
	} else {
		err = d.pipeline.Run(runCtx)
	}
	if cause := context.Cause(runCtx); cause != nil && ctx.Err() == nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

func bytesText(n int64) string {
	switch {
	case n < 0:
		return "? bytes"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sourceTypes(cfg *config.Config) map[string]string {
	out := map[string]string{}
	for n, s := range cfg.Sources {
		out[n] = s.Type
	}
	return out
}
