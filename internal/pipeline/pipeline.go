package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/slots"
	"github.com/capisync/capisync/rules"
	"github.com/capisync/capisync/state"
)

// Source reads changes from a database.
type Source interface {
	// Run reads from the position after from (nil: the source's start)
	// and sends batches to out until ctx ends. It never closes out.
	Run(ctx context.Context, from cdc.Position, out chan<- cdc.Batch) error
	// Ack says everything up to pos is durable. It may be called while Run
	// runs, always in the order the batches were sent.
	Ack(ctx context.Context, pos cdc.Position) error
}

// Destination delivers queued events.
type Destination interface {
	Run(ctx context.Context, q metacapi.Queue) error
	Health() (ok bool, reason string)
	// Check says why the destination would refuse an event, so that it is
	// dead-lettered instead of queued.
	Check(e *capi.Event, now time.Time) error
}

// Store is what the pipeline needs of the store.
type Store interface {
	Checkpoint(source string) (cdc.Position, error)
	Commit(batches ...state.Batch) (state.CommitResult, error)
	PendingAfter(dest string, after uint64, max int) ([]state.Queued, error)
	LastSeq(dest string) (uint64, error)
	Settle(dest string, outcomes []state.Outcome) error
	Depth(dest string) (int64, error)
}

// NamedSource is a source with its config name.
type NamedSource struct {
	Name   string
	Source Source
}

// NamedDestination is a destination with its config name and outbox bound.
type NamedDestination struct {
	Name        string
	Destination Destination
	MaxOutbox   int64
}

// Config is what a Pipeline runs.
type Config struct {
	Store           Store
	Rules           *rules.Set
	Sources         []NamedSource
	Destinations    []NamedDestination
	ShutdownTimeout time.Duration
	// Abort, when it yields an error, stops the pipeline as a failure
	// does: reading and sending stop at once, nothing is drained (a
	// leader that is losing its lease must not send on).
	Abort  <-chan error
	Logger *slog.Logger
	// Routes maps a rule's destination ("" for every one) to destination
	// names; nil routes "" to every destination and a name to itself.
	Routes func(ruleDestination string) []string
	// OnCommit, when set, is called after each commit (for metrics).
	OnCommit func(batches []state.Batch, res state.CommitResult)
	// OnSettle, when set, is called after outcomes are settled (for metrics).
	OnSettle func(dest string, outcomes []metacapi.Outcome)
	// EvalWorkers is how many goroutines evaluate rules (0: one fewer
	// than GOMAXPROCS, at least one). However many there are, each part
	// they evaluate, and each commit, takes one of Slots.
	EvalWorkers int
	// Slots bounds the CPU-bound steps running at once, shared with the
	// polling sources (nil: slots.New(0), the pipeline's own).
	Slots *slots.Slots
}

// Pipeline is a running capisync.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	sources map[string]Source
	queues  []*queue
	all     []string
	dests   map[string]Destination

	settled chan struct{} // a sender settled events: backpressure may lift

	// slots bounds the CPU-bound steps running at once (Config.Slots;
	// see package slots): on two cores the evaluator and the committer
	// take turns.
	slots *slots.Slots
	// remoteStore: the store's Commit mostly waits on a server (see
	// Remote), so it runs outside the slots, beside the evaluator.
	remoteStore bool

	mu       sync.Mutex
	blocked  string // why the committer waits, for status
	diskFull string // set while the store's disk is full (see diskfull.go)
	// droppedWarned is when each rule, key and reason of invalid
	// user_data values was last logged (see warnDropped).
	droppedWarned map[string]time.Time
}

// Remote is implemented by a store whose Commit mostly waits on a server
// rather than computing. Holding a CPU slot (see package slots) through
// its round trips would keep the evaluator waiting, so the pipeline
// commits to it outside the slots.
type Remote interface{ Remote() bool }

