package sqlpoll

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/capisync/capisync/internal/cdc"
)

// table is one polled table, checked against the catalog.
type table struct {
	name     string // as in the config
	quoted   string
	key      []string
	cursor   string
	lookback time.Duration
	track    []string // tracked columns (not the key), sorted: their values are kept in shadows
	watch    []string // the other columns rules read (sorted): shadows keep only their fingerprint
	cols     []string // selected columns: key, cursor, track, and every column rules read
	keyIdx   []int
	trackIdx []int
	watchIdx []int
	// legacy is the codec of shadows written before shadows kept only the
	// tracked columns (every column rules read, in full), when it differs
	// from codec: such shadows are rewritten at start (see upgradeShadows).
	legacy *cdc.ShadowCodec
	// cursorAt is the cursor's index in cols when the dialect reads it as
	// the plain column (it is then selected once); -1 when a page query
	// selects cursorExpr first.
	cursorAt int
	codec    cdc.ShadowCodec
	// The names of the rows a change carries: Key (the key columns, which
	// come first in cols), Old (key, then track) and New (cols).
	keyCols, oldCols, newCols *cdc.Columns
	warned                    bool // a shadow written for other tracked columns was seen
}

// prepareTable checks the table and the columns the config and the rules
// need, and builds its column lists.
func (s *Source) prepareTable(ctx context.Context, name string) (*table, error) {
	pt := s.cfg.Tables.Tables[name]
	existing, err := s.d.columns(ctx, s.db, name)
	if err != nil {
		return nil, fmt.Errorf("source %s: read the columns of %s: %w", s.name, name, s.scrub(err))
	}
	if len(existing) == 0 {
		return nil, &ConfigError{Msg: fmt.Sprintf("source %s: table %s does not exist (or the user may not read it)", s.name, name)}
	}
	has := map[string]bool{}
	for _, c := range existing {
		has[c] = true
	}
	users := map[string][]string{}
	if s.opt.ColumnUsers != nil {
		users = s.opt.ColumnUsers(name)
	}
	var missing []string
	need := func(col, why string) {
		if !has[col] {
			missing = append(missing, fmt.Sprintf("column %s.%s (%s) does not exist", name, col, why))
		}
	}
	for _, k := range pt.Key {
		need(k, "key")
	}
	need(pt.Cursor, "cursor")
	for _, c := range pt.Track {
		need(c, "track")
	}
	ruleCols := make([]string, 0, len(users))
	for c := range users {
		if c == "*" { // a rule reads whole rows
			ruleCols = append(ruleCols, existing...)
			continue
		}
		ruleCols = append(ruleCols, c)
	}
	ruleCols = sortedUnique(ruleCols)
	sort.Strings(ruleCols)
	for _, c := range ruleCols {
		need(c, "used by rule "+strings.Join(users[c], ", "))
	}
	if len(missing) > 0 {
		return nil, &ConfigError{Msg: fmt.Sprintf("source %s: %s; existing columns: %s", s.name, strings.Join(missing, "; "), strings.Join(existing, ", "))}
	}
	t := &table{name: name, quoted: quoteQualified(s.d, name), key: pt.Key, cursor: pt.Cursor, lookback: pt.Lookback.Duration}
	isKey := map[string]bool{}
	for _, k := range pt.Key {
		isKey[k] = true
	}
	// Shadows keep the values of the columns rules read as old values
	// (old.x, changed()), or of the track the config gives; every other
	// column rules read is kept only as a fingerprint, so that a change of
	// it is still seen. Personal data read only as new values (an email
	// sent in user_data) is never written to the store.
	track := pt.Track
	if len(track) == 0 {
		track = ruleCols
		if s.opt.OldColumns != nil {
			track = s.opt.OldColumns(name)
			if slices.Contains(track, "*") {
				track = ruleCols // a rule reads the old row as a whole
			}
		}
	}
	for _, c := range sortedUnique(track) {
		if !isKey[c] {
			t.track = append(t.track, c)
		}
	}
	for _, c := range ruleCols {
		if !isKey[c] && !slices.Contains(t.track, c) {
			t.watch = append(t.watch, c)
		}
	}
	// What an older capisync kept: the given track, or every column
	// rules read.
	var legacy []string
	oldTrack := pt.Track
	if len(oldTrack) == 0 {
		oldTrack = ruleCols
	}
	for _, c := range sortedUnique(oldTrack) {
		if !isKey[c] {
			legacy = append(legacy, c)
		}
	}
	t.cols = append(append([]string{}, pt.Key...), pt.Cursor)
	seen := map[string]bool{}
	for _, c := range t.cols {
		seen[c] = true
	}
	for _, c := range append(append([]string{}, t.track...), ruleCols...) {
		if !seen[c] {
			seen[c] = true
			t.cols = append(t.cols, c)
		}
	}
	idx := map[string]int{}
	for i, c := range t.cols {
		idx[c] = i
	}
	for _, k := range t.key {
		t.keyIdx = append(t.keyIdx, idx[k])
	}
	for _, c := range t.track {
		t.trackIdx = append(t.trackIdx, idx[c])
	}
	for _, c := range t.watch {
		t.watchIdx = append(t.watchIdx, idx[c])
	}
	t.setColumns()
	if lc := cdc.NewShadowCodec(legacy); !lc.Same(t.codec) {
		t.legacy = &lc
	}
	t.cursorAt = -1
	if q := s.d.quote(t.cursor); s.d.cursorExpr(q) == q {
		t.cursorAt = idx[t.cursor]
	}
	return t, nil
}

