package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/capisync/capisync/internal/cdc"
)

// streamer is the state of one replication connection.
type streamer struct {
	s         *Source
	repl      *pgconn.PgConn
	out       chan<- cdc.Batch
	relations map[uint32]*pglogrepl.RelationMessage
	shapes    map[uint32]*shape // per relation: the columns decoded and the rows' names (see shapeOf)
	dec       *decoder
	row       rowMessage
	shadow    *shadowKeeper

	tx           *txState
	lastEmitted  pglogrepl.LSN // end LSN of the last batch with a position handed over
	serverWALEnd pglogrepl.LSN
	nextStatus   time.Time
}

// txState is the transaction being read.
type txState struct {
	begin   *pglogrepl.BeginMessage
	changes []cdc.Change
	shadows []cdc.Shadow
	ordinal uint32
	chunked bool
}

func (s *Source) stream(ctx context.Context, repl *pgconn.PgConn, out chan<- cdc.Batch) error {
	st := &streamer{s: s, repl: repl, out: out, relations: map[uint32]*pglogrepl.RelationMessage{},
		dec: &decoder{types: pgtype.NewMap(), domains: s.domains, loc: s.loc}, lastEmitted: pglogrepl.LSN(s.flushed.Load())}
	if s.o.OldValues == "shadow" {
		var err error
		if st.shadow, err = newShadowKeeper(s); err != nil {
			return err
		}
	}
	recv := &deadlineCtx{parent: ctx}
	defer recv.stop()
	for {
		if !time.Now().Before(st.nextStatus) {
			if err := st.sendStatus(ctx); err != nil {
				return err
			}
		}
		raw, err := repl.ReceiveMessage(recv.until(st.nextStatus))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch m := raw.(type) {
		case *pgproto3.ErrorResponse:
			perr := pgconn.ErrorResponseToPgError(m)
			if isSlotLost(perr) {
				return setupErr("source %s: slot %s was invalidated while streaming (%v). Drop it (capisync slot drop) and let capisync recreate it; changes in the gap must be re-sent.", s.name, s.o.Slot, perr)
			}
			return perr
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return err
				}
				st.serverWALEnd = max(st.serverWALEnd, pkm.ServerWALEnd)
				if pkm.ReplyRequested {
					st.nextStatus = time.Time{} // answer at once
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return err
				}
				st.serverWALEnd = max(st.serverWALEnd, xld.ServerWALEnd)
				if err := st.handle(ctx, xld.WALData); err != nil {
					return err
				}
			}
		}
	}
}

// sendStatus reports the durable position: write, flush and apply all set
// to it, explicitly. With nothing pending, that is the server's WAL end, so
// an idle slot holds no WAL.
func (st *streamer) sendStatus(ctx context.Context) error {
	s := st.s
	f := pglogrepl.LSN(s.flushed.Load())
	if st.tx == nil && st.lastEmitted <= f && st.serverWALEnd > f {
		s.flushed.CompareAndSwap(uint64(f), uint64(st.serverWALEnd))
		f = pglogrepl.LSN(s.flushed.Load())
		st.lastEmitted = max(st.lastEmitted, f)
	}
	if f == 0 {
		return fmt.Errorf("no position to confirm yet") // never send a zero flush: pglogrepl would copy write into it
	}
	st.nextStatus = time.Now().Add(s.opt.StatusInterval)
	if st.shadow != nil {
		st.shadow.prune(f)
	}
	return pglogrepl.SendStandbyStatusUpdate(ctx, st.repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: f, WALFlushPosition: f, WALApplyPosition: f, ClientTime: time.Now(),
	})
}

// hand gives a batch to the pipeline, sending status while it waits so the
// server never times the connection out under backpressure.
func (st *streamer) hand(ctx context.Context, b cdc.Batch) error {
	for {
		t := time.NewTimer(time.Until(st.nextStatus))
		select {
		case st.out <- b:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			if err := st.sendStatus(ctx); err != nil {
				return err
			}
		}
	}
}

