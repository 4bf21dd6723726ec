package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/capisync/capisync/internal/cdc"
)

// jsonChange is one line of a `rules test` changes file.
type jsonChange struct {
	Source     string         `json:"source"`
	Table      string         `json:"table"`
	Op         string         `json:"op"`
	Key        map[string]any `json:"key"`
	Old        map[string]any `json:"old"`
	New        map[string]any `json:"new"`
	Position   string         `json:"position"`
	CommitTime string         `json:"commit_time"`
}

// ReadChanges reads a JSON-lines changes file, one change per line, as
// the README describes for `capisync rules test`. Values map to the common
// value types: whole numbers to int64, other numbers to float64, strings
// that are RFC 3339 timestamps to time.Time in UTC (as a source would read
// a timestamp column), other strings as they are. Blank lines and lines
// starting with # are skipped. now is the commit time of a change that
// gives none. Each change gets its line number.
func ReadChanges(r io.Reader, now time.Time) ([]cdc.Change, []int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var out []cdc.Change
	var lines []int
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var jc jsonChange
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		dec.DisallowUnknownFields()
		if err := dec.Decode(&jc); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		c, err := jc.change(now)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, c)
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	return out, lines, nil
}

func (jc jsonChange) change(now time.Time) (cdc.Change, error) {
	op, err := cdc.ParseOp(jc.Op)
	if err != nil {
		return cdc.Change{}, err
	}
	if jc.Source == "" || jc.Table == "" {
		return cdc.Change{}, fmt.Errorf("source and table are required")
	}
	c := cdc.Change{Source: jc.Source, Table: jc.Table, Op: op, CommitTime: now.UTC()}
	if jc.CommitTime != "" {
		t, err := time.Parse(time.RFC3339Nano, jc.CommitTime)
		if err != nil {
			return c, fmt.Errorf("commit_time %q is not RFC 3339", jc.CommitTime)
		}
		c.CommitTime = t.UTC()
	}
	c.Old, c.New, c.Key = jsonRow(jc.Old), jsonRow(jc.New), jsonRow(jc.Key)
	switch {
	case op == cdc.Insert && c.New.IsZero(), op == cdc.Update && c.New.IsZero():
		return c, fmt.Errorf("an %s needs new", op)
	case op == cdc.Delete && c.Old.IsZero():
		return c, fmt.Errorf("a delete needs old")
	}
	if op == cdc.Insert {
		c.Old = cdc.Row{}
	}
	if op == cdc.Delete {
		c.New = cdc.Row{}
	}
	if jc.Position != "" {
		c.Position = cdc.Position(jc.Position)
	}
	return c, nil
}

func jsonRow(m map[string]any) cdc.Row {
	for k, v := range m {
		m[k] = jsonValue(v)
	}
	return cdc.RowOf(m)
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil && !math.IsInf(f, 0) {
			return f
		}
		return x.String()
	case string:
		if len(x) >= 20 && strings.ContainsAny(x, "Tt") {
			if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return t.UTC()
			}
		}
		return x
	case []any:
		for i := range x {
			x[i] = jsonValue(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = jsonValue(x[k])
		}
		return x
	}
	return v
}
