package main

import (
	"os"
	"strings"
	"testing"
)

func TestRulesTestPrintsGoldenEvents(t *testing.T) {
	code, out, errOut := runCLI(t, "rules", "test", "--config", "../../rules/testdata/config.yaml", "--changes", "../../rules/testdata/changes.jsonl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want, err := os.ReadFile("../../rules/testdata/expected.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("stdout differs from the golden events\n got: %s\nwant: %s", out, want)
	}
}

func TestRulesTestErrors(t *testing.T) {
	code, out, errOut := runCLI(t, "rules", "test", "--config", "testdata/runtime_error.yaml", "--changes", "testdata/runtime_error.jsonl")
	if code != 1 {
		t.Errorf("runtime error: exit %d, want 1", code)
	}
	if !strings.HasPrefix(out, `{"change":1,"error":"rule \"qualified-lead\", event_time, key id=1:`) || !strings.Contains(out, `"rule":"qualified-lead"`) {
		t.Errorf("stdout = %s", out)
	}
	_ = errOut

	code, _, errOut = runCLI(t, "validate", "--config", "testdata/bad_expr.yaml")
	if code != 2 || !strings.Contains(errOut, `testdata/bad_expr.yaml:9:`) || !strings.Contains(errOut, `rules[0].when: rule "qualified-lead"`) {
		t.Errorf("bad expression: exit %d\n%s", code, errOut)
	}
	code, _, _ = runCLI(t, "rules", "test", "--config", "testdata/bad_expr.yaml", "--changes", "testdata/runtime_error.jsonl")
	if code != 2 {
		t.Errorf("rules test with a bad expression: exit %d, want 2", code)
	}
	code, _, errOut = runCLI(t, "rules", "test", "--config", "testdata/runtime_error.yaml", "--changes", "testdata/bad_expr.yaml")
	if code != 2 || !strings.Contains(errOut, "line 1") {
		t.Errorf("bad changes file: exit %d: %s", code, errOut)
	}
}

// TestRulesTestNow: --now fixes the clock of a run, so golden files stay
// the same on any day: it is now() in rules and the commit time (the
// default event_time) of a change that gives none.
func TestRulesTestNow(t *testing.T) {
	args := []string{"rules", "test", "--config", "testdata/clock.yaml", "--changes", "testdata/clock.jsonl", "--now", "2026-11-20T10:00:00Z"}
	code, out, errOut := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `"event_time":1795168800,`) || !strings.Contains(out, `"checked_at":"2026-11-20T10:00:00Z"`) {
		t.Errorf("--now not applied: %s", out)
	}
	if _, again, _ := runCLI(t, args...); again != out {
		t.Errorf("two runs with the same --now differ:\n%s\n%s", out, again)
	}
	if code, _, errOut := runCLI(t, "rules", "test", "--config", "testdata/clock.yaml", "--changes", "testdata/clock.jsonl", "--now", "yesterday"); code != 2 || !strings.Contains(errOut, "RFC 3339") {
		t.Errorf("bad --now: exit %d: %s", code, errOut)
	}
}

// TestRulesTestRunsMetasChecks: rules test refuses what the daemon would
// dead-letter before sending, naming the line, the rule and the field, and
// exits 1, so that an analyst learns of a bad rule before the daemon runs.
func TestRulesTestRunsMetasChecks(t *testing.T) {
	code, out, errOut := runCLI(t, "rules", "test", "--config", "testdata/refused.yaml", "--changes", "testdata/refused.jsonl")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"value":12.5`) {
		t.Errorf("stdout should hold the one good event:\n%s", out)
	}
	for _, want := range []string{
		`refused.jsonl:2: rule "won": this event would be dead-lettered, not sent: custom_data.currency XYZ is not an ISO 4217 currency code`,
		`refused.jsonl:3: rule "won": this event would be dead-lettered, not sent: user_data.lead_id must be the numeric id`,
		"0 rule error(s), 2 event(s) Meta would refuse",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}
