package postgres

import (
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

// apply fills c.Old from the shadow and returns the shadow to store.
func (k *shadowKeeper) apply(c *cdc.Change, lsn pglogrepl.LSN) (cdc.Shadow, error) {
	keys := make([]string, 0, c.Key.Len())
	for col := range c.Key.All() {
		keys = append(keys, col)
	}
	sort.Strings(keys)
	vals := make([]any, len(keys))
	for i, col := range keys {
		vals[i] = c.Key.Value(col)
	}
	key := cdc.EncodeKey(vals)
	codec, track := k.codecs[c.Table], k.track[c.Table]
	var stored []byte
	if p, ok := k.pending[c.Table+"\x00"+string(key)]; ok {
		stored = p.value
	} else {
		got, err := k.s.shadows.Shadows(k.s.name, c.Table, [][]byte{key})
		if err != nil {
			return cdc.Shadow{}, fmt.Errorf("read shadow: %w", err)
		}
		stored = got[0]
	}
	if c.Op != cdc.Insert && stored != nil {
		if old, ok := codec.Decode(stored); ok {
			c.Old = withMissing(c.Old, track, old)
		}
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
	return sh, nil
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
