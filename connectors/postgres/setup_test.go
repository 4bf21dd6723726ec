package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/connectors/postgres"
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/internal/testenv"
	"github.com/capisync/capisync/state/bolt"
)

// TestMisspelledColumn: a rule reading a column the table lacks stops the
// source at start (and validate --connect) naming the rule and the nearest
// column, instead of sending events without that key.
func TestMisspelledColumn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", `
  - name: typo
    source: crm
    table: public.leads_S
    when: changed_to("status", "qualified")
    event: Lead
    user_data: {em: new.emial}`)
	src, err := postgres.New("crm", *e.cfg.Sources["crm"], nil, postgres.Options{
		ColumnUsers: func(t string) map[string][]string { return e.set.ColumnUsers("crm", t) },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Verify(context.Background())
	want := "has no column emial, read by rule(s) typo (did you mean email?)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Verify: %v, want it to say %q", err, want)
	}
	e.start()
	if err := e.failure(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("start: %v, want it to say %q", err, want)
	}
}

// TestDroppedSlotRefusesToStart: a store whose checkpoint belongs to a slot
// that no longer exists does not silently start a new slot from now; once
// the operator accepts the gap (slot reset forgets the checkpoint), it does.
func TestDroppedSlotRefusesToStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", "")
	e.start()
	e.streaming()
	e.exec("INSERT INTO orders_S VALUES (1, 'paid', 'a@example.com', 10)")
	e.waitEvents("Purchase order-1")
	e.stop()
	testenv.DropSlots(t, e.dsn, "slot_"+e.suffix)
	e.exec("INSERT INTO orders_S VALUES (2, 'paid', 'b@example.com', 20)") // in the gap

	e.start()
	err := e.failure()
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "capisync slot reset") {
		t.Fatalf("start after the slot was dropped: %v", err)
	}
	store, err := bolt.Open(filepath.Join(e.dir, "state.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pos, err := store.ForgetCheckpoint("crm"); err != nil || pos == nil {
		t.Fatalf("ForgetCheckpoint: %q %v", pos, err)
	}
	store.Close()

	e.start()
	e.streaming()
	e.exec("INSERT INTO orders_S VALUES (3, 'paid', 'c@example.com', 30)")
	e.waitEvents("Purchase order-1", "Purchase order-3")
}

// TestRoleCannotCreatePublication: a role that may replicate but not
// create the publication is told so by validate --connect (and at start)
// with what to run, instead of passing and then retrying "permission
// denied" forever.
func TestRoleCannotCreatePublication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", "")
	role := "nopub_" + e.suffix
	e.exec(fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION PASSWORD 'pw'", role))
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), e.dsn)
		if err == nil {
			c.Exec(context.Background(), "DROP OWNED BY "+role)
			c.Exec(context.Background(), "DROP ROLE "+role)
			c.Close(context.Background())
		}
	})
	e.exec(fmt.Sprintf("GRANT SELECT ON leads_S, orders_S TO %s", role))
	cfg := *e.cfg.Sources["crm"]
	pc, _ := pgx.ParseConfig(e.dsn)
	cfg.DSN = config.Secret("postgres://" + role + ":pw@" + fmt.Sprintf("%s:%d/%s", pc.Host, pc.Port, pc.Database) + "?sslmode=disable")
	src, err := postgres.New("crm", cfg, nil, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = src.Verify(ctx)
	for _, want := range []string{"cannot create it", "lacks CREATE on database", "does not own public.leads_" + e.suffix, "CREATE PUBLICATION"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Verify: %v\nwant it to say %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "pw@") {
		t.Error("the password reached the message")
	}
}
