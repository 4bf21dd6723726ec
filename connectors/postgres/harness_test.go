package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/connectors/postgres"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/pipeline"
	"github.com/capisync/capisync/internal/testenv"
	"github.com/capisync/capisync/rules"
	"github.com/capisync/capisync/state"
	"github.com/capisync/capisync/state/bolt"
)

const (
	pixel = "1234567890"
	token = "EAAtoken"
)

// env is one logical replication source on fresh tables (leads with
// REPLICA IDENTITY FULL, orders with DEFAULT), its own slot and
// publication, the real pipeline and store, and the fake Graph API.
type env struct {
	t      *testing.T
	dsn    string
	db     *pgx.Conn
	suffix string
	fake   *metacapitest.Server
	dir    string
	cfg    *config.Config
	set    *rules.Set
	gate   *gate

	cancel context.CancelFunc
	done   chan error
	src    *postgres.Source
}

func newEnv(t *testing.T, sourceExtra, rulesYAML string) *env {
	t.Helper()
	return newEnvOn(t, testenv.PostgresDSN(t), sourceExtra, rulesYAML)
}

// newEnvOn is newEnv on the PostgreSQL server at dsn.
func newEnvOn(t *testing.T, dsn, sourceExtra, rulesYAML string) *env {
	t.Helper()
	e := &env{t: t, dsn: dsn, dir: t.TempDir(), suffix: fmt.Sprintf("%d", time.Now().UnixNano()%1e9)}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	e.db = conn
	e.exec(`CREATE TABLE leads_S (id bigint PRIMARY KEY, status text NOT NULL, email text, score int, deal numeric(12,2),
		notes text, updated_at timestamptz NOT NULL DEFAULT now())`)
	e.exec(`ALTER TABLE leads_S REPLICA IDENTITY FULL`)
	e.exec(`CREATE TABLE orders_S (id bigint PRIMARY KEY, status text NOT NULL, email text, total numeric(12,2))`)
	t.Cleanup(func() {
		e.stop()
		c := context.Background()
		testenv.DropSlots(t, e.dsn, "slot_"+e.suffix)
		conn.Exec(c, "DROP PUBLICATION IF EXISTS pub_"+e.suffix)
		conn.Exec(c, "DROP TABLE IF EXISTS leads_"+e.suffix+", orders_"+e.suffix)
		conn.Close(c)
	})
	e.fake = metacapitest.New(pixel, token)
	t.Cleanup(e.fake.Close)
	if rulesYAML == "" {
		rulesYAML = defaultRules
	}
	src := fmt.Sprintf(`sources:
  crm:
    type: postgres
    dsn: '%s'
    slot: slot_S
    publication: pub_S
    heartbeat: 0s
%s
    tables: [public.leads_S, public.orders_S]
destinations:
  meta:
    type: meta_capi
    pixel_id: "%s"
    access_token: %s
    base_url: %s
    flush_interval: 10ms
rules:
%s`, e.dsn, sourceExtra, pixel, token, e.fake.URL, rulesYAML)
	src = strings.ReplaceAll(src, "_S", "_"+e.suffix)
	cfg, err := config.Parse("test.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, src)
	}
	e.cfg = cfg
	if e.set, err = rules.Compile(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

const defaultRules = `
  - name: qualified
    source: crm
    table: public.leads_S
    when: changed_to("status", "qualified")
    event: Lead
    event_id: '"lead-" + string(new.id)'
    user_data: {em: new.email}
    custom_data: {previous: old.status}
  - name: won
    source: crm
    table: public.leads_S
    when: changed_to("status", "won") && new.deal > 1000 # numeric compares as a number
    event: Purchase
    event_time: new.updated_at
    event_id: '"won-" + string(new.id)'
    user_data: {em: new.email}
    custom_data: {value: new.deal, currency: '"USD"'}
  - name: notes-changed
    source: crm
    table: public.leads_S
    when: op == "update" && changed("notes")
    event: NotesChanged
    event_id: '"notes-" + string(new.id) + "-" + string(new.score)'
    user_data: {em: new.email}
  - name: order
    source: crm
    table: public.orders_S
    when: op == "insert"
    event: Purchase
    event_id: '"order-" + string(new.id)'
    user_data: {em: new.email}
    custom_data: {value: new.total, currency: '"EUR"'}
  - name: order-deleted
    source: crm
    table: public.orders_S
    when: op == "delete"
    event: OrderDeleted
    event_id: '"deleted-" + string(old.id)'
    user_data: {external_id: string(old.id)}
`

// gate holds commits to the store while closed.
type gate struct {
	*bolt.Store
	mu     sync.Mutex
	closed bool
	open   chan struct{}
}

func (g *gate) Commit(b ...state.Batch) (state.CommitResult, error) {
	g.mu.Lock()
	ch := g.open
	closed := g.closed
	g.mu.Unlock()
	if closed {
		<-ch
	}
	return g.Store.Commit(b...)
}

func (g *gate) close() { g.mu.Lock(); g.closed, g.open = true, make(chan struct{}); g.mu.Unlock() }
func (g *gate) release() {
	g.mu.Lock()
	if g.closed {
		close(g.open)
	}
	g.closed = false
	g.mu.Unlock()
}

func (e *env) start() {
	e.t.Helper()
	store, err := bolt.Open(filepath.Join(e.dir, "state.db"), bolt.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.gate = &gate{Store: store}
	src, err := postgres.New("crm", *e.cfg.Sources["crm"], store, postgres.Options{
		RulesReadingOld: func(t string, key ...string) []string { return e.set.RulesReadingOld("crm", t, key...) },
		Track:           func(t string) []string { return e.set.Columns("crm", t) },
		ColumnUsers:     func(t string) map[string][]string { return e.set.ColumnUsers("crm", t) },
		OldColumns:      func(t string) []string { return e.set.OldColumns("crm", t) },
		StatusInterval:  100 * time.Millisecond,
		ChunkSize:       1000,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	dest, err := metacapi.New("meta", *e.cfg.Destinations["meta"], metacapi.Options{BackoffBase: time.Millisecond, BackoffCap: 10 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{Store: e.gate, Rules: e.set, ShutdownTimeout: 10 * time.Second,
		Sources:      []pipeline.NamedSource{{Name: "crm", Source: src}},
		Destinations: []pipeline.NamedDestination{{Name: "meta", Destination: dest, MaxOutbox: 1_000_000}}})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done, e.src = cancel, make(chan error, 1), src
	go func() {
		err := p.Run(ctx)
		dest.Close()
		store.Close()
		e.done <- err
	}()
}

// failure waits for the pipeline to stop by itself and returns its error.
func (e *env) failure() error {
	e.t.Helper()
	select {
	case err := <-e.done:
		e.cancel = nil
		return err
	case <-time.After(60 * time.Second):
		e.t.Fatal("the pipeline did not stop")
		return nil
	}
}

// streaming waits until the source streams, failing at once if the
// pipeline stopped.
func (e *env) streaming() {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !e.src.Stats().Connected {
		select {
		case err := <-e.done:
			e.cancel = nil
			e.t.Fatalf("pipeline stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for the source to stream (last error: %s)", e.src.Stats().LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.gate.release()
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("pipeline: %v", err)
	}
	e.cancel = nil
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	q = strings.ReplaceAll(q, "_S", "_"+e.suffix)
	if _, err := e.db.Exec(context.Background(), q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) events() map[string]int {
	out := map[string]int{}
	for _, ev := range e.fake.Events() {
		out[ev.Name+" "+ev.ID]++
	}
	return out
}

// waitEvents waits for exactly want (each once).
func (e *env) waitEvents(want ...string) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for e.fake.Stats().Accepted < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := e.events()
	ok := len(got) == len(want)
	for _, w := range want {
		if got[w] != 1 {
			ok = false
		}
	}
	if !ok || e.fake.Stats().Accepted != len(want) {
		e.t.Fatalf("events = %v, want %v", got, want)
	}
}

func (e *env) lsn() string {
	var lsn string
	e.db.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
	return lsn
}

// confirmedBehind reports whether the slot's confirmed_flush_lsn is before lsn.
func (e *env) confirmedBehind(lsn string) bool {
	var behind bool
	err := e.db.QueryRow(context.Background(), "SELECT confirmed_flush_lsn < $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2", lsn, "slot_"+e.suffix).Scan(&behind)
	if err != nil {
		e.t.Fatal(err)
	}
	return behind
}
