package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/internal/testenv"
)

var updateGolden = flag.Bool("update", false, "rewrite the examples' expected.jsonl")

// example is one folder of examples/.
type example struct {
	name    string
	db      string // postgres, mysql, sqlite
	dsnEnv  string // the variable its config reads the DSN from
	source  string
	polling bool
	envs    []string // extra variables (a fast schedule)
	drop    []string // statements that remove what schema.sql made
	slot    string   // logical replication slot and publication to drop
}

var examples = []example{
	{name: "crm-leads", db: "postgres", dsnEnv: "CRM_PG_DSN", source: "crm", drop: []string{"DROP SCHEMA IF EXISTS crm CASCADE"}, slot: "capisync_example_crm"},
	{name: "mariadb-binlog", db: "mysql", dsnEnv: "SHOP_MYSQL_DSN", source: "shop", drop: []string{"DROP TABLE IF EXISTS binlog_orders"}},
	{name: "ecommerce-refunds", db: "mysql", dsnEnv: "SHOP_MYSQL_DSN", source: "shop", polling: true, envs: []string{"SHOP_SCHEDULE=@every 1s"}, drop: []string{"DROP TABLE IF EXISTS shop_orders"}},
	{name: "bookings", db: "postgres", dsnEnv: "BOOKINGS_PG_DSN", source: "app", drop: []string{"DROP SCHEMA IF EXISTS bookings CASCADE"}, slot: "capisync_example_bookings"},
	{name: "offline-sales", db: "mysql", dsnEnv: "POS_MYSQL_DSN", source: "pos", polling: true, envs: []string{"POS_SCHEDULE=@every 1s"}, drop: []string{"DROP TABLE IF EXISTS pos_sales"}},
	{name: "whatsapp-ctwa", db: "postgres", dsnEnv: "CTWA_PG_DSN", source: "chats", drop: []string{"DROP SCHEMA IF EXISTS ctwa CASCADE"}, slot: "capisync_example_ctwa"},
	{name: "web-activity", db: "postgres", dsnEnv: "WEB_PG_DSN", source: "web", drop: []string{"DROP SCHEMA IF EXISTS web CASCADE"}, slot: "capisync_example_web"},
	{name: "quickstart", db: "sqlite", dsnEnv: "QUICKSTART_DB", source: "crm", polling: true, envs: []string{"QUICKSTART_SCHEDULE=@every 1s"}},
}

// TestExamplesGolden: `rules test` on each example's changes.jsonl prints
// exactly its expected.jsonl (go test -run TestExamplesGolden -update
// rewrites them).
func TestExamplesGolden(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			dir := filepath.Join("../../examples", ex.name)
			for _, f := range []string{"schema.sql", "config.yaml", "changes.jsonl", "expected.jsonl", "README.md", "demo.sql"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("example lacks %s", f)
				}
			}
			code, out, errOut := runCLI(t, "rules", "test", "--config", filepath.Join(dir, "config.yaml"), "--changes", filepath.Join(dir, "changes.jsonl"))
			if code != 0 {
				t.Fatalf("rules test: exit %d\n%s", code, errOut)
			}
			if *updateGolden {
				os.WriteFile(filepath.Join(dir, "expected.jsonl"), []byte(out), 0o644)
			}
			want, _ := os.ReadFile(filepath.Join(dir, "expected.jsonl"))
			if out != string(want) {
				t.Errorf("rules test output differs from expected.jsonl\n got: %s\nwant: %s", out, want)
			}
		})
	}
}

// TestExamplesCoverEveryPromisedEvent: together the examples send every
// event the product promises.
func TestExamplesCoverEveryPromisedEvent(t *testing.T) {
	seen := map[string]bool{}
	for _, ex := range examples {
		for _, p := range expectedPairs(t, ex) {
			seen[strings.Fields(p)[0]] = true
		}
	}
	for _, e := range []string{"Purchase", "Lead", "CompleteRegistration", "Contact", "Schedule", "InitiateCheckout", "AddPaymentInfo",
		"AddToCart", "AddToWishlist", "Search", "ViewContent", "PageView", "CancelledOrder", "LeadScore", "OfflinePurchase", "CompletedOrder"} {
		if !seen[e] {
			t.Errorf("no example sends %s", e)
		}
	}
}