func (st *streamer) handle(ctx context.Context, data []byte) error {
	if len(data) > 0 && (data[0] == 'I' || data[0] == 'U' || data[0] == 'D') {
		m := &st.row
		if err := m.parse(data); err != nil {
			return fmt.Errorf("parse pgoutput message: %w", err)
		}
		op := cdc.Insert
		switch m.op {
		case 'U':
			op = cdc.Update
		case 'D':
			op = cdc.Delete
		}
		return st.change(ctx, m.relation, op, m.old, m.oldKey, m.new)
	}
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("parse pgoutput message: %w", err)
	}
	s := st.s
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		st.relations[m.RelationID] = m
		delete(st.shapes, m.RelationID) // columns may have changed
	case *pglogrepl.BeginMessage:
		st.tx = &txState{begin: m}
	case *pglogrepl.TruncateMessage:
		var names []string
		for _, id := range m.RelationIDs {
			if rel := st.relations[id]; rel != nil {
				names = append(names, rel.Namespace+"."+rel.RelationName)
			}
		}
		s.update(func(x *Stats) { x.Truncates++ })
		s.log.Warn("TRUNCATE read: no events are made for it", "tables", names)
	case *pglogrepl.CommitMessage:
		return st.commit(ctx, m)
	case *pglogrepl.TypeMessage, *pglogrepl.OriginMessage, *pglogrepl.LogicalDecodingMessage:
		// Types decode by OID; origins and messages (our heartbeat) carry no rows.
	}
	return nil
}

// shape is what decoding a relation's rows needs, made once per Relation
// message: which columns to decode (want, by position; nil: all), so that
// a row is not looked up column by column by name, and the names of the
// rows made (the decoded columns, and the key).
type shape struct {
	want []bool
	cols *cdc.Columns
	key  *cdc.Columns
	// keySorted are the key's names in name order, as shadow keys are
	// encoded (see shadowKeeper.apply).
	keySorted []string
}

// shapeOf returns the relation's shape for the table's wanted column names
// (nil: all).
func (st *streamer) shapeOf(relID uint32, rel *pglogrepl.RelationMessage, info *tableInfo) *shape {
	if sh, ok := st.shapes[relID]; ok {
		return sh
	}
	sh := &shape{key: cdc.NewColumns(keyColumns(info, rel)...)}
	sh.keySorted = slices.Sorted(slices.Values(sh.key.Names()))
	var names []string
	if info.want != nil {
		sh.want = make([]bool, len(rel.Columns))
	}
	for i, c := range rel.Columns {
		if info.want == nil || info.want[c.Name] {
			names = append(names, c.Name)
			if sh.want != nil {
				sh.want[i] = true
			}
		}
	}
	sh.cols = cdc.NewColumns(names...)
	if st.shapes == nil {
		st.shapes = map[uint32]*shape{}
	}
	st.shapes[relID] = sh
	return sh
}

