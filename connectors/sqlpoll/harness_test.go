package sqlpoll_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/connectors/sqlpoll"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/pipeline"
	"github.com/capisync/capisync/internal/slots"
	"github.com/capisync/capisync/internal/testenv"
	"github.com/capisync/capisync/rules"
	"github.com/capisync/capisync/state/bolt"
)

const (
	pixel = "1234567890"
	token = "EAAtoken"
)

// dbKind is one database the polling source runs against.
type dbKind struct {
	name    string // mysql, postgres_poll, sqlite
	dsn     func(t *testing.T) string
	driver  string
	ddl     string // %s = table
	now     string // SQL for "now" in the cursor column
	dsnMain func(t *testing.T, dsn string) string
}

var kinds = []dbKind{
	{name: sqlpoll.TypeMySQL, driver: "mysql", dsn: func(t *testing.T) string { return testenv.MySQLDSN(t) },
		ddl: "CREATE TABLE %s (id BIGINT PRIMARY KEY, status VARCHAR(20) NOT NULL, email VARCHAR(100), total DECIMAL(12,2), updated_at DATETIME(6) NOT NULL, INDEX (updated_at, id))",
		now: "NOW(6)"},
	{name: sqlpoll.TypePostgres, driver: "pgx", dsn: func(t *testing.T) string { return testenv.PostgresDSN(t) },
		ddl: "CREATE TABLE %s (id bigint PRIMARY KEY, status text NOT NULL, email text, total numeric(12,2), updated_at timestamptz NOT NULL); CREATE INDEX ON %[1]s (updated_at, id)",
		now: "clock_timestamp()"},
	{name: sqlpoll.TypeSQLite, driver: "sqlite", dsn: func(t *testing.T) string { return filepath.Join(t.TempDir(), "src.db") },
		ddl: "CREATE TABLE %s (id INTEGER PRIMARY KEY, status TEXT NOT NULL, email TEXT, total TEXT, updated_at TEXT NOT NULL); CREATE INDEX %[1]s_upd ON %[1]s (updated_at, id)",
		now: "strftime('%Y-%m-%d %H:%M:%f','now')"},
}

// env is one polling source on a fresh table, the store, the rules, and
// the fake Graph API, run through the real pipeline.
type env struct {
	t     *testing.T
	kind  dbKind
	dsn   string
	db    *sql.DB
	table string
	fake  *metacapitest.Server
	dir   string
	cfg   *config.Config
	set   *rules.Set

	cancel context.CancelFunc
	done   chan error
	src    *sqlpoll.Source
	store  *bolt.Store
	// keepAll makes the source keep every column rules read in its
	// shadows, as capisync did before shadows kept only old values.
	keepAll bool
}

func newEnv(t *testing.T, k dbKind, extraSource, rulesYAML string) *env {
	t.Helper()
	e := &env{t: t, kind: k, dsn: k.dsn(t), dir: t.TempDir()}
	e.table = fmt.Sprintf("orders_%d", time.Now().UnixNano()%1e9)
	dsn := e.dsn
	if k.driver == "sqlite" { // SQLite has one writer: wait for the source's reads, as it waits for ours
		dsn = "file:" + dsn + "?_pragma=busy_timeout(5000)"
	}
	db, err := sql.Open(k.driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	t.Cleanup(func() {
		db.Exec("DROP TABLE " + e.table)
		db.Close()
	})
	for _, stmt := range strings.Split(fmt.Sprintf(k.ddl, e.table), "; ") {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	e.fake = metacapitest.New(pixel, token)
	t.Cleanup(e.fake.Close)
	if rulesYAML == "" {
		rulesYAML = defaultRules
	}
	src := fmt.Sprintf(`sources:
  shop:
    type: %s
    dsn: '%s'
    schedule: "@every 1s"
    page_size: 3
%s
    tables:
      %s:
        key: [id]
        cursor: updated_at
        lookback: 3s
destinations:
  meta:
    type: meta_capi
    pixel_id: "%s"
    access_token: %s
    base_url: %s
    flush_interval: 10ms
rules:
%s`, k.name, e.dsn, extraSource, e.table, pixel, token, e.fake.URL, strings.ReplaceAll(rulesYAML, "TABLE", e.table))
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

// defaultRules are the polling benchmark's rules on the env's table.
var defaultRules = testenv.OrderRules("shop", "TABLE")

// start runs the pipeline (store reopened from the same file each time).
func (e *env) start() {
	e.t.Helper()
	store, err := bolt.Open(filepath.Join(e.dir, "state.db"), bolt.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	cpu := slots.New(0) // as the daemon wires them
	opt := sqlpoll.Options{
		ColumnUsers: func(tb string) map[string][]string { return e.set.ColumnUsers("shop", tb) },
		OldColumns:  func(tb string) []string { return e.set.OldColumns("shop", tb) },
		Slots:       cpu,
	}
	if e.keepAll {
		opt.OldColumns = nil
	}
	src, err := sqlpoll.New("shop", *e.cfg.Sources["shop"], store, opt)
	if err != nil {
		e.t.Fatal(err)
	}
	dest, err := metacapi.New("meta", *e.cfg.Destinations["meta"], metacapi.Options{BackoffBase: time.Millisecond, BackoffCap: 10 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{Store: store, Rules: e.set, ShutdownTimeout: 5 * time.Second, Slots: cpu,
		Sources:      []pipeline.NamedSource{{Name: "shop", Source: src}},
		Destinations: []pipeline.NamedDestination{{Name: "meta", Destination: dest, MaxOutbox: 1000}}})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done, e.src, e.store = cancel, make(chan error, 1), src, store
	go func() {
		err := p.Run(ctx)
		src.Close()
		dest.Close()
		store.Close()
		e.done <- err
	}()
	e.t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("pipeline: %v", err)
	}
	e.cancel = nil
}

// polls waits until the source has finished n more polls.
func (e *env) polls(n int64) { e.t.Helper(); e.pollsWithin(n, 30*time.Second) }

// pollsWithin waits until the source has finished n more polls, for at
// most d.
func (e *env) pollsWithin(n int64, d time.Duration) {
	e.t.Helper()
	start := e.src.Stats().Polls
	deadline := time.Now().Add(d)
	for e.src.Stats().Polls < start+n {
		if time.Now().After(deadline) {
			e.t.Fatalf("no poll finished in %s: %+v", d, e.src.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	q = strings.ReplaceAll(q, "TABLE", e.table)
	q = strings.ReplaceAll(q, "NOW", e.kind.now)
	if e.kind.driver == "pgx" {
		for i := 1; strings.Contains(q, "?"); i++ {
			q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
		}
	}
	if _, err := e.db.Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// events returns the fake's accepted "name id" pairs, sorted as received.
func (e *env) events() []string {
	var out []string
	for _, ev := range e.fake.Events() {
		out = append(out, ev.Name+" "+ev.ID)
	}
	return out
}

// waitEvents waits until the fake holds want (in any order), then checks
// that nothing else arrived.
func (e *env) waitEvents(want ...string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(e.events()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := e.events()
	if !testenv.SameSet(got, want) {
		e.t.Fatalf("events = %v, want %v", got, want)
	}
}
