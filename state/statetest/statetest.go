// Package statetest is the acceptance suite every store implementation
// runs: the embedded bbolt store today, a PostgreSQL store for failover
// later. Run it from the implementation's tests with a function that opens
// a fresh, empty store.
package statetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/state"
)

// Store is the behaviour the suite checks: all of state.Store.
type Store = state.Store

// Event returns a distinct valid event numbered i.
func Event(i int) capi.Event {
	return capi.Event{EventName: "Lead", EventTime: 1795168800, EventID: fmt.Sprintf("lead-%d", i),
		ActionSource: "system_generated", UserData: map[string]any{"em": capi.Hash(fmt.Sprint(i))}}
}

func enq(dest string, ids ...int) []state.Enqueue {
	out := make([]state.Enqueue, len(ids))
	for i, id := range ids {
		out[i] = state.Enqueue{Destination: dest, Rule: "r", Event: Event(id)}
	}
	return out
}

// Clock is a settable clock for a store under test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now is the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Add moves the clock.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// Run runs the suite; open returns a new empty store whose clock is now.
func Run(t *testing.T, open func(t *testing.T, now func() time.Time) Store) {
	fresh := func(t *testing.T) Store { return open(t, time.Now) }
	t.Run("CommitIsAtomic", func(t *testing.T) { commitIsAtomic(t, fresh(t)) })
	t.Run("EventIDIdempotence", func(t *testing.T) { idempotence(t, fresh(t)) })
	t.Run("IDMemoryLasts48Hours", func(t *testing.T) {
		c := &Clock{now: time.Now()}
		idMemory(t, open(t, c.Now), c)
	})
	t.Run("ManyHashedIDs", func(t *testing.T) { manyHashedIDs(t, fresh(t)) })
	t.Run("ConcurrentCommitAndSettle", func(t *testing.T) { concurrentCommitAndSettle(t, fresh(t)) })
	t.Run("PendingOrder", func(t *testing.T) { pendingOrder(t, fresh(t)) })
	t.Run("CommitReturnsWhatItQueued", func(t *testing.T) { commitReturnsQueued(t, fresh(t)) })
	t.Run("SettleAndDeadLetters", func(t *testing.T) { settle(t, fresh(t)) })
	t.Run("Shadows", func(t *testing.T) { shadows(t, fresh(t)) })
	t.Run("ShadowScansAndRewrites", func(t *testing.T) { shadowScans(t, fresh(t)) })
	t.Run("DepthAndCheckpoints", func(t *testing.T) { depthAndCheckpoints(t, fresh(t)) })
	t.Run("MoneyStaysExact", func(t *testing.T) { moneyExact(t, fresh(t)) })
}

// idMemory: an event queued or delivered in the last 48 hours is never
// queued again; one delivered more than 48 hours ago is; one still queued
// is not, however old; a dead-lettered one is at once.
func idMemory(t *testing.T, s Store, clock *Clock) {
	defer s.Close()
	queue := func(ids ...int) state.CommitResult {
		return must(s.Commit(state.Batch{Source: "src", Events: enq("meta", ids...)}))
	}
	deliver := func(ids ...int) {
		t.Helper()
		want := map[string]bool{}
		for _, id := range ids {
			want[Event(id).EventID] = true
		}
		var out []state.Outcome
		for _, q := range must(s.Pending("meta", 1000)) {
			if want[q.EventID] {
				out = append(out, state.Outcome{Seq: q.Seq, Status: state.Delivered})
			}
		}
		if len(out) != len(ids) {
			t.Fatalf("%d of %d events to deliver are queued", len(out), len(ids))
		}
		if err := s.Settle("meta", out); err != nil {
			t.Fatal(err)
		}
	}
	if r := queue(1, 2, 3); r.Enqueued != 3 {
		t.Fatalf("queued %d of 3", r.Enqueued)
	}
	deliver(1)
	if err := s.Settle("meta", []state.Outcome{{Seq: must(s.Pending("meta", 10))[1].Seq, Status: state.DeadLettered, Reason: "rejected"}}); err != nil {
		t.Fatal(err)
	}
	// Event 3 dead-lettered: read again, it is queued again at once.
	if r := queue(3); r.Enqueued != 1 {
		t.Errorf("a dead-lettered event read again: queued %d, want 1", r.Enqueued)
	}
	deliver(3)
	clock.Add(47 * time.Hour)
	for _, id := range []int{1, 2, 3} {
		if r := queue(id); r.Enqueued != 0 || r.Duplicates != 1 {
			t.Errorf("event %d read again after 47 hours: %+v, want refused", id, r)
		}
	}
	clock.Add(2 * time.Hour) // 49 hours after 1 and 2 were queued, 49 after 3
	if r := queue(1); r.Enqueued != 1 {
		t.Errorf("event 1, delivered 49 hours ago: %+v, want queued", r)
	}
	if r := queue(2); r.Enqueued != 0 {
		t.Errorf("event 2, still queued after 49 hours: %+v, want refused", r)
	}
	if r := queue(3); r.Enqueued != 1 {
		t.Errorf("event 3, delivered 49 hours ago: %+v, want queued", r)
	}
	// Settling prunes what is forgotten; what is remembered stays so.
	p := must(s.Pending("meta", 10))
	var out []state.Outcome
	for _, q := range p {
		out = append(out, state.Outcome{Seq: q.Seq, Status: state.Delivered})
	}
	if err := s.Settle("meta", out); err != nil {
		t.Fatal(err)
	}
	clock.Add(47 * time.Hour)
	if r := queue(1, 2, 3); r.Enqueued != 1 || r.Duplicates != 2 {
		t.Errorf("47 hours later, 1 and 3 were queued within 48 hours, 2 not: %+v, want 1 queued, 2 refused", r)
	}
}

