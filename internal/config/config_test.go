package config_test

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capisync/capisync/connectors/mysqlbinlog"
	"github.com/capisync/capisync/connectors/postgres"
	_ "github.com/capisync/capisync/connectors/sqlpoll"
	"github.com/capisync/capisync/internal/config"
)

func noEnv(string) (string, bool) { return "", false }

func exampleEnv(name string) (string, bool) {
	v, ok := map[string]string{
		"CRM_PG_DSN":        "postgres://capisync:pw@127.0.0.1:5432/crm",
		"SHOP_MYSQL_DSN":    "capisync:pw@tcp(127.0.0.1:3306)/shop",
		"ORDERS_MYSQL_DSN":  "capisync:pw@tcp(127.0.0.1:3306)/orders",
		"META_PIXEL_ID":     "1234567890",
		"META_ACCESS_TOKEN": "EAAexample",
	}[name]
	return v, ok
}

func TestExampleConfigIsValid(t *testing.T) {
	data, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("config.example.yaml", data, exampleEnv)
	if err != nil {
		t.Fatalf("config.example.yaml does not validate:\n%v", err)
	}
	if got := cfg.Sources["shop"].Tables.Tables["orders"].Lookback.String(); got != "2m0s" {
		t.Errorf("lookback = %s, want 2m0s", got)
	}
	if cfg.Destinations["meta"].AccessToken.Reveal() != "EAAexample" {
		t.Error("access token not expanded")
	}
	if o, bo := cfg.Sources["orders"], cfg.Sources["orders"].Options.(*mysqlbinlog.Config); o.Type != mysqlbinlog.Type || bo.ServerID != 4201 || bo.Initial != "skip" || len(o.Tables.Names) != 2 {
		t.Errorf("binlog source: %+v", o)
	}
}

func TestBaseDefaults(t *testing.T) {
	cfg := mustParse(t, "testdata/base.yaml")
	src := cfg.Sources["crm"].Options.(*postgres.Config)
	if src.Slot != "capisync_crm" || src.Publication != "capisync_crm" || !config.Bool(src.Create, false) || src.Heartbeat.Duration != postgres.DefaultHeartbeat {
		t.Errorf("postgres defaults not applied: %+v", src)
	}
	d := cfg.Destinations["meta"]
	if d.BatchSize != 1000 || d.InFlight != 2 || d.APIVersion != config.DefaultAPIVersion || d.BaseURL != config.DefaultBaseURL || d.MaxOutbox != config.DefaultMaxOutbox {
		t.Errorf("destination defaults not applied: %+v", d)
	}
	if r := cfg.Rules[0]; r.ActionSource != "system_generated" || r.When.Src != `new.status == "qualified"` || r.When.Pos != (config.Pos{16, 11}) {
		t.Errorf("rule = %+v", r)
	}
}

func mustParse(t *testing.T, file string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(file, data, noEnv)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return cfg
}

// TestBadConfigs loads each testdata/bad/*.yaml and checks that every
// "# want: LINE:COL: path: message" line of the file is reported, at exactly
// that place, that nothing else is, and that no "# forbid:" text (a secret)
// appears anywhere in the output.
func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) < 10 {
		t.Fatalf("found %d bad configs", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			wants, forbids := expectations(t, file)
			_, err = config.Parse(file, data, noEnv)
			var problems config.Problems
			if !errors.As(err, &problems) {
				t.Fatalf("want Problems, got %v", err)
			}
			out := err.Error()
			for _, w := range wants {
				if !strings.Contains(out, file+":"+w) {
					t.Errorf("missing %q in:\n%s", w, out)
				}
			}
			if len(problems) != len(wants) {
				t.Errorf("got %d problems, want %d:\n%s", len(problems), len(wants), out)
			}
			for _, f := range forbids {
				if strings.Contains(out, f) {
					t.Errorf("output leaks %q:\n%s", f, out)
				}
			}
		})
	}
}

func expectations(t *testing.T, file string) (wants, forbids []string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if w, ok := strings.CutPrefix(line, "# want: "); ok {
			wants = append(wants, w)
		}
		if w, ok := strings.CutPrefix(line, "# forbid: "); ok {
			forbids = append(forbids, w)
		}
	}
	return wants, forbids
}

