package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps the layout's promises (docs/architecture.md): the shared
// vocabulary imports nothing of ours, connectors know neither rules, the
// store nor each other, and the store knows no rules or connectors.
func TestImportDirection(t *testing.T) {
	const mod = "github.com/capisync/capisync/"
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		var ours []string
		for _, d := range strings.Fields(string(out)) {
			if strings.HasPrefix(d, mod) && d != mod+pkg {
				ours = append(ours, strings.TrimPrefix(d, mod))
			}
		}
		return ours
	}
	rules := []struct {
		pkg    string
		allow  []string // prefixes it may import
		reason string
	}{
		{"internal/cdc", nil, "the shared vocabulary imports nothing of ours"},
		{"internal/capi", nil, "Meta's rules are pure"},
		{"state", []string{"internal/cdc", "internal/capi"}, "the store's types know no rules, connectors or implementation"},
		{"state/bolt", []string{"state", "internal/cdc", "internal/capi", "internal/gctune"}, "the embedded store knows no rules or connectors"},
		{"state/pgstate", []string{"state", "internal/cdc", "internal/capi"}, "the PostgreSQL store knows no rules or connectors"},
		{"rules", []string{"internal/cdc", "internal/capi", "internal/config"}, "rules know no store or connector"},
		// (internal/capi comes through internal/config, which checks names.)
		{"connectors/postgres", []string{"internal/cdc", "internal/config", "internal/capi", "internal/backoff"}, "a source knows only the vocabulary and its config"},
		{"connectors/sqlpoll", []string{"internal/cdc", "internal/config", "internal/capi", "internal/backoff"}, "a source knows only the vocabulary and its config"},
		{"connectors/metacapi", []string{"internal/capi", "internal/config", "internal/backoff"}, "the destination knows only Meta's rules and its config"},
	}
	for _, r := range rules {
		for _, d := range deps(r.pkg) {
			ok := false
			for _, a := range r.allow {
				ok = ok || d == a || strings.HasPrefix(d, a+"/")
			}
			if !ok {
				t.Errorf("%s imports %s: %s", r.pkg, d, r.reason)
			}
		}
	}
	// Only state/stores opens a store implementation: the pipeline, the
	// connectors and the commands use state.Store.
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], mod+"state/") {
			continue
		}
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, mod+"state/") && imp != mod+"state/stores" && imp != mod+"state/statetest" {
				t.Errorf("%s imports %s: only state/stores opens a store implementation", strings.TrimPrefix(f[0], mod), strings.TrimPrefix(imp, mod))
			}
		}
	}
}
