package rules

import (
	"fmt"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/cdc"
)

// whenForms are conditions of the forms fastWhen takes, and some it
// leaves to the VM.
var whenForms = []struct {
	when string
	fast bool
}{
	{`changed_to("status", "won")`, true},
	{`changed_from("status", "paid") && new.status == "refunded"`, true},
	{`changed("stage") || !changed_to("score", 10)`, true},
	{`changed_to("score", 2.5) or changed_to("flag", true) or changed_to("note", nil)`, true},
	{`op == "insert" and table == "public.leads" and source != "shop"`, true},
	{`"won" == new["status"] && old.status != "won"`, true},
	{`not (op == "delete")`, true},
	{`new.note == "" || old.status == ""`, true},
	{`true`, true},
	{`new.score > 3`, false},
	{`changed_to("status", new.stage)`, false},
	{`new.status in ["won", "lost"]`, false},
	{`len(new) > 2`, false},
}

func compileForms(t testing.TB) *Set {
	var rules string
	for i, f := range whenForms {
		rules += fmt.Sprintf(`
  - name: r%d
    source: crm
    table: public.leads
    when: '%s'
    event: Lead
    event_id: '"x"'`, i, f.when)
	}
	set, err := Compile(parse(t, rules))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestFastWhenForms: the forms fastWhen takes get a cond; others run in
// the VM.
func TestFastWhenForms(t *testing.T) {
	set := compileForms(t)
	for i, f := range whenForms {
		if got := set.rules[i].whenFast != nil; got != f.fast {
			t.Errorf("%s: fast = %v, want %v", f.when, got, f.fast)
		}
	}
}

// FuzzFastWhen: on any change, every cond gives what the VM gives.
func FuzzFastWhen(f *testing.F) {
	f.Add("won", "lost", int64(10), 2.5, true, "x", uint8(1))
	f.Add("refunded", "paid", int64(3), 0.0, false, "", uint8(2))
	f.Add("", "", int64(-1), -1.5, true, "won", uint8(0))
	set := compileForms(f)
	f.Fuzz(func(t *testing.T, status, oldStatus string, score int64, fscore float64, flag bool, note string, op uint8) {
		ops := []cdc.Op{cdc.Insert, cdc.Update, cdc.Delete}
		newRow := map[string]any{"id": int64(1), "status": status, "stage": note, "flag": flag, "note": note}
		oldRow := map[string]any{"id": int64(1), "status": oldStatus, "stage": status, "flag": !flag}
		if score%3 == 0 {
			newRow["score"] = fscore
			oldRow["score"] = score
		} else {
			newRow["score"] = score
		}
		if note == "" {
			newRow["note"] = nil
			oldRow["status"] = []byte(oldStatus)
		}
		c := &cdc.Change{Source: "crm", Table: "public.leads", Op: ops[int(op)%3], Key: cdc.RowOf(map[string]any{"id": int64(1)}),
			New: cdc.RowOf(newRow), Old: cdc.RowOf(oldRow), CommitTime: time.Unix(0, 0)}
		switch c.Op {
		case cdc.Insert:
			c.Old = cdc.Row{}
		case cdc.Delete:
			c.New = cdc.Row{}
		}
		st := newState()
		st.bind(c, set.wholeRows["crm\x00public.leads"], time.Now)
		ev := evaluator{st: st, change: c}
		for i, r := range set.rules {
			if r.whenFast == nil {
				continue
			}
			v, err := ev.run(r.when)
			if err != nil {
				t.Fatalf("%s: the VM failed: %v", whenForms[i].when, err)
			}
			if got := r.whenFast(st); got != v.(bool) {
				t.Fatalf("%s on %s %v / %v: cond %v, VM %v", whenForms[i].when, c.Op, c.Old, c.New, got, v)
			}
		}
	})
}
