package metacapi_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	pixel = "1234567890"
	token = "EAAsecret-token-value"
)

func destConfig(baseURL string) config.Destination {
	return config.Destination{
		Type: config.TypeMetaCAPI, PixelID: pixel, AccessToken: config.Secret(token),
		APIVersion: "v24.0", BaseURL: baseURL, BatchSize: 1000, InFlight: 2,
		FlushInterval: config.Duration{Duration: 10 * time.Millisecond},
		Timeout:       config.Duration{Duration: 10 * time.Second},
	}
}

func newDest(t testing.TB, cfg config.Destination, opt metacapi.Options) *metacapi.Destination {
	t.Helper()
	if opt.BackoffBase == 0 {
		opt.BackoffBase, opt.BackoffCap = 2*time.Millisecond, 50*time.Millisecond
	}
	if opt.ProbeInterval == 0 {
		opt.ProbeInterval = 20 * time.Millisecond
	}
	d, err := metacapi.New("meta", cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func events(n int, now time.Time) []capi.Event {
	out := make([]capi.Event, n)
	for i := range out {
		out[i] = capi.Event{
			EventName: "Lead", EventTime: now.Unix() - 30, EventID: fmt.Sprintf("lead-%d", i),
			ActionSource: "system_generated",
			UserData:     map[string]any{"em": capi.Hash(fmt.Sprintf("user%d@example.com", i)), "lead_id": "1234567890123456"},
		}
	}
	return out
}

// run drains q through d until q is empty (or the deadline), then stops Run.
func run(t *testing.T, d *metacapi.Destination, q *metacapitest.Queue, until func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, q) }()
	for !until() {
		if ctx.Err() != nil {
			t.Fatalf("timed out; %d queued", q.Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
}

func TestTenThousandEventsInTenRequests(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	d := newDest(t, destConfig(fake.URL), metacapi.Options{})
	q := metacapitest.NewQueue()
	q.Add(events(10000, time.Now())...)
	run(t, d, q, func() bool { return q.Len() == 0 })
	st := fake.Stats()
	if st.Requests != 10 || st.Accepted != 10000 || st.Duplicates != 0 || st.TokenInURL != 0 {
		t.Errorf("fake stats = %+v", st)
	}
}

func TestOneInvalidEventIsIsolated(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	d := newDest(t, destConfig(fake.URL), metacapi.Options{})
	q := metacapitest.NewQueue()
	evs := events(10000, time.Now())
	fake.RefuseEvent(evs[4321].EventID, "The lead_id does not belong to this page.") // passes our checks, Meta refuses it
	q.Add(evs...)
	run(t, d, q, func() bool { return q.Len() == 0 })
	st := fake.Stats()
	if st.Accepted != 9999 || st.Duplicates != 0 {
		t.Errorf("fake stats = %+v", st)
	}
	dead := q.Dead()
	if len(dead) != 1 || dead[0].Seq != 4322 {
		t.Fatalf("dead letters = %+v", dead)
	}
	if e := dead[0].Err; e == nil || e.Code != 100 || e.Subcode != 2804019 || e.FBTraceID == "" || !strings.Contains(e.UserMsg, "lead_id does not belong") {
		t.Errorf("dead letter lacks Meta's error: %+v", e)
	}
	maxExtra := int(2*math.Log2(1000)) + 2
	if extra := st.Requests - 10; extra > maxExtra {
		t.Errorf("%d extra requests to isolate one event, want at most %d", extra, maxExtra)
	}
	t.Logf("isolated 1 bad event with %d extra requests", st.Requests-10)
}

func TestHalfTheRequestsFailWith5xx(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	fake.FailRate(0.5, metacapitest.ServerError)
	cfg := destConfig(fake.URL)
	cfg.BatchSize = 100
	d := newDest(t, cfg, metacapi.Options{})
	q := metacapitest.NewQueue()
	q.Add(events(3000, time.Now())...)
	start := time.Now()
	run(t, d, q, func() bool { return q.Len() == 0 })
	elapsed := time.Since(start)
	st, ds := fake.Stats(), d.Stats()
	if st.Accepted != 3000 || st.Duplicates != 0 || len(q.Dead()) != 0 {
		t.Fatalf("fake %+v, dead %d", st, len(q.Dead()))
	}
	if ds.Retries == 0 || ds.Retries != st.Rejected || ds.BackoffWait <= 0 {
		t.Errorf("destination stats %+v vs fake %+v", ds, st)
	}
	// Backoff is visible in timing: the run took at least the waits of one
	// of its in_flight workers.
	if elapsed < ds.BackoffWait/time.Duration(cfg.InFlight) {
		t.Errorf("run took %s but backed off %s in all", elapsed, ds.BackoffWait)
	}
	t.Logf("%d requests, %d retried, %s backoff in all, %s elapsed", st.Requests, ds.Retries, ds.BackoffWait, elapsed)
}

func TestTokenRevokedPausesAndRecovers(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	cfg := destConfig(fake.URL)
	cfg.BatchSize = 50
	d := newDest(t, cfg, metacapi.Options{})
	q := metacapitest.NewQueue()
	q.Add(events(100, time.Now())...)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.Run(ctx, q) }()
	defer func() { cancel(); wg.Wait() }()

	waitFor(t, "first events delivered", func() bool { return q.Len() == 0 })
	fake.SetToken("EAArevoked")
	more := events(500, time.Now())
	for i := range more {
		more[i].EventID = fmt.Sprintf("later-%d", i)
	}
	q.Add(more...)
	waitFor(t, "destination paused", func() bool { ok, _ := d.Health(); return !ok })
	_, reason := d.Health()
	if !strings.Contains(reason, "190") || strings.Contains(reason, token) {
		t.Errorf("pause reason = %q", reason)
	}
	time.Sleep(100 * time.Millisecond) // several probes while revoked
	if len(q.Dead()) != 0 || q.Len() != 500 {
		t.Fatalf("while paused: %d dead, %d queued", len(q.Dead()), q.Len())
	}
	fake.SetToken(token)
	waitFor(t, "backlog drained", func() bool { return q.Len() == 0 })
	if ok, _ := d.Health(); !ok {
		t.Error("still paused after recovery")
	}
	if st := fake.Stats(); st.Accepted != 600 || st.Duplicates != 0 || len(q.Dead()) != 0 {
		t.Errorf("fake %+v, dead %d", st, len(q.Dead()))
	}
}

// TestOldEventsNeverSent: events past Meta's 7-day window are
// dead-lettered before sending; the events around them still go.
func TestOldEventsNeverSent(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	d := newDest(t, destConfig(fake.URL), metacapi.Options{})
	q := metacapitest.NewQueue()
	evs := events(5, time.Now())
	for _, i := range []int{1, 4} {
		evs[i].EventTime = time.Now().Add(-8 * 24 * time.Hour).Unix()
	}
	q.Add(evs...)
	run(t, d, q, func() bool { return q.Len() == 0 })
	var sent []string
	for _, e := range fake.Events() {
		sent = append(sent, e.ID)
	}
	if !testenv.SameSet(sent, []string{"lead-0", "lead-2", "lead-3"}) {
		t.Errorf("sent %v, want lead-0, lead-2, lead-3", sent)
	}
	dead := q.Dead()
	if len(dead) != 2 || !strings.Contains(dead[0].Reason, "age rule") || !strings.Contains(dead[0].Reason, "7 days") {
		t.Errorf("dead = %+v", dead)
	}
}

func TestChecksBeforeSending(t *testing.T) {
	now := time.Now()
	base := events(1, now)[0]
	tests := []struct {
		name   string
		mutate func(e *capi.Event)
		want   string
	}{
		{"ok", func(e *capi.Event) {}, ""},
		{"physical store 30 days", func(e *capi.Event) {
			e.ActionSource = "physical_store"
			e.EventTime = now.Add(-30 * 24 * time.Hour).Unix()
		}, ""},
		{"physical store 63 days", func(e *capi.Event) {
			e.ActionSource = "physical_store"
			e.EventTime = now.Add(-63 * 24 * time.Hour).Unix()
		}, "62 days"},
		{"future", func(e *capi.Event) { e.EventTime = now.Add(2 * time.Minute).Unix() }, "future"},
		{"website without url", func(e *capi.Event) { e.ActionSource = "website"; e.UserData["client_user_agent"] = "UA" }, "event_source_url"},
		{"website without ua", func(e *capi.Event) { e.ActionSource = "website"; e.EventSourceURL = "https://x" }, "client_user_agent"},
		{"messaging without channel", func(e *capi.Event) { e.ActionSource = "business_messaging" }, "messaging_channel"},
		{"purchase without value", func(e *capi.Event) { e.EventName = "Purchase"; e.CustomData = map[string]any{"currency": "USD"} }, "value"},
		{"no match key", func(e *capi.Event) { e.UserData = map[string]any{"client_user_agent": "UA"} }, "no usable user_data"},
		// Parity with Meta (and the fake, which refuses each of these).
		{"url without scheme", func(e *capi.Event) { e.EventSourceURL = "shop.example.com/cart" }, "event_source_url must be a full URL"},
		{"unknown channel", func(e *capi.Event) { e.ActionSource = "business_messaging"; e.MessagingChannel = "sms" }, `messaging_channel "sms"`},
		{"bad ip", func(e *capi.Event) { e.UserData["client_ip_address"] = "999.1.1.1" }, "client_ip_address"},
		{"ipv6", func(e *capi.Event) { e.UserData["client_ip_address"] = "2001:db8::1" }, ""},
		{"fbc list", func(e *capi.Event) { e.UserData["fbc"] = []string{"fb.1.1554763741205.a", "fb.1.1554763741205.b"} }, "user_data.fbc takes one value"},
		{"raw fbclid as fbc", func(e *capi.Event) { e.UserData["fbc"] = "IwAR2i2gk7IDUbQ3vjz" }, "user_data.fbc must look like fb.1."},
		{"fbc with appendix", func(e *capi.Event) { e.UserData["fbc"] = "fb.1.1554763741205.AbCdEf.AQ" }, ""},
		{"lead_id text", func(e *capi.Event) { e.UserData["lead_id"] = "lead-42" }, "user_data.lead_id must be the numeric id"},
		{"currency not ISO", func(e *capi.Event) { e.CustomData = map[string]any{"value": 1, "currency": "XYZ"} }, "ISO 4217"},
		{"value as text", func(e *capi.Event) { e.CustomData = map[string]any{"value": "10", "currency": "USD"} }, "custom_data.value must be a number"},
		{"item_price as text", func(e *capi.Event) {
			e.CustomData = map[string]any{"contents": []any{map[string]any{"id": "a", "item_price": "9.99"}}}
		}, "contents[0].item_price must be a number"},
		{"predicted_ltv as text", func(e *capi.Event) { e.CustomData = map[string]any{"predicted_ltv": "9.99"} }, "custom_data.predicted_ltv must be a number"},
		{"only fn and ge", func(e *capi.Event) { e.UserData = map[string]any{"fn": capi.Hash("jane"), "ge": capi.Hash("f")} }, "a first name and gender alone"},
		{"only geography", func(e *capi.Event) { e.UserData = map[string]any{"ct": capi.Hash("paris"), "country": capi.Hash("fr")} }, "geography"},
		{"app without app_data", func(e *capi.Event) { e.ActionSource = "app" }, "action_source app requires app_data.advertiser_tracking_enabled"},
		{"app with app_data", func(e *capi.Event) {
			e.ActionSource = "app"
			e.AppData = map[string]any{"advertiser_tracking_enabled": true, "application_tracking_enabled": true, "extinfo": []any{"a2"}}
		}, ""},
	}
	for _, tt := range tests {
		e := base
		e.UserData = map[string]any{}
		for k, v := range base.UserData {
			e.UserData[k] = v
		}
		tt.mutate(&e)
		err := metacapi.Check(&e, now)
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Check = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestThrottledSlowsDownAndDelivers(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	fake.FailNext(metacapitest.Throttle, metacapitest.TooMany)
	cfg := destConfig(fake.URL)
	cfg.InFlight = 1
	d := newDest(t, cfg, metacapi.Options{})
	q := metacapitest.NewQueue()
	q.Add(events(10, time.Now())...)
	run(t, d, q, func() bool { return q.Len() == 0 })
	if st := fake.Stats(); st.Accepted != 10 || st.Requests != 3 || len(q.Dead()) != 0 {
		t.Errorf("fake %+v dead %d", st, len(q.Dead()))
	}
}

func TestDryRunSendsNothingAndHidesToken(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	cfg := destConfig(fake.URL)
	cfg.DryRun, cfg.TestEventCode = true, "TEST123"
	var out bytes.Buffer
	d := newDest(t, cfg, metacapi.Options{DryRunOut: &out})
	q := metacapitest.NewQueue()
	q.Add(events(3, time.Now())...)
	run(t, d, q, func() bool { return q.Len() == 0 })
	if fake.Stats().Requests != 0 {
		t.Error("dry run sent a request")
	}
	if n := strings.Count(out.String(), "\n"); n != 1 || !strings.Contains(out.String(), `"test_event_code":"TEST123"`) || strings.Contains(out.String(), token) {
		t.Errorf("dry run output (%d lines): %s", n, out.String())
	}
}

func TestRequestCarriesTestCodeAndNoTokenInURL(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	cfg := destConfig(fake.URL)
	cfg.TestEventCode = "TEST999"
	d := newDest(t, cfg, metacapi.Options{})
	q := metacapitest.NewQueue()
	q.Add(events(5, time.Now())...)
	run(t, d, q, func() bool { return q.Len() == 0 })
	if codes := fake.TestEventCodes(); codes["TEST999"] != 5 || fake.Stats().TokenInURL != 0 {
		t.Errorf("codes %v stats %+v", codes, fake.Stats())
	}
}

func TestNetworkErrorIsTransientAndSecretFree(t *testing.T) {
	cfg := destConfig("http://127.0.0.1:1") // nothing listens there
	d := newDest(t, cfg, metacapi.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var got []metacapi.Outcome
	err := d.Deliver(ctx, []metacapi.Item{{Seq: 1, Event: events(1, time.Now())[0]}}, metacapi.ReporterFunc(func(_ context.Context, o []metacapi.Outcome) error {
		got = append(got, o...)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Status != metacapi.Deferred || d.Stats().Retries == 0 {
		t.Fatalf("outcomes %+v stats %+v", got, d.Stats())
	}
	if got[0].Err == nil || got[0].Err.Kind != metacapi.Transient || strings.Contains(got[0].Err.Error(), token) {
		t.Errorf("error = %v", got[0].Err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkDeliver measures events/s delivered to the fake Graph API over
// real HTTP with batch 1000 and in_flight 2.
func BenchmarkDeliver(b *testing.B) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	d := newDest(b, destConfig(fake.URL), metacapi.Options{})
	evs := events(10000, time.Now())
	items := make([]metacapi.Item, len(evs))
	for i := range evs {
		items[i] = metacapi.Item{Seq: uint64(i + 1), Event: evs[i]}
	}
	var mu sync.Mutex
	delivered := 0
	rep := metacapi.ReporterFunc(func(_ context.Context, o []metacapi.Outcome) error {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range o {
			if x.Status == metacapi.Delivered {
				delivered++
			}
		}
		return nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := d.Deliver(context.Background(), items, rep); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(items)*b.N)/time.Since(start).Seconds(), "events/s")
	if delivered != len(items)*b.N {
		b.Fatalf("delivered %d of %d", delivered, len(items)*b.N)
	}
}

// slowReports is a queue whose reports of delivered events take a while,
// counting how many finished.
type slowReports struct {
	*metacapitest.Queue
	settled atomic.Int32
}

func (q *slowReports) Report(ctx context.Context, o []metacapi.Outcome) error {
	if len(o) == 0 || o[0].Status != metacapi.Delivered {
		return q.Queue.Report(ctx, o)
	}
	time.Sleep(10 * time.Millisecond)
	defer q.settled.Add(1)
	return q.Queue.Report(ctx, o)
}

// TestSentAndUnsettledAtMostInFlight: a sender takes its next batch only
// once the last one's outcome is settled, so however slow settling is, no
// more than in_flight batches are ever sent and not yet settled: what a
// crash (or a failover) makes the next leader send again.
func TestSentAndUnsettledAtMostInFlight(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	q := &slowReports{Queue: metacapitest.NewQueue()}
	var started, most atomic.Int32
	inner := fake.Config.Handler
	fake.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := started.Add(1) - q.settled.Load()
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		inner.ServeHTTP(w, r)
	})
	cfg := destConfig(fake.URL)
	cfg.BatchSize, cfg.InFlight = 10, 2
	d := newDest(t, cfg, metacapi.Options{})
	q.Add(events(200, time.Now())...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, q) }()
	waitFor(t, "the queue to drain", func() bool { return q.Len() == 0 })
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	if st := fake.Stats(); st.Requests != 20 || st.Accepted != 200 {
		t.Errorf("fake stats = %+v", st)
	}
	if m := most.Load(); m != 2 {
		t.Errorf("at most %d batches were sent and unsettled at once, want in_flight = 2 (both senders busy)", m)
	}
}

// TestRecoveryWakesWaitingBatches: after an outage, one success sends every
// batch that waits to retry at once. Here one batch is told to come back in
// 1 s and the other in 30 s: the second goes right after the first gets
// through, not 29 s later (after newer events). While requests fail,
// Failing says since when; a success clears it.
func TestRecoveryWakesWaitingBatches(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	unavailable := metacapitest.Failure{Status: 503, Code: 2, Transient: true, Message: "Service temporarily unavailable"}
	soon, late := unavailable, unavailable
	soon.RetryAfter, late.RetryAfter = 1, 30
	fake.FailNext(soon, late)
	cfg := destConfig(fake.URL)
	cfg.BatchSize = 10
	d := newDest(t, cfg, metacapi.Options{})
	q := metacapitest.NewQueue()
	q.Add(events(20, time.Now())...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, q) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	for fake.Stats().Rejected < 2 && time.Since(start) < 10*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	// The fake counts a refusal before the destination has read it: wait
	// (less than the 1 s the first batch was told to wait) for Failing.
	since, last := d.Failing()
	for deadline := time.Now().Add(500 * time.Millisecond); since.IsZero() && time.Now().Before(deadline); since, last = d.Failing() {
		time.Sleep(2 * time.Millisecond)
	}
	if since.IsZero() || !strings.Contains(last, "temporarily unavailable") {
		t.Errorf("during the outage Failing() = %v, %q", since, last)
	}
	for q.Len() > 0 && time.Since(start) < 20*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	if took := time.Since(start); q.Len() > 0 || took > 15*time.Second {
		t.Fatalf("%d events still queued after %s: the batch told to wait 30 s was not woken by the first success", q.Len(), took.Round(time.Millisecond))
	}
	if st := fake.Stats(); st.Accepted != 20 || st.Duplicates != 0 {
		t.Errorf("fake = %+v", st)
	}
	if since, _ := d.Failing(); !since.IsZero() {
		t.Errorf("Failing() still reports %v after a success", since)
	}
}

// TestNotReadyAfterAMinuteOfFailures: a destination whose requests have
// failed for over a minute says so (for /readyz), with the last error; a
// success makes it ready again.
func TestNotReadyAfterAMinuteOfFailures(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	fake.FailRate(1, metacapitest.ServerError)
	var offset atomic.Int64 // the clock, moved by the test
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	d := newDest(t, destConfig(fake.URL), metacapi.Options{Now: now})
	q := metacapitest.NewQueue()
	q.Add(events(5, time.Now())...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, q) }()
	defer func() { cancel(); <-done }()
	// Wait for the destination to have read a refusal (the fake counts
	// it before the destination reads it).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if since, _ := d.Failing(); !since.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no request failed")
		}
	}
	if ok, why := d.Ready(); !ok {
		t.Errorf("not ready after a few seconds of failures: %s", why)
	}
	offset.Store(int64(90 * time.Second))
	if ok, why := d.Ready(); ok || !strings.Contains(why, "requests have failed for 1m3") || !strings.Contains(why, "unexpected error") {
		t.Errorf("after 90 s of failures Ready() = %v, %q", ok, why)
	}
	fake.FailRate(0, metacapitest.ServerError)
	for deadline := time.Now().Add(10 * time.Second); q.Len() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not delivered after the outage")
		}
	}
	if ok, why := d.Ready(); !ok {
		t.Errorf("not ready after a success: %s", why)
	}
}

// TestAppSecretProofRequired: an app that requires appsecret_proof refuses
// every request with code 100 and no subcode. That is about the request,
// not an event: the destination pauses with Meta's message, 1,000 queued
// events stay queued and none is dead-lettered (it used to split the batch
// down to single events and dead-letter all of them). With app_secret in
// the config, they are delivered.
func TestAppSecretProofRequired(t *testing.T) {
	const secret = "app-secret-value"
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	fake.RequireAppSecretProof(secret)
	cfg := destConfig(fake.URL)
	cfg.BatchSize = 100
	d := newDest(t, cfg, metacapi.Options{ProbeInterval: time.Hour})
	q := metacapitest.NewQueue()
	q.Add(events(1000, time.Now())...)
	runUntilPaused(t, d, q)
	if ok, why := d.Ready(); ok || !strings.Contains(why, "require an appsecret_proof argument") {
		t.Errorf("Ready() = %v, %q; want Meta's message", ok, why)
	}
	if n := len(q.Dead()); n != 0 {
		t.Errorf("%d events dead-lettered, want none", n)
	}
	if q.Len() != 1000 {
		t.Errorf("%d events queued, want 1000", q.Len())
	}
	if st := fake.Stats(); st.Requests > 10 {
		t.Errorf("%d requests to learn that every request is refused", st.Requests)
	}

	cfg.AppSecret = secret
	withProof := newDest(t, cfg, metacapi.Options{})
	run(t, withProof, q, func() bool { return q.Len() == 0 })
	if st := fake.Stats(); st.Accepted != 1000 || len(q.Dead()) != 0 {
		t.Errorf("with app_secret: fake %+v, dead %d", st, len(q.Dead()))
	}
}

// runUntilPaused runs d on q until d pauses, lets the batches in flight
// report, and stops it.
func runUntilPaused(t *testing.T, d *metacapi.Destination, q *metacapitest.Queue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, q) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ok, _ := d.Health(); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the destination did not pause")
		}
	}
	time.Sleep(100 * time.Millisecond)
}

