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

	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/internal/testenv"
)

// TestStatusPageInABrowser renders the status page of a running daemon in
// headless Chromium and checks what a person sees there: the rule names, a
// paused destination's reason (Meta's message), a dead letter's reason,
// and an event as it was sent. It saves a screenshot in the test's
// directory (CAPISYNC_SCREENSHOT=path keeps one elsewhere).
func TestStatusPageInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	browser := need(t, "chromium", "chromium")
	bin := buildBinary(t)
	dir := t.TempDir()
	fake := metacapitest.New("1234567890", "EAAtok")
	defer fake.Close()
	fake.RefuseEvent("lead-2", "The lead does not belong to this page.")
	db := filepath.Join(dir, "crm.db")
	quickstartSQL(t, db, "UPDATE leads SET updated_at = datetime('now')")
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state: {path: %[1]s/state.db}
http: {listen: "%[2]s"}
sources:
  crm:
    type: sqlite
    dsn: %[1]s/crm.db
    schedule: "@every 1s"
    initial: emit
    default_country: GB
    tables:
      leads: {key: [id], cursor: updated_at}
destinations:
  meta: {type: meta_capi, pixel_id: "1234567890", access_token: EAAtok, base_url: %[3]s, flush_interval: 10ms, probe_interval: 1h}
rules:
  - name: crm-new-lead
    source: crm
    table: leads
    when: op == "insert"
    event: Lead
    event_id: '"lead-" + string(new.id)'
    user_data: {em: new.email, ph: new.phone}
  - name: crm-deal-won
    source: crm
    table: leads
    when: changed_to("status", "won")
    event: Purchase
    user_data: {em: new.email}
    custom_data: {value: new.deal_value, currency: '"GBP"'}
`, dir, addr, fake.URL)), 0o600)
	var logs testenv.Buffer
	daemon := startDaemon(t, bin, cfg, &logs)
	defer func() { daemon.Process.Signal(syscall.SIGTERM); daemon.Wait() }()
	wait := func(what string, cond func() bool) { t.Helper(); eventually(t, what, 60*time.Second, &logs, cond) }
	wait("two leads delivered and one dead-lettered", func() bool { return fake.Stats().Accepted == 2 && fake.Stats().Rejected > 0 })
	// Meta now refuses the token: the next delivery pauses the destination.
	fake.SetToken("EAArotated")
	quickstartSQL(t, db, "INSERT INTO leads (id, email, status) VALUES (9, 'nine@example.com', 'new')")
	wait("the destination to pause", func() bool {
		code, body := httpGet(addr, "/readyz")
		return code == 503 && strings.Contains(body, "paused")
	})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	chrome := func(args ...string) string {
		t.Helper()
		base := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
			"--user-data-dir=" + filepath.Join(dir, "chrome"), "--window-size=1280,1800"}
		out, err := exec.CommandContext(ctx, browser, append(base, args...)...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return string(out)
	}
	// What a person sees: the page's text once the browser rendered it.
	dom := chrome("--dump-dom", "http://"+addr+"/")
	for _, want := range []string{"crm-new-lead", "crm-deal-won", "paused", "Error validating access token", "The lead does not belong to this page.", "lead-2", `"event_id":"lead-1"`, "<svg"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page in the browser lacks %q", want)
		}
	}
	shot := filepath.Join(t.TempDir(), "status.png")
	if keep := os.Getenv("CAPISYNC_SCREENSHOT"); keep != "" {
		shot = keep
	}
	chrome("--screenshot="+shot, "http://"+addr+"/")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Errorf("no screenshot: %v", err)
	}
	t.Logf("screenshot: %s", shot)

	// status --html writes the same page from the store file.
	daemon.Process.Signal(syscall.SIGTERM)
	daemon.Wait()
	html := filepath.Join(dir, "status.html")
	if code, out, errOut := runCLI(t, "status", "--config", cfg, "--html", html); code != 0 {
		t.Fatalf("status --html: %d %s %s", code, out, errOut)
	}
	page, _ := os.ReadFile(html)
	for _, want := range []string{"crm-new-lead", "The lead does not belong to this page.", "the daemon is not running"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("status --html lacks %q", want)
		}
	}
}
