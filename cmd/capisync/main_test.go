package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/capisync/capisync/internal/testenv"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidate(t *testing.T) {
	t.Setenv("CRM_PG_DSN", "postgres://capisync:pw@127.0.0.1:5432/crm")
	t.Setenv("SHOP_MYSQL_DSN", "capisync:pw@tcp(127.0.0.1:3306)/shop")
	t.Setenv("ORDERS_MYSQL_DSN", "capisync:pw@tcp(127.0.0.1:3306)/orders")
	t.Setenv("META_PIXEL_ID", "1234567890")
	t.Setenv("META_ACCESS_TOKEN", "EAAsecrettoken")
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"example", []string{"validate", "--config", "../../config.example.yaml"}, 0, []string{"ok (3 sources, 1 destinations, 2 rules)"}},
		{"three mistakes", []string{"validate", "--config", "../../internal/config/testdata/bad/three_mistakes.yaml"}, 2, []string{
			"three_mistakes.yaml:6:5: sources.shop.pagesize:",
			"three_mistakes.yaml:14:17: destinations.meta.batch_size:",
			"three_mistakes.yaml:17:12: rules[0].table:",
			"3 problem(s)",
		}},
		{"missing file", []string{"validate", "--config", "nope.yaml"}, 2, []string{"nope.yaml"}},
		{"no config flag", []string{"validate"}, 2, []string{"--config FILE is required"}},
		{"bad flag", []string{"validate", "--nope"}, 2, []string{"flag provided but not defined"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"version", []string{"version"}, 0, []string{"capisync "}},
		{"status of a missing config", []string{"status", "--config", "x"}, 2, []string{"x"}},
		// --help prints usage and exits 0 without reading a config.
		{"run --help", []string{"run", "--help"}, 0, []string{"-config"}},
		{"validate -h", []string{"validate", "-h"}, 0, []string{"-connect"}},
		{"status --help", []string{"status", "--help"}, 0, []string{"-window"}},
		{"rules --help", []string{"rules", "--help"}, 0, []string{"rules test --config FILE"}},
		{"rules test --help", []string{"rules", "test", "--help"}, 0, []string{"-changes"}},
		{"dlq --help", []string{"dlq", "--help"}, 0, []string{"dlq list|retry|drop"}},
		{"dlq retry --help", []string{"dlq", "retry", "--help"}, 0, []string{"-destination"}},
		{"slot --help", []string{"slot", "--help"}, 0, []string{"slot drop"}},
		{"help", []string{"help"}, 0, []string{"Usage:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			for _, c := range tt.contains {
				if !strings.Contains(out+errOut, c) {
					t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", c, out, errOut)
				}
			}
			if strings.Contains(out+errOut, "EAAsecrettoken") {
				t.Error("token leaked")
			}
		})
	}
}

// quickstartSQL makes sure the quickstart's SQLite CRM exists at db and
// runs sql on it ("" runs nothing).
func quickstartSQL(t *testing.T, db, sql string) {
	t.Helper()
	args := []string{"run", "../../examples/quickstart", "-db", db}
	if sql != "" {
		args = append(args, "-sql", sql)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("quickstart db %s: %v\n%s", sql, err, out)
	}
}

// startDaemon starts `capisync run --config cfg` with env added to the
// environment, its stderr going to logs.
func startDaemon(t *testing.T, bin, cfg string, logs *testenv.Buffer, env ...string) *exec.Cmd {
	t.Helper()
	d := exec.Command(bin, "run", "--config", cfg)
	d.Env = append(os.Environ(), env...)
	d.Stderr = logs
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	return d
}
