package postgres

import (
	"bytes"
	"fmt"
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

func newShadowKeeper(s *Source) *shadowKeeper {
	k := &shadowKeeper{s: s, codecs: map[string]cdc.ShadowCodec{}, track: map[string][]string{}, pending: map[string]pendingShadow{}}
	for _, t := range s.cfg.Tables.Names {
		var cols []string
		if s.opt.Track != nil {
			cols = s.opt.Track(t)
		}
		isKey := map[string]bool{}
		if info := s.tables[t]; info != nil {
			for _, c := range info.key {
				isKey[c] = true
			}
		}
		var track []string
		for _, c := range cols {
			if !isKey[c] && c != "*" { // whole-row readers get the columns rules name
				track = append(track, c)
			}
		}
		sort.Strings(track)
		k.track[t], k.codecs[t] = track, cdc.NewShadowCodec(track)
	}
	return k
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
