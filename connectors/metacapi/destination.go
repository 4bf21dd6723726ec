package metacapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/capisync/capisync/internal/backoff"
	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/config"
)

// Options tune a Destination beyond its config; the zero value is right
// for production.
type Options struct {
	Logger        *slog.Logger
	Observer      Observer
	BackoffBase   time.Duration    // default 1 s
	BackoffCap    time.Duration    // default 5 min
	ProbeInterval time.Duration    // default: the config's probe_interval (30 s)
	DryRunOut     io.Writer        // dry_run output when dry_run_file is empty (default stdout)
	Now           func() time.Time // default time.Now
	HTTPClient    *http.Client     // default: one tuned client per destination
	// Gate, when set, is asked before every request: an error holds the
	// request back (a transient failure, retried). A daemon that leads
	// through a lease uses it so that nothing is sent once its lease may
	// have expired.
	Gate func() error
}

// Destination delivers events to one pixel / dataset.
type Destination struct {
	name      string
	cfg       config.Destination
	endpoint  string
	client    *http.Client
	throttle  *throttle
	opt       Options
	log       *slog.Logger
	obs       Observer
	dryMu     sync.Mutex
	dryOut    io.Writer
	dryCloser io.Closer

	// proof is the appsecret_proof sent with every request when the
	// config gives an app_secret: HMAC-SHA256 of the access token keyed
	// by the app secret, hex (Graph API's "Securing requests"; the
	// business SDKs' appsecret_proof).
	proof string

	// bodies keeps request buffers between requests: a batch's body is
	// about a megabyte, and a sync.Pool's buffers do not outlive many GCs.
	bodies chan *bytes.Buffer

	mu          sync.Mutex
	pauseReason string // non-empty while paused
	pausedSince time.Time
	stats       Stats
	// failingSince is when requests began to fail without one success
	// since (zero while they succeed); lastFailure is the last error.
	failingSince time.Time
	lastFailure  string
	// recent are the last events Meta accepted, as sent (for the status
	// page), newest last.
	recent [][]byte
	// recovered is closed when a request succeeds, waking every batch
	// that waits to retry: after an outage they all go at once, instead
	// of each when its own backoff ends (after newer events).
	recovered chan struct{}
}

// Stats counts what the destination did since it was made.
type Stats struct {
	Requests    int           // Graph API requests (dry-run writes included)
	Retries     int           // requests repeated after a transient or throttled answer
	Splits      int           // batches split to isolate invalid events
	BackoffWait time.Duration // time spent waiting before retries (cut short by a recovery)
}

// Stats returns the counters.
func (d *Destination) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

func (d *Destination) count(f func(*Stats)) {
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}

