package sqlpoll

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/capisync/capisync/internal/cdc"
)

// poll reads every table once.
func (s *Source) poll(ctx context.Context, pos *position, out chan<- cdc.Batch) error {
	for _, t := range s.tables {
		if err := s.pollTable(ctx, pos, t, out); err != nil {
			return fmt.Errorf("poll %s.%s: %w", s.name, t.name, err)
		}
	}
	return nil
}

// row is one row read: the cursor as the driver gave it, and every
// selected column both as the driver gave it and in the common types.
type row struct {
	cursor any
	raw    []any
	norm   []any
}

func (s *Source) pollTable(ctx context.Context, pos *position, t *table, out chan<- cdc.Batch) error {
	st := pos.Tables[t.name]
	if st == nil {
		st = &tableState{}
		pos.Tables[t.name] = st
	}
	baseline := s.o.Initial == "baseline" && !st.Baselined
	var from any
	var after *rowMark
	if st.Cursor != nil {
		mark, err := st.mark()
		if err != nil {
			return err
		}
		if baseline {
			after = mark // resume the interrupted baseline by key
		} else {
			from = lookbackFrom(mark.cursor, t.lookback)
		}
	}
	prog := s.startProgress(ctx, t, baseline)
	pollTime := s.opt.Now().UTC()
	d := &differ{s: s, t: t, baseline: baseline, pollTime: pollTime}
	d.overlaid = !baseline
	// Pages are read back to back while earlier ones get their shadows and
	// are diffed (s.pages) and handed over here.
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	for page := range s.pages(pctx, t, from, after, d) {
		if page.err != nil {
			return page.err
		}
		rows, changes, shadows := page.rows, page.changes, page.shadows
		if len(rows) == 0 {
			break
		}
		last := rows[len(rows)-1]
		full := len(rows) == s.o.PageSize
		moved, err := st.advance(last, t)
		if err != nil {
			return err
		}
		if len(changes) > 0 || len(shadows) > 0 || moved {
			if err := s.emit(ctx, out, cdc.Batch{Source: s.name, Changes: changes, Shadows: shadows, Position: pos.encode()}); err != nil {
				return err
			}
			d.handedOver(page.overlay, s.emitted)
		}
		s.mu.Lock()
		s.stats.RowsScanned += int64(len(rows))
		s.stats.ChangesEmitted += int64(len(changes))
		s.mu.Unlock()
		prog.add(len(rows))
		if !full {
			break
		}
	}
	if baseline {
		st.Baselined = true
		prog.done()
		return s.emit(ctx, out, cdc.Batch{Source: s.name, Position: pos.encode()})
	}
	return nil
}

