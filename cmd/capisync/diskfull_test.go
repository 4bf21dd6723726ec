package main

import (
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

// smallDisk mounts a tmpfs of size bytes for the test (needs root; CI runs
// as root) and returns its path.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the disk-full test mounts a small tmpfs and needs root, as CI runs")
		}
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	os.Mkdir(dir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the disk has no room left.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !strings.Contains(err.Error(), "no space") {
				t.Fatal(err)
			}
			return path
		}
	}
}

// TestDiskFull: with the store's disk full the daemon neither stops nor
// loses anything. Reading pauses (/readyz and status say why), events
// already queued are still delivered, and everything read resumes by
// itself when space returns — also after a restart on a full disk.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	disk := smallDisk(t, 24<<20)
	bin := buildBinary(t)
	dir := t.TempDir()
	fake := metacapitest.New("1234567890", "EAAtok")
	defer fake.Close()
	db := filepath.Join(dir, "crm.db")
	insert := func(from, to int) {
		quickstartSQL(t, db, fmt.Sprintf("WITH RECURSIVE g(n) AS (SELECT %d UNION ALL SELECT n+1 FROM g WHERE n < %d) INSERT INTO leads (id, email, first_name, updated_at) SELECT n, 'user' || n || '@example.com', 'Name' || n, datetime('now') FROM g", from, to))
	}
	quickstartSQL(t, db, "")
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state: {path: %[1]s/state.db}
http: {listen: "%[2]s"}
sources:
  crm:
    type: sqlite
    dsn: %[3]s
    schedule: "@every 200ms"
    initial: emit
    tables:
      leads: {key: [id], cursor: updated_at}
destinations:
  meta: {type: meta_capi, pixel_id: "1234567890", access_token: EAAtok, base_url: %[4]s, flush_interval: 10ms, batch_size: 500, probe_interval: 200ms}
rules:
  - name: lead
    source: crm
    table: leads
    when: op == "insert"
    event: Lead
    event_id: '"lead-" + string(new.id)'
    user_data: {em: new.email, fn: new.first_name}
`, disk, addr, db, fake.URL)), 0o600)
	var logs testenv.Buffer
	start := func() *exec.Cmd { return startDaemon(t, bin, cfg, &logs) }
	wait := func(what string, cond func() bool) { t.Helper(); eventually(t, what, 60*time.Second, &logs, cond) }
	diskFullReady := func() bool {
		code, body := httpGet(addr, "/readyz")
		return code == 503 && strings.Contains(body, "the store's disk is full")
	}

	daemon := start()
	defer func() { daemon.Process.Kill(); daemon.Wait() }()
	wait("the first 3 events", func() bool { return fake.Stats().Accepted == 3 })

	// Meta refuses the token while 2,000 events are queued (the
	// destination pauses and probes); then the disk fills.
	fake.SetToken("EAArotated")
	insert(100, 2099)
	wait("2,000 events queued", func() bool {
		out, _ := exec.Command(bin, "status", "--config", cfg, "--json").Output()
		return strings.Contains(string(out), `"outbox_depth": 2000`)
	})
	filler := fill(t, disk)
	insert(3000, 5999) // read while the disk is full
	wait("/readyz to report the full disk", diskFullReady)
	if out, _ := exec.Command(bin, "status", "--config", cfg).CombinedOutput(); !strings.Contains(string(out), "disk is full") {
		t.Errorf("status does not say the disk is full:\n%s", out)
	}
	// Meta takes the token again: what was queued is delivered on the
	// full disk.
	fake.SetToken("EAAtok")
	wait("the queued events to be delivered", func() bool { return fake.Stats().Accepted >= 2003 })
	if !diskFullReady() {
		t.Error("reading resumed while the disk is still full")
	}

	// A restart on the full disk: the daemon starts and waits, it does
	// not exit.
	daemon.Process.Signal(syscall.SIGTERM)
	if err := daemon.Wait(); err != nil {
		t.Fatalf("shutdown on a full disk: %v\n%s", err, logs.String())
	}
	daemon = start()
	wait("/readyz after the restart", diskFullReady)
	if daemon.ProcessState != nil {
		t.Fatalf("the daemon exited on a full disk:\n%s", logs.String())
	}

	os.Remove(filler)
	wait("every event once space returned", func() bool { return fake.Stats().Accepted >= 5003 })
	wait("/readyz to turn green", func() bool { code, _ := httpGet(addr, "/readyz"); return code == 200 })
	time.Sleep(300 * time.Millisecond)
	if st := fake.Stats(); st.Accepted != 5003 || st.Duplicates != 0 {
		t.Errorf("fake = %+v, want 5003 events, none twice", st)
	}
}
