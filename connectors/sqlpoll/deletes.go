package sqlpoll

import (
	"context"
	"fmt"
	"strings"

	"github.com/capisync/capisync/internal/cdc"
)

// scanDeletes compares every table's keys with its shadows and emits a
// delete for each remembered row that is gone. It reads every key (in
// pages) and holds them in memory: see the package doc for its cost.
func (s *Source) scanDeletes(ctx context.Context, pos *position, out chan<- cdc.Batch) error {
	for _, t := range s.tables {
		if err := s.scanTableDeletes(ctx, pos, t, out); err != nil {
			return fmt.Errorf("delete scan %s.%s: %w", s.name, t.name, err)
		}
	}
	return nil
}

func (s *Source) scanTableDeletes(ctx context.Context, pos *position, t *table, out chan<- cdc.Batch) error {
	live := map[string]struct{}{}
	var after []any
	for {
		q, args := s.keyQuery(t, after)
		rs, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("query keys: %w", s.scrub(err))
		}
		types, _ := rs.ColumnTypes()
		n := 0
		for rs.Next() {
			raw := make([]any, len(t.key))
			ptrs := make([]any, len(raw))
			for i := range raw {
				ptrs[i] = &raw[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				rs.Close()
				return err
			}
			norm := make([]any, len(raw))
			for i, v := range raw {
				name := strings.ToUpper(types[i].DatabaseTypeName())
				if norm[i], err = convert(s.d.kind(name), s.d.zoneless(name), s.loc, v); err != nil {
					rs.Close()
					return err
				}
			}
			live[string(cdc.EncodeKey(norm))] = struct{}{}
			after = raw
			n++
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return fmt.Errorf("read keys: %w", s.scrub(err))
		}
		if n < s.o.PageSize {
			break
		}
	}
	var changes []cdc.Change
	var shadows []cdc.Shadow
	flush := func() error {
		if len(shadows) == 0 {
			return nil
		}
		err := s.emit(ctx, out, cdc.Batch{Source: s.name, Changes: changes, Shadows: shadows, Position: pos.encode()})
		changes, shadows = nil, nil
		return err
	}
	now := s.opt.Now().UTC()
	var gone [][2][]byte
	err := s.shadows.ScanShadows(s.name, t.name, func(k, v []byte) error {
		if _, ok := live[string(k)]; !ok {
			gone = append(gone, [2][]byte{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read shadows: %w", err)
	}
	for _, g := range gone {
		key, err := cdc.DecodeValues(g[0], len(t.key))
		if err != nil {
			return fmt.Errorf("decode shadow key: %w", err)
		}
		old := make([]any, len(t.key)+len(t.track))
		copy(old, key)
		if vals, ok := t.codec.Decode(g[1]); ok {
			copy(old[len(t.key):], vals)
		} else {
			for i := len(t.key); i < len(old); i++ {
				old[i] = cdc.Absent // recorded for other tracked columns: only the key is known
			}
		}
		c := cdc.Change{Source: s.name, Table: t.name, Op: cdc.Delete, CommitTime: now,
			Key: cdc.NewRow(t.keyCols, key), Old: cdc.NewRow(t.oldCols, old),
			Position: changePosition(t.name, g[0], native{Type: "deleted", Value: string(g[1])})}
		changes = append(changes, c)
		shadows = append(shadows, cdc.Shadow{Table: t.name, Key: g[0]})
		if len(shadows) >= s.o.PageSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(gone) > 0 {
		s.log.Info("delete scan", "table", t.name, "deleted", len(gone), "rows", len(live))
	}
	return flush()
}

// keyQuery pages through the key columns in key order.
func (s *Source) keyQuery(t *table, after []any) (string, []any) {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, k := range t.key {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.d.quote(k))
	}
	b.WriteString(" FROM " + t.quoted)
	var args []any
	if after != nil {
		b.WriteString(" WHERE " + s.keyAfter(t, after, func(v any) string {
			args = append(args, v)
			return s.d.placeholder(len(args))
		}))
	}
	b.WriteString(" ORDER BY ")
	for i, k := range t.key {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.d.quote(k))
	}
	fmt.Fprintf(&b, " LIMIT %d", s.o.PageSize)
	return b.String(), args
}
