package cdc

import (
	"fmt"
	"maps"
	"reflect"
	"testing"
)

// TestRow: a row reads like the map it replaces — present columns with
// their values (nil for NULL), absent ones missing — narrow or wide.
func TestRow(t *testing.T) {
	wide := make([]string, 30)
	wideVals := make([]any, 30)
	for i := range wide {
		wide[i] = fmt.Sprintf("c%02d", i)
		wideVals[i] = int64(i)
	}
	wideVals[7] = Absent
	wideMap := map[string]any{}
	for i, n := range wide {
		if i != 7 {
			wideMap[n] = int64(i)
		}
	}
	for _, tc := range []struct {
		name string
		row  Row
		want map[string]any // nil: the zero Row
	}{
		{"zero", Row{}, nil},
		{"no columns", NewRow(NewColumns(), nil), map[string]any{}},
		{"narrow", NewRow(NewColumns("id", "status", "note"), []any{int64(1), "paid", nil}), map[string]any{"id": int64(1), "status": "paid", "note": nil}},
		{"absent left out", NewRow(NewColumns("id", "big"), []any{int64(1), Absent}), map[string]any{"id": int64(1)}},
		{"a name given twice is one column", NewRow(NewColumns("id", "id", "x"), []any{int64(1), "x"}), map[string]any{"id": int64(1), "x": "x"}},
		{"wide (looked up by map)", NewRow(NewColumns(wide...), wideVals), wideMap},
		{"RowOf", RowOf(map[string]any{"b": 2.5, "a": []any{"x"}}), map[string]any{"a": []any{"x"}, "b": 2.5}},
		{"RowOf nil", RowOf(nil), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.row.IsZero() != (tc.want == nil) {
				t.Fatalf("IsZero = %v", tc.row.IsZero())
			}
			if got := tc.row.Map(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Map = %v, want %v", got, tc.want)
			}
			if tc.row.Len() != len(tc.want) {
				t.Errorf("Len = %d, want %d", tc.row.Len(), len(tc.want))
			}
			for k, v := range tc.want {
				got, ok := tc.row.Get(k)
				if !ok || !reflect.DeepEqual(got, v) || !reflect.DeepEqual(tc.row.Value(k), v) {
					t.Errorf("Get(%q) = %v, %v; want %v", k, got, ok, v)
				}
			}
			for _, k := range []string{"missing", "c07", "big", ""} {
				if _, ok := tc.want[k]; ok {
					continue
				}
				if v, ok := tc.row.Get(k); ok || v != nil {
					t.Errorf("Get(%q) = %v, %v; want nothing", k, v, ok)
				}
			}
			if got := maps.Collect(tc.row.All()); len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
				t.Errorf("All = %v, want %v", got, tc.want)
			}
			if tc.want != nil && tc.row.String() != fmt.Sprint(tc.want) {
				t.Errorf("String = %s, want %s", tc.row.String(), fmt.Sprint(tc.want))
			}
		})
	}
}

// TestNewRowLengths: values and names must pair up.
func TestNewRowLengths(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewRow with too few values did not panic")
		}
	}()
	NewRow(NewColumns("a", "b"), []any{1})
}
