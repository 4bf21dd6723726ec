package pgstate

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/state"
)

// Pending returns up to max of the oldest events queued for dest.
func (s *Store) Pending(dest string, max int) ([]state.Queued, error) {
	return s.PendingAfter(dest, 0, max)
}

// PendingAfter returns up to max of the oldest events queued for dest
// with a sequence number above after, oldest first.
func (s *Store) PendingAfter(dest string, after uint64, max int) ([]state.Queued, error) {
	ctx, cancel := s.call()
	defer cancel()
	var out []state.Queued
	// A few pages at a time (a page holds a commit's events).
	from := int64(-1) // the pages from the one holding after+1
	for len(out) < max {
		rows, err := s.pool.Query(ctx, s.sql(`SELECT first_seq, enqueued, events, done FROM %s.outbox
			WHERE dest = $1 AND first_seq > $3 AND first_seq >= coalesce((SELECT max(first_seq) FROM %s.outbox WHERE dest = $1 AND first_seq <= $2), 0)
			ORDER BY first_seq LIMIT 4`), dest, int64(after)+1, from)
		if err != nil {
			return nil, fmt.Errorf("read outbox %s: %w", dest, err)
		}
		pages := 0
		var first int64
		var enqueued time.Time
		var events, done []byte
		_, err = pgx.ForEachRow(rows, []any{&first, &enqueued, &events, &done}, func() error {
			pages++
			from = first
			return decodePage(events, func(i int, e pageEvent) bool {
				seq := uint64(first) + uint64(i)
				if seq > after && !bitmap(done).has(i) && len(out) < max {
					out = append(out, state.Queued{Seq: seq, Rule: e.rule, EventName: e.name, EventID: e.id,
						EventTime: e.time, ActionSource: e.source, JSON: e.json, Enqueued: enqueued})
				}
				return len(out) < max
			})
		})
		if err != nil {
			return nil, fmt.Errorf("read outbox %s: %w", dest, err)
		}
		if pages < 4 {
			break
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	// Attempts so far, of the few events deferred after an attempt.
	rows, err := s.pool.Query(ctx, s.sql("SELECT seq, attempts FROM %s.attempts WHERE dest = $1 AND seq BETWEEN $2 AND $3"),
		dest, int64(out[0].Seq), int64(out[len(out)-1].Seq))
	if err != nil {
		return nil, fmt.Errorf("read outbox %s: %w", dest, err)
	}
	attempts := map[uint64]int{}
	var seq int64
	var n int32
	if _, err := pgx.ForEachRow(rows, []any{&seq, &n}, func() error { attempts[uint64(seq)] = int(n); return nil }); err != nil {
		return nil, fmt.Errorf("read outbox %s: %w", dest, err)
	}
	if len(attempts) > 0 {
		for i := range out {
			out[i].Attempts = attempts[out[i].Seq]
		}
	}
	return out, nil
}

// LastSeq returns the sequence number of the last event ever queued for
// dest (0 when none).
func (s *Store) LastSeq(dest string) (uint64, error) {
	if last, ok := s.ids.lastSeq(s.epoch(), dest); ok {
		return last, nil
	}
	ctx, cancel := s.call()
	defer cancel()
	var last int64
	err := s.pool.QueryRow(ctx, s.sql("SELECT last FROM %s.sequences WHERE name = $1"), "outbox/"+dest).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(last), err
}

// Depth is the number of events queued for dest.
func (s *Store) Depth(dest string) (int64, error) {
	ctx, cancel := s.call()
	defer cancel()
	var n int64
	err := s.pool.QueryRow(ctx, s.sql("SELECT value FROM %s.counters WHERE name = $1"), state.DepthCounter(dest)).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// Settle records outcomes for dest in one transaction: delivered events
// leave the outbox (their ids stay remembered for SentTTL), dead-lettered
// ones move to the dead letters and are forgotten, deferred ones stay with
// their attempts counted. It also prunes ids no longer remembered.
func (s *Store) Settle(dest string, outcomes []state.Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	now := s.clock()
	return s.write(false, func(ctx context.Context, w *wtx) error {
		// A settle lost with the server's last moments only means its
		// events are sent again, with their ids: it need not wait for the
		// WAL flush (the commits that queue events do).
		w.later("SET LOCAL synchronous_commit = off")
		lo, hi := outcomes[0].Seq, outcomes[0].Seq
		anyDead := false
		for _, o := range outcomes {
			lo, hi = min(lo, o.Seq), max(hi, o.Seq)
			anyDead = anyDead || o.Status == state.DeadLettered
		}
		// The pages that may hold the outcomes' events, locked: another
		// settle of the same page waits, so no bit is lost.
		rows, err := w.Query(ctx, s.sql(`SELECT first_seq, n, enqueued, done, CASE WHEN $4 THEN events END FROM %s.outbox
			WHERE dest = $1 AND first_seq <= $3 AND first_seq >= coalesce((SELECT max(first_seq) FROM %s.outbox WHERE dest = $1 AND first_seq <= $2), 0)
			ORDER BY first_seq FOR UPDATE`), dest, int64(lo), int64(hi), anyDead)
		if err != nil {
			return fmt.Errorf("settle %s: %w", dest, err)
		}
		type page struct {
			first    int64
			n        int
			enqueued time.Time
			done     bitmap
			events   []byte
			changed  bool
		}
		var pages []*page
		var first int64
		var n int32
		var enqueued time.Time
		var done, events []byte
		if _, err := pgx.ForEachRow(rows, []any{&first, &n, &enqueued, &done, &events}, func() error {
			pages = append(pages, &page{first: first, n: int(n), enqueued: enqueued, done: bytes.Clone(done), events: bytes.Clone(events)})
			return nil
		}); err != nil {
			return fmt.Errorf("settle %s: %w", dest, err)
		}
		find := func(seq uint64) (*page, int) {
			k := sort.Search(len(pages), func(k int) bool { return uint64(pages[k].first) > seq }) - 1
			if k < 0 || seq-uint64(pages[k].first) >= uint64(pages[k].n) {
				return nil, 0
			}
			return pages[k], int(seq - uint64(pages[k].first))
		}
		removed := int64(0)
		counters := map[string]int64{}
		var settled, deferred []int64
		var deferredN []int32
		type dead struct {
			p *page
			i int
			o state.Outcome
		}
		var deads []dead
		for _, o := range outcomes {
			p, i := find(o.Seq)
			if p == nil || p.done.has(i) {
				continue // settled before (a repeated report)
			}
			switch o.Status {
			case state.Delivered, state.DeadLettered:
				p.done.set(i)
				p.changed = true
				removed++
				settled = append(settled, int64(o.Seq))
				if o.Status == state.DeadLettered {
					deads = append(deads, dead{p, i, o})
				}
			case state.Deferred:
				if o.Attempts > 0 {
					deferred, deferredN = append(deferred, int64(o.Seq)), append(deferredN, int32(o.Attempts))
				}
			default:
				return fmt.Errorf("settle %s seq %d: unknown status %d", dest, o.Seq, o.Status)
			}
		}
		if len(deferred) > 0 {
			w.later(s.sql(`INSERT INTO %s.attempts SELECT $1, seq, n, $4, $4 FROM unnest($2::bigint[], $3::int[]) AS u(seq, n)
				ON CONFLICT (dest, seq) DO UPDATE SET attempts = attempts.attempts + excluded.attempts, last_attempt = excluded.last_attempt`),
				dest, deferred, deferredN, now)
		}
		if len(deads) > 0 {
			var entries []idMatch
			var hashes []uint32
			for _, d := range deads {
				key, err := s.deadLetter(ctx, w, dest, d.p.events, d.p.first, d.i, d.p.enqueued, d.o, now, counters)
				if err != nil {
					return fmt.Errorf("settle %s seq %d: %w", dest, d.o.Seq, err)
				}
				// Forgotten, so that the same change read again (or a
				// retried dead letter) is queued again.
				entries = append(entries, idMatch{first: d.p.first, i: d.i})
				hashes = append(hashes, keyHash(key))
			}
			if err := s.forget(ctx, w, dest, entries, hashes); err != nil {
				return fmt.Errorf("settle %s: forget ids: %w", dest, err)
			}
		}
		if len(settled) > 0 {
			w.later(s.sql("DELETE FROM %s.attempts WHERE dest = $1 AND seq = ANY($2)"), dest, settled)
		}
		var gone, upd []int64
		var updDone [][]byte
		for _, p := range pages {
			switch {
			case !p.changed:
			case p.done.all(p.n):
				gone = append(gone, p.first)
			default:
				upd, updDone = append(upd, p.first), append(updDone, p.done)
			}
		}
		if len(gone) > 0 {
			w.later(s.sql("DELETE FROM %s.outbox WHERE dest = $1 AND first_seq = ANY($2)"), dest, gone)
		}
		if len(upd) > 0 {
			w.later(s.sql(`UPDATE %s.outbox o SET done = u.b FROM unnest($2::bigint[], $3::bytea[]) AS u(f, b)
				WHERE o.dest = $1 AND o.first_seq = u.f`), dest, upd, updDone)
		}
		counters[state.DepthCounter(dest)] -= removed
		s.addCounters(w, counters)
		return s.pruneIDs(ctx, w, dest, now)
	})
}

// pruneIDs drops, at most once a minute per destination, ids pages queued
// before SentTTL whose events all left the outbox (a bounded number per
// call): their ids are no longer remembered.
func (s *Store) pruneIDs(ctx context.Context, w *wtx, dest string, now time.Time) error {
	s.ids.mu.Lock()
	if s.ids.pruned == nil {
		s.ids.pruned = map[string]time.Time{}
	}
	last := s.ids.pruned[dest]
	if now.Sub(last) < time.Minute && !now.Before(last) {
		s.ids.mu.Unlock()
		return nil
	}
	s.ids.pruned[dest] = now
	s.ids.mu.Unlock()
	rows, err := w.Query(ctx, s.sql(`DELETE FROM %s.ids WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM %s.ids i WHERE dest = $1 AND queued <= $2
		AND NOT EXISTS (SELECT 1 FROM %s.outbox o WHERE o.dest = i.dest AND o.first_seq = i.first_seq) LIMIT 100))
		RETURNING first_seq, n, hashes, forgotten`), dest, now.Add(-state.SentTTL))
	if err != nil {
		return fmt.Errorf("prune ids of %s: %w", dest, err)
	}
	var first int64
	var n int32
	var hashes, forgotten []byte
	_, err = pgx.ForEachRow(rows, []any{&first, &n, &hashes, &forgotten}, func() error {
		for i := range min(int(n), len(hashes)/4) {
			if !bitmap(forgotten).has(i) {
				w.changes = append(w.changes, idChange{dest: dest, h: binary.LittleEndian.Uint32(hashes[4*i:]), seq: uint64(first) + uint64(i), forget: true})
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("prune ids of %s: %w", dest, err)
	}
	return nil
}

// deadLetter moves event i of the outbox page (events, from first,
// queued at enqueued) to the dead letters with o's reason, and returns
// its id memory key.
func (s *Store) deadLetter(ctx context.Context, w *wtx, dest string, events []byte, first int64, i int, enqueued time.Time, o state.Outcome, now time.Time, counters map[string]int64) (string, error) {
	var pe pageEvent
	found := false
	if err := decodePage(events, func(j int, e pageEvent) bool {
		if j == i {
			pe, found = e, true
		}
		return j < i
	}); err != nil || !found {
		return "", fmt.Errorf("outbox page %d: event %d: %v", first, i, cmp.Or(err, errBadPage))
	}
	var attempts int32
	var firstAt, lastAt *time.Time
	err := w.QueryRow(ctx, s.sql("SELECT attempts, first_attempt, last_attempt FROM %s.attempts WHERE dest = $1 AND seq = $2"),
		dest, first+int64(i)).Scan(&attempts, &firstAt, &lastAt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", err
	}
	if o.Attempts > 0 {
		attempts += int32(o.Attempts)
		if firstAt == nil {
			firstAt = &now
		}
		lastAt = &now
	}
	var ev capi.Event
	if err := state.DecodeEvent(pe.json, &ev); err != nil {
		return "", err
	}
	dl := state.DeadLetter{Destination: dest, Rule: pe.rule, Event: &ev, Reason: o.Reason, Code: o.Code, Subcode: o.Subcode,
		Message: o.Message, FBTraceID: o.FBTraceID, Attempts: int(attempts), Enqueued: enqueued.UTC()}
	if firstAt != nil {
		dl.FirstAttempt, dl.LastAttempt = firstAt.UTC(), lastAt.UTC()
	}
	if err := s.putDead(ctx, w, dl, now, counters); err != nil {
		return "", err
	}
	return idKey(pe.name, pe.id), nil
}

// DeadLetters lists dest's dead letters (every destination's when dest is
// empty), oldest first.
func (s *Store) DeadLetters(dest string) ([]state.DeadLetter, error) {
	ctx, cancel := s.call()
	defer cancel()
	rows, err := s.pool.Query(ctx, s.sql("SELECT dest, id, letter FROM %s.dead WHERE ($1 = '' OR dest = $1) ORDER BY dest, id"), dest)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []state.DeadLetter
	for rows.Next() {
		var d string
		var id int64
		var raw []byte
		if err := rows.Scan(&d, &id, &raw); err != nil {
			return nil, err
		}
		dl, err := state.DecodeDeadLetter(raw)
		if err != nil {
			return nil, fmt.Errorf("dead letter %s/%d: %w", d, id, err)
		}
		out = append(out, dl)
	}
	return out, rows.Err()
}

// RetryDead moves dead letters back to their outbox (ids nil: all of
// dest's), to be sent again, even if an identical event was delivered;
// rule failures, which hold no event, stay. It returns how many moved.
func (s *Store) RetryDead(dest string, ids []uint64) (int, error) {
	now := s.clock()
	return s.takeDead(dest, ids, func(ctx context.Context, w *wtx, dl state.DeadLetter, counters map[string]int64) (bool, error) {
		if dl.Event == nil {
			return false, nil
		}
		// A delivered event's id is forgotten; one still queued stays
		// (and refuses the retry).
		key := idKey(dl.Event.EventName, dl.Event.EventID)
		found, err := s.findIDs(ctx, w, dl.Destination, []string{key}, []uint32{keyHash(key)})
		if err != nil {
			return false, err
		}
		var settled []idMatch
		var hashes []uint32
		for _, m := range found[0] {
			if m.settled() {
				settled, hashes = append(settled, m), append(hashes, keyHash(key))
			}
		}
		if err := s.forget(ctx, w, dl.Destination, settled, hashes); err != nil {
			return false, err
		}
		dups, _, err := s.enqueue(ctx, w, []*state.Enqueue{{Destination: dl.Destination, Rule: dl.Rule, Event: *dl.Event}}, now)
		if err != nil {
			return false, err
		}
		if !dups[0] {
			counters[state.DepthCounter(dl.Destination)]++
		}
		return true, nil
	})
}

// DropDead deletes dead letters (ids nil: all of dest's) and returns how
// many.
func (s *Store) DropDead(dest string, ids []uint64) (int, error) {
	return s.takeDead(dest, ids, func(context.Context, *wtx, state.DeadLetter, map[string]int64) (bool, error) { return true, nil })
}

func (s *Store) takeDead(dest string, ids []uint64, take func(context.Context, *wtx, state.DeadLetter, map[string]int64) (bool, error)) (int, error) {
	n := 0
	err := s.write(true, func(ctx context.Context, tx *wtx) error {
		n = 0
		var want []int64 // nil (NULL): every dead letter
		if ids != nil {
			want = make([]int64, len(ids))
			for i, id := range ids {
				want[i] = int64(id)
			}
		}
		rows, err := tx.Query(ctx, s.sql(`SELECT dest, id, letter FROM %s.dead WHERE ($1 = '' OR dest = $1)
			AND ($2::bigint[] IS NULL OR id = ANY($2)) ORDER BY dest, id FOR UPDATE`), dest, want)
		if err != nil {
			return err
		}
		type letter struct {
			dest string
			id   int64
			dl   state.DeadLetter
		}
		var letters []letter
		for rows.Next() {
			var l letter
			var raw []byte
			if err := rows.Scan(&l.dest, &l.id, &raw); err != nil {
				rows.Close()
				return err
			}
			if l.dl, err = state.DecodeDeadLetter(raw); err != nil {
				rows.Close()
				return fmt.Errorf("dead letter %s/%d: %w", l.dest, l.id, err)
			}
			letters = append(letters, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		counters := map[string]int64{}
		for _, l := range letters {
			ok, err := take(ctx, tx, l.dl, counters)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if _, err := tx.Exec(ctx, s.sql("DELETE FROM %s.dead WHERE dest = $1 AND id = $2"), l.dest, l.id); err != nil {
				return err
			}
			counters[state.DeadCounter(l.dest)]--
			n++
		}
		s.addCounters(tx, counters)
		return nil
	})
	return n, err
}