// New returns the destination named name, configured by cfg.
func New(name string, cfg config.Destination, opt Options) (*Destination, error) {
	if opt.BackoffBase <= 0 {
		opt.BackoffBase = time.Second
	}
	if opt.BackoffCap <= 0 {
		opt.BackoffCap = 5 * time.Minute
	}
	if opt.ProbeInterval <= 0 {
		opt.ProbeInterval = cfg.ProbeInterval.Duration
	}
	if opt.ProbeInterval <= 0 {
		opt.ProbeInterval = 30 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Observer == nil {
		opt.Observer = nopObserver{}
	}
	d := &Destination{
		name:      name,
		cfg:       cfg,
		endpoint:  strings.TrimRight(cfg.BaseURL, "/") + "/" + cfg.APIVersion + "/" + cfg.PixelID + "/events",
		throttle:  newThrottle(),
		bodies:    make(chan *bytes.Buffer, max(cfg.InFlight, 1)),
		opt:       opt,
		log:       opt.Logger.With("destination", name),
		obs:       opt.Observer,
		client:    opt.HTTPClient,
		recovered: make(chan struct{}),
	}
	if d.client == nil {
		d.client = newHTTPClient(cfg.Timeout.Duration, cfg.InFlight)
	}
	if cfg.Endpoint != "" {
		d.endpoint = cfg.Endpoint // a gateway or proxy: the URL as given
	}
	if cfg.AppSecret != "" {
		d.proof = AppSecretProof(cfg.AccessToken.Reveal(), cfg.AppSecret.Reveal())
	}
	if cfg.DryRun {
		d.dryOut = opt.DryRunOut
		if cfg.DryRunFile != "" {
			f, err := openAppend(cfg.DryRunFile)
			if err != nil {
				return nil, fmt.Errorf("destination %s: open dry_run_file: %w", name, err)
			}
			d.dryOut, d.dryCloser = f, f
		}
		if d.dryOut == nil {
			d.dryOut = stdout
		}
	}
	return d, nil
}

// AppSecretProof is the appsecret_proof of a request made with token:
// the hex HMAC-SHA256 of the token keyed by the app secret.
func AppSecretProof(token, appSecret string) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// Close releases idle connections and the dry-run file, if any.
func (d *Destination) Close() error {
	d.client.CloseIdleConnections()
	if d.dryCloser != nil {
		return d.dryCloser.Close()
	}
	return nil
}

// Name is the destination's name in the config.
func (d *Destination) Name() string { return d.name }

// newHTTPClient is tuned for many requests to one host: kept-alive
// connections for every in-flight request, bounded timeouts at each step.
func newHTTPClient(timeout time.Duration, inFlight int) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          inFlight + 2,
		MaxIdleConnsPerHost:   inFlight + 2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// recentMax is how many accepted events Recent keeps.
const recentMax = 20

// remember keeps the last events of an accepted batch for Recent.
func (d *Destination) remember(batch []Item) {
	from := max(0, len(batch)-recentMax)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, it := range batch[from:] {
		j := it.JSON
		if j == nil {
			j, _ = capi.Marshal(&it.Event)
		}
		d.recent = append(d.recent, j)
	}
	if n := len(d.recent); n > recentMax {
		d.recent = append(d.recent[:0:0], d.recent[n-recentMax:]...)
	}
}

// Recent returns the last events Meta accepted (at most 20), newest
// first, as they were sent: user_data already hashed.
func (d *Destination) Recent() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([][]byte, len(d.recent))
	for i, j := range d.recent {
		out[len(out)-1-i] = j
	}
	return out
}

// Failing reports since when requests have failed without a success in
// between, and the last failure; since is zero while requests succeed.
func (d *Destination) Failing() (since time.Time, last string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failingSince, d.lastFailure
}

// FailingTooLong is how long requests may fail in a row (an outage
// retried with backoff, events staying queued) before Ready says so.
const FailingTooLong = time.Minute

// Ready reports whether the destination delivers: not paused, and its
// requests have not failed for more than FailingTooLong (for /readyz).
func (d *Destination) Ready() (bool, string) {
	if ok, reason := d.Health(); !ok {
		return false, reason
	}
	since, last := d.Failing()
	if since.IsZero() {
		return true, ""
	}
	if failed := d.opt.Now().Sub(since); failed > FailingTooLong {
		return false, fmt.Sprintf("requests have failed for %s (events stay queued and are retried): %s", failed.Round(time.Second), last)
	}
	return true, ""
}

// succeeded records a request Meta answered, and wakes the batches
// waiting to retry.
func (d *Destination) succeeded() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.failingSince.IsZero() {
		d.failingSince, d.lastFailure = time.Time{}, ""
		close(d.recovered)
		d.recovered = make(chan struct{})
	}
}

// failed records a request that failed (transient, throttled or paused) and
// returns the channel that the next success closes.
func (d *Destination) failed(err *Error) <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failingSince.IsZero() {
		d.failingSince = d.opt.Now()
	}
	d.lastFailure = err.Error()
	return d.recovered
}

// Health reports whether the destination is delivering, and why not.
func (d *Destination) Health() (ok bool, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pauseReason == "", d.pauseReason
}