func TestExpand(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"A": "alpha", "EMPTY": ""}[k]
		return v, ok
	}
	tests := []struct {
		in, want, err string
	}{
		{"plain", "plain", ""},
		{"${A}", "alpha", ""},
		{"x-${A}-y", "x-alpha-y", ""},
		{"${B:-dflt}", "dflt", ""},
		{"${EMPTY:-dflt}", "dflt", ""},
		{"${EMPTY}", "", ""},
		{"${A:-dflt}", "alpha", ""},
		{"${B:-}", "", ""},
		{"pa$word", "pa$word", ""},
		{"$A", "$A", ""},
		{"$${A}", "${A}", ""},
		{"cost $", "cost $", ""},
		{"${B}", "", "environment variable B is not set"},
		{"${A", "", "unterminated"},
		{"${1A}", "", "invalid variable name"},
	}
	for _, tt := range tests {
		got, err := config.Expand(tt.in, env)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Expand(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestExpandedNumberKeepsItsType(t *testing.T) {
	data := []byte(`sources:
  crm: {type: postgres, dsn: "postgres://u@h/db", tables: [public.leads]}
destinations:
  meta:
    type: meta_capi
    pixel_id: "1"
    access_token: t
    batch_size: "${BATCH:-250}"
    in_flight: ${INFLIGHT:-4}
rules:
  - {name: r, source: crm, table: public.leads, when: "true", event: Lead}
`)
	_, err := config.Parse("x.yaml", data, noEnv)
	if err == nil || !strings.Contains(err.Error(), `batch_size: expected a whole number, got "250"`) {
		t.Fatalf("a quoted value stays a string: %v", err)
	}
	data = []byte(strings.Replace(string(data), `"${BATCH:-250}"`, `${BATCH:-250}`, 1))
	cfg, err := config.Parse("x.yaml", data, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Destinations["meta"]; d.BatchSize != 250 || d.InFlight != 4 {
		t.Errorf("batch_size %d in_flight %d", d.BatchSize, d.InFlight)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := config.Secret("hunter2")
	for _, got := range []string{s.String(), s.GoString(), fmtAll(s)} {
		if strings.Contains(got, "hunter2") {
			t.Errorf("secret leaked: %q", got)
		}
	}
	b, _ := s.MarshalJSON()
	if strings.Contains(string(b), "hunter2") || s.Reveal() != "hunter2" {
		t.Errorf("MarshalJSON %s", b)
	}
}

func TestScrub(t *testing.T) {
	for _, dsn := range []string{
		"postgres://bob:hunter2@db:5432/crm",
		"host=db user=bob password=hunter2 dbname=crm",
		"host=db password='hunter2' dbname=crm",
		"bob:hunter2@tcp(db:3306)/shop",
	} {
		msg := config.Scrub("failed to connect to "+dsn+" (password hunter2)", dsn)
		if strings.Contains(msg, "hunter2") {
			t.Errorf("Scrub(%q) left the password: %s", dsn, msg)
		}
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"${A}", "${A:-b}", "$$", "x${", "${:-}", "$${A}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := config.Expand(s, func(string) (string, bool) { return "v", true })
		if err == nil && !strings.Contains(s, "$") && out != s {
			t.Fatalf("text without $ changed: %q -> %q", s, out)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, file := range []string{"testdata/base.yaml", "../../config.example.yaml"} {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = config.Parse("fuzz.yaml", data, exampleEnv) // must never panic
	})
}

// TestLoadForInspection: status and dlq read a config whose secrets are not
// in their environment; a problem that is not about an unset value still
// stops them.
func TestLoadForInspection(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`state:
  path: ${CAPISYNC_TEST_STATE:-/tmp/x.db}
sources:
  crm: {type: postgres, dsn: "${CAPISYNC_TEST_UNSET_DSN}", tables: [public.leads]}
destinations:
  meta: {type: meta_capi, pixel_id: "${CAPISYNC_TEST_UNSET_PIXEL}", access_token: "${CAPISYNC_TEST_UNSET_TOKEN}"}
rules:
  - {name: r, source: crm, table: public.leads, when: "true", event: Lead}
`), 0o600)
	if _, err := config.Load(good); err == nil {
		t.Fatal("Load accepted unset variables")
	}
	cfg, err := config.LoadForInspection(good)
	if err != nil {
		t.Fatalf("LoadForInspection: %v", err)
	}
	if cfg.State.Path != "/tmp/x.db" || cfg.Destinations["meta"] == nil {
		t.Errorf("config = %+v", cfg)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`sources:
  crm: {type: postgres, dsn: "${CAPISYNC_TEST_UNSET_DSN}", tables: [public.leads]}
destinations:
  meta: {type: meta_capi, pixel_id: "${CAPISYNC_TEST_UNSET_PIXEL}", access_token: "${CAPISYNC_TEST_UNSET_TOKEN}", batch_size: 5000}
rules:
  - {name: r, source: crm, table: public.leads, when: "true", event: Lead}
`), 0o600)
	_, err = config.LoadForInspection(bad)
	var ps config.Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "destinations.meta.batch_size" {
		t.Errorf("LoadForInspection of a bad config: %v", err)
	}
}

// TestPhoneWithoutDefaultCountryNote: a rule that maps ph with no
// default_country (its own or its source's) gets a note pointing at
// default_country; with one, none.
func TestPhoneWithoutDefaultCountryNote(t *testing.T) {
	for _, tt := range []struct {
		source, rule string
		notes        int
	}{
		{"", "", 1},
		{"    default_country: US\n", "", 0},
		{"", "    default_country: GB\n", 0},
	} {
		src := `sources:
  crm:
    type: postgres
    dsn: "postgres://u@h/db"
    tables: [public.leads]
` + tt.source + `destinations:
  meta: {type: meta_capi, dry_run: true}
rules:
  - name: r
    source: crm
    table: public.leads
    when: "true"
    event: Lead
` + tt.rule + `    user_data: {ph: new.phone}
`
		cfg, err := config.Parse("t.yaml", []byte(src), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if n := cfg.Notes(); len(n) != tt.notes || tt.notes == 1 && !strings.Contains(n[0].Error(), "t.yaml:14:21: rules[0].user_data.ph:") {
			t.Errorf("source %q rule %q: notes %v, want %d", tt.source, tt.rule, n, tt.notes)
		}
	}
}
