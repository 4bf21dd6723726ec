package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Suggest returns the candidate closest to s when it is close enough to be a
// likely typo, or "".
func Suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := levenshtein(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) > 9 {
		limit = len(s) / 4
	}
	if bestD <= limit {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// MissingColumns describes each column rules read (users: column -> the
// rules that read it; "*" is every column) that table lacks among have:
// "table T has no column C, read by rule(s) R (did you mean D?)". A source
// refuses to start on them: a typo such as new.emial would otherwise read
// nil and drop the key silently.
func MissingColumns(table string, have []string, users map[string][]string) []string {
	var out []string
	for _, col := range slices.Sorted(maps.Keys(users)) {
		if col == "*" || slices.Contains(have, col) {
			continue
		}
		msg := fmt.Sprintf("table %s has no column %s, read by rule(s) %s", table, col, strings.Join(users[col], ", "))
		if near := Suggest(col, have); near != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", near)
		}
		out = append(out, msg)
	}
	return out
}