// readPage reads a page, handing every `every` rows read to part while it
// reads on (every 0: never); the rows after the last part are the page's
// rest.
func (s *Source) readPage(ctx context.Context, t *table, q string, args []any, every int, part func([]row)) ([]row, error) {
	rs, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query: %w", s.scrub(err))
	}
	defer rs.Close()
	types, err := rs.ColumnTypes()
	if err != nil {
		return nil, err
	}
	n := len(types)
	off, cur := 1, 0 // the cursor selected first, before the columns
	if t.cursorAt >= 0 {
		off, cur = 0, t.cursorAt
	}
	kinds := make([]valueKind, n)
	zoneless := make([]bool, n)
	textual := make([]bool, n)
	for i, ct := range types {
		name := strings.ToUpper(ct.DatabaseTypeName())
		kinds[i], zoneless[i] = s.d.kind(name), s.d.zoneless(name)
		textual[i] = s.d.textual(kinds[i])
	}
	// The cursor and key columns keep their values as the driver gave them
	// (for the next page's keyset and the checkpoint); the others only
	// their common form.
	keep := make([]bool, n)
	keep[cur] = true
	for _, k := range t.keyIdx {
		keep[k+off] = true
	}
	out := make([]row, 0, min(s.o.PageSize, 1024))
	// Rows' values are cut from slabs of rowsPerSlab rows, and Scan's
	// pointers are made once: a few allocations per page, not three per row.
	// Textual columns are scanned as sql.RawBytes (the driver's buffer),
	// copied into a page arena, and a row's text values are cut from one
	// string made of it.
	var slab []any
	var arena []byte
	texts := make([]sql.RawBytes, n)
	ends := make([]int, n)
	ptrs := make([]any, n)
	for rs.Next() {
		if len(slab) < 2*n {
			slab = make([]any, 2*n*rowsPerSlab)
		}
		vals, norm := slab[:n:n], slab[n:2*n-off:2*n-off]
		slab = slab[2*n:]
		for i := range vals {
			if textual[i] {
				ptrs[i] = &texts[i]
			} else {
				ptrs[i] = &vals[i]
			}
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		size := 0
		for i := range texts {
			size += len(texts[i])
		}
		if cap(arena)-len(arena) < size {
			arena = make([]byte, 0, max(size, 32<<10))
		}
		start := len(arena)
		for i, b := range texts {
			if textual[i] {
				arena = append(arena, b...)
				ends[i] = len(arena)
			}
		}
		text := string(arena[start:])
		r := row{raw: vals[off:], norm: norm}
		at := start
		for i := range n {
			if !textual[i] {
				if i >= off {
					v, err := convert(kinds[i], zoneless[i], s.loc, vals[i])
					if err != nil {
						return nil, fmt.Errorf("column %s: %w", t.cols[i-off], err)
					}
					norm[i-off] = v
				}
				continue
			}
			b, end := texts[i], ends[i]
			var v any
			if b != nil {
				raw := arena[at:end:end]
				if keep[i] {
					vals[i] = raw
				}
				if kinds[i] == kBytes {
					v = raw
				} else if v, err = convertText(kinds[i], zoneless[i], s.loc, text[at-start:end-start], false); err != nil {
					return nil, fmt.Errorf("column %s: %w", t.cols[i-off], err)
				}
			}
			if i >= off {
				norm[i-off] = v
			}
			at = end
		}
		r.cursor = vals[cur]
		out = append(out, r)
		if every > 0 && len(out)%every == 0 {
			part(out[len(out)-every:])
		}
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read rows: %w", s.scrub(err))
	}
	return out, nil
}

// rowsPerSlab is how many rows' values are allocated at a time.
const rowsPerSlab = 256

// page is a page of rows with what they changed: the changes and the
// shadows to write.
type page struct {
	rows    []row
	changes []cdc.Change
	shadows []cdc.Shadow
	overlay *overlayPage // the shadows the page wrote, as the differ remembers them
	err     error
}

// lookupPart is how many rows' shadows are looked up at a time while a
// page is still being read.
const lookupPart = 1000

