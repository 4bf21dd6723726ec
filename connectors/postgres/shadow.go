package postgres

import (
	"bytes"
	"fmt"
	"slices"
	"sort"

	"github.com/jackc/pglogrepl"

	"github.com/capisync/capisync/internal/cdc"
)

// shadowKeeper gives tables without REPLICA IDENTITY FULL their old values
// from shadows (old_values: shadow). Shadows go to the store with the
// batch; until a batch is acknowledged its shadows are kept here too, so a
// row changed twice in quick succession reads the newer one.
type shadowKeeper struct {
	s       *Source
	codecs  map[string]cdc.ShadowCodec
	track   map[string][]string
	pending map[string]pendingShadow // table \x00 key -> not yet acknowledged
}

type pendingShadow struct {
	value []byte // nil: deleted
	lsn   pglogrepl.LSN
}

func newShadowKeeper(s *Source) (*shadowKeeper, error) {
	k := &shadowKeeper{s: s, codecs: map[string]cdc.ShadowCodec{}, track: map[string][]string{}, pending: map[string]pendingShadow{}}
	for _, t := range s.cfg.Tables.Names {
		isKey := map[string]bool{}
		if info := s.tables[t]; info != nil {
			for _, c := range info.key {
				isKey[c] = true
			}
		}
		notKey := func(cols []string) []string {
			var out []string
			for _, c := range cols {
				if !isKey[c] && c != "*" { // whole-row readers get the columns rules name
					out = append(out, c)
				}
			}
			sort.Strings(out)
			return out
		}
		var all, old []string
		if s.opt.Track != nil {
			all = s.opt.Track(t)
		}
		// Only the columns whose old values rules read are kept: a
		// column read only as a new value (an email sent in user_data)
		// never reaches the store.
		old = all
		if s.opt.OldColumns != nil {
			if old = s.opt.OldColumns(t); slices.Contains(old, "*") {
				old = all
			}
		}
		track := notKey(old)
		k.track[t], k.codecs[t] = track, cdc.NewShadowCodec(track)
		if legacy := cdc.NewShadowCodec(notKey(all)); !legacy.Same(k.codecs[t]) {
			if err := k.upgrade(t, legacy); err != nil {
				return nil, err
			}
		}
	}
	return k, nil
}

// upgrade rewrites the shadows of table written by an older capisync,
// which kept every column rules read, to keep only the tracked ones.
func (k *shadowKeeper) upgrade(table string, legacy cdc.ShadowCodec) error {
	from := map[string]int{}
	for i, c := range legacy.Columns() {
		from[c] = i
	}
	track, codec := k.track[table], k.codecs[table]
	at := make([]int, len(track))
	for j, c := range track {
		i, ok := from[c]
		if !ok {
			return nil // the old shadows lack a column: they stay unreadable, as after any change of rules
		}
		at[j] = i
	}
	vals := make([]any, len(track))
	n, err := k.s.shadows.RewriteShadows(k.s.name, table, codec.Format(), func(v []byte) ([]byte, bool) {
		old, ok := legacy.Decode(v)
		if !ok {
			return nil, false
		}
		for j, i := range at {
			vals[j] = old[i]
		}
		return codec.Encode(vals), true
	})
	if err != nil {
		return fmt.Errorf("upgrade the shadows of %s: %w", table, err)
	}
	if n > 0 {
		k.s.log.Info("rewrote shadows to keep only the columns rules read as old values", "table", table, "shadows", n)
	}
	return nil
}

// apply fills c.Old from the shadow and returns the shadows to store: the
// row's, and on an update that changed the key (its old row is then the
// old key), the old key's, forgotten. names are the key's columns in name
// order, the order shadow keys are encoded in.
func (k *shadowKeeper) apply(c *cdc.Change, names []string, lsn pglogrepl.LSN) ([]cdc.Shadow, error) {
	key := encodeKey(c.Key, names)
	from := key // the key the old values are stored under
	if c.Op == cdc.Update {
		if old := encodeKey(c.Old, names); old != nil && !bytes.Equal(old, key) {
			from = old
		}
	}
	codec, track := k.codecs[c.Table], k.track[c.Table]
	var stored []byte
	if p, ok := k.pending[c.Table+"\x00"+string(from)]; ok {
		stored = p.value
	} else {
		got, err := k.s.shadows.Shadows(k.s.name, c.Table, [][]byte{from})
		if err != nil {
			return nil, fmt.Errorf("read shadow: %w", err)
		}
		stored = got[0]
	}
	if c.Op != cdc.Insert && stored != nil {
		if old, ok := codec.Decode(stored); ok {
			c.Old = withMissing(c.Old, track, old)
		}
	}
	var out []cdc.Shadow
	if !bytes.Equal(from, key) {
		out = append(out, cdc.Shadow{Table: c.Table, Key: from})
		k.pending[c.Table+"\x00"+string(from)] = pendingShadow{lsn: lsn}
	}
	sh := cdc.Shadow{Table: c.Table, Key: key}
	if c.Op != cdc.Delete {
		v := make([]any, len(track))
		for i, col := range track {
			v[i] = c.New.Value(col)
		}
		sh.Value = codec.Encode(v)
	}
	k.pending[c.Table+"\x00"+string(key)] = pendingShadow{value: sh.Value, lsn: lsn}
	return append(out, sh), nil
}

// encodeKey encodes row's values of the key columns names (sorted); nil
// when the row lacks one.
func encodeKey(row cdc.Row, names []string) []byte {
	vals := make([]any, len(names))
	for i, col := range names {
		v, ok := row.Get(col)
		if !ok {
			return nil
		}
		vals[i] = v
	}
	return cdc.EncodeKey(vals)
}

// withMissing returns row with the columns of names it lacks, valued
// from vals; row itself when it has them all.
func withMissing(row cdc.Row, names []string, vals []any) cdc.Row {
	var addNames []string
	var addVals []any
	for i, col := range names {
		if _, known := row.Get(col); !known {
			addNames, addVals = append(addNames, col), append(addVals, vals[i])
		}
	}
	if len(addNames) == 0 {
		return row
	}
	all := make([]string, 0, row.Len()+len(addNames))
	allVals := make([]any, 0, cap(all))
	for col, v := range row.All() {
		all, allVals = append(all, col), append(allVals, v)
	}
	return cdc.NewRow(cdc.NewColumns(append(all, addNames...)...), append(allVals, addVals...))
}

// prune forgets pending shadows that are durable.
func (k *shadowKeeper) prune(flushed pglogrepl.LSN) {
	for key, p := range k.pending {
		if p.lsn <= flushed {
			delete(k.pending, key)
		}
	}
}
