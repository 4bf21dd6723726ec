package pgstate

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capisync/capisync/state"
)

// Shadows returns the stored shadows of keys in source's table, in the
// order asked (nil where none).
func (s *Store) Shadows(source, table string, keys [][]byte) ([][]byte, error) {
	ctx, cancel := s.call()
	defer cancel()
	rows, err := s.pool.Query(ctx, s.sql("SELECT key, value FROM %s.shadows WHERE source = $1 AND tbl = $2 AND key = ANY($3)"), source, table, keys)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[string][]byte, len(keys))
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		found[string(k)] = v
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = found[string(k)]
	}
	return out, nil
}

// ScanShadows calls fn for every shadow of source's table, in key order.
func (s *Store) ScanShadows(source, table string, fn func(key, value []byte) error) error {
	return s.eachShadowChunk(source, table, func(keys, values [][]byte) error {
		for i := range keys {
			if err := fn(keys[i], values[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// shadowChunk is how many shadows a scan reads at a time.
const shadowChunk = 5000

// eachShadowChunk reads source's table's shadows in key order, a chunk at
// a time, each its own query, so that a big table holds no transaction
// open.
func (s *Store) eachShadowChunk(source, table string, fn func(keys, values [][]byte) error) error {
	var after []byte
	for {
		ctx, cancel := s.call()
		rows, err := s.pool.Query(ctx, s.sql(`SELECT key, value FROM %s.shadows WHERE source = $1 AND tbl = $2
			AND ($3::bytea IS NULL OR key > $3) ORDER BY key LIMIT $4`), source, table, after, shadowChunk)
		if err != nil {
			cancel()
			return err
		}
		var keys, values [][]byte
		for rows.Next() {
			var k, v []byte
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				cancel()
				return err
			}
			keys, values = append(keys, k), append(values, v)
		}
		rows.Close()
		cancel()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := fn(keys, values); err != nil {
				return err
			}
		}
		if len(keys) < shadowChunk {
			return nil
		}
		after = keys[len(keys)-1]
	}
}

// RewriteShadows passes each stored shadow of source's table to fn and
// stores what fn returns when fn says so (ok), a chunk at a time, and
// returns how many it replaced. Once a pass for format has ended, later
// calls with the same format do nothing.
func (s *Store) RewriteShadows(source, table, format string, fn func(value []byte) (newValue []byte, ok bool)) (int, error) {
	ctx, cancel := s.call()
	var done []byte // a format may hold any bytes
	err := s.pool.QueryRow(ctx, s.sql("SELECT format FROM %s.shadow_formats WHERE source = $1 AND tbl = $2"), source, table).Scan(&done)
	cancel()
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, err
	}
	if err == nil && string(done) == format {
		return 0, nil
	}
	n := 0
	err = s.eachShadowChunk(source, table, func(keys, values [][]byte) error {
		var ks, vs [][]byte
		for i, v := range values {
			if nv, ok := fn(v); ok {
				ks, vs = append(ks, keys[i]), append(vs, nv)
			}
		}
		if len(ks) == 0 {
			return nil
		}
		n += len(ks)
		return s.writeTx(func(ctx context.Context, tx querier) error {
			_, err := tx.Exec(ctx, s.sql(`UPDATE %s.shadows t SET value = u.v FROM unnest($3::bytea[], $4::bytea[]) AS u(k, v)
				WHERE t.source = $1 AND t.tbl = $2 AND t.key = u.k`), source, table, ks, vs)
			return err
		})
	})
	if err != nil {
		return n, err
	}
	return n, s.writeTx(func(ctx context.Context, tx querier) error {
		_, err := tx.Exec(ctx, s.sql(`INSERT INTO %s.shadow_formats VALUES ($1, $2, $3)
			ON CONFLICT (source, tbl) DO UPDATE SET format = excluded.format`), source, table, []byte(format))
		return err
	})
}

// Status reads a snapshot for `capisync status`, in one transaction.
func (s *Store) Status() (state.Status, error) {
	st := state.Status{Checkpoints: map[string]state.CheckpointStatus{}, Destinations: map[string]state.OutboxStatus{}, Counters: map[string]int64{}}
	err := s.inTx(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, s.sql("SELECT source, position, at FROM %s.checkpoints"))
		if err != nil {
			return err
		}
		for rows.Next() {
			var src string
			var cs state.CheckpointStatus
			if err := rows.Scan(&src, &cs.Position, &cs.At); err != nil {
				rows.Close()
				return err
			}
			cs.At = cs.At.UTC()
			st.Checkpoints[src] = cs
		}
		rows.Close()
		if rows, err = tx.Query(ctx, s.sql("SELECT name, value FROM %s.counters")); err != nil {
			return err
		}
		for rows.Next() {
			var name string
			var v int64
			if err := rows.Scan(&name, &v); err != nil {
				rows.Close()
				return err
			}
			st.AddCounter(name, v)
		}
		rows.Close()
		if rows, err = tx.Query(ctx, s.sql("SELECT dest, min(enqueued) FROM %s.outbox GROUP BY dest")); err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d string
			var at time.Time
			if err := rows.Scan(&d, &at); err != nil {
				return err
			}
			o := st.Destinations[d]
			o.OldestEnqueued = at.UTC()
			st.Destinations[d] = o
		}
		return rows.Err()
	})
	return st, err
}
