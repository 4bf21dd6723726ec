package sqlpoll_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/connectors/sqlpoll"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/testenv"
)

// TestMySQLDriverLogsThroughSlog: the driver's own lines (here, an idle
// connection the server closed) reach the source's logger, with the
// source's name, not stderr.
func TestMySQLDriverLogsThroughSlog(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	src, err := sqlpoll.New("shop", config.Source{Type: sqlpoll.TypeMySQL, DSN: config.Secret(dsn + sep + "wait_timeout=1"),
		Options: &sqlpoll.Config{Schedule: "@every 1h", PageSize: 10}, Timezone: "UTC",
		Tables: config.TableSet{Names: []string{"no_such_table"}, Tables: map[string]*config.PollTable{"no_such_table": {Key: []string{"id"}, Cursor: "updated_at"}}}},
		nil, sqlpoll.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	src.Check(ctx) // connects; the connection then idles in the pool
	time.Sleep(2500 * time.Millisecond)
	src.Check(ctx) // the server closed it after wait_timeout: the driver says so
	if out := logs.String(); !strings.Contains(out, "driver=mysql") || !strings.Contains(out, "source=shop") {
		t.Errorf("the driver's line did not reach slog:\n%s", out)
	}
}