// New checks cfg and returns a Pipeline.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Store == nil || cfg.Rules == nil {
		return nil, errors.New("pipeline: store and rules are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{cfg: cfg, log: cfg.Logger, sources: map[string]Source{}, dests: map[string]Destination{}, settled: make(chan struct{}, 1)}
	if p.slots = cfg.Slots; p.slots == nil {
		p.slots = slots.New(0)
	}
	if r, ok := cfg.Store.(Remote); ok {
		p.remoteStore = r.Remote()
	}
	for _, s := range cfg.Sources {
		p.sources[s.Name] = s.Source
	}
	for _, d := range cfg.Destinations {
		p.all = append(p.all, d.Name)
		p.dests[d.Name] = d.Destination
		p.queues = append(p.queues, &queue{store: cfg.Store, dest: d.Name, wake: make(chan struct{}, 1), settled: p.settled, onSettle: cfg.OnSettle})
	}
	if p.cfg.Routes == nil {
		p.cfg.Routes = func(d string) []string {
			if d == "" {
				return p.all
			}
			return []string{d}
		}
	}
	return p, nil
}

// Run runs until ctx ends (then shuts down gracefully and returns nil) or
// a source, the store or a destination fails (then returns the error).
func (p *Pipeline) Run(ctx context.Context) error {
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	sendCtx, stopSending := context.WithCancel(context.Background())
	defer stopSending()

	failed := make(chan error, len(p.cfg.Sources)+len(p.cfg.Destinations)+1)
	var readers, senders sync.WaitGroup
	batches := make(chan cdc.Batch, 2*len(p.cfg.Sources)+1)
	for _, s := range p.cfg.Sources {
		from, err := p.cfg.Store.Checkpoint(s.Name)
		if err != nil {
			return fmt.Errorf("read checkpoint of %s: %w", s.Name, err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			if err := s.Source.Run(readCtx, from, batches); err != nil && readCtx.Err() == nil {
				failed <- prefixed("source "+s.Name, err)
			}
		}()
	}
	readers.Add(1)
	go func() {
		defer readers.Done()
		if err := p.commitLoop(readCtx, batches); err != nil && readCtx.Err() == nil {
			failed <- err
		}
	}()
	for i, d := range p.cfg.Destinations {
		p.queues[i].whileDiskFull, p.queues[i].stop = p.whileDiskFull, sendCtx.Done()
		senders.Add(1)
		go func() {
			defer senders.Done()
			if err := d.Destination.Run(sendCtx, p.queues[i]); err != nil && sendCtx.Err() == nil {
				failed <- prefixed("destination "+d.Name, err)
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
		p.log.Info("shutting down: reading stopped, delivering what is queued", "timeout", p.cfg.ShutdownTimeout)
	case runErr = <-failed:
		p.log.Error("stopping", "error", runErr)
	case runErr = <-p.cfg.Abort:
		p.log.Error("stopping at once", "error", runErr)
	}
	stopReading()
	readers.Wait()
	if runErr == nil {
		p.drain(p.cfg.ShutdownTimeout)
	}
	stopSending()
	senders.Wait()
	return runErr
}

// prefixed names the component an error comes from, unless the error
// already starts with that name (so that no message reads "source crm:
// source crm: ...").
func prefixed(name string, err error) error {
	if strings.HasPrefix(err.Error(), name+":") {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// drain waits until every outbox is empty, a destination is paused, or the
// timeout has passed.
func (p *Pipeline) drain(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		left := int64(0)
		paused := false
		for i, d := range p.cfg.Destinations {
			n, err := p.cfg.Store.Depth(d.Name)
			if err != nil {
				return
			}
			left += n
			if ok, _ := d.Destination.Health(); !ok {
				paused = true
			}
			p.queues[i].notify()
		}
		if left == 0 || paused {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.log.Warn("shutdown timeout reached; undelivered events stay queued for the next start")
}

// A store transaction takes several ready batches (to amortise fsync), up
// to maxCoalesce batches or maxCoalesceChanges changes: a bigger one would
// hold the store's single writer lock — and the senders' settling — too
// long, and its dirty pages in memory.
const (
	maxCoalesce        = 32
	maxCoalesceChanges = 2500
)

// commitLoop evaluates and commits batches in source order, in two
// stages so that, with more than one slot, evaluating the next group
// overlaps committing (and fsyncing) the previous one. Acks follow
// commits, in order.
func (p *Pipeline) commitLoop(ctx context.Context, in <-chan cdc.Batch) error {
	type evaluated struct {
		group []cdc.Batch
		sbs   []state.Batch
	}
	ready := make(chan evaluated, 1)
	go func() {
		defer close(ready)
		for {
			if err := p.waitForRoom(ctx); err != nil {
				return
			}
			var first cdc.Batch
			select {
			case <-ctx.Done():
				return
			case first = <-in:
			}
			group := []cdc.Batch{first}
			changes := len(first.Changes)
		coalesce:
			for len(group) < maxCoalesce && changes < maxCoalesceChanges {
				select {
				case b := <-in:
					group = append(group, b)
					changes += len(b.Changes)
				default:
					break coalesce
				}
			}
			sbs := p.evaluateAll(group)
			for i := range group {
				group[i].Changes = nil // only the position is needed from here on: free the rows
			}
			select {
			case ready <- evaluated{group, sbs}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for ev := range ready {
		var res state.CommitResult
		err := p.whileDiskFull(ctx, "commit", func() (err error) {
			if !p.remoteStore {
				p.slots.Take()
				defer p.slots.Give()
			}
			res, err = p.cfg.Store.Commit(ev.sbs...)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil // shutting down while the disk was full: the batches are read again
			}
			return fmt.Errorf("commit to the store: %w", err)
		}
		if p.cfg.OnCommit != nil {
			p.cfg.OnCommit(ev.sbs, res)
		}
		for _, q := range p.queues {
			q.push(res.Queued)
			q.notify()
		}
		for _, b := range ev.group {
			if b.Position == nil {
				continue
			}
			if err := p.sources[b.Source].Ack(ctx, b.Position); err != nil && ctx.Err() == nil {
				return fmt.Errorf("source %s: ack: %w", b.Source, err)
			}
		}
		p.log.Debug("committed", "batches", len(ev.group), "events", res.Enqueued, "duplicates", res.Duplicates)
		for rule, n := range res.Repeats {
			p.log.Info("events not queued again: the same event_name and event_id was queued or sent within 48 hours", "rule", rule, "events", n)
		}
	}
	return nil
}

// waitForRoom blocks while a destination's outbox is over its bound,
// looking again as soon as a sender settles events (and every 50 ms, for a
// store that shrinks otherwise, as dlq drop does).
func (p *Pipeline) waitForRoom(ctx context.Context) error {
	var logged time.Time
	for {
		full := ""
		for _, d := range p.cfg.Destinations {
			n, err := p.cfg.Store.Depth(d.Name)
			if err != nil {
				return err
			}
			if d.MaxOutbox > 0 && n >= d.MaxOutbox {
				full = fmt.Sprintf("outbox of %s holds %d events (max_outbox %d)", d.Name, n, d.MaxOutbox)
				break
			}
		}
		p.mu.Lock()
		p.blocked = full
		p.mu.Unlock()
		if full == "" {
			return nil
		}
		if time.Since(logged) > time.Minute {
			p.log.Warn("sources paused: "+full, "reason", "backpressure")
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.settled:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Blocked says why sources are paused — a full disk or backpressure ("" when they are not).
func (p *Pipeline) Blocked() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.diskFull != "" {
		return p.diskFull
	}
	return p.blocked
}

// evaluatePart is how many changes one worker evaluates at a time.
const evaluatePart = 250

// evaluateAll evaluates a group of batches on all cores but one (left to
// the sources, which read and decode while a group is evaluated; on two
// cores that means one worker): each batch is cut into parts of
// evaluatePart changes, evaluated concurrently, and
// returned in order, ready for one Commit. A batch's position and shadows
// go with its last part, so that the checkpoint moves only with the whole
// batch (and all parts commit in one transaction anyway).
func (p *Pipeline) evaluateAll(group []cdc.Batch) []state.Batch {
	var parts []cdc.Batch
	for _, b := range group {
		for len(b.Changes) > evaluatePart {
			parts = append(parts, cdc.Batch{Source: b.Source, Changes: b.Changes[:evaluatePart]})
			b.Changes = b.Changes[evaluatePart:]
		}
		parts = append(parts, b)
	}
	sbs := make([]state.Batch, len(parts))
	workers := p.cfg.EvalWorkers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0) - 1
	}
	workers = min(workers, len(parts))
	if workers <= 1 {
		for i := range parts {
			sbs[i] = p.evaluateIn(&parts[i])
		}
		return sbs
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(parts); i = int(next.Add(1) - 1) {
				sbs[i] = p.evaluateIn(&parts[i])
			}
		}()
	}
	wg.Wait()
	return sbs
}

// evaluateIn evaluates b in a slot.
func (p *Pipeline) evaluateIn(b *cdc.Batch) state.Batch {
	p.slots.Take()
	defer p.slots.Give()
	return p.evaluate(b)
}

// evaluate runs the rules over a batch and builds what to commit.
func (p *Pipeline) evaluate(b *cdc.Batch) state.Batch {
	sb := state.Batch{Source: b.Source, Position: b.Position, Shadows: b.Shadows, Counters: map[string]int64{}}
	now := time.Now()
	// Counts are gathered under small keys and named once per batch (not
	// per event): rule counters are kept twice, since the start and in
	// hourly buckets (h/<unix hour>/...) for `capisync status --window`.
	type tally struct{ kind, a, b, c string }
	counts := map[tally]int64{}
	// Match keys are counted for every event: rule, then key, in maps
	// keyed by one string each (a tally's four strings cost more to hash).
	keys := map[string]map[string]int64{}
	var scratch bytes.Buffer
	scratch.Grow(4 << 10) // an encoded event fits: one allocation per batch, not a doubling series
	defer func() {
		hour := "h/" + strconv.FormatInt(now.Unix()/3600, 10) + "/"
		for rule, m := range keys {
			for k, n := range m {
				counts[tally{kind: "rule_keys", a: rule, b: k}] += n
			}
		}
		for t, n := range counts {
			name := t.kind + "/" + t.a
			if t.b != "" {
				name += "/" + t.b
			}
			if t.c != "" {
				name += "/" + t.c
			}
			sb.Counters[name] += n
			if t.kind != "changes" && t.kind != "rule_rejected" {
				sb.Counters[hour+name] += n
			}
		}
	}()
	var results []rules.Result // reused from change to change
	for i := range b.Changes {
		c := &b.Changes[i]
		counts[tally{"changes", c.Source, c.Table, string(c.Op)}]++
		results = p.cfg.Rules.EvalAppend(results[:0], c)
		for ri := range results {
			r := &results[ri] // not a copy: the event is large and Check takes its address
			dests := p.cfg.Routes(r.Destination)
			if r.Err != nil {
				counts[tally{kind: "rule_errors", a: r.Rule}]++
				for _, d := range dests {
					sb.DeadLetters = append(sb.DeadLetters, state.DeadLetter{Destination: d, Rule: r.Rule, Key: r.Err.Key, Reason: r.Err.Error()})
				}
				continue
			}
			counts[tally{kind: "rule_events", a: r.Rule}]++
			for _, d := range r.Dropped {
				counts[tally{kind: "rule_dropped", a: r.Rule, b: d.Key}]++
				counts[tally{kind: state.DroppedReasonKind, a: r.Rule, b: d.Key, c: reasonName(d.Reason)}]++
				p.warnDropped(r.Rule, d)
			}
			m := keys[r.Rule]
			if m == nil {
				m = map[string]int64{}
				keys[r.Rule] = m
			}
			for k := range r.Event.UserData {
				m[k]++
			}
			// Encoded once, here, for every destination: the store's
			// transaction then only stamps the record, and the built
			// event's maps are garbage before the commit.
			var enc state.Enqueue // built for the first destination, copied for the others
			encoded := false
			for _, d := range dests {
				if dest := p.dests[d]; dest != nil {
					if err := dest.Check(&r.Event, now); err != nil {
						ev := r.Event
						counts[tally{kind: "rule_rejected", a: r.Rule}]++
						sb.DeadLetters = append(sb.DeadLetters, state.DeadLetter{Destination: d, Rule: r.Rule, Event: &ev,
							Reason: "rejected before sending: " + err.Error()})
						continue
					}
				}
				if !encoded {
					enc = state.Enqueue{Rule: r.Rule, Event: r.Event}
					if err := enc.Encode(&scratch); err != nil {
						ev := r.Event
						counts[tally{kind: "rule_rejected", a: r.Rule}]++
						sb.DeadLetters = append(sb.DeadLetters, state.DeadLetter{Destination: d, Rule: r.Rule, Event: &ev,
							Reason: "the event cannot be encoded: " + err.Error()})
						continue
					}
					enc.Event = capi.Event{EventName: r.Event.EventName, EventID: r.Event.EventID, EventTime: r.Event.EventTime, ActionSource: r.Event.ActionSource}
					encoded = true
				}
				if sb.Events == nil {
					// The first event: room for one per change left, since
					// changes that match tend to come together.
					sb.Events = make([]state.Enqueue, 0, (len(b.Changes)-i)*len(dests))
				}
				e := enc
				e.Destination = d
				sb.Events = append(sb.Events, e)
			}
		}
	}
	return sb
}
