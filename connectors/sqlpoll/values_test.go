package sqlpoll

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/testenv"
	"github.com/capisync/capisync/state/bolt"
)

// TestReadValues reads every kind of column through each dialect, NULLs and
// empty values included, and checks the common form the rules see; then it
// pages through a table keyed by text, one row per page, all rows on the
// same cursor, so that the next page's keyset is the text key as read.
func TestReadValues(t *testing.T) {
	at := time.Date(2026, 11, 26, 9, 30, 15, 123456000, time.UTC)
	full := map[string]any{"code": "a", "updated_at": at, "name": "Zoë", "note": "", "bin": []byte{0, 0xff},
		"doc": map[string]any{"k": []any{1.0, "x"}}, "amount": cdc.Decimal("12.50"), "ratio": 0.25, "n": int64(-5)}
	null := map[string]any{"code": "b", "updated_at": at, "name": nil, "note": nil, "bin": nil,
		"doc": nil, "amount": nil, "ratio": nil, "n": nil}
	cases := []struct {
		typ, driver string
		dsn         func(t *testing.T) string
		ddl         string // %s: table
		insert      string // %s: table; rows a (full), b (NULLs), c
		extra       map[string]any
	}{
		{typ: TypeMySQL, dsn: func(t *testing.T) string { return testenv.MySQLDSN(t) },
			ddl: "CREATE TABLE %s (code VARCHAR(20) PRIMARY KEY, updated_at DATETIME(6) NOT NULL, name VARCHAR(50), note TEXT, bin VARBINARY(10), doc JSON, amount DECIMAL(12,2), ratio DOUBLE, n INT, big BIGINT UNSIGNED)",
			insert: `INSERT INTO %s VALUES ('a', '2026-11-26 09:30:15.123456', 'Zoë', '', x'00ff', '{"k": [1, "x"]}', 12.50, 0.25, -5, 18446744073709551615),
				('b', '2026-11-26 09:30:15.123456', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
				('c', '2026-11-26 09:30:15.123456', 'c', 'c', x'', '[]', 0, 0, 0, 7)`,
			// MariaDB's JSON is LONGTEXT with a check: its text, as stored.
			extra: map[string]any{"big": cdc.Decimal("18446744073709551615"), "doc": `{"k": [1, "x"]}`}},
		{typ: TypePostgres, dsn: func(t *testing.T) string { return testenv.PostgresDSN(t) },
			ddl: "CREATE TABLE %s (code text PRIMARY KEY, updated_at timestamptz NOT NULL, name text, note text, bin bytea, doc jsonb, amount numeric(12,2), ratio double precision, n integer, big bigint)",
			insert: `INSERT INTO %s VALUES ('a', '2026-11-26 09:30:15.123456+00', 'Zoë', '', '\x00ff', '{"k": [1, "x"]}', 12.50, 0.25, -5, 9223372036854775807),
				('b', '2026-11-26 09:30:15.123456+00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
				('c', '2026-11-26 09:30:15.123456+00', 'c', 'c', '', '[]', 0, 0, 0, 7)`,
			extra: map[string]any{"big": int64(9223372036854775807)}},
	}
	for _, tc := range cases {
		t.Run(tc.typ, func(t *testing.T) {
			dsn := tc.dsn(t)
			name := fmt.Sprintf("vals_%d", time.Now().UnixNano()%1e9)
			cfg := config.Source{Type: tc.typ, DSN: config.Secret(dsn), Timezone: "UTC", Options: &Config{Schedule: "@every 1h", PageSize: 1},
				Tables: config.TableSet{Names: []string{name}, Tables: map[string]*config.PollTable{name: {
					Key: []string{"code"}, Cursor: "updated_at", Track: []string{"name", "note", "bin", "doc", "amount", "ratio", "n", "big"}}}}}
			store, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			s, err := New("shop", cfg, store, Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.db.Exec("DROP TABLE " + name); s.Close() })
			for _, q := range []string{tc.ddl, tc.insert} {
				if _, err := s.db.Exec(fmt.Sprintf(q, name)); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			ctx := context.Background()
			if err := s.Check(ctx); err != nil {
				t.Fatal(err)
			}
			tb := s.tables[0]
			q, args := s.query(tb, nil, nil, 10)
			rows, err := s.readPage(ctx, tb, q, args, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 3 {
				t.Fatalf("read %d rows, want 3", len(rows))
			}
			for i, want := range []map[string]any{maps.Clone(full), maps.Clone(null)} {
				got := cdc.NewRow(cdc.NewColumns(tb.cols...), rows[i].norm).Map()
				for c, v := range tc.extra {
					if i == 0 {
						want[c] = v
					} else {
						want[c] = nil
					}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("row %d:\n got %#v\nwant %#v", i, got, want)
				}
			}
			if got := rows[2].norm[slices.Index(tb.cols, "bin")]; !reflect.DeepEqual(got, []byte{}) {
				t.Errorf("an empty binary value reads as %#v, want an empty []byte", got)
			}

			var codes []string
			for p := range s.pages(ctx, tb, nil, nil, nil) {
				if p.err != nil {
					t.Fatal(p.err)
				}
				for _, r := range p.rows {
					codes = append(codes, r.norm[tb.keyIdx[0]].(string))
				}
			}
			if strings.Join(codes, ",") != "a,b,c" {
				t.Errorf("pages of one row read %v, want a, b, c once each", codes)
			}
		})
	}
}
