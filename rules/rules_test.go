package rules

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
)

var update = flag.Bool("update", false, "rewrite golden files")

func compileFile(t testing.TB, file string) *Set {
	t.Helper()
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestGolden evaluates testdata/changes.jsonl and compares the events with
// testdata/expected.jsonl (go test ./rules -update rewrites it).
func TestGolden(t *testing.T) {
	set := compileFile(t, "testdata/config.yaml")
	f, err := os.Open("testdata/changes.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	changes, _, err := ReadChanges(f, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	enc := json.NewEncoder(&got)
	enc.SetEscapeHTML(false)
	for i := range changes {
		for _, res := range set.Eval(&changes[i]) {
			if res.Err != nil {
				t.Fatalf("change %d: %v", i+1, res.Err)
			}
			if err := enc.Encode(res.Event); err != nil {
				t.Fatal(err)
			}
		}
	}
	if *update {
		if err := os.WriteFile("testdata/expected.jsonl", got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/expected.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("events differ from testdata/expected.jsonl\n got:\n%s\nwant:\n%s", got.String(), want)
	}
}

func TestGoldenShape(t *testing.T) {
	// Spot checks that keep the golden file honest.
	data, err := os.ReadFile("testdata/expected.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	names := []string{}
	for _, e := range events {
		names = append(names, e["event_name"].(string))
	}
	want := "Lead LeadStageChanged Lead LeadStageChanged Purchase CancelledOrder OrderDeleted QualifiedLead"
	if strings.Join(names, " ") != want {
		t.Fatalf("event names = %v, want %s", names, want)
	}
	lead := events[0]
	ud := lead["user_data"].(map[string]any)
	if ud["em"] != capi.Hash("jane.doe@example.com") || ud["ph"] != capi.Hash("16505551234") || ud["lead_id"] != "1234567890123456" {
		t.Errorf("lead user_data = %v", ud)
	}
	if lead["event_time"].(float64) != float64(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).Unix()) || lead["action_source"] != "system_generated" || lead["event_id"] != "lead-42-qualified" {
		t.Errorf("lead = %v", lead)
	}
	if _, ok := events[2]["user_data"].(map[string]any)["em"]; ok {
		t.Error("nil email was not left out")
	}
	if events[2]["user_data"].(map[string]any)["ph"] != capi.Hash("442079460958") {
		t.Error("UK phone with (0) not normalized")
	}
	if !bytes.Contains(data, []byte(`"custom_data":{"currency":"USD","value":12500.50}`)) || !bytes.Contains(data, []byte(`"currency":"EUR","order_id":"1001","value":49.90}`)) {
		t.Error("money not sent exactly")
	}
	ctwa := events[7]
	if ctwa["action_source"] != "business_messaging" || ctwa["messaging_channel"] != "whatsapp" || ctwa["user_data"].(map[string]any)["ctwa_clid"] == nil {
		t.Errorf("ctwa = %v", ctwa)
	}
	if id := events[6]["event_id"].(string); len(id) != 64 {
		t.Errorf("default event_id %q is not a sha256", id)
	}
}

func TestDefaultEventIDIsStable(t *testing.T) {
	c := cdc.Change{Source: "s", Table: "t", Op: cdc.Update, Key: cdc.RowOf(map[string]any{"id": int64(1)}), Position: cdc.Position("p1"), CommitTime: time.Unix(100, 0)}
	a := DefaultEventID("r", &c)
	c2 := c
	c2.CommitTime = time.Unix(200, 0) // read again later: same key and position
	if DefaultEventID("r", &c2) != a {
		t.Error("same key and position gave another id")
	}
	c3 := c
	c3.Position = cdc.Position("p2")
	if DefaultEventID("r", &c3) == a || DefaultEventID("r2", &c) == a {
		t.Error("different change or rule gave the same id")
	}
}

func TestRuntimeErrorFailsOneEvent(t *testing.T) {
	cfg := parse(t, `
  - name: bad-time
    source: crm
    table: public.leads
    when: "true"
    event: Lead
    event_time: new.updated_at
  - name: good
    source: crm
    table: public.leads
    when: "true"
    event: Contact
  - name: bad-user-data
    source: crm
    table: public.leads
    when: "true"
    event: Contact
    event_id: '"c-" + string(new.id)'
    user_data:
      em: new.email
      external_id: upper(new.id)
`)
	set, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := cdc.Change{Source: "crm", Table: "public.leads", Op: cdc.Insert, Key: cdc.RowOf(map[string]any{"id": int64(7)}),
		New: cdc.RowOf(map[string]any{"id": int64(7), "updated_at": "yesterday", "email": "secret@example.com"}), CommitTime: time.Unix(1, 0)}
	res := set.Eval(&c)
	if len(res) != 3 || res[0].Err == nil || res[1].Err != nil || res[2].Err == nil {
		t.Fatalf("results = %+v", res)
	}
	// A run-time error inside one field is attributed to that field.
	if e := res[2].Err; e.Field != "user_data.external_id" || e.Rule != "bad-user-data" {
		t.Errorf("error = %+v", e)
	}
	msg := res[0].Err.Error()
	for _, want := range []string{`rule "bad-time"`, "event_time", "id=7"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "secret@example.com") {
		t.Errorf("error leaks row data: %s", msg)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		rules string
		want  string
	}{
		{`
  - name: typo
    source: crm
    table: public.leads
    when: changed("status") && nw.status == "qualified"
    event: Lead`, `t.yaml:9:32: rules[0].when: rule "typo": unknown name nw (at column 22 of the expression`},
		{`
  - name: not-bool
    source: crm
    table: public.leads
    when: len(new) + 1
    event: Lead`, `t.yaml:9:11: rules[0].when: rule "not-bool": expected bool, but got int`},
		{`
  - name: bad-user-data
    source: crm
    table: public.leads
    when: "true"
    event: Lead
    user_data:
      em: 'lower(new.email'`, `t.yaml:12:26: rules[0].user_data.em: rule "bad-user-data": unexpected token EOF (at column 15`},
		{`
  - name: wrong-type
    source: crm
    table: public.leads
    when: "true"
    event: Lead
    opt_out: '"yes"'`, `rules[0].opt_out: rule "wrong-type": the expression gives string, but opt_out needs true or false`},
		{`
  - name: bad-args
    source: crm
    table: public.leads
    when: changed(1)
    event: Lead`, `rules[0].when: rule "bad-args"`},
		// A bare column name given to a helper: expr's checker lets it
		// through, and the rule would never fire.
		{`
  - name: bare-name
    source: crm
    table: public.leads
    when: changed_to(status, "refunded")
    event: Lead`, `t.yaml:9:22: rules[0].when: rule "bare-name": unknown name status (at column 12 of the expression "changed_to(status, \"refunded\")"); a column is read as new.status`},
		{`
  - name: bare-name-in-data
    source: crm
    table: public.leads
    when: "true"
    event: Lead
    custom_data:
      x: coalesce(total, 0)`, `rules[0].custom_data.x: rule "bare-name-in-data": unknown name total`},
		{`
  - name: let-is-fine
    source: crm
    table: public.leads
    when: 'let s = new.status; s == "x" && all([1, 2], # > 0) && now() > commit_time'
    event: Lead
    user_data:
      em: nope`, `rules[0].user_data.em: rule "let-is-fine": unknown name nope`},
	}
	for _, tt := range tests {
		cfg := parse(t, tt.rules)
		_, err := Compile(cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Compile error = %v\nwant it to contain %q", err, tt.want)
		}
		if ps, ok := err.(config.Problems); !ok {
			t.Errorf("error is %T, want config.Problems", err)
		} else if len(ps) != 1 {
			t.Errorf("%d problems, want 1: %v", len(ps), err)
		}
	}
}

func TestColumnsAndOld(t *testing.T) {
	set := compileFile(t, "testdata/config.yaml")
	got := strings.Join(set.Columns("shop", "orders"), ",")
	if got != "country,currency,customer_id,email,id,status,total,updated_at,zip" {
		t.Errorf("columns = %s", got)
	}
	if r := set.RulesReadingOld("crm", "public.leads"); len(r) != 3 {
		t.Errorf("rules reading old = %v", r)
	}
}

func TestChangedHelpers(t *testing.T) {
	tm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	up := &cdc.Change{Op: cdc.Update, Old: cdc.RowOf(map[string]any{"n": int64(1), "t": tm, "s": "a", "z": nil}), New: cdc.RowOf(map[string]any{"n": float64(1), "t": tm.In(time.FixedZone("x", 3600)), "s": "b", "z": nil})}
	e := newState()
	e.bind(up, false, time.Now)
	changedTo := e.vars["changed_to"].(func(any, any) bool)
	changedFrom := e.vars["changed_from"].(func(any, any) bool)
	if e.changed("n") || e.changed("t") || !e.changed("s") || e.changed("z") {
		t.Error("changed on update")
	}
	if !changedTo("s", "b") || changedTo("s", "a") || !changedFrom("s", "a") {
		t.Error("changed_to / changed_from")
	}
	e.bind(&cdc.Change{Op: cdc.Insert, New: cdc.RowOf(map[string]any{"s": "x", "z": nil})}, false, time.Now)
	if !e.changed("s") || e.changed("z") || e.changed("missing") {
		t.Error("changed on insert")
	}
	e.bind(&cdc.Change{Op: cdc.Delete, Old: cdc.RowOf(map[string]any{"s": "x"})}, false, time.Now)
	if e.changed("s") {
		t.Error("changed on delete")
	}
}

func parse(t testing.TB, rules string) *config.Config {
	t.Helper()
	src := `sources:
  crm: {type: postgres, dsn: "postgres://u@h/db", tables: [public.leads, public.chats]}
destinations:
  meta: {type: meta_capi, dry_run: true}
rules:` + rules + "\n"
	cfg, err := config.Parse("t.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRememberedHashes: low-cardinality keys (city, zip, ...) are hashed
// once per value and remembered; a remembered value hashes as a fresh one
// does, an invalid one stays dropped, and other keys are not remembered.
func TestRememberedHashes(t *testing.T) {
	set, err := Compile(parse(t, `
  - name: r
    source: crm
    table: public.leads
    when: "true"
    event: Lead
    user_data: {ct: new.city, zp: new.zip, em: new.email}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct{ city, zip, wantCity string }{
		{"San Francisco", "94105", "sanfrancisco"},
		{"San Francisco", "94105", "sanfrancisco"},
		{"  SAN FRANCISCO ", "94105-1234", "sanfrancisco"},
		{"!!!", "94105", ""},
		{"!!!", "94105", ""},
		{"Zürich", "8001", "zürich"},
	} {
		ch := cdc.Change{Source: "crm", Table: "public.leads", Op: cdc.Insert, Key: cdc.RowOf(map[string]any{"id": int64(i)}), CommitTime: time.Unix(1, 0),
			New: cdc.RowOf(map[string]any{"id": int64(i), "city": c.city, "zip": c.zip, "email": fmt.Sprintf("u%d@example.com", i)})}
		res := set.Eval(&ch)
		if len(res) != 1 || res[0].Err != nil {
			t.Fatalf("row %d: %+v", i, res)
		}
		ud := res[0].Event.UserData
		want := map[string]any{"zp": capi.Hash(strings.SplitN(c.zip, "-", 2)[0]), "em": capi.Hash(fmt.Sprintf("u%d@example.com", i))}
		if c.wantCity != "" {
			want["ct"] = capi.Hash(c.wantCity)
		} else if len(res[0].Dropped) != 1 || res[0].Dropped[0].Key != "ct" || res[0].Dropped[0].Reason != "a city has no letters" {
			t.Errorf("row %d: dropped %v, want [ct]", i, res[0].Dropped)
		}
		if fmt.Sprint(ud) != fmt.Sprint(want) {
			t.Errorf("row %d: user_data %v, want %v", i, ud, want)
		}
	}
}

// TestWholeRows: a rule that reads new or old as a whole (len(new),
// new[col] with a computed name, old == nil) sees the rows as maps, and a
// rule of another table that reads columns by name is unaffected.
func TestWholeRows(t *testing.T) {
	set, err := Compile(parse(t, `
  - name: wide-insert
    source: crm
    table: public.leads
    when: old == nil && len(new) == 3 && new["sta" + "tus"] == "won"
    event: Purchase
    event_id: '"w-" + string(new.id)'
  - name: status-of-old
    source: crm
    table: public.leads
    when: old != nil && old["status"] == "lost" && new.status == "won"
    event: Lead
    event_id: '"s-" + string(new.id)'
  - name: by-name
    source: crm
    table: public.chats
    when: changed_to("status", "won")
    event: Contact
    event_id: '"c-" + string(new.id)'`))
	if err != nil {
		t.Fatal(err)
	}
	row := func(status string) cdc.Row {
		return cdc.RowOf(map[string]any{"id": int64(1), "status": status, "email": "a@example.com"})
	}
	for _, tc := range []struct {
		name  string
		table string
		op    cdc.Op
		old   cdc.Row
		want  []string // event ids
	}{
		{"insert of three columns", "public.leads", cdc.Insert, cdc.Row{}, []string{"w-1"}},
		{"update from lost", "public.leads", cdc.Update, row("lost"), []string{"s-1"}},
		{"update from new", "public.leads", cdc.Update, row("new"), nil},
		{"other table, by name", "public.chats", cdc.Update, row("lost"), []string{"c-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &cdc.Change{Source: "crm", Table: tc.table, Op: tc.op, Key: cdc.RowOf(map[string]any{"id": int64(1)}), Old: tc.old, New: row("won")}
			var got []string
			for _, r := range set.Eval(c) {
				if r.Err != nil {
					t.Fatalf("%s: %v", r.Rule, r.Err)
				}
				got = append(got, r.Event.EventID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRebind: an evaluation state reused from change to change sees each
// change's op, table and commit time, not the last one's.
func TestRebind(t *testing.T) {
	set, err := Compile(parse(t, `
  - name: inserted
    source: crm
    table: public.leads
    when: op == "insert" && table == "public.leads"
    event: Lead
    event_time: commit_time
    event_id: '"l-" + string(new.id)'
  - name: chat
    source: crm
    table: public.chats
    when: op == "update"
    event: Contact
    event_time: commit_time
    event_id: '"c-" + string(new.id)'`))
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	row := cdc.RowOf(map[string]any{"id": int64(1)})
	for i, tc := range []struct {
		table string
		op    cdc.Op
		at    time.Time
		want  string // event name and time, "" for none
	}{
		{"public.leads", cdc.Insert, t1, "Lead " + fmt.Sprint(t1.Unix())},
		{"public.leads", cdc.Insert, t2, "Lead " + fmt.Sprint(t2.Unix())},
		{"public.leads", cdc.Update, t2, ""},
		{"public.chats", cdc.Update, t1, "Contact " + fmt.Sprint(t1.Unix())},
		{"public.chats", cdc.Insert, t1, ""},
		{"public.leads", cdc.Insert, t2.In(time.FixedZone("x", 3600)), "Lead " + fmt.Sprint(t2.Unix())},
	} {
		c := &cdc.Change{Source: "crm", Table: tc.table, Op: tc.op, Key: row, New: row, CommitTime: tc.at}
		if tc.op == cdc.Update {
			c.Old = row
		}
		got := ""
		for _, r := range set.Eval(c) {
			got = fmt.Sprintf("%s %d", r.Event.EventName, r.Event.EventTime)
		}
		if got != tc.want {
			t.Errorf("change %d (%s %s): got %q, want %q", i+1, tc.op, tc.table, got, tc.want)
		}
	}
}
