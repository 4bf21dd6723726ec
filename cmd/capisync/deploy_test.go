package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/internal/testenv"
)

// need returns a tool's path; missing, the test fails under CI (make test
// installs it) and skips elsewhere.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: make test installs it (Debian: %s)", tool, pkg)
		}
		t.Skipf("%s is missing (Debian: apt-get install %s)", tool, pkg)
	}
	return p
}

const (
	alertsFile    = "../../deploy/prometheus/capisync-alerts.yml"
	dashboardFile = "../../deploy/grafana/capisync-dashboard.json"
)

// TestAlertRules: the alerting rules are valid for Prometheus (promtool),
// and every capisync metric they and the Grafana dashboard name is
// exported by a running daemon with a logical, a binlog and a polling
// source, from its first change on.
func TestAlertRules(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	promtool := need(t, "promtool", "prometheus")
	if out, err := exec.Command(promtool, "check", "rules", alertsFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	rules, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	dashboard, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`capisync_[a-z_]+`).FindAllString(string(rules)+string(dashboard), -1) {
		if !slices.Contains(names, m) {
			names = append(names, m)
		}
	}
	if len(names) < 8 {
		t.Fatalf("found %d metric names in %s: %v", len(names), alertsFile, names)
	}

	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	n := time.Now().UnixNano() % 1e9
	table, slot := fmt.Sprintf("alert_leads_%d", n), fmt.Sprintf("alert_slot_%d", n)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (id bigint PRIMARY KEY, status text, email text)", table)); err != nil {
		t.Fatal(err)
	}
	defer func() {
		testenv.DropSlots(t, dsn, slot)
		conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+slot)
		conn.Exec(ctx, "DROP TABLE "+table)
	}()

	myDSN := testenv.MySQLDSN(t)
	my, err := sql.Open("mysql", myDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer my.Close()
	mustExec(t, my, fmt.Sprintf("CREATE TABLE %s (id BIGINT PRIMARY KEY, status VARCHAR(20), email VARCHAR(100))", table))
	defer my.Exec("DROP TABLE " + table)

	bin := buildBinary(t)
	dir := t.TempDir()
	quickstartSQL(t, filepath.Join(dir, "crm.db"), "")
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state: {path: %[1]s/state.db}
http: {listen: "%[2]s"}
sources:
  pg:
    type: postgres
    dsn: "%[3]s"
    slot: %[4]s
    publication: %[4]s
    tables: [public.%[5]s]
  shop:
    type: mysql_binlog
    dsn: '%[6]s'
    server_id: %[7]d
    tables: [%[5]s]
  crm:
    type: sqlite
    dsn: %[1]s/crm.db
    schedule: "@every 1s"
    tables:
      leads: {key: [id], cursor: updated_at}
destinations:
  meta: {type: meta_capi, dry_run: true, dry_run_file: %[1]s/dry.jsonl}
rules:
  - {name: pg-lead, source: pg, table: public.%[5]s, when: 'new.status == "qualified"', event: Lead, user_data: {em: new.email}}
  - {name: crm-lead, source: crm, table: leads, when: 'changed_to("status", "qualified")', event: Lead, user_data: {em: new.email}}
  - {name: shop-lead, source: shop, table: %[5]s, when: 'new.status == "qualified"', event: Lead, user_data: {em: new.email}}
`, dir, addr, dsn, slot, table, myDSN, 45000+n%1000)), 0o600)
	var logs testenv.Buffer
	daemon := startDaemon(t, bin, cfg, &logs)
	defer func() { daemon.Process.Signal(syscall.SIGTERM); daemon.Wait() }()
	inserted := false
	var missing []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, body := httpGet(addr, "/metrics")
		missing = missing[:0]
		for _, name := range names {
			if !strings.Contains(body, "\n"+name+"{") && !strings.Contains(body, "\n"+name+" ") {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return
		}
		if !inserted && strings.Contains(body, `capisync_source_connected{source="pg"} 1`) {
			// One change read and one event, so that the per-table counters and the coverage exist.
			if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (1, 'qualified', 'a@example.com')", table)); err != nil {
				t.Fatal(err)
			}
			inserted = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("the alerting rules name metrics the daemon does not export: %v\n%s", missing, logs.String())
		}
	}
}

// TestSystemdUnit: the unit file is valid for systemd (systemd-analyze
// verify, where systemd is installed) and keeps its hardening.
func TestSystemdUnit(t *testing.T) {
	analyze := need(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile("../../deploy/systemd/capisync.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=capisync", "ProtectSystem=strict", "NoNewPrivileges=yes"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %s", want)
		}
	}
	// verify wants the binary it runs to exist: point it at one that does.
	dir := t.TempDir()
	local := strings.ReplaceAll(string(unit), "/usr/local/bin/capisync", os.Args[0])
	path := filepath.Join(dir, "capisync.service")
	os.WriteFile(path, []byte(local), 0o644)
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "capisync.service:") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestVersion: capisync version prints the version, commit and build date
// the build stamped (make build and the Dockerfile do, with -ldflags).
func TestVersion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "capisync")
	ldflags := "-X main.version=v1.2.3 -X main.commit=0123456789abcdef -X main.buildDate=2026-12-06T10:00:00Z"
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	for _, want := range []string{"capisync v1.2.3\n", "commit 0123456789abcdef\n", "built 2026-12-06T10:00:00Z\n", "go1."} {
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("version: %v, output lacks %q:\n%s", err, want, out)
		}
	}
}