// TestSplitGuard: an error that names no event and comes back for both
// halves of a split is about the request: the destination pauses instead
// of dead-lettering every event. One that comes back for one half only is
// an event's, and is isolated as before.
func TestSplitGuard(t *testing.T) {
	unknown := metacapitest.Failure{Status: 400, Code: 1487390, Message: "Something about the request"}
	t.Run("both halves", func(t *testing.T) {
		fake := metacapitest.New(pixel, token)
		defer fake.Close()
		fake.FailNext(unknown, unknown, unknown)
		d := newDest(t, destConfig(fake.URL), metacapi.Options{ProbeInterval: time.Hour})
		q := metacapitest.NewQueue()
		q.Add(events(64, time.Now())...)
		runUntilPaused(t, d, q)
		if st := fake.Stats(); st.Requests != 3 || len(q.Dead()) != 0 || q.Len() != 64 {
			t.Errorf("requests %d, dead %d, queued %d; want 3, 0, 64", st.Requests, len(q.Dead()), q.Len())
		}
	})
	t.Run("one half", func(t *testing.T) {
		fake := metacapitest.New(pixel, token)
		defer fake.Close()
		q := metacapitest.NewQueue()
		evs := events(64, time.Now())
		fake.RefuseEvent(evs[5].EventID, "The lead_id does not belong to this page.") // Meta refuses it (2804019)
		q.Add(evs...)
		d := newDest(t, destConfig(fake.URL), metacapi.Options{})
		run(t, d, q, func() bool { return q.Len() == 0 })
		if st := fake.Stats(); st.Accepted != 63 || len(q.Dead()) != 1 {
			t.Errorf("accepted %d, dead %d; want 63, 1", st.Accepted, len(q.Dead()))
		}
		if ok, _ := d.Health(); !ok {
			t.Error("paused for an event's error")
		}
	})
}