func (d *Destination) pause(err *Error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	reason := "paused: Meta refuses the requests themselves (" + err.Error() + "); events stay queued: fix the cause (the access token, a permission, app_secret for appsecret_proof) and delivery resumes"
	if d.pauseReason == "" {
		d.pausedSince = d.opt.Now()
		d.log.Error("destination paused; events stay queued", "reason", err.Error())
	}
	d.pauseReason = reason
}

func (d *Destination) resume() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pauseReason != "" {
		d.log.Info("destination resumed", "paused_for", d.opt.Now().Sub(d.pausedSince).Round(time.Second))
	}
	d.pauseReason = ""
}

// Deliver sends items and reports an outcome for every one of them:
// Delivered, DeadLettered, or Deferred when the destination is paused or
// ctx ends first. It returns an error only when the Reporter fails.
func (d *Destination) Deliver(ctx context.Context, items []Item, rep Reporter) error {
	return d.deliver(ctx, items, rep, false)
}

// deliver sends items in batches, in_flight at a time, and reports each
// batch's outcome before it returns.
func (d *Destination) deliver(ctx context.Context, items []Item, rep Reporter, probe bool) error {
	now := d.opt.Now()
	var dead []Outcome
	valid := items // copied only from the first event that fails its check
	for i := range items {
		it := &items[i]
		check := Check
		if it.JSON != nil {
			check = CheckAge
		}
		if err := check(&it.Event, now); err != nil {
			if dead == nil {
				valid = append(make([]Item, 0, len(items)), items[:i]...)
			}
			dead = append(dead, Outcome{Seq: it.Seq, EventName: it.Event.EventName, Status: DeadLettered, Reason: "rejected before sending: " + err.Error()})
			continue
		}
		if dead != nil {
			valid = append(valid, *it)
		}
	}
	if len(dead) > 0 {
		if err := rep.Report(ctx, dead); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.cfg.InFlight)
	for start := 0; start < len(valid); start += d.cfg.BatchSize {
		batch := valid[start:min(start+d.cfg.BatchSize, len(valid))]
		g.Go(func() error { return d.deliverBatch(gctx, batch, rep, probe) })
	}
	return g.Wait()
}

