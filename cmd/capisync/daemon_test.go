package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capisync/capisync/connectors/metacapi/metacapitest"
	"github.com/capisync/capisync/internal/testenv"
	"github.com/capisync/capisync/state"
)

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestStatusAndDLQFromARun runs the daemon on a SQLite source against the
// fake Graph API, with one order Meta rejects, and checks that status and
// dlq show the run's real data — while the daemon runs (over its HTTP
// port) and after it stopped (from the store file).
func TestStatusAndDLQFromARun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	fake := metacapitest.New("1234567890", "EAAtok")
	defer fake.Close()
	fake.RefuseEvent("lead-2", "The lead does not belong to this page.") // one order Meta rejects
	quickstartSQL(t, filepath.Join(dir, "crm.db"), "UPDATE leads SET deal_value = '99.00', updated_at = '2000-01-01 00:00:00', phone = CASE id WHEN 3 THEN '(650) 555-0100' ELSE phone END")
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
    tables:
      leads: {key: [id], cursor: updated_at}
destinations:
  meta:
    type: meta_capi
    pixel_id: "1234567890"
    access_token: ${CAPISYNC_TEST_DAEMON_TOKEN}
    base_url: %[3]s
    flush_interval: 10ms
rules:
  - name: lead
    source: crm
    table: leads
    when: op == "insert" || op == "update"
    event: Lead
    event_id: '"lead-" + string(new.id)'
    user_data: {em: new.email, ph: new.phone}
    custom_data:
      value: new.deal_value
      currency: '"USD"'
