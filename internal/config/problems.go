package config

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a place in the config file (1-based line and column).
type Pos struct {
	Line, Col int
}

// Problem is one thing wrong with a config, at a place in the file.
type Problem struct {
	File string
	Pos  Pos
	Path string // e.g. rules[2].user_data.em
	Msg  string
}

func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Pos.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Pos.Line, p.Pos.Col)
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a config, in file order. It is the
// error Load returns for a config that is wrong (as opposed to one that
// cannot be read); callers exit with the "bad config" code for it.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Pos.Line != ps[j].Pos.Line {
			return ps[i].Pos.Line < ps[j].Pos.Line
		}
		return ps[i].Pos.Col < ps[j].Pos.Col
	})
	return ps
}

// positions maps config paths to where their values were written.
type positions map[string]Pos

func indexPath(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

func keyPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// Reporter collects problems against a config's positions. The rules
// package uses it to report compile errors in the same format.
type Reporter struct {
	cfg      *Config
	problems Problems
	seen     map[string]bool
}

// NewReporter returns a Reporter for problems in cfg.
func NewReporter(cfg *Config) *Reporter { return &Reporter{cfg: cfg} }

// Add records a problem at the value of path (or its closest written
// ancestor, when path itself was not written).
func (r *Reporter) Add(path, format string, args ...any) {
	r.AddAt(r.cfg.PosOf(path), path, format, args...)
}

// AddAt records a problem at an explicit position. Only the first problem
// of a path is kept: a value that failed to expand or decode would
// otherwise be reported again by every check after it.
func (r *Reporter) AddAt(pos Pos, path, format string, args ...any) {
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if r.seen[path] {
		return
	}
	r.seen[path] = true
	r.problems = append(r.problems, Problem{File: r.cfg.File, Pos: pos, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Err returns the problems in file order, or nil when there are none.
func (r *Reporter) Err() error {
	if len(r.problems) == 0 {
		return nil
	}
	return r.problems.sorted()
}

// PosOf returns where path was written, falling back to its nearest written
// ancestor (a missing field is reported at the mapping that lacks it).
func (c *Config) PosOf(path string) Pos {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := c.pos[p]; ok {
			return pos
		}
	}
	return Pos{}
}

func parentPath(p string) string {
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}
