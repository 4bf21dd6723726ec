package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/capisync/capisync/internal/config"
)

// SetupError is a problem with the database's configuration that
// restarting will not fix; Msg says what to run. Creatable marks a missing
// publication or slot that capisync would create itself (create: true).
type SetupError struct {
	Msg       string
	Creatable bool
}

func (e *SetupError) Error() string { return e.Msg }

func setupErr(format string, args ...any) error {
	return &SetupError{Msg: fmt.Sprintf(format, args...)}
}

// slotInfo is what pg_replication_slots says of our slot.
type slotInfo struct {
	exists         bool
	plugin, db     string
	walStatus      string
	confirmedFlush string
	active         bool
}

// setup checks (and, when allowed, creates) everything logical replication
// needs: wal_level, the REPLICATION privilege, the tables, the publication
// (first) and the slot (second), and each table's replica identity.
func (s *Source) setup(ctx context.Context, conn *pgx.Conn) error {
	var wal string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&wal); err != nil {
		return fmt.Errorf("read wal_level: %w", err)
	}
	if wal != "logical" {
		return setupErr("source %s: wal_level is %q, logical replication needs logical. A DBA runs: ALTER SYSTEM SET wal_level = logical; then restarts PostgreSQL. (On a read replica before PostgreSQL 16 logical decoding is not possible: use type postgres_poll instead.)", s.name, wal)
	}
	var user string
	var canReplicate bool
	if err := conn.QueryRow(ctx, "SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&user, &canReplicate); err != nil {
		return fmt.Errorf("read role: %w", err)
	}
	if !canReplicate {
		return setupErr("source %s: role %s may not replicate. A DBA runs: ALTER ROLE %s WITH REPLICATION;", s.name, user, pgx.Identifier{user}.Sanitize())
	}
	var inRecovery bool
	var version int
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('server_version_num')::int").Scan(&inRecovery, &version); err == nil && inRecovery && version < 160000 {
		return setupErr("source %s: this server is a standby; logical decoding on a standby needs PostgreSQL 16+ with hot_standby_feedback. Point the source at the primary, or use type postgres_poll on the replica.", s.name)
	}
	for _, t := range s.cfg.Tables.Names {
		info, err := s.readTable(ctx, conn, t)
		if err != nil {
			return err
		}
		s.tables[t] = info
	}
	if err := s.ensurePublication(ctx, conn); err != nil {
		return err
	}
	if err := s.ensureSlot(ctx, conn); err != nil {
		return err
	}
	return s.checkReplicaIdentity()
}

