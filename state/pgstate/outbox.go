package pgstate

import (
	"context"
	"errors"
	"fmt"
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
	rows, err := s.pool.Query(ctx, s.sql(`SELECT seq, rule, event_name, event_id, event_time, action_source, json, enqueued, attempts
		FROM %s.outbox WHERE dest = $1 AND seq > $2 ORDER BY seq LIMIT $3`), dest, int64(after), max)
	if err != nil {
		return nil, fmt.Errorf("read outbox %s: %w", dest, err)
	}
	defer rows.Close()
	var out []state.Queued
	for rows.Next() {
		var q state.Queued
		var seq int64
		var attempts int32
		var id []byte
		if err := rows.Scan(&seq, &q.Rule, &q.EventName, &id, &q.EventTime, &q.ActionSource, &q.JSON, &q.Enqueued, &attempts); err != nil {
			return nil, fmt.Errorf("read outbox %s: %w", dest, err)
		}
		q.Seq, q.Attempts, q.EventID = uint64(seq), int(attempts), string(id)
		out = append(out, q)
	}
	return out, rows.Err()
}

// LastSeq returns the sequence number of the last event ever queued for
// dest (0 when none).
func (s *Store) LastSeq(dest string) (uint64, error) {
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
	now := s.clock()
	return s.writeTx(func(ctx context.Context, tx pgx.Tx) error {
		var delivered []int64
		removed := int64(0)
		counters := map[string]int64{}
		for _, o := range outcomes {
			switch o.Status {
			case state.Delivered:
				delivered = append(delivered, int64(o.Seq))
			case state.Deferred:
				if o.Attempts > 0 {
					if _, err := tx.Exec(ctx, s.sql(`UPDATE %s.outbox SET attempts = attempts + $3,
						first_attempt = coalesce(first_attempt, $4), last_attempt = $4 WHERE dest = $1 AND seq = $2`),
						dest, int64(o.Seq), o.Attempts, now); err != nil {
						return err
					}
				}
			case state.DeadLettered:
				ok, err := s.deadLetter(ctx, tx, dest, o, now, counters)
				if err != nil {
					return fmt.Errorf("settle %s seq %d: %w", dest, o.Seq, err)
				}
				if ok {
					removed++
				}
			default:
				return fmt.Errorf("settle %s seq %d: unknown status %d", dest, o.Seq, o.Status)
			}
		}
		if len(delivered) > 0 {
			tag, err := tx.Exec(ctx, s.sql("DELETE FROM %s.outbox WHERE dest = $1 AND seq = ANY($2)"), dest, delivered)
			if err != nil {
				return err
			}
			removed += tag.RowsAffected()
		}
		counters[state.DepthCounter(dest)] -= removed
		if err := s.addCounters(ctx, tx, counters); err != nil {
			return err
		}
		// Ids out of the outbox and older than SentTTL, a bounded number
		// per settle.
		_, err := tx.Exec(ctx, s.sql(`DELETE FROM %s.ids WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM %s.ids i WHERE dest = $1 AND queued <= $2
			AND NOT EXISTS (SELECT 1 FROM %s.outbox o WHERE o.dest = i.dest AND o.seq = i.seq) LIMIT 1000))`), dest, now.Add(-state.SentTTL))
		return err
	})
}

// deadLetter moves the queued event o names to the dead letters and
// forgets its id (false: it was settled before).
func (s *Store) deadLetter(ctx context.Context, tx pgx.Tx, dest string, o state.Outcome, now time.Time, counters map[string]int64) (bool, error) {
	var rule, name string
	var id, js []byte
	var enqueued time.Time
	var attempts int32
	var first, last *time.Time
	err := tx.QueryRow(ctx, s.sql(`DELETE FROM %s.outbox WHERE dest = $1 AND seq = $2
		RETURNING rule, event_name, event_id, json, enqueued, attempts, first_attempt, last_attempt`), dest, int64(o.Seq)).
		Scan(&rule, &name, &id, &js, &enqueued, &attempts, &first, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if o.Attempts > 0 {
		attempts += int32(o.Attempts)
		if first == nil {
			first = &now
		}
		last = &now
	}
	var ev capi.Event
	if err := state.DecodeEvent(js, &ev); err != nil {
		return false, err
	}
	dl := state.DeadLetter{Destination: dest, Rule: rule, Event: &ev, Reason: o.Reason, Code: o.Code, Subcode: o.Subcode,
		Message: o.Message, FBTraceID: o.FBTraceID, Attempts: int(attempts), Enqueued: enqueued.UTC()}
	if first != nil {
		dl.FirstAttempt, dl.LastAttempt = first.UTC(), last.UTC()
	}
	if err := s.putDead(ctx, tx, dl, now, counters); err != nil {
		return false, err
	}
	// Forgotten, so that the same change read again (or a retried dead
	// letter) is queued again.
	_, err = tx.Exec(ctx, s.sql("DELETE FROM %s.ids WHERE dest = $1 AND event_key = $2 AND seq = $3"), dest, []byte(name+"\x00"+string(id)), int64(o.Seq))
	return true, err
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
	return s.takeDead(dest, ids, func(ctx context.Context, tx pgx.Tx, dl state.DeadLetter, counters map[string]int64) (bool, error) {
		if dl.Event == nil {
			return false, nil
		}
		if _, err := tx.Exec(ctx, s.sql(`DELETE FROM %s.ids i WHERE dest = $1 AND event_key = $2
			AND NOT EXISTS (SELECT 1 FROM %s.outbox o WHERE o.dest = i.dest AND o.seq = i.seq)`), dl.Destination, []byte(dl.Event.EventName+"\x00"+dl.Event.EventID)); err != nil {
			return false, err
		}
		dups, _, err := s.enqueue(ctx, tx, []state.Enqueue{{Destination: dl.Destination, Rule: dl.Rule, Event: *dl.Event}}, now, 0)
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
	return s.takeDead(dest, ids, func(context.Context, pgx.Tx, state.DeadLetter, map[string]int64) (bool, error) { return true, nil })
}

func (s *Store) takeDead(dest string, ids []uint64, take func(context.Context, pgx.Tx, state.DeadLetter, map[string]int64) (bool, error)) (int, error) {
	n := 0
	err := s.writeTx(func(ctx context.Context, tx pgx.Tx) error {
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
		return s.addCounters(ctx, tx, counters)
	})
	return n, err
}
