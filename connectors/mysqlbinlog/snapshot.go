package mysqlbinlog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/capisync/capisync/connectors/sqlpoll"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
)

// snapshotPosition names every change of the initial load: a row read
// again by a load started over (the daemon stopped before its end) has
// the same position, so the same default event id, and the store's id
// memory refuses it.
const snapshotPosition = "snapshot"

// snapshot is initial: emit. It reads every watched table in one
// consistent snapshot, hands each row over as an insert (in chunks of
// ChunkSize, values as the polling reader makes them), and returns the
// binlog position the snapshot is consistent with, where streaming starts:
// no change is missed or read twice. The last chunk carries that position
// as the checkpoint; a load stopped before it starts over.
//
// MariaDB gives the snapshot's binlog position (binlog_snapshot_file and
// _position, and BINLOG_GTID_POS for the GTID set); MySQL does not, and is
// refused.
func (s *Source) snapshot(ctx context.Context, flavor string, out chan<- cdc.Batch) (position, error) {
	if flavor != gomysql.MariaDBFlavor {
		return position{}, &SetupError{fmt.Errorf("source %s: initial: emit needs MariaDB (MySQL gives no binlog position for a consistent snapshot); use initial: skip", s.name)}
	}
	db, err := sqlpoll.OpenMySQL(s.cfg.DSN.Reveal(), s.log)
	if err != nil {
		return position{}, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return position{}, fmt.Errorf("initial load: %s", config.Scrub(err.Error(), s.cfg.DSN.Reveal()))
	}
	defer conn.Close()
	for _, q := range []string{"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return position{}, fmt.Errorf("initial load: %s: %w", q, err)
		}
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	var p position
	var name, value string
	for _, v := range []string{"binlog_snapshot_file", "binlog_snapshot_position"} {
		if err := conn.QueryRowContext(ctx, "SHOW STATUS LIKE '"+v+"'").Scan(&name, &value); err != nil {
			return position{}, fmt.Errorf("initial load: read %s: %w", v, err)
		}
		if v == "binlog_snapshot_file" {
			p.File = value
		} else if _, err := fmt.Sscan(value, &p.Pos); err != nil {
			return position{}, fmt.Errorf("initial load: %s %q: %w", v, value, err)
		}
	}
	var gtid sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", p.File, p.Pos).Scan(&gtid); err != nil {
		return position{}, fmt.Errorf("initial load: the GTID position of %s:%d: %w", p.File, p.Pos, err)
	}
	p.GTID = gtid.String
	s.log.Info("initial load: reading the tables in one snapshot", "consistent_with", p.String())

	now := time.Now().UTC()
	var chunk []cdc.Change
	total := 0
	for _, table := range s.cfg.Tables.Names {
		// The key, from the catalog (checkTables saw one at the session's start).
		_, pk, err := sqlpoll.MySQLTable(ctx, db, table)
		if err != nil {
			return position{}, fmt.Errorf("initial load of %s: %w", table, err)
		}
		if len(pk) == 0 {
			return position{}, &SetupError{fmt.Errorf("table %s has no primary key (or does not exist): a binlog source needs one to tell rows apart", table)}
		}
		schema, name, ok := strings.Cut(table, ".")
		if !ok {
			schema, name = s.dsn.DBName, table
		}
		rows, err := conn.QueryContext(ctx, fmt.Sprintf("SELECT * FROM `%s`.`%s`", schema, name))
		if err != nil {
			return position{}, fmt.Errorf("initial load of %s: %w", table, err)
		}
		var cols *cdc.Columns
		err = sqlpoll.ConvertRows(rows, sqlpoll.TypeMySQL, s.loc, func(names []string, vals []any) error {
			if cols == nil {
				cols = cdc.NewColumns(names...)
			}
			row := cdc.NewRow(cols, vals)
			k := make(map[string]any, len(pk))
			for _, c := range pk {
				k[c] = row.Value(c)
			}
			chunk = append(chunk, cdc.Change{Source: s.name, Table: table, Op: cdc.Insert, New: row, Key: cdc.RowOf(k),
				Position: cdc.Position(snapshotPosition), CommitTime: now})
			total++
			if len(chunk) < s.opt.ChunkSize {
				return nil
			}
			b := cdc.Batch{Source: s.name, Changes: chunk}
			chunk = nil
			select {
			case out <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		rows.Close()
		if err != nil {
			return position{}, fmt.Errorf("initial load of %s: %w", table, err)
		}
	}
	select {
	case out <- cdc.Batch{Source: s.name, Changes: chunk, Position: p.encode()}:
	case <-ctx.Done():
		return position{}, ctx.Err()
	}
	s.log.Info("initial load done; streaming the binlog from its position", "rows", total, "position", p.String())
	return p, nil
}