// expectedPairs reads "event_name event_id" from expected.jsonl.
func expectedPairs(t *testing.T, ex example) []string {
	f, err := os.Open(filepath.Join("../../examples", ex.name, "expected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			Name string `json:"event_name"`
			ID   string `json:"event_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Name+" "+e.ID)
	}
	return out
}

// TestExamplesLive runs each example for real: its schema in the real
// database, the built binary with its config, its demo.sql, and the fake
// Graph API, which must receive exactly the events of expected.jsonl.
func TestExamplesLive(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			var dsn, driver string
			switch ex.db {
			case "postgres":
				dsn, driver = testenv.PostgresDSN(t), "pgx"
			case "mysql":
				dsn, driver = testenv.MySQLDSN(t)+"?multiStatements=true", "mysql"
			case "sqlite":
				dsn, driver = filepath.Join(t.TempDir(), "crm.db"), "sqlite"
			}
			db, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			cleanup := func() {
				for _, q := range ex.drop {
					db.Exec(q)
				}
				if ex.slot != "" {
					testenv.DropSlots(t, dsn, ex.slot)
					db.Exec("DROP PUBLICATION IF EXISTS " + ex.slot)
				}
			}
			cleanup()
			defer cleanup()
			dir := filepath.Join("../../examples", ex.name)
			execSQL(t, db, filepath.Join(dir, "schema.sql"))

			fake := metacapitest.New("1234567890", "EAAexample")
			defer fake.Close()
			addr := freeAddr(t)
			cmd := exec.Command(bin, "run", "--config", filepath.Join(dir, "config.yaml"))
			cmd.Env = append(os.Environ(), ex.envs...)
			cmd.Env = append(cmd.Env, ex.dsnEnv+"="+strings.TrimSuffix(dsn, "?multiStatements=true"), "META_BASE_URL="+fake.URL, "META_DRY_RUN=false",
				"META_ACCESS_TOKEN=EAAexample", "META_PIXEL_ID=1234567890", "CAPISYNC_STATE="+filepath.Join(t.TempDir(), "state.db"), "CAPISYNC_LISTEN="+addr)
			var logs testenv.Buffer
			cmd.Stdout, cmd.Stderr = &logs, &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Signal(syscall.SIGTERM)
				cmd.Wait()
			}()
			until := func(what string, cond func() bool) { t.Helper(); eventually(t, what, 45*time.Second, &logs, cond) }
			until("ready", func() bool { code, _ := httpGet(addr, "/readyz"); return code == 200 })
			checkpoint := func() string {
				_, body := httpGet(addr, "/status")
				var rep struct {
					Sources []struct{ Name, Checkpoint string }
				}
				json.Unmarshal([]byte(body), &rep)
				for _, s := range rep.Sources {
					if s.Name == ex.source {
						return s.Checkpoint
					}
				}
				return ""
			}
			if ex.polling {
				until("the baseline", func() bool { return checkpoint() != "" })
			}
			for _, step := range demoSteps(t, filepath.Join(dir, "demo.sql")) {
				before := checkpoint()
				if execStatements(t, db, step) == 0 {
					continue
				}
				if ex.polling { // a poll sees rows as they are: let it see each step
					until("a poll to read the step", func() bool { return checkpoint() != before })
				}
			}
			want := expectedPairs(t, ex)
			until(fmt.Sprintf("%d events at the fake", len(want)), func() bool { return fake.Stats().Accepted >= len(want) })
			time.Sleep(300 * time.Millisecond)
			var got []string
			for _, e := range fake.Events() {
				got = append(got, e.Name+" "+e.ID)
			}
			if !testenv.SameSet(got, want) {
				t.Errorf("the fake received %v\nwant %v\n%s", got, want, logs.String())
			}
			if ex.name == "mariadb-binlog" { // its own gauges, measured from the checkpoint
				for _, m := range []string{`capisync_binlog_behind_bytes{source="shop"}`, `capisync_binlog_last_commit_age_seconds{source="shop"}`} {
					until(m, func() bool { _, body := httpGet(addr, "/metrics"); return strings.Contains(body, m) })
				}
			}
		})
	}
}

// demoSteps splits demo.sql at its "-- step" lines.
func demoSteps(t *testing.T, file string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "-- step") || len(steps) == 0 {
			steps = append(steps, "")
		}
		steps[len(steps)-1] += line + "\n"
	}
	return steps
}

// eventually waits until cond holds, failing with the daemon's logs after
// timeout.
func eventually(t *testing.T, what string, timeout time.Duration, logs fmt.Stringer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\nlogs:\n%s", what, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpGet(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func execSQL(t *testing.T, db *sql.DB, file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	execStatements(t, db, string(b))
}

// execStatements runs ;-separated statements (comments skipped) and
// returns how many ran.
func execStatements(t *testing.T, db *sql.DB, text string) int {
	t.Helper()
	var stmt bytes.Buffer
	n := 0
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") || trimmed == "" {
			continue
		}
		stmt.WriteString(line + "\n")
		if strings.HasSuffix(trimmed, ";") {
			if _, err := db.ExecContext(context.Background(), stmt.String()); err != nil {
				t.Fatalf("%s: %v", stmt.String(), err)
			}
			stmt.Reset()
			n++
		}
	}
	return n
}

// TestExamplesReadmeGivesTheirDSN: each example's README sets the DSN
// variable its config reads, so that its commands work as written; the
// polling ones run their demo's steps a poll apart.
func TestExamplesReadmeGivesTheirDSN(t *testing.T) {
	for _, ex := range examples {
		if ex.db == "sqlite" {
			continue // the quickstart's DSN has a working default and the README needs none
		}
		readme, err := os.ReadFile(filepath.Join("../../examples", ex.name, "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), "export "+ex.dsnEnv+"=") {
			t.Errorf("%s/README.md does not set %s", ex.name, ex.dsnEnv)
		}
		if ex.name == "ecommerce-refunds" && !strings.Contains(string(readme), "sleep") {
			t.Errorf("%s/README.md runs the demo's steps at once: the paid step (the Purchase) is never seen", ex.name)
		}
	}
}