`, dir, addr, fake.URL)), 0o600)

	// Only the daemon has the token: status and dlq work without it.
	var logs testenv.Buffer
	daemon := startDaemon(t, bin, cfg, &logs, "CAPISYNC_TEST_DAEMON_TOKEN=EAAtok")
	defer daemon.Process.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for fake.Stats().Accepted < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	capisync := func(args ...string) (string, int) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		code := 0
		if e, ok := err.(*exec.ExitError); ok {
			code = e.ExitCode()
		}
		return string(out), code
	}
	// While the daemon runs: status and dlq go through its HTTP port.
	var dead []state.DeadLetter
	for time.Now().Before(deadline) {
		out, code := capisync("dlq", "list", "--config", cfg, "--json")
		if code != 0 {
			t.Fatalf("dlq list: %d %s", code, out)
		}
		dead = nil
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var d state.DeadLetter
			if line != "" && json.Unmarshal([]byte(line), &d) == nil {
				dead = append(dead, d)
			}
		}
		if len(dead) == 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(dead) != 1 || dead[0].Event == nil || dead[0].Event.EventID != "lead-2" || dead[0].Code != 100 || dead[0].FBTraceID == "" {
		t.Fatalf("dead letters = %+v\n%s", dead, logs.String())
	}
	out, code := capisync("status", "--config", cfg)
	for _, want := range []string{"running daemon", "crm", "meta", "lead", "delivering"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	if out, code := capisync("dlq", "retry", "--config", cfg, "--all"); code != 0 || !strings.Contains(out, "1 dead letter(s) moved back") {
		t.Errorf("dlq retry: %d %s", code, out)
	}
	// Meta rejects it again: it comes back to the dead letters.
	for time.Now().Before(deadline) {
		out, _ := capisync("dlq", "list", "--config", cfg, "--json")
		if strings.Count(out, `"event_id":"lead-2"`) == 1 && fake.Stats().Rejected >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A change that makes lead-1 again is refused by the 48-hour id
	// memory: counted for the rule in status and metrics, and logged.
	quickstartSQL(t, filepath.Join(dir, "crm.db"), "UPDATE leads SET email = 'ada.new@example.com', updated_at = datetime('now', '+1 second') WHERE id = 1")
	for time.Now().Before(deadline) && !strings.Contains(logs.String(), "events not queued again") {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "events not queued again") || !strings.Contains(logs.String(), "rule=lead") {
		t.Errorf("the repeat was not logged:\n%s", logs.String())
	}
	if out, _ := capisync("status", "--config", cfg); !strings.Contains(out, "REPEATS REFUSED") {
		t.Errorf("status lacks repeats:\n%s", out)
	}
	if _, body := httpGet(addr, "/metrics"); !strings.Contains(body, `capisync_rule_repeats_refused_total{rule="lead"} 1`) {
		t.Errorf("metrics lack the repeat")
	}
	// Lead 3's phone has no country code and the config no default_country:
	// it is left out, and that is counted with the reason, shown by status
	// and the metrics, and logged naming the rule.
	const noCountry = "a phone number without country code (set default_country)"
	if out, _ := capisync("status", "--config", cfg); !strings.Contains(out, "rule lead, ph: "+noCountry+": 1") {
		t.Errorf("status lacks the phone left out:\n%s", out)
	}
	if _, body := httpGet(addr, "/metrics"); !strings.Contains(body, `capisync_rule_dropped_values_total{key="ph",reason="`+noCountry+`",rule="lead"} 1`) {
		t.Errorf("metrics lack the phone left out")
	}
	if !strings.Contains(logs.String(), "user_data values left out as invalid") || !strings.Contains(logs.String(), "rule=lead key=ph") {
		t.Errorf("the phone left out was not logged:\n%s", logs.String())
	}
	validate := exec.Command(bin, "validate", "--config", cfg)
	validate.Env = append(os.Environ(), "CAPISYNC_TEST_DAEMON_TOKEN=EAAtok")
	if out, _ := validate.CombinedOutput(); !strings.Contains(string(out), `note: `) || !strings.Contains(string(out), "maps ph with no default_country") {
		t.Errorf("validate does not point at default_country:\n%s", out)
	}
	daemon.Process.Signal(syscall.SIGTERM)
	if err := daemon.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, logs.String())
	}
	// After it stopped: from the store file.
	out, code = capisync("status", "--config", cfg, "--json")
	var rep struct {
		Running      bool
		Destinations []struct {
			Name        string
			DeadLetters int64 `json:"dead_letters"`
		}
		Rules []struct {
			Name    string
			Events  int64
			Repeats int64 `json:"repeats_refused"`
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("status --json: %v %d %s", err, code, out)
	}
	if rep.Running || len(rep.Destinations) != 1 || rep.Destinations[0].DeadLetters != 1 || rep.Rules[0].Events != 4 || rep.Rules[0].Repeats != 1 {
		t.Errorf("status from file = %+v", rep)
	}
	// One destination: --id needs no --destination. An id that is not a
	// dead letter is an error.
	if out, code := capisync("dlq", "drop", "--config", cfg, "--id", fmt.Sprint(dead[0].ID+1000)); code != 1 || !strings.Contains(out, "1 of the 1 id(s) given are not dead letters of destination meta") {
		t.Errorf("dlq drop of a missing id: %d %s", code, out)
	}
	if out, code := capisync("dlq", "drop", "--config", cfg, "--id", fmt.Sprint(dead[0].ID+1)); code != 0 || !strings.Contains(out, "1 dead letter(s) dropped") {
		t.Errorf("dlq drop: %d %s", code, out)
	}
	if st := fake.Stats(); st.Accepted != 2 || st.TokenInURL != 0 {
		t.Errorf("fake = %+v", st)
	}
	if strings.Contains(logs.String(), "EAAtok") {
		t.Error("the access token reached the logs")
	}
}

// TestListenFailureExits1: a daemon whose http.listen cannot be bound
// exits 1 at once, naming the address, rather than running without its
// endpoints or exiting 0.
func TestListenFailureExits1(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state: {path: %[1]s/state.db}
http: {listen: "%[2]s"}
sources:
  crm:
    type: sqlite
    dsn: %[1]s/crm.db
    schedule: "@every 1h"
    tables:
      leads: {key: [id], cursor: updated_at}
destinations:
  meta: {type: meta_capi, dry_run: true}
rules:
  - {name: lead, source: crm, table: leads, when: 'op == "insert"', event: Lead, user_data: {em: new.email}}
`, dir, busy.Addr())), 0o600)
	done := make(chan struct{})
	var code int
	var errOut string
	go func() {
		defer close(done)
		code, _, errOut = runCLI(t, "run", "--config", cfg)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon did not stop when its listener could not be bound")
	}
	if code != 1 || !strings.Contains(errOut, "http.listen "+busy.Addr().String()) {
		t.Errorf("exit %d, want 1, stderr:\n%s", code, errOut)
	}
}
