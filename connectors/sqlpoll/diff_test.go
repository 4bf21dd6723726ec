package sqlpoll

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/internal/cdc"
)

// benchTable is the polling benchmark's table: key id, cursor updated_at,
// tracked email, status and total.
func benchTable() *table {
	t := &table{name: "orders", key: []string{"id"}, cursor: "updated_at",
		track:  []string{"email", "status", "total"},
		cols:   []string{"id", "updated_at", "email", "status", "total"},
		keyIdx: []int{0}, trackIdx: []int{2, 3, 4}, cursorAt: 1}
	t.setColumns()
	return t
}

// benchPage is n rows with their keys and stored shadows; every row's
// stored status differs from the one read when changed is true.
func benchPage(t *table, n int, changed bool) ([]row, [][]byte, [][]byte) {
	rows := make([]row, n)
	keys := make([][]byte, n)
	shadows := make([][]byte, n)
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for i := range rows {
		norm := []any{int64(i * 100), at, fmt.Sprintf("buyer%d@example.com", i*100), "paid", 42.5}
		rows[i] = row{cursor: at, raw: norm, norm: norm}
		keys[i] = cdc.AppendKeyOf(nil, norm, t.keyIdx)
		old := append([]any{}, norm...)
		if changed {
			old[3] = "new"
		}
		shadows[i] = t.codec.AppendOf(nil, old, t.trackIdx)
	}
	return rows, keys, shadows
}

// BenchmarkDiff: one 5,000-row page diffed against its shadows, all rows
// changed (the benchmark's changed rows) or none (an idle poll's lookback).
func BenchmarkDiff(b *testing.B) {
	s := &Source{name: "shop", log: slog.New(slog.DiscardHandler)}
	t := benchTable()
	d := &differ{s: s, t: t, pollTime: time.Now(), overlaid: true}
	for _, changed := range []bool{true, false} {
		rows, keys, shadows := benchPage(t, 5000, changed)
		b.Run(fmt.Sprintf("changed=%v", changed), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d.current = nil
				changes, _, err := d.diff(rows, keys, shadows, len(rows), nil, nil)
				if err != nil || (len(changes) == len(rows)) != changed {
					b.Fatalf("%d changes, %v", len(changes), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
		})
	}
}

// TestOverlayForgetsCommittedPages: a shadow a page wrote hides the stored
// one for a later page of the same poll until that page's batch is
// committed, and is then forgotten (the store has it), so a poll over a
// million rows does not keep them all.
func TestOverlayForgetsCommittedPages(t *testing.T) {
	s := &Source{name: "shop", log: slog.New(slog.DiscardHandler)}
	tb := benchTable()
	d := &differ{s: s, t: tb, pollTime: time.Now(), overlaid: true}
	rows, keys, _ := benchPage(tb, 8, true)
	none := make([][]byte, 8) // nothing stored yet: the store has not committed
	changes, _, err := d.diff(rows[:5], keys[:5], none[:5], 5, nil, nil)
	if err != nil || len(changes) != 5 {
		t.Fatalf("first page: %d changes, %v", len(changes), err)
	}
	first := d.endPage()
	// Rows 3 and 4 come back in the next page, as they were: not changes.
	changes, _, err = d.diff(rows[3:8], keys[3:8], none[3:8], 5, nil, nil)
	if err != nil || len(changes) != 3 {
		t.Fatalf("rows written by the page before, read again: %d changes (want 3, the new rows), %v", len(changes), err)
	}
	second := d.endPage()
	s.acked.Store(1)
	d.forgetCommitted()
	if len(d.overlay) != 2 {
		t.Fatalf("pages not yet handed over were forgotten: %d left", len(d.overlay))
	}
	d.handedOver(first, 1)
	d.handedOver(second, 2)
	d.forgetCommitted()
	if len(d.overlay) != 1 || d.overlay[0] != second {
		t.Fatalf("after the first page's batch committed: %d pages kept, want the second", len(d.overlay))
	}
	s.acked.Store(2)
	d.forgetCommitted()
	if len(d.overlay) != 0 {
		t.Fatalf("after both committed: %d pages kept", len(d.overlay))
	}
}

// TestEmitSplitsLargePages: a page of more than batchChanges changes goes
// in parts; only the last carries the shadows and the position, and only
// it counts as handed over (the pipeline acks batches with a position).
func TestEmitSplitsLargePages(t *testing.T) {
	s := &Source{name: "shop", log: slog.New(slog.DiscardHandler)}
	b := cdc.Batch{Source: "shop", Changes: make([]cdc.Change, 2500), Shadows: make([]cdc.Shadow, 2600), Position: cdc.Position("p")}
	out := make(chan cdc.Batch, 10)
	if err := s.emit(context.Background(), out, b); err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []string
	for b := range out {
		got = append(got, fmt.Sprintf("%d changes, %d shadows, position %q", len(b.Changes), len(b.Shadows), b.Position))
	}
	want := []string{`1000 changes, 0 shadows, position ""`, `1000 changes, 0 shadows, position ""`, `500 changes, 2600 shadows, position "p"`}
	if !slices.Equal(got, want) {
		t.Errorf("batches:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s.emitted != 1 {
		t.Errorf("emitted = %d, want 1", s.emitted)
	}
}
