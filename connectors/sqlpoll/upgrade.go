package sqlpoll

import (
	"fmt"
	"slices"
)

// upgradeShadows rewrites, before the first poll, the shadows an older
// capisync wrote with every column rules read in full: they keep the
// tracked columns and the fingerprint of the watched ones, as shadows are
// written now. The values of the other columns (an email rules send but
// never compare) leave the store, and no change is lost or invented: the
// rewritten shadow is what this capisync would have written for the row.
func (s *Source) upgradeShadows() error {
	if s.shadows == nil {
		return nil
	}
	for _, t := range s.tables {
		if t.legacy == nil {
			continue
		}
		name := t.name
		from := map[string]int{}
		for i, c := range t.legacy.Columns() {
			from[c] = i
		}
		// Where each column of a rewritten shadow comes from in the old one.
		at := make([]int, len(t.cols))
		for j, c := range t.cols {
			i, ok := from[c]
			if !ok && (slices.Contains(t.track, c) || slices.Contains(t.watch, c)) {
				// The old shadows lack a column the new ones need (the
				// rules changed too): they are re-recorded at the next
				// poll, as for any change of tracked columns.
				at = nil
				break
			}
			if !ok {
				i = -1
			}
			at[j] = i
		}
		if at == nil {
			continue
		}
		row := make([]any, len(t.cols))
		n, err := s.shadows.RewriteShadows(s.name, name, t.codec.Format(), func(v []byte) ([]byte, bool) {
			old, ok := t.legacy.Decode(v)
			if !ok {
				return nil, false
			}
			for j, i := range at {
				row[j] = nil
				if i >= 0 {
					row[j] = old[i]
				}
			}
			return t.encodeShadow(nil, row), true
		})
		if err != nil {
			return fmt.Errorf("upgrade the shadows of %s: %w", name, err)
		}
		if n > 0 {
			s.log.Info("rewrote shadows to keep only the columns rules read as old values", "table", name, "shadows", n)
		}
	}
	return nil
}
