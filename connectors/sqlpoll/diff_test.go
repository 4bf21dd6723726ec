package sqlpoll

import (
	"fmt"
	"log/slog"
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
	d := &differ{s: s, t: t, pollTime: time.Now()}
	for _, changed := range []bool{true, false} {
		rows, keys, shadows := benchPage(t, 5000, changed)
		b.Run(fmt.Sprintf("changed=%v", changed), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d.overlay = make(map[string][]byte, 5000)
				changes, _, err := d.diff(rows, keys, shadows, len(rows), nil, nil)
				if err != nil || (len(changes) == len(rows)) != changed {
					b.Fatalf("%d changes, %v", len(changes), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
		})
	}
}