// messageObserver records the messages Meta's answers carried.
type messageObserver struct {
	mu   sync.Mutex
	msgs []string
}

func (o *messageObserver) Request(string, int, time.Duration, int) {}
func (o *messageObserver) Messages(m []string) {
	o.mu.Lock()
	o.msgs = append(o.msgs, m...)
	o.mu.Unlock()
}

// TestEndpointAndMessages: endpoint posts to a gateway's URL as given
// (not /<version>/<pixel>/events), and the messages of an accepted answer
// are logged and counted, not ignored.
func TestEndpointAndMessages(t *testing.T) {
	fake := metacapitest.New(pixel, token)
	defer fake.Close()
	fake.Path = "/capig/events"
	fake.Messages = []string{"The parameter referrer_url was ignored."}
	cfg := destConfig("http://127.0.0.1:1") // base_url unused with an endpoint
	cfg.Endpoint = fake.URL + "/capig/events"
	var logs testenv.Buffer
	obs := &messageObserver{}
	d := newDest(t, cfg, metacapi.Options{Observer: obs, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	q := metacapitest.NewQueue()
	q.Add(events(3, time.Now())...)
	run(t, d, q, func() bool { return q.Len() == 0 })
	if st := fake.Stats(); st.Accepted != 3 {
		t.Errorf("fake = %+v", st)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.msgs) != 1 || !strings.Contains(logs.String(), "referrer_url was ignored") {
		t.Errorf("messages observed %v; logs:\n%s", obs.msgs, logs.String())
	}
}