// setColumns makes the codec and the column names of changes' rows from
// key, track and cols.
func (t *table) setColumns() {
	cols := t.track
	if len(t.watch) > 0 {
		// The fingerprint is the codec's last column; its name holds the
		// watched columns, so that shadows written for others do not match.
		cols = append(slices.Clip(cols), fingerprintPrefix+strings.Join(t.watch, ","))
	}
	t.codec = cdc.NewShadowCodec(cols)
	t.keyCols = cdc.NewColumns(t.key...)
	t.oldCols = cdc.NewColumns(append(slices.Clip(t.key), t.track...)...)
	t.newCols = cdc.NewColumns(t.cols...)
}

// fingerprintPrefix starts the name of a shadow codec's fingerprint column.
const fingerprintPrefix = "\x00fingerprint:"

// encodeShadow appends a row's shadow: its tracked values, then the
// fingerprint of its watched ones.
func (t *table) encodeShadow(b []byte, vals []any) []byte {
	b = t.codec.AppendOf(b, vals, t.trackIdx)
	if len(t.watchIdx) > 0 {
		b = cdc.AppendFingerprint(b, vals, t.watchIdx)
	}
	return b
}

// query builds a page query. after is nil for the first page; from is the
// lower bound of the cursor (nil: from the start). The first selected
// column is the cursor's native value, then t.cols.
func (s *Source) query(t *table, from any, after *rowMark, limit int) (string, []any) {
	var b strings.Builder
	b.WriteString("SELECT ")
	if t.cursorAt < 0 {
		b.WriteString(s.d.cursorExpr(s.d.quote(t.cursor)))
		b.WriteString(", ")
	}
	for i, c := range t.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.d.quote(c))
	}
	b.WriteString(" FROM ")
	b.WriteString(t.quoted)
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return s.d.placeholder(len(args))
	}
	cur := s.d.quote(t.cursor)
	switch {
	case after != nil:
		// (cursor, key...) > after, written so that an index on the cursor
		// is used: c >= x AND (c > x OR (c = x AND key > k)).
		fmt.Fprintf(&b, " WHERE %s >= %s AND (%s > %s OR (%s = %s AND %s))",
			cur, arg(after.cursor), cur, arg(after.cursor), cur, arg(after.cursor), s.keyAfter(t, after.key, arg))
	case from != nil:
		fmt.Fprintf(&b, " WHERE %s >= %s", cur, arg(from))
	}
	b.WriteString(" ORDER BY ")
	b.WriteString(cur)
	for _, k := range t.key {
		b.WriteString(", ")
		b.WriteString(s.d.quote(k))
	}
	fmt.Fprintf(&b, " LIMIT %d", limit)
	return b.String(), args
}

// keyAfter expands (k1, k2, ...) > (v1, v2, ...).
func (s *Source) keyAfter(t *table, vals []any, arg func(any) string) string {
	var parts []string
	for i := range t.key {
		var conj []string
		for j := 0; j < i; j++ {
			conj = append(conj, fmt.Sprintf("%s = %s", s.d.quote(t.key[j]), arg(vals[j])))
		}
		conj = append(conj, fmt.Sprintf("%s > %s", s.d.quote(t.key[i]), arg(vals[i])))
		parts = append(parts, "("+strings.Join(conj, " AND ")+")")
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

// rowMark is a row's place in (cursor, key) order, as native values.
type rowMark struct {
	cursor any
	key    []any
}
