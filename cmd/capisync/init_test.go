package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/capisync/capisync/internal/testenv"
)

// TestInit drafts a config from a real MariaDB table: validate passes on
// it, rules test runs on the changes file it wrote, the status values
// become rules with the nearest standard events, the match keys are found
// from names and values, and no row's value is printed or written.
func TestInit(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := fmt.Sprintf("init_deals_%d", time.Now().UnixNano()%1e9)
	mustExec(t, db, fmt.Sprintf(`CREATE TABLE %s (id BIGINT PRIMARY KEY, contact VARCHAR(100), mobile VARCHAR(40), first_name VARCHAR(40),
		stage VARCHAR(20), amount DECIMAL(12,2), currency CHAR(3), updated_at DATETIME(6) NOT NULL)`, table))
	defer db.Exec("DROP TABLE " + table)
	secrets := []string{"secret.person@corp.example", "+1 415 555 0123", "Hildegard"}
	mustExec(t, db, fmt.Sprintf(`INSERT INTO %s VALUES
		(1, 'secret.person@corp.example', '+1 415 555 0123', 'Hildegard', 'new', NULL, 'EUR', NOW(6)),
		(2, 'other.person@corp.example', '+1 415 555 0124', 'Ottilie', 'qualified', NULL, 'EUR', NOW(6)),
		(3, 'third.person@corp.example', '+1 415 555 0125', 'Brunhild', 'won', 1250.50, 'EUR', NOW(6)),
		(4, 'fourth.person@corp.example', '+1 415 555 0126', 'Kunigunde', 'refunded', 99.00, 'EUR', NOW(6))`, table))

	dir := t.TempDir()
	out := filepath.Join(dir, "capisync.yaml")
	t.Setenv("INIT_TEST_DSN", dsn)
	code, stdout, stderr := runCLI(t, "init", "--source-type", "mysql", "--dsn-env", "INIT_TEST_DSN", "--table", table, "--source-name", "shop", "--out", out)
	if code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, stdout, stderr)
	}
	cfgText, _ := os.ReadFile(out)
	changes, _ := os.ReadFile(filepath.Join(dir, "changes.jsonl"))
	for _, s := range secrets {
		for what, text := range map[string]string{"output": stdout + stderr, "config": string(cfgText), "changes file": string(changes)} {
			if strings.Contains(text, s) {
				t.Errorf("the %s holds a row's value %q", what, s)
			}
		}
	}
	for _, want := range []string{"status column stage with values new, qualified, won, refunded", "em=contact", "ph=mobile", "fn=first_name"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, want := range []string{`when: changed_to("stage", "won")`, "event: Purchase", "event: Lead", "event: Refunded", "value: new.amount", "currency: new.currency", "em: new.contact"} {
		if !strings.Contains(string(cfgText), want) {
			t.Errorf("config lacks %q:\n%s", want, cfgText)
		}
	}
	if code, o, e := runCLI(t, "validate", "--config", out); code != 0 {
		t.Errorf("validate: exit %d\n%s%s", code, o, e)
	}
	code, o, e := runCLI(t, "rules", "test", "--config", out, "--changes", filepath.Join(dir, "changes.jsonl"))
	if code != 0 || strings.Count(o, "\n") != 4 || !strings.Contains(o, `"value":1250.5`) {
		t.Errorf("rules test: exit %d\n%s%s", code, o, e)
	}
	if code, _, e := runCLI(t, "init", "--source-type", "mysql", "--dsn-env", "INIT_TEST_DSN", "--table", table, "--out", out); code != 2 || !strings.Contains(e, "exists") {
		t.Errorf("init over an existing file: exit %d %s", code, e)
	}
}

// TestInitPostgres drafts a logical-replication config from a PostgreSQL
// table; validate passes and rules test runs on what it wrote.
func TestInitPostgres(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := fmt.Sprintf("init_leads_%d", time.Now().UnixNano()%1e9)
	mustExec(t, db, fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, email text, lead_status text, fbclid text, updated_at timestamptz NOT NULL DEFAULT now())`, table))
	defer db.Exec("DROP TABLE " + table)
	mustExec(t, db, fmt.Sprintf(`INSERT INTO %s (id, email, lead_status, fbclid) VALUES (1, 'hidden.one@corp.example', 'qualified', 'IwARsecretclick'), (2, 'hidden.two@corp.example', 'won', NULL)`, table))
	dir := t.TempDir()
	out := filepath.Join(dir, "crm.yaml")
	t.Setenv("INIT_PG_DSN", dsn)
	code, stdout, stderr := runCLI(t, "init", "--source-type", "postgres", "--dsn-env", "INIT_PG_DSN", "--table", table, "--source-name", "crm", "--out", out)
	if code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, stdout, stderr)
	}
	cfgText, _ := os.ReadFile(out)
	changes, _ := os.ReadFile(filepath.Join(dir, "changes.jsonl"))
	for _, s := range []string{"hidden.one@corp.example", "IwARsecretclick"} {
		if strings.Contains(stdout+stderr+string(cfgText)+string(changes), s) {
			t.Errorf("a row's value %q was printed or written", s)
		}
	}
	for _, want := range []string{"type: postgres", "- public." + table, "fbc: fbc(new.fbclid, new.updated_at)", `when: changed_to("lead_status", "won")`} {
		if !strings.Contains(string(cfgText), want) {
			t.Errorf("config lacks %q:\n%s", want, cfgText)
		}
	}
	if code, o, e := runCLI(t, "validate", "--config", out); code != 0 {
		t.Errorf("validate: exit %d\n%s%s", code, o, e)
	}
	if code, o, e := runCLI(t, "rules", "test", "--config", out, "--changes", filepath.Join(dir, "changes.jsonl")); code != 0 || strings.Count(o, "\n") != 2 {
		t.Errorf("rules test: exit %d\n%s%s", code, o, e)
	}
}