// pages reads a table's pages in the background, in two stages: one
// goroutine runs the keyset queries back to back (the next page's keyset is
// known as soon as a page is read), another looks up the shadows of a
// page's rows lookupPart at a time as they are read, and diffs them with d
// (nil: rows only), so that when the page is read only its last part is
// left to look up and diff; each part takes a slot (Options.Slots) for
// that. A page with an error, or a short page, is the last; the channel
// closes after it, or when ctx ends.
func (s *Source) pages(ctx context.Context, t *table, from any, after *rowMark, d *differ) <-chan page {
	// A part of a page read: rows to look up, and with the page's last
	// part, the whole page (or the error that ended it).
	type part struct {
		rows []row
		page []row
		last bool
		err  error
	}
	parts := make(chan part, 2*max(1, s.o.PageSize/lookupPart))
	send := func(p part) bool {
		select {
		case parts <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		defer close(parts)
		for {
			q, args := s.query(t, from, after, s.o.PageSize)
			rows, err := s.readPage(ctx, t, q, args, lookupPart, func(rows []row) { send(part{rows: rows}) })
			var rest []row
			if err == nil {
				rest = rows[len(rows)-len(rows)%lookupPart:]
			}
			if !send(part{rows: rest, page: rows, last: true, err: err}) {
				return
			}
			if err != nil || len(rows) < s.o.PageSize {
				return
			}
			last := rows[len(rows)-1]
			from, after = nil, &rowMark{cursor: last.cursor, key: pick(last.raw, t.keyIdx)}
		}
	}()
	out := make(chan page, 1)
	go func() {
		defer close(out)
		var p page
		var arena []byte // the page's keys, in a few allocations
		failed := false  // a part of this page failed: the rest is not looked up
		done := 0        // rows of the page looked up
		for pt := range parts {
			if pt.err == nil && !failed && d != nil {
				// The part's keys, shadow lookups and diff: in a slot.
				s.opt.Slots.Take()
				d.forgetCommitted() // before the lookups, which then see those pages' shadows
				keys := make([][]byte, len(pt.rows))
				for i, r := range pt.rows {
					if cap(arena)-len(arena) < 64 {
						arena = make([]byte, 0, 16<<10)
					}
					start := len(arena)
					arena = cdc.AppendKeyOf(arena, r.norm, t.keyIdx)
					keys[i] = arena[start:len(arena):len(arena)]
				}
				stored, err := s.shadows.Shadows(s.name, t.name, keys)
				if err != nil {
					p.err, failed = fmt.Errorf("read shadows: %w", err), true
				} else if p.changes, p.shadows, err = d.diff(pt.rows, keys, stored, s.o.PageSize-done, p.changes, p.shadows); err != nil {
					p.err, failed = err, true
				}
				s.opt.Slots.Give()
				done += len(pt.rows)
			}
			if !pt.last {
				continue
			}
			p.rows = pt.page
			if d != nil {
				p.overlay = d.endPage()
			}
			if pt.err != nil {
				p = page{err: pt.err}
			}
			select {
			case out <- p:
			case <-ctx.Done():
				return
			}
			p, arena, failed, done = page{}, nil, false, 0
		}
	}()
	return out
}

// differ compares one poll's rows with their shadows, part by part in
// the order they were read.
type differ struct {
	s        *Source
	t        *table
	baseline bool // record shadows, emit nothing
	pollTime time.Time
	// The shadows this poll wrote and the store may not have committed
	// yet, page by page: a row changed again while the poll runs can come
	// back in a later page. (Rows of one poll are disjoint in (cursor,
	// key), so a page's stored shadows cannot be written by the page
	// before it.) A page's are forgotten once its batch is committed, so
	// that a backfill of a million rows does not hold them all.
	overlaid bool           // keep an overlay (not when baselining)
	overlay  []*overlayPage // pages handed over or about to be, oldest first
	current  *overlayPage   // the page being diffed
	mu       sync.Mutex     // guards overlayPage.emitted, set by the poll loop
}

// overlayPage is one page's shadows in the overlay.
type overlayPage struct {
	shadows map[string][]byte
	emitted int64 // the source's emitted count once its batch was handed over; 0 before
}

// lookup returns the shadow this poll wrote for key, if any.
func (d *differ) lookup(key []byte) ([]byte, bool) {
	if d.current != nil {
		if v, ok := d.current.shadows[string(key)]; ok {
			return v, true
		}
	}
	for i := len(d.overlay) - 1; i >= 0; i-- {
		if v, ok := d.overlay[i].shadows[string(key)]; ok {
			return v, true
		}
	}
	return nil, false
}

// endPage closes the page being diffed and returns its overlay (nil when
// it wrote no shadow).
func (d *differ) endPage() *overlayPage {
	p := d.current
	if p != nil {
		d.overlay = append(d.overlay, p)
	}
	d.current = nil
	return p
}

// handedOver records that p's batch went to the pipeline as the emitted-th.
func (d *differ) handedOver(p *overlayPage, emitted int64) {
	if p == nil {
		return
	}
	d.mu.Lock()
	p.emitted = emitted
	d.mu.Unlock()
}

// forgetCommitted drops the pages whose batches the pipeline committed:
// the store holds their shadows now.
func (d *differ) forgetCommitted() {
	acked := d.s.acked.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for n < len(d.overlay) && d.overlay[n].emitted != 0 && d.overlay[n].emitted <= acked {
		d.overlay[n] = nil
		n++
	}
	d.overlay = d.overlay[n:]
}

// diff compares rows with their stored shadows (keys are the rows' keys)
// and appends what changed to changes and shadows. room is how many rows
// the page may still hold, from these on: the first difference makes room
// for that many.
func (d *differ) diff(rows []row, keys, stored [][]byte, room int, changes []cdc.Change, shadows []cdc.Shadow) ([]cdc.Change, []cdc.Shadow, error) {
	s, t, baseline := d.s, d.t, d.baseline
	var arena []byte    // encodings of rows that changed; an unchanged row's is written over
	var posArena []byte // changes' positions
	var slab []any      // old rows' values, cut rowsPerSlab rows at a time
	// A slab row holds the key, the tracked values and, when the shadow
	// has one, its fingerprint (decoded, not part of Old).
	nk, nOld := len(t.key), len(t.key)+len(t.track)
	nSlab := nk + len(t.codec.Columns())
	for i, r := range rows {
		if cap(arena)-len(arena) < 256 {
			arena = make([]byte, 0, 32<<10)
		}
		start := len(arena)
		arena = t.encodeShadow(arena, r.norm)
		enc := arena[start:len(arena):len(arena)]
		sh := stored[i]
		if v, ok := d.lookup(keys[i]); ok {
			sh = v
		}
		if sh != nil && bytes.Equal(sh, enc) {
			arena = arena[:start]
			continue
		}
		if shadows == nil {
			// The first difference: room for the rest of the page, since
			// rows that differ tend to come together (a lookback window of
			// unchanged rows, then the changed ones).
			shadows = make([]cdc.Shadow, 0, max(room, len(rows))-i)
			if !baseline {
				changes = make([]cdc.Change, 0, max(room, len(rows))-i)
			}
		}
		shadows = append(shadows, cdc.Shadow{Table: t.name, Key: keys[i], Value: enc})
		if d.overlaid {
			if d.current == nil {
				d.current = &overlayPage{shadows: make(map[string][]byte, len(rows))}
			}
			d.current.shadows[string(keys[i])] = enc
		}
		if baseline {
			continue
		}
		c := cdc.Change{Source: s.name, Table: t.name, Op: cdc.Insert, CommitTime: d.pollTime}
		if sh != nil {
			// Old is the key and the tracked columns as stored; those that
			// did not change share the new row's values.
			if len(slab) < nSlab {
				slab = make([]any, nSlab*rowsPerSlab)
			}
			old := slab[:nSlab:nSlab]
			slab = slab[nSlab:]
			copy(old, r.norm[:nk])
			if !t.codec.DecodeInto(old[nk:], sh, enc, r.norm, t.trackIdx) {
				if !t.warned {
					s.log.Warn("shadows were written for other tracked columns; re-recording them without events", "table", t.name)
					t.warned = true
				}
				continue
			}
			c.Op, c.Old = cdc.Update, cdc.NewRow(t.oldCols, old[:nOld])
		}
		// The key columns come first in cols: Key and New share the row's
		// values.
		c.Key, c.New = cdc.NewRow(t.keyCols, r.norm[:nk:nk]), cdc.NewRow(t.newCols, r.norm)
		var err error
		if c.Position, posArena, err = cursorPosition(posArena, t.name, keys[i], r.cursor); err != nil {
			return nil, nil, fmt.Errorf("cursor %s: %w", t.cursor, err)
		}
		changes = append(changes, c)
	}
	return changes, shadows, nil
}

func pick(vals []any, idx []int) []any {
	out := make([]any, len(idx))
	for i, j := range idx {
		out[i] = vals[j]
	}
	return out
}

// mark decodes the high-water mark.
func (st *tableState) mark() (*rowMark, error) {
	c, err := st.Cursor.value()
	if err != nil {
		return nil, err
	}
	m := &rowMark{cursor: c}
	for _, k := range st.Key {
		v, err := k.value()
		if err != nil {
			return nil, err
		}
		m.key = append(m.key, v)
	}
	return m, nil
}

// advance moves the high-water mark to r when r lies beyond it.
func (st *tableState) advance(r row, t *table) (bool, error) {
	key := pick(r.raw, t.keyIdx)
	if st.Cursor != nil {
		m, err := st.mark()
		if err != nil {
			return false, err
		}
		c := compareAny(r.cursor, m.cursor)
		for i := 0; c == 0 && i < len(key) && i < len(m.key); i++ {
			c = compareAny(key[i], m.key[i])
		}
		if c <= 0 {
			return false, nil
		}
	}
	cn, err := toNative(r.cursor)
	if err != nil {
		return false, fmt.Errorf("cursor %s: %w", t.cursor, err)
	}
	st.Cursor, st.Key = &cn, nil
	for _, k := range key {
		kn, err := toNative(k)
		if err != nil {
			return false, fmt.Errorf("key: %w", err)
		}
		st.Key = append(st.Key, kn)
	}
	return true, nil
}

// compareAny orders two values of the same kind.
func compareAny(a, b any) int {
	switch x := a.(type) {
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	case int64:
		if y, ok := b.(int64); ok {
			return cmp3(x < y, x > y)
		}
	case float64:
		if y, ok := b.(float64); ok {
			return cmp3(x < y, x > y)
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case []byte:
		if y, ok := b.([]byte); ok {
			return bytes.Compare(x, y)
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func cmp3(less, more bool) int {
	switch {
	case less:
		return -1
	case more:
		return 1
	}
	return 0
}

// lookbackFrom is where a poll starts reading: lookback before the
// high-water cursor. Text timestamps keep their own layout.
func lookbackFrom(c any, d time.Duration) any {
	switch x := c.(type) {
	case time.Time:
		return x.Add(-d)
	case string:
		for _, l := range textTimeLayouts {
			if t, err := time.Parse(l, x); err == nil {
				return t.Add(-d).Format(l)
			}
		}
	}
	return c
}

// progress logs how a baseline goes.
type progress struct {
	s     *Source
	t     *table
	on    bool
	total int64
	count int64
	start time.Time
	last  time.Time
}

func (s *Source) startProgress(ctx context.Context, t *table, baseline bool) *progress {
	p := &progress{s: s, t: t, on: baseline, start: time.Now(), last: time.Now()}
	if baseline {
		var n sql.NullInt64
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := s.db.QueryRowContext(qctx, "SELECT COUNT(*) FROM "+t.quoted).Scan(&n); err == nil {
			p.total = n.Int64
		}
		s.log.Info("baseline: recording existing rows without sending events", "table", t.name, "rows", p.total)
	}
	return p
}

func (p *progress) add(n int) {
	p.count += int64(n)
	if !p.on || time.Since(p.last) < p.s.opt.ProgressEvery {
		return
	}
	p.last = time.Now()
	rate := float64(p.count) / time.Since(p.start).Seconds()
	args := []any{"table", p.t.name, "rows_done", p.count, "rows_per_s", int64(rate)}
	if p.total > p.count && rate > 0 {
		args = append(args, "eta", (time.Duration(float64(p.total-p.count)/rate) * time.Second).Round(time.Second))
	}
	p.s.log.Info("baseline progress", args...)
}

func (p *progress) done() {
	p.s.log.Info("baseline done", "table", p.t.name, "rows", p.count, "took", time.Since(p.start).Round(time.Millisecond))
}
