package main

import (
	"slices"
	"testing"

	"github.com/capisync/capisync/internal/config"
)

// TestEverySourceTypeIsWired: the source types the config accepts (those
// the imported connectors declare) are exactly those the daemon can build
// and validate --connect can check.
func TestEverySourceTypeIsWired(t *testing.T) {
	declared := config.SourceTypeNames()
	var wired []string
	for name, k := range sourceKinds {
		wired = append(wired, name)
		if k.build == nil || k.verify == nil {
			t.Errorf("source type %s: build or verify missing", name)
		}
	}
	slices.Sort(wired)
	if !slices.Equal(declared, wired) {
		t.Errorf("config declares source types %v, cmd wires %v", declared, wired)
	}
	if len(declared) != 5 {
		t.Errorf("%d source types, want 5 (postgres, mysql, sqlite, postgres_poll, mysql_binlog): %v", len(declared), declared)
	}
}
