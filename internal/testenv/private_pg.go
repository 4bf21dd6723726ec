package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"
)

// PrivatePostgres is a PostgreSQL server of a test's own: a new cluster in
// a temporary directory, on a free port, with wal_level=logical. A test
// that must restart or stop the server uses one, so that the shared test
// server (which other tests use at the same time, and which may be a
// developer's own) is never restarted by a test.
type PrivatePostgres struct {
	DSN string // superuser "postgres", trust authentication, database postgres
	bin string
	dir string
}

// NewPrivatePostgres initializes and starts a cluster, stopped and removed
// when the test ends. Without PostgreSQL's server binaries the test skips,
// or fails under CI=true.
func NewPrivatePostgres(t testing.TB) *PrivatePostgres {
	t.Helper()
	bin := postgresBin()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no PostgreSQL server binaries under /usr/lib/postgresql: run `make test`, which installs them")
		}
		t.Skip("no PostgreSQL server binaries under /usr/lib/postgresql")
	}
	root, err := os.MkdirTemp("", "capisync-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &PrivatePostgres{bin: bin, dir: filepath.Join(root, "data")}
	t.Cleanup(func() {
		p.pgctl("stop", "-m", "immediate").Run()
		os.RemoveAll(root)
	})
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 { // initdb refuses to run as root
		if out, err := exec.Command("chown", "postgres:postgres", root).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v: %s", root, err, out)
		}
	}
	if out, err := p.command(filepath.Join(bin, "initdb"), "-D", p.dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := freePort(t)
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nwal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10\nfsync = off\n", port, root)
	f, err := os.OpenFile(filepath.Join(p.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if out, err := p.pgctl("start", "-l", p.log()).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(p.log())
		t.Fatalf("start private PostgreSQL: %v\n%s\n%s", err, out, log)
	}
	p.DSN = "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/postgres?sslmode=disable"
	return p
}

// Restart stops the server (fast: connections are closed) and starts it
// again, returning when it accepts connections.
func (p *PrivatePostgres) Restart() error {
	// With -l the server does not inherit the pipe that CombinedOutput
	// waits on to close.
	if out, err := p.pgctl("restart", "-m", "fast", "-l", p.log()).CombinedOutput(); err != nil {
		return fmt.Errorf("restart private PostgreSQL: %v: %s", err, out)
	}
	return nil
}

func (p *PrivatePostgres) log() string { return filepath.Join(filepath.Dir(p.dir), "log") }

func (p *PrivatePostgres) pgctl(args ...string) *exec.Cmd {
	return p.command(filepath.Join(p.bin, "pg_ctl"), append([]string{"-D", p.dir, "-w", "-t", "60"}, args...)...)
}

func (p *PrivatePostgres) command(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// postgresBin is the newest /usr/lib/postgresql/N/bin holding initdb.
func postgresBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Give the port a moment to be free for the server that takes it.
	defer time.Sleep(10 * time.Millisecond)
	return ln.Addr().(*net.TCPAddr).Port
}