// deliverBatch sends one batch until each event has an outcome.
func (d *Destination) deliverBatch(ctx context.Context, batch []Item, rep Reporter, probe bool) error {
	var last *Error // the previous attempt's, for an outcome deferred before the next
	// Exponential with full jitter: many batches retry against one server.
	bo := backoff.Backoff{Base: d.opt.BackoffBase, Cap: d.opt.BackoffCap, FullJitter: true}
	for attempt := 1; ; attempt++ {
		if ok, reason := d.Health(); !ok && !probe {
			return rep.Report(ctx, outcomes(batch, Deferred, reason, last, attempt-1))
		}
		if err := d.throttle.wait(ctx); err != nil {
			return rep.Report(context.WithoutCancel(ctx), outcomes(batch, Deferred, "shutting down", last, attempt-1))
		}
		merr := d.send(ctx, batch)
		last = merr
		if merr == nil || merr.Kind == Invalid {
			d.succeeded() // Meta answered about the events themselves
		}
		switch {
		case merr == nil:
			d.throttle.succeeded()
			if probe {
				d.resume()
			}
			return rep.Report(context.WithoutCancel(ctx), outcomes(batch, Delivered, "", nil, attempt))
		case ctx.Err() != nil:
			return rep.Report(context.WithoutCancel(ctx), outcomes(batch, Deferred, "shutting down", merr, attempt))
		case merr.Kind == Auth:
			d.failed(merr)
			d.pause(merr)
			_, reason := d.Health()
			return rep.Report(ctx, outcomes(batch, Deferred, reason, merr, attempt))
		case merr.Kind == Invalid:
			if len(batch) == 1 {
				return rep.Report(ctx, outcomes(batch, DeadLettered, "rejected by Meta: "+merr.Error(), merr, attempt))
			}
			// Meta rejects a whole batch for one bad event: split it until
			// the offenders stand alone.
			d.count(func(s *Stats) { s.Splits++ })
			half := len(batch) / 2
			if !merr.EventLevel() && !probe {
				// An error that names no event may be about the request:
				// if both halves fail with it too, it is, and splitting
				// on would dead-letter every event. Pause instead.
				first := d.send(ctx, batch[:half])
				if first == nil {
					if err := rep.Report(context.WithoutCancel(ctx), outcomes(batch[:half], Delivered, "", nil, attempt+1)); err != nil {
						return err
					}
					return d.deliverBatch(ctx, batch[half:], rep, probe)
				}
				if first.sameAs(merr) {
					second := d.send(ctx, batch[half:])
					if second == nil {
						if err := rep.Report(context.WithoutCancel(ctx), outcomes(batch[half:], Delivered, "", nil, attempt+1)); err != nil {
							return err
						}
						return d.deliverBatch(ctx, batch[:half], rep, probe)
					}
					if second.sameAs(merr) {
						d.failed(merr)
						d.pause(merr)
						_, reason := d.Health()
						return rep.Report(ctx, outcomes(batch, Deferred, reason, merr, attempt))
					}
				}
			}
			if err := d.deliverBatch(ctx, batch[:half], rep, probe); err != nil {
				return err
			}
			return d.deliverBatch(ctx, batch[half:], rep, probe)
		}
		recovered := d.failed(merr)
		switch {
		case merr.Kind == Throttled:
			d.throttle.slowDown()
			d.log.Warn("throttled by Meta; slowing down", "code", merr.Code, "rate_per_s", float64(d.throttle.limit()))
		default:
			d.log.Warn("transient Graph API error; will retry", "error", merr.Error(), "attempt", attempt, "events", len(batch))
		}
		// Retry after a backoff, keeping only events Meta would still take.
		var expired []Outcome
		kept := batch[:0:0]
		for _, it := range batch {
			if err := CheckAge(&it.Event, d.opt.Now()); err != nil {
				expired = append(expired, Outcome{Seq: it.Seq, EventName: it.Event.EventName, Status: DeadLettered, Reason: "gave up retrying: " + err.Error() + "; last error: " + merr.Error(), Err: merr, Attempts: attempt})
				continue
			}
			kept = append(kept, it)
		}
		if len(expired) > 0 {
			if err := rep.Report(ctx, expired); err != nil {
				return err
			}
		}
		if batch = kept; len(batch) == 0 {
			return nil
		}
		wait := max(bo.Next(), merr.RetryAfter())
		// A success of any request (another batch's, a probe's) ends the
		// wait: Meta is back.
		start := time.Now()
		slept := backoff.Sleep(ctx, wait, recovered)
		d.count(func(s *Stats) { s.Retries++; s.BackoffWait += time.Since(start) })
		if !slept {
			return rep.Report(context.WithoutCancel(ctx), outcomes(batch, Deferred, "shutting down", merr, attempt))
		}
	}
}

func outcomes(batch []Item, s Status, reason string, err *Error, attempts int) []Outcome {
	out := make([]Outcome, len(batch))
	for i, it := range batch {
		out[i] = Outcome{Seq: it.Seq, EventName: it.Event.EventName, Status: s, Reason: reason, Err: err, Attempts: attempts}
	}
	return out
}

// Check finds what would make Meta reject the event; the pipeline calls it
// before queuing, so a bad event is dead-lettered at once.
func (d *Destination) Check(e *capi.Event, now time.Time) error { return Check(e, now) }

