package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/internal/testenv"
)

// TestOperations runs the daemon with debug JSON logs against PostgreSQL
// (a role with a distinctive password) and the fake Graph API, and checks
// the endpoints, that metrics move, that /readyz follows a revoked token,
// and that the token, the DSN password and raw personal data appear in no
// log line, metric, status or dlq output.
func TestOperations(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dsn := testenv.PostgresDSN(t)
	const (
		password = "Pw-9f3Kq-redact-Zx7"
		token    = "EAAredactTOKEN7Qk2"
		email    = "jane.redact@example.com"
		phone    = "+1 650 555 0199"
	)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	n := time.Now().UnixNano() % 1e9
	role, table := fmt.Sprintf("redact_%d", n), fmt.Sprintf("ops_leads_%d", n)
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, password),
		fmt.Sprintf("CREATE TABLE %s (id bigint PRIMARY KEY, status text, email text, phone text, note text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp())", table),
		fmt.Sprintf("GRANT SELECT ON %s TO %s", table, role),
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	defer admin.Exec(ctx, "DROP TABLE "+table)
	defer admin.Exec(ctx, "DROP ROLE "+role)
	cfgDSN := admin.Config()
	roleDSN := fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", role, password, cfgDSN.Host, cfgDSN.Port, cfgDSN.Database)

	bin := buildBinary(t)
	fake := metacapitest.New("1234567890", token)
	defer fake.Close()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state: {path: %[1]s/state.db}
http: {listen: "%[2]s"}
log: {level: debug, format: json}
sources:
  crm:
    type: postgres_poll
    dsn: ${OPS_DSN}
    schedule: "@every 1s"
    initial: emit
    default_country: US
    tables:
      %[3]s: {key: [id], cursor: updated_at, lookback: 2s}
destinations:
  meta:
    type: meta_capi
    pixel_id: "1234567890"
    access_token: ${OPS_TOKEN}
    base_url: %[4]s
    flush_interval: 10ms
    probe_interval: 500ms
rules:
  - name: lead
    source: crm
    table: %[3]s
    when: new.status == "qualified"
    event: Lead
    event_id: '"lead-" + string(new.id)'
    user_data: {em: new.email, ph: new.phone, external_id: string(new.id)}
  - name: broken
    source: crm
    table: %[3]s
    when: new.status == "broken"
    event: Lead
    event_time: new.note
    user_data: {em: new.email}
`, dir, addr, table, fake.URL)), 0o600)
	env := append(os.Environ(), "OPS_DSN="+roleDSN, "OPS_TOKEN="+token)

	var logs testenv.Buffer
	daemon := exec.Command(bin, "run", "--config", cfg)
	daemon.Env = env
	daemon.Stdout, daemon.Stderr = &logs, &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer daemon.Process.Kill()
	get := func(path string) (int, string) { return httpGet(addr, path) }
	waitUntil := func(what string, cond func() bool) { t.Helper(); eventually(t, what, 30*time.Second, &logs, cond) }
	waitUntil("/healthz", func() bool { c, _ := get("/healthz"); return c == 200 })
	admin.Exec(ctx, fmt.Sprintf("INSERT INTO %s (id, status, email, phone, note) VALUES (1, 'qualified', $1, $2, 'x'), (2, 'broken', $1, $2, 'not a time')", table), email, phone)
	waitUntil("the event at the fake", func() bool { return fake.Stats().Accepted == 1 })
	waitUntil("/readyz 200", func() bool { c, _ := get("/readyz"); return c == 200 })

	_, metrics := get("/metrics")
	for _, want := range []string{
		`capisync_events_delivered_total{destination="meta",event_name="Lead"} 1`,
		`capisync_changes_read_total{op="insert",source="crm",table="` + table + `"} 2`,
		`capisync_rule_errors_total{rule="broken"} 1`,
		`capisync_graph_requests_total{code="0",destination="meta",outcome="delivered"} 1`,
		`capisync_graph_request_duration_seconds_count{destination="meta"} 1`,
		`capisync_rule_match_key_coverage_ratio{key="em",rule="lead"} 1`,
		`capisync_rule_match_key_coverage_ratio{key="fbc",rule="lead"} 0`,
		`capisync_outbox_depth{destination="meta"} 0`,
		`capisync_dead_letters{destination="meta"} 1`,
		`capisync_destination_paused{destination="meta"} 0`,
		`capisync_source_connected{source="crm"} 1`,
		`capisync_poll_last_success_timestamp_seconds{source="crm"}`,
		`capisync_checkpoint_age_seconds{source="crm"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A revoked token turns /readyz red; restoring it turns it green.
	fake.SetToken("EAAsomethingElse")
	admin.Exec(ctx, fmt.Sprintf("INSERT INTO %s (id, status, email, phone, note) VALUES (3, 'qualified', $1, $2, 'y')", table), email, phone)
	var ready string
	waitUntil("/readyz 503", func() bool { c, body := get("/readyz"); ready = body; return c == 503 })
	if !strings.Contains(ready, "destination meta") || !strings.Contains(ready, "190") {
		t.Errorf("/readyz body: %s", ready)
	}
	fake.SetToken(token)
	waitUntil("/readyz 200 after recovery", func() bool { c, _ := get("/readyz"); return c == 200 })
	waitUntil("the backlog to drain", func() bool { return fake.Stats().Accepted == 2 })

	_, statusJSON := get("/status")
	run := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	status := run("status", "--config", cfg)
	if !strings.Contains(status, "Match-key coverage") || !strings.Contains(status, "100%") {
		t.Errorf("status lacks the coverage table:\n%s", status)
	}
	dlq := run("dlq", "list", "--config", cfg, "--json")
	if !strings.Contains(dlq, `"rule":"broken"`) {
		t.Errorf("dlq: %s", dlq)
	}
	daemon.Process.Signal(syscall.SIGTERM)
	daemon.Wait()

	all := logs.String() + metrics + statusJSON + status + dlq
	if !strings.Contains(logs.String(), `"level":"DEBUG"`) {
		t.Error("no debug log lines were captured")
	}
	for name, secret := range map[string]string{"access token": token, "DSN password": password, "raw email": email, "raw phone": phone} {
		if strings.Contains(all, secret) {
			i := strings.Index(all, secret)
			t.Errorf("the %s appears in the output: ...%s...", name, all[max(0, i-120):min(len(all), i+40)])
		}
	}
}