// change turns a row message into a change; oldKey says oldT is a 'K'
// tuple, whose columns outside the identity are unknown, not NULL.
func (st *streamer) change(ctx context.Context, relID uint32, op cdc.Op, oldT []column, oldKey bool, newT []column) error {
	s := st.s
	rel := st.relations[relID]
	if rel == nil {
		return fmt.Errorf("change for unknown relation %d", relID)
	}
	if st.tx == nil {
		return fmt.Errorf("change outside a transaction")
	}
	name := rel.Namespace + "." + rel.RelationName
	info := s.tables[name]
	if info == nil {
		return nil // in the publication but not configured
	}
	st.tx.ordinal++
	c := cdc.Change{Source: s.name, Table: name, Op: op, CommitTime: st.tx.begin.CommitTime.UTC(),
		Position: changePosition(st.tx.begin.FinalLSN, st.tx.ordinal)}
	var err error
	sh := st.shapeOf(relID, rel, info)
	if oldT != nil {
		if c.Old, err = st.dec.tuple(rel, sh, oldT, oldKey, nil, cdc.Row{}); err != nil {
			return fmt.Errorf("%s: old row: %w", name, err)
		}
	}
	if newT != nil {
		if c.New, err = st.dec.tuple(rel, sh, newT, false, oldT, c.Old); err != nil {
			return fmt.Errorf("%s: new row: %w", name, err)
		}
	}
	keyRow := c.New
	if op == cdc.Delete {
		keyRow = c.Old
	}
	names := sh.key.Names()
	key := make([]any, len(names))
	for i, k := range names {
		key[i] = keyRow.Value(k)
	}
	c.Key = cdc.NewRow(sh.key, key)
	if op == cdc.Update && c.Old.IsZero() {
		c.Old = c.Key // DEFAULT identity, key unchanged: only the key is known
	}
	if st.shadow != nil && info.identity != "f" {
		shs, err := st.shadow.apply(&c, sh.keySorted, st.tx.begin.FinalLSN)
		if err != nil {
			return err
		}
		st.tx.shadows = append(st.tx.shadows, shs...)
	}
	st.tx.changes = append(st.tx.changes, c)
	if len(st.tx.changes) >= s.opt.ChunkSize {
		// A large transaction goes to the outbox in chunks, with no
		// checkpoint until its commit.
		b := cdc.Batch{Source: s.name, Changes: st.tx.changes, Shadows: st.tx.shadows}
		// The next chunk of a transaction this large is most likely full:
		// room for it at once, not grown from nothing.
		st.tx.changes, st.tx.shadows, st.tx.chunked = make([]cdc.Change, 0, s.opt.ChunkSize), nil, true
		return st.hand(ctx, b)
	}
	return nil
}

func (st *streamer) commit(ctx context.Context, m *pglogrepl.CommitMessage) error {
	s := st.s
	tx := st.tx
	st.tx = nil
	end := m.TransactionEndLSN
	if tx == nil {
		return fmt.Errorf("commit without begin at %s", m.CommitLSN)
	}
	s.update(func(x *Stats) {
		x.LastCommit, x.LastCommitSeen = m.CommitTime.UTC(), time.Now()
		x.Transactions++
		x.Changes += int64(tx.ordinal)
	})
	if len(tx.changes) == 0 && !tx.chunked {
		// Nothing of ours: nothing to make durable. Confirm it directly
		// when nothing else is pending.
		if f := pglogrepl.LSN(s.flushed.Load()); st.lastEmitted <= f && end > f {
			s.flushed.CompareAndSwap(uint64(f), uint64(end))
			st.lastEmitted = max(st.lastEmitted, end)
		}
		return nil
	}
	st.lastEmitted = end
	s.log.Debug("transaction", "lsn", end.String(), "changes", tx.ordinal)
	return st.hand(ctx, cdc.Batch{Source: s.name, Changes: tx.changes, Shadows: tx.shadows, Position: cdc.Position(end.String())})
}

// keyColumns are the table's primary key, or the relation's identity
// columns when it has none.
func keyColumns(info *tableInfo, rel *pglogrepl.RelationMessage) []string {
	if len(info.key) > 0 {
		return info.key
	}
	var out []string
	for _, c := range rel.Columns {
		if c.Flags&1 != 0 {
			out = append(out, c.Name)
		}
	}
	return out
}

// changePosition identifies a change: its transaction's commit LSN and its
// ordinal inside it — the same when the transaction is read again.
func changePosition(final pglogrepl.LSN, ordinal uint32) cdc.Position {
	// final.String()+"#"+ordinal, without fmt: one per change.
	b := make([]byte, 0, 32)
	b = strconv.AppendUint(b, uint64(final>>32), 16)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(uint32(final)), 16)
	b = append(b, '#')
	for i, c := range b {
		if 'a' <= c && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	b = strconv.AppendUint(b, uint64(ordinal), 10)
	return cdc.Position(b)
}

// deadlineCtx hands out a context ending at a given time, made again only
// when that time changes: receiving stops at the next status time, and one
// context serves every message until then rather than one per message.
type deadlineCtx struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc
	at     time.Time
}

func (d *deadlineCtx) until(at time.Time) context.Context {
	if d.ctx == nil || !d.at.Equal(at) {
		d.stop()
		d.ctx, d.cancel = context.WithDeadline(d.parent, at)
		d.at = at
	}
	return d.ctx
}

func (d *deadlineCtx) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}
