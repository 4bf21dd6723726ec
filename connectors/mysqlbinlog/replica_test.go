package mysqlbinlog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/testenv"
)

// privateBinlogServer starts a MariaDB of the test's own with its binlog
// as a binlog source needs it, and the mariadbd options args; it returns
// the server and the DSN of a user "reader" that may read it, in a
// database capisync_test.
func privateBinlogServer(t *testing.T, args ...string) (*testenv.PrivateMariaDB, string) {
	t.Helper()
	srv := testenv.NewPrivateMariaDB(t, append(binlogServerArgs(), args...)...)
	srv.Exec(t, "CREATE DATABASE capisync_test CHARACTER SET utf8mb4",
		"CREATE USER reader@'127.0.0.1' IDENTIFIED BY 'reader'",
		"GRANT ALL ON capisync_test.* TO reader@'127.0.0.1'",
		"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO reader@'127.0.0.1'")
	return srv, srv.DSN("reader", "reader", "capisync_test")
}

// binlogServerArgs are the mariadbd options of a server whose binlog a
// binlog source can read.
func binlogServerArgs() []string {
	return []string{"--server-id=" + fmt.Sprint(nextServerID()), "--log-bin=private-bin",
		"--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL"}
}

// TestReplica: a source may read a replica's binlog (a DBA's usual
// choice), where what the primary wrote arrives only if the replica
// writes what it replicates (log_slave_updates). Two replicas of the
// shared test server, each a server of the test's own replicating one
// table: with log_slave_updates ON a row inserted on the primary is read
// from the replica; with it OFF the source refuses to start, saying so.
func TestReplica(t *testing.T) {
	primaryDSN := testenv.MySQLDSN(t)
	primary, err := sql.Open("mysql", primaryDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()
	table := fmt.Sprintf("binrep_%d", time.Now().UnixNano()%1e9)
	pcfg, err := mysql.ParseDSN(primaryDSN)
	if err != nil {
		t.Fatal(err)
	}

	replica := func(updates string) *testenv.PrivateMariaDB {
		r := testenv.NewPrivateMariaDB(t, append(binlogServerArgs(),
			"--log-slave-updates="+updates, "--replicate-do-table="+pcfg.DBName+"."+table)...)
		var pos string
		if err := primary.QueryRow("SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
			t.Fatal(err)
		}
		// The database as the primary's: the replicated CREATE TABLE
		// takes its character set.
		var charset, collation string
		if err := primary.QueryRow("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", pcfg.DBName).Scan(&charset, &collation); err != nil {
			t.Fatal(err)
		}
		host, port, _ := strings.Cut(pcfg.Addr, ":")
		r.Exec(t, fmt.Sprintf("CREATE DATABASE %s CHARACTER SET %s COLLATE %s", pcfg.DBName, charset, collation),
			"CREATE USER reader@'127.0.0.1' IDENTIFIED BY 'reader'",
			"GRANT SELECT ON "+pcfg.DBName+".* TO reader@'127.0.0.1'",
			"GRANT REPLICATION SLAVE, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO reader@'127.0.0.1'",
			"SET GLOBAL gtid_slave_pos = '"+pos+"'",
			fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos",
				host, port, pcfg.User, pcfg.Passwd),
			"START SLAVE")
		return r
	}
	source := func(r *testenv.PrivateMariaDB) *Source {
		src, err := New("shop", config.Source{Type: Type, DSN: config.Secret(r.DSN("reader", "reader", pcfg.DBName)), Timezone: "UTC",
			Options: &Config{ServerID: nextServerID(), Initial: "skip"}, Tables: config.TableSet{Names: []string{table}}}, Options{IdleCheckpoint: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}

	off, on := replica("OFF"), replica("ON")
	// The table is made on the primary and replicated.
	if _, err := primary.Exec(fmt.Sprintf("CREATE TABLE %s (id BIGINT PRIMARY KEY, status VARCHAR(20) NOT NULL)", table)); err != nil {
		t.Fatal(err)
	}
	defer primary.Exec("DROP TABLE " + table)
	for _, r := range []*testenv.PrivateMariaDB{off, on} {
		for n, deadline := 0, time.Now().Add(20*time.Second); n == 0; time.Sleep(50 * time.Millisecond) {
			r.Root.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", pcfg.DBName, table).Scan(&n)
			if time.Now().After(deadline) {
				t.Fatal("the table was not replicated after 20 s")
			}
		}
	}

	if _, problems, err := source(off).Check(context.Background()); err != nil || len(problems) != 1 || !strings.Contains(problems[0], "log_slave_updates") {
		t.Errorf("a replica with log_slave_updates OFF: %q, %v", problems, err)
	}
	src := source(on)
	if _, problems, err := src.Check(context.Background()); err != nil || len(problems) > 0 {
		t.Fatalf("a replica with log_slave_updates ON: %q, %v", problems, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, done := make(chan cdc.Batch, 10), make(chan error, 1)
	go func() { done <- src.Run(ctx, nil, out) }()
	defer func() { cancel(); <-done }()
	// The source's first checkpoint: it reads from here.
	select {
	case <-out:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no first checkpoint after 20 s")
	}
	if _, err := primary.Exec(fmt.Sprintf("INSERT INTO %s VALUES (7, 'qualified')", table)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.After(20 * time.Second); ; {
		select {
		case b := <-out:
			if len(b.Changes) == 0 {
				continue
			}
			if c := b.Changes[0]; c.Op != cdc.Insert || c.New.Value("status") != "qualified" || c.Key.Value("id") != int64(7) {
				t.Errorf("read from the replica: %v", c)
			}
			return
		case err := <-done:
			t.Fatalf("Run: %v", err)
		case <-deadline:
			var n int
			on.Root.QueryRow(fmt.Sprintf("SELECT COUNT(*) FROM %s.%s", pcfg.DBName, table)).Scan(&n)
			var gtid string
			on.Root.QueryRow("SELECT @@gtid_binlog_pos").Scan(&gtid)
			t.Fatalf("the row inserted on the primary was not read from the replica after 20 s (the replica has %d rows, its binlog is at %s; source %+v)", n, gtid, src.Status())
		}
	}
}
