package mysqlbinlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

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
// _position, and BINLOG_GTID_POS for the GTID set). MySQL does not: there
// the snapshot starts under a global read lock (FLUSH TABLES WITH READ
// LOCK, as mysqldump --single-transaction --source-data does), held only
// until the position is read.
func (s *Source) snapshot(ctx context.Context, flavor string, out chan<- cdc.Batch) (position, error) {
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
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	var p position
	if flavor == gomysql.MariaDBFlavor && !s.lockSnapshot {
		p, err = mariadbSnapshot(ctx, conn)
	} else {
		p, err = s.lockedSnapshot(ctx, conn, flavor)
	}
	if err != nil {
		return position{}, err
	}
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

// startSnapshot starts the transaction the tables are read in.
func startSnapshot(ctx context.Context, conn *sql.Conn) error {
	for _, q := range []string{"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("initial load: %s: %w", q, err)
		}
	}
	return nil
}

// mariadbSnapshot starts the snapshot and reads the binlog position
// MariaDB says it is consistent with.
func mariadbSnapshot(ctx context.Context, conn *sql.Conn) (position, error) {
	if err := startSnapshot(ctx, conn); err != nil {
		return position{}, err
	}
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
	return p, nil
}

// lockedSnapshot starts the snapshot while no transaction can commit (a
// global read lock), reads the binlog position, and lets go: the snapshot
// holds what the binlog holds up to that position. The lock waits at most
// 10 s for running statements (lock_wait_timeout), and the whole server's
// writes wait for it meanwhile; it needs the RELOAD privilege.
func (s *Source) lockedSnapshot(ctx context.Context, conn *sql.Conn, flavor string) (position, error) {
	if _, err := conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = 10"); err != nil {
		return position{}, fmt.Errorf("initial load: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && (me.Number == 1227 || me.Number == 1044 || me.Number == 1045) {
			return position{}, &SetupError{fmt.Errorf("source %s: initial: emit on MySQL takes a global read lock for a moment (FLUSH TABLES WITH READ LOCK) to start its snapshot at a known binlog position, which needs the RELOAD privilege: GRANT RELOAD ON *.* TO the source's user, or use initial: skip (%v)", s.name, err)}
		}
		return position{}, fmt.Errorf("initial load: FLUSH TABLES WITH READ LOCK (waits for running statements, at most 10 s): %w", err)
	}
	unlock := func() error {
		_, err := conn.ExecContext(context.WithoutCancel(ctx), "UNLOCK TABLES")
		return err
	}
	p, err := func() (position, error) {
		if err := startSnapshot(ctx, conn); err != nil {
			return position{}, err
		}
		return current(ctx, conn, flavor)
	}()
	if uerr := unlock(); err == nil && uerr != nil {
		err = fmt.Errorf("initial load: UNLOCK TABLES: %w", uerr)
	}
	return p, err
}
