package sqlpoll_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/capisync/capisync/state/bolt"
)

// piiRules read status as an old value and email only as a new one; the
// second rule fires on any update, so it shows a change of the email alone
// is still seen.
const piiRules = `
  - name: paid
    source: shop
    table: TABLE
    when: changed_to("status", "paid")
    event: Purchase
    event_id: '"paid-" + string(new.id)'
    user_data: {em: new.email}
    custom_data: {value: new.total, currency: '"EUR"'}
  - name: updated
    source: shop
    table: TABLE
    when: op == "update"
    event: ProfileUpdated
    event_id: '"upd-" + string(new.id) + "-" + string(len(new.email))'
    user_data: {em: new.email}`

// TestShadowsKeepNoNewOnlyValues: a row's shadow keeps the columns rules
// read as old values (status), and of the others (email, total) only a
// fingerprint: no email reaches the store file, and an update of the
// email alone is still an update.
func TestShadowsKeepNoNewOnlyValues(t *testing.T) {
	e := newEnv(t, kinds[2], "", piiRules)
	e.exec("INSERT INTO TABLE VALUES (1, 'new', 'first.person@example.com', '10.00', NOW), (2, 'new', 'second.person@example.com', '20.00', NOW)")
	e.start()
	e.polls(2)
	e.exec("UPDATE TABLE SET status = 'paid', updated_at = NOW WHERE id = 1")
	e.exec("UPDATE TABLE SET email = 'x@example.com', updated_at = NOW WHERE id = 2") // the email alone
	e.waitEvents("Purchase paid-1", "ProfileUpdated upd-1-24", "ProfileUpdated upd-2-13")
	e.stop()
	raw, err := os.ReadFile(filepath.Join(e.dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pii := range []string{"@example.com", "first.person", "second.person"} {
		if bytes.Contains(raw, []byte(pii)) {
			t.Errorf("the store file holds %q", pii)
		}
	}
}

// TestOlderShadowsAreRewritten: shadows written with every column in full
// (as before) are rewritten at start: the emails leave them, and the next
// changes are seen as before, neither lost nor repeated.
func TestOlderShadowsAreRewritten(t *testing.T) {
	e := newEnv(t, kinds[2], "", piiRules)
	e.exec("INSERT INTO TABLE VALUES (1, 'new', 'first.person@example.com', '10.00', NOW), (2, 'new', 'second.person@example.com', '20.00', NOW)")
	e.keepAll = true
	e.start()
	e.polls(2)
	e.stop()
	if n := shadowsHolding(t, e, "@example.com"); n != 2 {
		t.Fatalf("%d old-format shadows hold an email, want 2", n)
	}

	e.keepAll = false
	e.start()
	e.polls(2)
	if n := shadowsHolding(t, e, "@example.com"); n != 0 {
		t.Errorf("%d shadows still hold an email after the upgrade", n)
	}
	e.exec("UPDATE TABLE SET status = 'paid', updated_at = NOW WHERE id = 1")
	e.waitEvents("Purchase paid-1", "ProfileUpdated upd-1-24")
}

// shadowsHolding counts the table's stored shadows that contain s.
func shadowsHolding(t *testing.T, e *env, s string) int {
	t.Helper()
	store := e.store
	if e.cancel == nil { // stopped: open the file
		var err error
		if store, err = bolt.Open(filepath.Join(e.dir, "state.db"), bolt.Options{}); err != nil {
			t.Fatal(err)
		}
		defer store.Close()
	}
	n := 0
	if err := store.ScanShadows("shop", e.table, func(_, v []byte) error {
		if bytes.Contains(v, []byte(s)) {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}
