package testenv

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// PrivateMariaDB is a MariaDB server of a test's own: a new data directory
// in a temporary directory, on a free port, started with the options the
// test gives (a replica of the shared test server, say). Tests that need
// a server set up otherwise than the shared one use one, and never change
// the shared server's global settings for long.
type PrivateMariaDB struct {
	Port int
	Root *sql.DB // root over the server's socket
	dir  string
}

// NewPrivateMariaDB initializes and starts a server with the mariadbd
// options args, stopped and removed when the test ends. Without MariaDB's
// server binaries the test skips, or fails under CI=true.
func NewPrivateMariaDB(t testing.TB, args ...string) *PrivateMariaDB {
	t.Helper()
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		bin = "/usr/sbin/mariadbd"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no mariadbd: run `make test`, which installs MariaDB")
		}
		t.Skip("no mariadbd")
	}
	root, err := os.MkdirTemp("", "capisync-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	p := &PrivateMariaDB{dir: root, Port: freePort(t)}
	var asRoot []string
	if os.Geteuid() == 0 { // mariadbd runs as root only when told to
		asRoot = []string{"--user=root"}
	}
	install := append([]string{"--no-defaults", "--datadir=" + filepath.Join(root, "data"), "--auth-root-authentication-method=normal", "--skip-test-db"}, asRoot...)
	if out, err := exec.Command("mariadb-install-db", install...).CombinedOutput(); err != nil {
		os.RemoveAll(root)
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	sock := filepath.Join(root, "sock")
	cmd := exec.Command(bin, append(append([]string{"--no-defaults", "--datadir=" + filepath.Join(root, "data"),
		"--socket=" + sock, "--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1", "--skip-name-resolve",
		"--pid-file=" + filepath.Join(root, "pid"), "--log-error=" + filepath.Join(root, "error.log"),
		"--innodb-buffer-pool-size=16M", "--innodb-log-file-size=16M"}, asRoot...), args...)...)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(root)
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		if p.Root != nil {
			p.Root.Close()
		}
		cmd.Process.Kill()
		<-done
		os.RemoveAll(root)
	})
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", sock
	p.Root, err = sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		if err = p.Root.Ping(); err == nil {
			break
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(root, "error.log"))
			t.Fatalf("private MariaDB exited: %s", log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("private MariaDB not up after 60 s: %v", err)
		}
	}
	return p
}

// Exec runs statements as root, failing the test on the first error.
func (p *PrivateMariaDB) Exec(t testing.TB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := p.Root.Exec(q); err != nil {
			t.Fatalf("private MariaDB: %s: %v", q, err)
		}
	}
}

// DSN is a DSN of the server over TCP for user and password, database db.
func (p *PrivateMariaDB) DSN(user, password, db string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", fmt.Sprintf("127.0.0.1:%d", p.Port), db
	return cfg.FormatDSN()
}