// body writes the request body: {"data":[...], "access_token", ...}. The
// events are written as they are kept (no re-encoding); the token only
// when sending for real.
func (d *Destination) body(buf *bytes.Buffer, batch []Item, withToken bool) error {
	size := 256 + len(d.cfg.AccessToken) + len(d.cfg.TestEventCode) + len(d.cfg.PartnerAgent)
	for i := range batch {
		size += len(batch[i].JSON) + 1
	}
	buf.Grow(size) // one allocation, not a doubling series
	buf.WriteString(`{"data":[`)
	for i := range batch {
		if i > 0 {
			buf.WriteByte(',')
		}
		if batch[i].JSON != nil {
			buf.Write(batch[i].JSON)
		} else if err := capi.AppendJSON(buf, &batch[i].Event); err != nil {
			return err
		}
	}
	buf.WriteByte(']')
	field := func(name, v string) {
		if v != "" {
			b, _ := json.Marshal(v)
			buf.WriteString(`,"` + name + `":`)
			buf.Write(b)
		}
	}
	if withToken {
		field("access_token", d.cfg.AccessToken.Reveal()) // in the body: URLs end up in proxy logs
		if d.proof != "" {
			field("appsecret_proof", d.proof)
		}
	}
	field("test_event_code", d.cfg.TestEventCode)
	field("partner_agent", d.cfg.PartnerAgent)
	buf.WriteByte('}')
	return nil
}

// send makes one request with the batch; nil means Meta took every event.
func (d *Destination) send(ctx context.Context, batch []Item) *Error {
	if d.opt.Gate != nil {
		if err := d.opt.Gate(); err != nil {
			return &Error{Kind: Transient, Message: "not sent: " + err.Error()}
		}
	}
	d.count(func(s *Stats) { s.Requests++ })
	var buf *bytes.Buffer
	select {
	case buf = <-d.bodies:
		buf.Reset()
	default:
		buf = new(bytes.Buffer)
	}
	defer func() {
		select {
		case d.bodies <- buf:
		default:
		}
	}()
	if err := d.body(buf, batch, !d.cfg.DryRun); err != nil {
		return &Error{Kind: Invalid, Message: "encode: " + err.Error()}
	}
	if d.cfg.DryRun {
		buf.WriteByte('\n')
		d.dryMu.Lock()
		_, err := d.dryOut.Write(buf.Bytes())
		d.dryMu.Unlock()
		if err != nil {
			return &Error{Kind: Transient, Message: "dry run write: " + err.Error()}
		}
		d.obs.Request("delivered", 0, 0, len(batch))
		d.remember(batch)
		return nil
	}
	start := time.Now()
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, d.endpoint, bytes.NewReader(buf.Bytes()))
	if err != nil {
		return &Error{Kind: Invalid, Message: err.Error()}
	}
	httpReq.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(httpReq)
	if err != nil {
		d.obs.Request(Transient.String(), 0, time.Since(start), len(batch))
		return networkError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	took := time.Since(start)
	if err != nil {
		d.obs.Request(Transient.String(), 0, took, len(batch))
		return networkError(err)
	}
	if resp.StatusCode/100 != 2 {
		merr := classify(resp.StatusCode, resp.Header, body)
		d.obs.Request(merr.Kind.String(), merr.Code, took, len(batch))
		return merr
	}
	var ok struct {
		EventsReceived int      `json:"events_received"`
		Messages       []string `json:"messages"`
		FBTraceID      string   `json:"fbtrace_id"`
	}
	if err := json.Unmarshal(body, &ok); err != nil || ok.EventsReceived != len(batch) {
		d.obs.Request(Transient.String(), 0, took, len(batch))
		return &Error{Kind: Transient, HTTPStatus: resp.StatusCode, FBTraceID: ok.FBTraceID,
			Message: fmt.Sprintf("Meta acknowledged %d of %d events", ok.EventsReceived, len(batch))}
	}
	d.obs.Request("delivered", 0, took, len(batch))
	d.remember(batch)
	d.log.Info("delivered batch", "events", len(batch), "took_ms", took.Milliseconds(), "fbtrace_id", ok.FBTraceID)
	if len(ok.Messages) > 0 {
		// Meta took the events but says something about them (a
		// parameter it ignored, say): worth a look, never a retry.
		d.obs.Messages(ok.Messages)
		d.log.Warn("Meta accepted the batch with messages", "messages", ok.Messages, "events", len(batch), "fbtrace_id", ok.FBTraceID)
	}
	return nil
}