// readTable reads a table's key columns, replica identity and column types.
func (s *Source) readTable(ctx context.Context, conn *pgx.Conn, name string) (*tableInfo, error) {
	schema, table, _ := strings.Cut(name, ".")
	var oid uint32
	var ident string
	err := conn.QueryRow(ctx, `SELECT c.oid, c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, schema, table).Scan(&oid, &ident)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, setupErr("source %s: table %s does not exist (or the user may not see it)", s.name, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read table %s: %w", name, err)
	}
	info := &tableInfo{name: name, oid: oid, identity: ident}
	if err := s.checkColumns(ctx, conn, name, oid); err != nil {
		return nil, err
	}
	if s.opt.Track != nil {
		info.want = map[string]bool{}
		for _, c := range s.opt.Track(name) {
			if c == "*" {
				info.want = nil
				break
			}
			info.want[c] = true
		}
	}
	rows, err := conn.Query(ctx, `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = $1 AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`, oid)
	if err != nil {
		return nil, fmt.Errorf("read primary key of %s: %w", name, err)
	}
	for rows.Next() {
		var col string
		if err := rows.Scan(&col); err != nil {
			rows.Close()
			return nil, err
		}
		info.key = append(info.key, col)
		if info.want != nil {
			info.want[col] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Domains decode as their base type.
	rows, err = conn.Query(ctx, `SELECT t.oid, t.typbasetype FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = $1 AND a.attnum > 0 AND t.typtype = 'd'`, oid)
	if err != nil {
		return nil, fmt.Errorf("read column types of %s: %w", name, err)
	}
	for rows.Next() {
		var dom, base uint32
		if err := rows.Scan(&dom, &base); err != nil {
			rows.Close()
			return nil, err
		}
		s.domains[dom] = base
	}
	rows.Close()
	return info, rows.Err()
}

// checkColumns refuses a table that lacks a column a rule reads (a typo
// such as new.emial would otherwise read nil and drop the key silently).
func (s *Source) checkColumns(ctx context.Context, conn *pgx.Conn, name string, oid uint32) error {
	if s.opt.ColumnUsers == nil {
		return nil
	}
	users := s.opt.ColumnUsers(name)
	if len(users) == 0 {
		return nil
	}
	rows, err := conn.Query(ctx, "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum", oid)
	if err != nil {
		return fmt.Errorf("read the columns of %s: %w", name, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read the columns of %s: %w", name, err)
	}
	if problems := config.MissingColumns(name, cols, users); len(problems) > 0 {
		return setupErr("source %s: %s; its columns are %s", s.name, strings.Join(problems, "; "), strings.Join(cols, ", "))
	}
	return nil
}

func (s *Source) quotedTables() string {
	q := make([]string, len(s.cfg.Tables.Names))
	for i, t := range s.cfg.Tables.Names {
		q[i] = quoteTable(t)
	}
	return strings.Join(q, ", ")
}

func quoteTable(t string) string {
	schema, table, _ := strings.Cut(t, ".")
	return pgx.Identifier{schema, table}.Sanitize()
}

func (s *Source) ensurePublication(ctx context.Context, conn *pgx.Conn) error {
	pub := pgx.Identifier{s.o.Publication}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", s.o.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("read publication: %w", err)
	}
	if !exists {
		create := fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s", pub, s.quotedTables())
		if !s.create() {
			return &SetupError{Msg: fmt.Sprintf("source %s: publication %s does not exist and create is false. A DBA runs: %s;", s.name, s.o.Publication, create), Creatable: true}
		}
		if why, err := s.cannotPublish(ctx, conn, s.cfg.Tables.Names, ""); err != nil || why != "" {
			if err != nil {
				return err
			}
			return setupErr("source %s: publication %s does not exist and role %s cannot create it: %s. A DBA runs: %s; (capisync then uses it), or grants what is missing", s.name, s.o.Publication, conn.Config().User, why, create)
		}
		if s.verifyOnly {
			return &SetupError{Msg: "publication " + s.o.Publication + " missing", Creatable: true}
		}
		if _, err := conn.Exec(ctx, create); err != nil {
			return permanentIfDenied(fmt.Errorf("source %s: %s: %w", s.name, create, err))
		}
		s.log.Info("created publication", "publication", s.o.Publication, "tables", s.quotedTables())
		return nil
	}
	rows, err := conn.Query(ctx, "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1", s.o.Publication)
	if err != nil {
		return fmt.Errorf("read publication tables: %w", err)
	}
	in := map[string]bool{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		in[t] = true
	}
	rows.Close()
	var missing []string
	for _, t := range s.cfg.Tables.Names {
		if !in[t] {
			missing = append(missing, quoteTable(t))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	alter := fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s", pub, strings.Join(missing, ", "))
	if !s.create() {
		return &SetupError{Msg: fmt.Sprintf("source %s: publication %s lacks %s. A DBA runs: %s;", s.name, s.o.Publication, strings.Join(missing, ", "), alter), Creatable: true}
	}
	var missingNames []string
	for _, t := range s.cfg.Tables.Names {
		if !in[t] {
			missingNames = append(missingNames, t)
		}
	}
	if why, err := s.cannotPublish(ctx, conn, missingNames, s.o.Publication); err != nil || why != "" {
		if err != nil {
			return err
		}
		return setupErr("source %s: publication %s lacks %s and role %s cannot add them: %s. A DBA runs: %s;", s.name, s.o.Publication, strings.Join(missing, ", "), conn.Config().User, why, alter)
	}
	if s.verifyOnly {
		return &SetupError{Msg: "publication " + s.o.Publication + " lacks tables", Creatable: true}
	}
	if _, err := conn.Exec(ctx, alter); err != nil {
		return permanentIfDenied(fmt.Errorf("source %s: %s: %w", s.name, alter, err))
	}
	s.log.Warn("added tables to the publication; their earlier changes are not replayed", "publication", s.o.Publication, "tables", strings.Join(missing, ", "))
	return nil
}

// cannotPublish says why the connected role may not create a publication
// for tables (or, when pub is given, add them to it), or "" when it may:
// PostgreSQL wants a superuser, or CREATE on the database and ownership
// of every table (and of the publication).
func (s *Source) cannotPublish(ctx context.Context, conn *pgx.Conn, tables []string, pub string) (string, error) {
	var super, canCreate bool
	var db string
	if err := conn.QueryRow(ctx, "SELECT rolsuper, has_database_privilege(current_database(), 'CREATE'), current_database() FROM pg_roles WHERE rolname = current_user").Scan(&super, &canCreate, &db); err != nil {
		return "", fmt.Errorf("read the role's privileges: %w", err)
	}
	if super {
		return "", nil
	}
	var why []string
	if pub == "" && !canCreate {
		why = append(why, "it lacks CREATE on database "+db)
	}
	if pub != "" {
		var owns bool
		if err := conn.QueryRow(ctx, "SELECT pg_has_role(current_user, pubowner, 'USAGE') FROM pg_publication WHERE pubname = $1", pub).Scan(&owns); err != nil {
			return "", fmt.Errorf("read the owner of publication %s: %w", pub, err)
		}
		if !owns {
			why = append(why, "it does not own publication "+pub)
		}
	}
	var notOwned []string
	for _, t := range tables {
		if info := s.tables[t]; info != nil {
			var owns bool
			if err := conn.QueryRow(ctx, "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = $1", info.oid).Scan(&owns); err != nil {
				return "", fmt.Errorf("read the owner of %s: %w", t, err)
			}
			if !owns {
				notOwned = append(notOwned, t)
			}
		}
	}
	if len(notOwned) > 0 {
		why = append(why, "it does not own "+strings.Join(notOwned, ", "))
	}
	return strings.Join(why, " and "), nil
}

// permanentIfDenied makes an insufficient_privilege error a SetupError:
// trying again will not grant it.
func permanentIfDenied(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return &SetupError{Msg: err.Error() + " (a DBA must grant the privilege, or run the statement)"}
	}
	return err
}

func (s *Source) readSlot(ctx context.Context, conn *pgx.Conn) (slotInfo, error) {
	var si slotInfo
	err := conn.QueryRow(ctx, `SELECT plugin, coalesce(database, ''), coalesce(wal_status, ''), coalesce(confirmed_flush_lsn::text, ''), active
		FROM pg_replication_slots WHERE slot_name = $1`, s.o.Slot).Scan(&si.plugin, &si.db, &si.walStatus, &si.confirmedFlush, &si.active)
	if errors.Is(err, pgx.ErrNoRows) {
		return si, nil
	}
	si.exists = err == nil
	return si, err
}

func (s *Source) ensureSlot(ctx context.Context, conn *pgx.Conn) error {
	si, err := s.readSlot(ctx, conn)
	if err != nil {
		return fmt.Errorf("read slot: %w", err)
	}
	db := conn.Config().Database
	if !si.exists && s.checkpointed {
		// Creating the slot now would start from now: every change since
		// the checkpoint would be skipped without a word.
		return setupErr("source %s: the store's checkpoint is at LSN %s of replication slot %s, but the slot does not exist (dropped, or this is another server). A new slot would start from now and skip every change since then. If that gap is accepted, run: capisync slot reset --config FILE --source %s (it forgets the checkpoint), then start again; otherwise restore the slot's server.",
			s.name, pglogrepl.LSN(s.flushed.Load()), s.o.Slot, s.name)
	}
	if !si.exists {
		create := fmt.Sprintf("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')", s.o.Slot)
		if !s.create() {
			return &SetupError{Msg: fmt.Sprintf("source %s: replication slot %s does not exist and create is false. A DBA runs: %s;", s.name, s.o.Slot, create), Creatable: true}
		}
		if s.verifyOnly {
			return &SetupError{Msg: "slot " + s.o.Slot + " missing", Creatable: true}
		}
		if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", s.o.Slot); err != nil {
			return fmt.Errorf("source %s: create slot %s: %w", s.name, s.o.Slot, err)
		}
		s.log.Info("created replication slot", "slot", s.o.Slot)
		return nil
	}
	switch {
	case si.plugin != "pgoutput":
		return setupErr("source %s: slot %s uses plugin %s, capisync needs pgoutput. Give capisync its own slot (slot: ...) or, if the slot is unused, a DBA runs: SELECT pg_drop_replication_slot('%s');", s.name, s.o.Slot, si.plugin, s.o.Slot)
	case si.db != db:
		return setupErr("source %s: slot %s belongs to database %s, not %s; give this source another slot name", s.name, s.o.Slot, si.db, db)
	case si.walStatus == "lost":
		return setupErr("source %s: slot %s is invalidated (wal_status lost): PostgreSQL removed WAL it still needed (max_slot_wal_keep_size), so changes were lost. A DBA drops it (capisync slot drop, or SELECT pg_drop_replication_slot('%s');) and capisync recreates it on start; changes in the gap must be re-sent (a polling backfill).", s.name, s.o.Slot, s.o.Slot)
	}
	return nil
}

// checkReplicaIdentity refuses tables whose rules read old values without
// REPLICA IDENTITY FULL (unless old values come from shadows).
func (s *Source) checkReplicaIdentity() error {
	if s.o.OldValues == "shadow" || s.opt.RulesReadingOld == nil {
		return nil
	}
	var problems []string
	for _, t := range s.cfg.Tables.Names {
		info := s.tables[t]
		if info.identity == "f" {
			continue
		}
		if rules := s.opt.RulesReadingOld(t, info.key...); len(rules) > 0 {
			problems = append(problems, fmt.Sprintf("table %s has REPLICA IDENTITY %s, so updates carry only its key, but rule(s) %s read old values (old.* or changed()). A DBA runs: ALTER TABLE %s REPLICA IDENTITY FULL; — or set old_values: shadow on the source",
				t, identityName(info.identity), strings.Join(rules, ", "), quoteTable(t)))
		}
	}
	if len(problems) > 0 {
		return setupErr("source %s: %s", s.name, strings.Join(problems, "; "))
	}
	return nil
}

func identityName(c string) string {
	switch c {
	case "d":
		return "DEFAULT"
	case "n":
		return "NOTHING"
	case "i":
		return "USING INDEX"
	}
	return "FULL"
}

// Verify checks, without creating or changing anything, what Run's setup
// checks: connection, wal_level, REPLICATION, tables, publication, slot and
// replica identity. With create: true a missing publication or slot is
// fine (Run creates it) and is reported in note.
func (s *Source) Verify(ctx context.Context) (note string, err error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	v, err := New(s.name, s.cfg, nil, s.opt)
	if err != nil {
		return "", err
	}
	v.verifyOnly = true // look, never create
	err = v.setup(ctx, conn)
	var se *SetupError
	if errors.As(err, &se) && se.Creatable && s.create() {
		return "publication or slot missing: capisync run creates them", nil
	}
	return "", err
}