// hashID is an event id shaped as the default event_id: a hex SHA-256.
func hashID(i int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return hex.EncodeToString(sum[:])
}

// manyHashedIDs: ids that do not come in any order are remembered as
// well as ordered ones, over many commits and settles.
func manyHashedIDs(t *testing.T, s Store) {
	defer s.Close()
	const n, page = 20000, 2000
	batch := func(from, to int) []state.Enqueue {
		var out []state.Enqueue
		for i := from; i < to; i++ {
			e := Event(i)
			e.EventID = hashID(i)
			out = append(out, state.Enqueue{Destination: "meta", Rule: "r", Event: e})
		}
		return out
	}
	for from := 0; from < n; from += page {
		if r := must(s.Commit(state.Batch{Source: "src", Events: batch(from, from+page)})); r.Enqueued != page {
			t.Fatalf("page at %d: queued %d of %d", from, r.Enqueued, page)
		}
		if from%(2*page) == 0 { // half are delivered, half stay queued
			var out []state.Outcome
			for _, q := range must(s.Pending("meta", 3*page)) {
				out = append(out, state.Outcome{Seq: q.Seq, Status: state.Delivered})
			}
			if err := s.Settle("meta", out); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Every id again, with new ones between them: only the new are queued.
	var again []state.Enqueue
	for i := range n {
		again = append(again, batch(i, i+1)...)
		if i%100 == 0 {
			again = append(again, batch(n+i, n+i+1)...)
		}
	}
	if r := must(s.Commit(state.Batch{Source: "src", Events: again})); r.Enqueued != n/100 || r.Duplicates != n {
		t.Errorf("every id again and %d new: queued %d, refused %d", n/100, r.Enqueued, r.Duplicates)
	}
}

// concurrentCommitAndSettle: a source commits while a sender settles;
// every event is queued once and delivered once, and repeats are refused.
func concurrentCommitAndSettle(t *testing.T, s Store) {
	defer s.Close()
	const rounds, per = 50, 100
	var wg sync.WaitGroup
	done := make(chan struct{})
	delivered := map[string]int{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			// Seen before reading: once every commit is in, an empty
			// outbox means all is delivered.
			finished := false
			select {
			case <-done:
				finished = true
			default:
			}
			p := must(s.Pending("meta", 500))
			var out []state.Outcome
			for _, q := range p {
				delivered[q.EventID]++
				out = append(out, state.Outcome{Seq: q.Seq, Status: state.Delivered})
			}
			if err := s.Settle("meta", out); err != nil {
				panic(err)
			}
			if len(p) == 0 {
				if finished {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	}()
	queued := 0
	for r := range rounds {
		ids := make([]int, 0, per+10)
		for i := range per {
			ids = append(ids, r*per+i)
		}
		if r > 0 { // ten of the previous round's, delivered or not
			for i := range 10 {
				ids = append(ids, (r-1)*per+i*7)
			}
		}
		res := must(s.Commit(state.Batch{Source: "src", Position: cdc.Position(strconv.Itoa(r)), Events: enq("meta", ids...)}))
		queued += res.Enqueued
	}
	close(done)
	wg.Wait()
	if queued != rounds*per {
		t.Errorf("queued %d, want %d", queued, rounds*per)
	}
	if len(delivered) != rounds*per {
		t.Errorf("delivered %d distinct events, want %d", len(delivered), rounds*per)
	}
	for id, n := range delivered {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

func moneyExact(t *testing.T, s Store) {
	defer s.Close()
	e := enq("meta", 1)
	e[0].Event.CustomData = map[string]any{"value": json.Number("1234.50"), "currency": "EUR"}
	must(s.Commit(state.Batch{Source: "src", Events: e}))
	p := must(s.Pending("meta", 1))
	if !strings.Contains(string(p[0].JSON), `"value":1234.50`) {
		t.Errorf("queued money changed: %s", p[0].JSON)
	}
	ev, err := p[0].Event()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(ev.CustomData); !strings.Contains(string(b), `"value":1234.50`) {
		t.Errorf("decoded money changed: %s", b)
	}
}

// must unwraps a store call; a failing call panics, which fails the test
// with the error and the stack (Go cannot pass a multi-value call plus t).
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("store call failed: %v", err))
	}
	return v
}

func commitIsAtomic(t *testing.T, s Store) {
	defer s.Close()
	if pos := must(s.Checkpoint("src")); pos != nil {
		t.Fatalf("new store has checkpoint %q", pos)
	}
	must(s.Commit(state.Batch{Source: "src", Position: cdc.Position("p1"), Events: enq("meta", 1, 2)}))
	if pos := must(s.Checkpoint("src")); string(pos) != "p1" {
		t.Fatalf("checkpoint = %q", pos)
	}
	bad := enq("meta", 3, 4)
	bad[1].Event.CustomData = map[string]any{"value": math.NaN()} // cannot be encoded: the commit fails midway
	if _, err := s.Commit(state.Batch{Source: "src", Position: cdc.Position("p2"), Events: bad,
		Shadows: []cdc.Shadow{{Table: "t", Key: []byte("k"), Value: []byte("v")}}}); err == nil {
		t.Fatal("commit of an unencodable event succeeded")
	}
	if pos := must(s.Checkpoint("src")); string(pos) != "p1" {
		t.Errorf("failed commit moved the checkpoint to %q", pos)
	}
	if p := must(s.Pending("meta", 10)); len(p) != 2 {
		t.Errorf("failed commit left %d events queued, want 2", len(p))
	}
	if sh := must(s.Shadows("src", "t", [][]byte{[]byte("k")})); sh[0] != nil {
		t.Error("failed commit left a shadow")
	}
}

// commitReturnsQueued: for events encoded before the commit, the commit
// returns what it queued exactly as Pending reads it back — duplicates
// left out, both destinations of a shared record, in sequence order.
func commitReturnsQueued(t *testing.T, s Store) {
	defer s.Close()
	must(s.Commit(state.Batch{Source: "src", Events: enq("meta", 1)}))
	var scratch bytes.Buffer
	var events []state.Enqueue
	for _, id := range []int{1, 2, 3} {
		e := state.Enqueue{Destination: "meta", Rule: "r", Event: Event(id)}
		if err := e.Encode(&scratch); err != nil {
			t.Fatal(err)
		}
		other := e
		other.Destination = "other"
		events = append(events, e, other)
	}
	r := must(s.Commit(state.Batch{Source: "src", Events: events}))
	if r.Enqueued != 5 || r.Duplicates != 1 || len(r.Queued) != 5 {
		t.Fatalf("commit: %+v", r)
	}
	for _, dest := range []string{"meta", "other"} {
		var got []state.Queued
		for _, q := range r.Queued {
			if q.Destination == dest {
				q.Destination = ""
				got = append(got, q)
			}
		}
		after := uint64(0)
		if dest == "meta" {
			after = must(s.Pending("meta", 1))[0].Seq // the event queued before
		}
		want := must(s.PendingAfter(dest, after, 10))
		if len(got) != len(want) {
			t.Fatalf("%s: commit returned %d events, Pending reads %d", dest, len(got), len(want))
		}
		for i := range want {
			if got[i].Enqueued.UnixNano() != want[i].Enqueued.UnixNano() || !bytes.Equal(got[i].JSON, want[i].JSON) {
				t.Errorf("%s[%d]: commit returned %+v, Pending reads %+v", dest, i, got[i], want[i])
			}
			got[i].Enqueued, want[i].Enqueued, got[i].JSON, want[i].JSON = time.Time{}, time.Time{}, nil, nil
			if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
				t.Errorf("%s[%d]: commit returned %+v, Pending reads %+v", dest, i, got[i], want[i])
			}
		}
	}
}

func idempotence(t *testing.T, s Store) {
	defer s.Close()
	r := must(s.Commit(state.Batch{Source: "src", Events: enq("meta", 1, 2)}))
	if r.Enqueued != 2 {
		t.Fatalf("enqueued %d", r.Enqueued)
	}
	r = must(s.Commit(state.Batch{Source: "src", Events: enq("meta", 2, 3)}))
	if r.Enqueued != 1 || r.Duplicates != 1 || r.Repeats["r"] != 1 {
		t.Fatalf("replay: %+v", r)
	}
	// Another destination queues its own copy.
	if r = must(s.Commit(state.Batch{Source: "src", Events: enq("other", 2)})); r.Enqueued != 1 {
		t.Fatalf("other destination: %+v", r)
	}
	p := must(s.Pending("meta", 10))
	if err := s.Settle("meta", []state.Outcome{{Seq: p[0].Seq, Status: state.Delivered}}); err != nil {
		t.Fatal(err)
	}
	// A delivered event read again is not queued again.
	if r = must(s.Commit(state.Batch{Source: "src", Events: enq("meta", 1)})); r.Enqueued != 0 || r.Duplicates != 1 {
		t.Fatalf("replay after delivery: %+v", r)
	}
	if p := must(s.Pending("meta", 10)); len(p) != 2 {
		t.Fatalf("pending %d", len(p))
	}
	// Repeats are counted per rule, for status.
	if st := must(s.Status()); st.Counters[state.RepeatCounter("r")] != 2 {
		t.Errorf("repeat counter = %d, want 2", st.Counters[state.RepeatCounter("r")])
	}
}

func pendingOrder(t *testing.T, s Store) {
	defer s.Close()
	for i := 0; i < 5; i++ {
		must(s.Commit(state.Batch{Source: "src", Events: enq("meta", 10*i, 10*i+1)}))
	}
	p := must(s.Pending("meta", 4))
	if len(p) != 4 {
		t.Fatalf("pending %d", len(p))
	}
	for i := 1; i < len(p); i++ {
		if p[i].Seq <= p[i-1].Seq {
			t.Fatalf("not in order: %d after %d", p[i].Seq, p[i-1].Seq)
		}
	}
	if p[0].EventID != "lead-0" || p[3].EventID != "lead-11" || p[0].Rule != "r" || p[0].Enqueued.IsZero() || p[0].EventName != "Lead" || p[0].EventTime != 1795168800 {
		t.Errorf("pending = %+v", p)
	}
	if got := must(s.Pending("nobody", 4)); len(got) != 0 {
		t.Errorf("unknown destination has %d pending", len(got))
	}
	// Reading on after the last event taken (batches in flight).
	next := must(s.PendingAfter("meta", p[3].Seq, 3))
	if len(next) != 3 || next[0].EventID != "lead-20" || next[2].EventID != "lead-30" {
		t.Errorf("after seq %d: %+v", p[3].Seq, next)
	}
	if got := must(s.PendingAfter("meta", 1<<62, 3)); len(got) != 0 {
		t.Errorf("after the last event: %d pending", len(got))
	}
	all := must(s.Pending("meta", 100))
	if last := must(s.LastSeq("meta")); last != all[len(all)-1].Seq {
		t.Errorf("LastSeq %d, the last queued event has %d", last, all[len(all)-1].Seq)
	}
	if last := must(s.LastSeq("nobody")); last != 0 {
		t.Errorf("LastSeq of an unknown destination: %d", last)
	}
}

func settle(t *testing.T, s Store) {
	defer s.Close()
	must(s.Commit(state.Batch{Source: "src", Events: enq("meta", 1, 2, 3)}))
	p := must(s.Pending("meta", 10))
	err := s.Settle("meta", []state.Outcome{
		{Seq: p[0].Seq, Status: state.Delivered, Attempts: 1},
		{Seq: p[1].Seq, Status: state.DeadLettered, Reason: "rejected by Meta", Code: 100, Subcode: 2804019, Message: "Invalid parameter", FBTraceID: "Atrace", Attempts: 2},
		{Seq: p[2].Seq, Status: state.Deferred, Reason: "paused", Attempts: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	left := must(s.Pending("meta", 10))
	if len(left) != 1 || left[0].Seq != p[2].Seq || left[0].Attempts != 1 {
		t.Fatalf("left = %+v", left)
	}
	dead := must(s.DeadLetters("meta"))
	if len(dead) != 1 {
		t.Fatalf("dead = %+v", dead)
	}
	d := dead[0]
	if d.Event == nil || d.Event.EventID != "lead-2" || d.Code != 100 || d.Subcode != 2804019 || d.FBTraceID != "Atrace" ||
		d.Attempts != 2 || d.FirstAttempt.IsZero() || d.LastAttempt.IsZero() || d.Reason != "rejected by Meta" || d.Rule != "r" {
		t.Errorf("dead letter = %+v", d)
	}
	st := must(s.Status())
	if o := st.Destinations["meta"]; o.Depth != 1 || o.DeadLetters != 1 || o.OldestEnqueued.IsZero() {
		t.Errorf("status = %+v", o)
	}
	// Retry puts it back in the outbox; drop removes it for good.
	if n := must(s.RetryDead("meta", []uint64{d.ID})); n != 1 {
		t.Fatalf("retried %d", n)
	}
	if left := must(s.Pending("meta", 10)); len(left) != 2 || left[1].EventID != "lead-2" {
		t.Fatalf("after retry: %+v", left)
	}
	p = must(s.Pending("meta", 10))
	if err := s.Settle("meta", []state.Outcome{{Seq: p[1].Seq, Status: state.DeadLettered, Reason: "again"}}); err != nil {
		t.Fatal(err)
	}
	if n := must(s.DropDead("meta", nil)); n != 1 {
		t.Fatalf("dropped %d", n)
	}
	if dead := must(s.DeadLetters("")); len(dead) != 0 {
		t.Errorf("dead after drop = %+v", dead)
	}
	// Rule failures are dead letters without an event.
	must(s.Commit(state.Batch{Source: "src", DeadLetters: []state.DeadLetter{{Destination: "meta", Rule: "r", Key: "id=7", Reason: "event_time: not a time"}}}))
	if dead := must(s.DeadLetters("meta")); len(dead) != 1 || dead[0].Key != "id=7" || dead[0].Event != nil {
		t.Errorf("rule failure dead letter = %+v", dead)
	}
	if n := must(s.RetryDead("meta", nil)); n != 0 {
		t.Errorf("a rule failure has no event to retry, yet %d were retried", n)
	}
}

func shadows(t *testing.T, s Store) {
	defer s.Close()
	must(s.Commit(state.Batch{Source: "src", Shadows: []cdc.Shadow{
		{Table: "orders", Key: []byte("1"), Value: []byte("a")},
		{Table: "orders", Key: []byte("2"), Value: []byte("b")},
		{Table: "leads", Key: []byte("1"), Value: []byte("x")},
	}}))
	got := must(s.Shadows("src", "orders", [][]byte{[]byte("1"), []byte("2"), []byte("3")}))
	if string(got[0]) != "a" || string(got[1]) != "b" || got[2] != nil {
		t.Fatalf("shadows = %q", got)
	}
	must(s.Commit(state.Batch{Source: "src", Shadows: []cdc.Shadow{{Table: "orders", Key: []byte("1")}}}))
	if got := must(s.Shadows("src", "orders", [][]byte{[]byte("1")})); got[0] != nil {
		t.Error("deleted shadow still there")
	}
	if got := must(s.Shadows("other", "orders", [][]byte{[]byte("2")})); got[0] != nil {
		t.Error("shadows leak across sources")
	}
	// Within one commit, the later write of a key wins, whatever the order
	// the store applies them in; lookups answer in the order asked.
	must(s.Commit(state.Batch{Source: "src", Shadows: []cdc.Shadow{
		{Table: "orders", Key: []byte("9"), Value: []byte("first")},
		{Table: "leads", Key: []byte("9"), Value: []byte("lead")},
		{Table: "orders", Key: []byte("5"), Value: []byte("five")},
		{Table: "orders", Key: []byte("9"), Value: []byte("second")},
		{Table: "orders", Key: []byte("5")},
	}}))
	got = must(s.Shadows("src", "orders", [][]byte{[]byte("9"), []byte("5"), []byte("2")}))
	if string(got[0]) != "second" || got[1] != nil || string(got[2]) != "b" {
		t.Errorf("after rewrites in one commit: shadows = %q, want [second <nil> b]", got)
	}
}

// shadowScans: a scan sees a table's shadows in key order, and only its;
// a rewrite changes what fn says, once per format.
func shadowScans(t *testing.T, s Store) {
	defer s.Close()
	var sh []cdc.Shadow
	for i := 9; i >= 0; i-- {
		sh = append(sh, cdc.Shadow{Table: "orders", Key: []byte{byte('0' + i)}, Value: []byte(fmt.Sprintf("v%d", i))})
	}
	sh = append(sh, cdc.Shadow{Table: "leads", Key: []byte("x"), Value: []byte("other table")})
	must(s.Commit(state.Batch{Source: "src", Shadows: sh}))
	scan := func() []string {
		var got []string
		if err := s.ScanShadows("src", "orders", func(k, v []byte) error {
			got = append(got, string(k)+"="+string(v))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := scan(); len(got) != 10 || got[0] != "0=v0" || got[9] != "9=v9" {
		t.Fatalf("scan = %q, want 0=v0 .. 9=v9 in key order", got)
	}
	odd := func(v []byte) ([]byte, bool) {
		if (v[1]-'0')%2 == 1 {
			return append([]byte("new-"), v...), true
		}
		return nil, false
	}
	const f2 = "f2\x00binary\xff" // a format is bytes, as a source's encoding names it
	if n := must(s.RewriteShadows("src", "orders", f2, odd)); n != 5 {
		t.Errorf("rewrote %d shadows, want 5", n)
	}
	if got := scan(); got[1] != "1=new-v1" || got[2] != "2=v2" {
		t.Errorf("after the rewrite: %q", got)
	}
	if n := must(s.RewriteShadows("src", "orders", f2, odd)); n != 0 {
		t.Errorf("a second pass for the same format rewrote %d shadows, want none", n)
	}
	if got := must(s.Shadows("src", "leads", [][]byte{[]byte("x")})); string(got[0]) != "other table" {
		t.Errorf("another table's shadow: %q", got[0])
	}
}

// depthAndCheckpoints: depth follows queueing and settling; a checkpoint
// can be forgotten.
func depthAndCheckpoints(t *testing.T, s Store) {
	defer s.Close()
	must(s.Commit(state.Batch{Source: "src", Position: cdc.Position("p1"), Events: enq("meta", 1, 2, 3)}))
	if d := must(s.Depth("meta")); d != 3 {
		t.Errorf("depth %d, want 3", d)
	}
	p := must(s.Pending("meta", 10))
	if err := s.Settle("meta", []state.Outcome{{Seq: p[0].Seq, Status: state.Delivered}, {Seq: p[1].Seq, Status: state.DeadLettered, Reason: "x"}}); err != nil {
		t.Fatal(err)
	}
	if d := must(s.Depth("meta")); d != 1 {
		t.Errorf("depth after settling two: %d, want 1", d)
	}
	if last := must(s.LastSeq("meta")); last != p[2].Seq {
		t.Errorf("last seq %d, want %d", last, p[2].Seq)
	}
	if old := must(s.ForgetCheckpoint("src")); string(old) != "p1" {
		t.Errorf("forgot %q, want p1", old)
	}
	if pos := must(s.Checkpoint("src")); pos != nil {
		t.Errorf("checkpoint after forgetting: %q", pos)
	}
}
