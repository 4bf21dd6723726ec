package mysqlbinlog

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/capisync/capisync/connectors/sqlpoll"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/testenv"
	"github.com/capisync/capisync/state/bolt"
)

// typesDDL has a column of each type whose values the two MySQL readers
// must agree on.
const typesDDL = `CREATE TABLE %s (
	id BIGINT UNSIGNED PRIMARY KEY,
	i_tiny TINYINT, i_bool TINYINT(1), i_small SMALLINT UNSIGNED, i_medium MEDIUMINT UNSIGNED, i_int INT, i_uint INT UNSIGNED,
	i_big BIGINT, i_ubig BIGINT UNSIGNED, i_year YEAR,
	f_float FLOAT, f_double DOUBLE, d_money DECIMAL(12,2), d_wide DECIMAL(30,10),
	t_datetime DATETIME(6), t_datetime0 DATETIME, t_old DATETIME(2), t_zero DATETIME, t_zero3 DATETIME(3), d_zero DATE, ts_zero TIMESTAMP NULL, t_zero_in DATETIME(3), d_zero_in DATE, t_timestamp TIMESTAMP(3) NULL, t_date DATE, t_time TIME,
	s_char CHAR(5), s_varchar VARCHAR(50), s_text TEXT, s_latin VARCHAR(20) CHARACTER SET latin1,
	b_binary BINARY(4), b_varbinary VARBINARY(10), b_blob BLOB,
	e_enum ENUM('new', 'qualified', 'won'), e_set SET('a', 'b', 'c'), x_bit BIT(10), x_bit64 BIT(64),
	j_json JSON, n_null VARCHAR(5),
	updated_at DATETIME(6) NOT NULL
)`

const typesRow = `INSERT INTO %s VALUES (
	18446744073709551615,
	-128, 1, 65535, 16777215, -2147483648, 4294967295,
	-9223372036854775808, 18446744073709551615, 2024,
	1.1, 2.2250738585072014e-308, 1234.50, 12345678901234567890.0123456789,
	'2026-03-29 02:30:00.123456', '2026-10-25 02:30:00', '1969-12-31 23:59:59.50', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '0000-00-00', '0000-00-00 00:00:00', '2024-00-15 10:00:00.500', '2024-05-00', '2026-07-01 12:00:00.250', '2026-02-28', '-838:59:59',
	'ab', 'Grüße 👋', 'long text', 'Ärger',
	X'00FF0102', X'C328', X'DEADBEEF00',
	'qualified', 'a,c', b'1000000001', b'1111111111111111111111111111111111111111111111111111111111111111',
	'{"plan": "pro", "seats": 3, "price": 19.90}', NULL,
	'2026-07-01 12:00:00'
)`

// TestSameValuesAsPolling: one row read by the binlog source (as an
// insert) and by the polling source (its first poll, initial: emit) gives
// the same values, type for type, so a rule gives the same event whichever
// source feeds it. The timezone is not UTC, so DATETIME's wall clock is
// read in it (across a DST change) by both.
func TestSameValuesAsPolling(t *testing.T) {
	r := newRig(t, typesDDL)
	r.src.loc, _ = time.LoadLocation("Europe/Berlin")
	r.start(r.now())
	// Zero dates and zero parts in dates are what MariaDB's default
	// sql_mode lets an application write.
	r.tx("SET SESSION sql_mode = ''", fmt.Sprintf(typesRow, r.table))
	got, _ := r.changes(1)
	fromBinlog := got[0].New

	dsn := testenv.MySQLDSN(t)
	store, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	poll, err := sqlpoll.New("poll", config.Source{Type: sqlpoll.TypeMySQL, DSN: config.Secret(dsn), Timezone: "Europe/Berlin",
		Options: &sqlpoll.Config{Schedule: "@every 1h", PageSize: 100, Initial: "emit", Deletes: "none"},
		Tables: config.TableSet{Names: []string{r.table}, Tables: map[string]*config.PollTable{r.table: {Key: []string{"id"}, Cursor: "updated_at",
			Track: slices.Collect(func(yield func(string) bool) {
				for name := range fromBinlog.All() {
					if !yield(name) {
						return
					}
				}
			})}}}},
		store, sqlpoll.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer poll.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan cdc.Batch, 10)
	done := make(chan error, 1)
	go func() { done <- poll.Run(ctx, nil, out) }()
	var fromPoll cdc.Row
	for fromPoll.IsZero() {
		select {
		case b := <-out:
			for _, c := range b.Changes {
				fromPoll = c.New
			}
			poll.Ack(ctx, b.Position)
		case err := <-done:
			t.Fatalf("poll: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("no row from the poll")
		}
	}
	cancel()
	<-done

	polled := fromPoll.Map()
	for name, want := range polled {
		v, ok := fromBinlog.Get(name)
		if !ok {
			t.Errorf("%s: missing from the binlog's row (poll: %#v)", name, want)
			continue
		}
		if !reflect.DeepEqual(v, want) {
			t.Errorf("%s: binlog %#v (%T), poll %#v (%T)", name, v, v, want, want)
		}
	}
	if n, m := fromBinlog.Len(), len(polled); n != m {
		t.Errorf("binlog row has %d columns, poll row %d", n, m)
	}
}
