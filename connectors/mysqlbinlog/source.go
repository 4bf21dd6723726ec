package mysqlbinlog

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"

	"github.com/capisync/capisync/internal/backoff"
	"github.com/capisync/capisync/internal/cdc"
	"github.com/capisync/capisync/internal/config"
)

// Options tune a Source.
type Options struct {
	Logger *slog.Logger
	// ColumnUsers maps each column rules read on a table to the names of
	// those rules: a column the table lacks is an error naming them, at
	// start and at validate --connect.
	ColumnUsers func(table string) map[string][]string
	// ChunkSize is how many changes of one transaction are handed over at
	// once (default 1000): a 200,000-row transaction streams in bounded
	// memory; only its last chunk carries the checkpoint.
	ChunkSize int
	// IdleCheckpoint is how often, at most, a position past transactions
	// with no watched change is handed over as a checkpoint (default 1 s).
	IdleCheckpoint time.Duration
	// LagEvery is how often Status.Behind is measured (default 10 s).
	LagEvery time.Duration
}

// Source reads a MySQL or MariaDB binlog.
type Source struct {
	name   string
	cfg    config.Source
	o      *Config // the type's own keys
	opt    Options
	log    *slog.Logger
	loc    *time.Location
	dsn    *mysql.Config
	tables map[string]string // "db.table" -> the name in the config
	// lockSnapshot: initial: emit starts its snapshot under a global read
	// lock, as on MySQL, on MariaDB too (the tests' way to run MySQL's
	// path on the MariaDB they have).
	lockSnapshot bool

	mu     sync.Mutex
	status Status
}

// Status is what the source reports for readiness and status.
type Status struct {
	Flavor     string    // mysql or mariadb
	Connected  bool      // streaming the binlog
	Position   string    // the last checkpoint handed over ("": none yet)
	LastCommit time.Time // when the last transaction read was committed
	Err        string    // why the source stopped, when it did
	// Behind is how many bytes the server has written to its binlog after
	// the last checkpoint handed over (-1: not known yet), measured every
	// LagEvery while connected.
	Behind int64
	// The last checkpoint's binlog file and position, Behind's start.
	file string
	pos  uint32
}

// New checks the config; it connects nothing.
func New(name string, cfg config.Source, opt Options) (*Source, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = 1000
	}
	if opt.IdleCheckpoint <= 0 {
		opt.IdleCheckpoint = time.Second
	}
	if opt.LagEvery <= 0 {
		opt.LagEvery = 10 * time.Second
	}
	dsn, err := mysql.ParseDSN(cfg.DSN.Reveal())
	if err != nil {
		return nil, fmt.Errorf("source %s: invalid dsn: %s", name, config.Scrub(err.Error(), cfg.DSN.Reveal()))
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, fmt.Errorf("source %s: timezone: %w", name, err)
	}
	s := &Source{status: Status{Behind: -1}, name: name, cfg: cfg, o: configOf(cfg), opt: opt, log: opt.Logger.With("source", name), loc: loc, dsn: dsn, tables: map[string]string{}}
	for _, t := range cfg.Tables.Names {
		db, table, ok := strings.Cut(t, ".")
		if !ok {
			db, table = dsn.DBName, t
		}
		if db == "" {
			return nil, fmt.Errorf("source %s: table %s names no database and the dsn has none: write database.table", name, t)
		}
		s.tables[db+"."+table] = t
	}
	return s, nil
}

// Status reports the source's state.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *Source) setStatus(f func(*Status)) {
	s.mu.Lock()
	f(&s.status)
	s.mu.Unlock()
}

// Ack does nothing: a binlog keeps no reader position on the server; the
// checkpoint is in the store.
func (s *Source) Ack(context.Context, cdc.Position) error { return nil }

// open connects with the driver, for queries.
func (s *Source) open() (*sql.DB, error) {
	cfg := s.dsn.Clone()
	cfg.ParseTime = false
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

// Check connects and says what the server lacks for a binlog reader: each
// problem names the setting and what to change. It returns the flavor. A
// watched table that is missing, has no primary key, or lacks a column a
// rule reads is the error.
func (s *Source) Check(ctx context.Context) (string, []string, error) {
	db, err := s.open()
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %s", config.DescribeDSN(s.cfg.Type, s.cfg.DSN), config.Scrub(err.Error(), s.cfg.DSN.Reveal()))
	}
	defer db.Close()
	flavor, problems, err := check(ctx, db, s.o.ServerID)
	if err != nil {
		return flavor, problems, fmt.Errorf("%s: %s", config.DescribeDSN(s.cfg.Type, s.cfg.DSN), config.Scrub(err.Error(), s.cfg.DSN.Reveal()))
	}
	return flavor, problems, s.checkTables(ctx, db)
}

// Retention is how long the server keeps its binlog files before it
// purges them (binlog_expire_logs_seconds, or expire_logs_days); 0: it
// does not purge them by itself. A source down longer than that loses its
// position.
func (s *Source) Retention(ctx context.Context) (time.Duration, error) {
	db, err := s.open()
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var secs sql.NullInt64
	secsErr := db.QueryRowContext(ctx, "SELECT @@binlog_expire_logs_seconds").Scan(&secs)
	if secsErr == nil && secs.Int64 > 0 {
		return time.Duration(secs.Int64) * time.Second, nil
	}
	var days sql.NullFloat64
	if err := db.QueryRowContext(ctx, "SELECT @@expire_logs_days").Scan(&days); err != nil {
		if secsErr == nil {
			return 0, nil // MySQL 8.4 has no expire_logs_days; 0 seconds: no purge
		}
		return 0, fmt.Errorf("read the binlog retention: %s", config.Scrub(err.Error(), s.cfg.DSN.Reveal()))
	}
	return time.Duration(days.Float64 * float64(24*time.Hour)), nil
}

func check(ctx context.Context, db *sql.DB, serverID uint32) (string, []string, error) {
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return "", nil, fmt.Errorf("connect: %w", err)
	}
	flavor := gomysql.MySQLFlavor
	if strings.Contains(strings.ToLower(version), "mariadb") {
		flavor = gomysql.MariaDBFlavor
	}
	var problems []string
	vars := map[string]string{}
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata', 'binlog_row_value_options', 'server_id', 'log_slave_updates', 'log_replica_updates')")
	if err != nil {
		return flavor, nil, fmt.Errorf("read the server's binlog settings: %w", err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return flavor, nil, err
		}
		vars[strings.ToLower(k)] = strings.ToUpper(v)
	}
	rows.Close()
	want := []struct{ name, value, how string }{
		{"log_bin", "ON", "start the server with log_bin (a restart)"},
		{"binlog_format", "ROW", "SET GLOBAL binlog_format = ROW, and in the server's config"},
		{"binlog_row_image", "FULL", "SET GLOBAL binlog_row_image = FULL, and in the server's config"},
		{"binlog_row_metadata", "FULL", "SET GLOBAL binlog_row_metadata = FULL (MariaDB 10.5+, MySQL 8.0.1+), and in the server's config: the table maps then carry column names"},
	}
	for _, w := range want {
		if got := vars[w.name]; got != w.value && !(w.name == "log_bin" && got == "1") {
			problems = append(problems, fmt.Sprintf("%s is %q, need %s: %s", w.name, strings.ToLower(got), w.value, w.how))
		}
	}
	if strings.Contains(vars["binlog_row_value_options"], "PARTIAL_JSON") {
		// MySQL only: JSON changes written as diffs, not whole values.
		problems = append(problems, "binlog_row_value_options is PARTIAL_JSON, need it empty: SET GLOBAL binlog_row_value_options = '', and in the server's config")
	}
	if primary := replicatesFrom(ctx, db, flavor); primary != "" {
		name := "log_slave_updates"
		if _, ok := vars["log_replica_updates"]; ok {
			name = "log_replica_updates" // MySQL 8.0.26+
		}
		if v := vars[name]; v != "ON" && v != "1" {
			problems = append(problems, fmt.Sprintf("the server is a replica (of %s) and %s is %q: what it replicates is not written to its own binlog, so none of it would be read; set %s = ON in the server's config (a restart), or read the primary", primary, name, strings.ToLower(v), name))
		}
	}
	if vars["server_id"] == strconv.FormatUint(uint64(serverID), 10) {
		problems = append(problems, fmt.Sprintf("server_id %d is the server's own: give the source another, unique among the server's replicas and readers", serverID))
	}
	var grants []string
	if rows, err := db.QueryContext(ctx, "SHOW GRANTS"); err == nil {
		for rows.Next() {
			var g string
			if rows.Scan(&g) == nil {
				grants = append(grants, strings.ToUpper(g))
			}
		}
		rows.Close()
	}
	all := strings.Join(grants, "\n")
	for _, priv := range []string{"REPLICATION SLAVE", "REPLICATION CLIENT"} {
		if !strings.Contains(all, priv) && !strings.Contains(all, "ALL PRIVILEGES ON *.*") &&
			!(priv == "REPLICATION CLIENT" && strings.Contains(all, "BINLOG MONITOR")) {
			problems = append(problems, fmt.Sprintf("the user lacks %s: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the source's user", priv))
		}
	}
	return flavor, problems, nil
}

// replicatesFrom names the primary the server replicates from ("host:port"
// of its replication connections), or "" when it has none or the user may
// not see them (MariaDB 10.5+ asks for SLAVE MONITOR, MySQL for
// REPLICATION CLIENT).
func replicatesFrom(ctx context.Context, db *sql.DB, flavor string) string {
	stmts := []string{"SHOW REPLICA STATUS", "SHOW SLAVE STATUS"} // MySQL 8.0.22+, then older
	if flavor == gomysql.MariaDBFlavor {
		stmts = []string{"SHOW ALL SLAVES STATUS"} // named connections too
	}
	for _, q := range stmts {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			continue
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var primaries []string
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if rows.Scan(ptrs...) != nil {
				break
			}
			host, port := "", ""
			for i, c := range cols {
				switch c {
				case "Master_Host", "Source_Host":
					host = string(vals[i])
				case "Master_Port", "Source_Port":
					port = string(vals[i])
				}
			}
			primaries = append(primaries, net.JoinHostPort(host, port))
		}
		return strings.Join(primaries, ", ")
	}
	return ""
}

// querier is a database or one connection of it.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// current is the server's binlog position now.
func current(ctx context.Context, db querier, flavor string) (position, error) {
	var p position
	var err error
	if flavor == gomysql.MariaDBFlavor {
		err = db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&p.GTID)
	} else {
		var mode string
		if db.QueryRowContext(ctx, "SELECT @@gtid_mode").Scan(&mode) == nil && strings.EqualFold(mode, "ON") {
			err = db.QueryRowContext(ctx, "SELECT @@gtid_executed").Scan(&p.GTID)
			p.GTID = strings.ReplaceAll(p.GTID, "\n", "")
		}
	}
	if err != nil {
		return p, fmt.Errorf("read the GTID position: %w", err)
	}
	p.File, p.Pos, err = binlogEnd(ctx, db, binlogStatus)
	return p, err
}

// binlogStatus are the statements that give the server's binlog file and
// position, tried in turn while the server does not know one: MySQL 8.4
// removed SHOW MASTER STATUS for SHOW BINARY LOG STATUS (8.2+).
var binlogStatus = []string{"SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"}

// binlogEnd is the server's binlog file and position now.
func binlogEnd(ctx context.Context, db querier, stmts []string) (string, uint32, error) {
	for i, q := range stmts {
		rows, err := db.QueryContext(ctx, q)
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1064 && i+1 < len(stmts) { // ER_PARSE_ERROR
			continue
		}
		if err != nil {
			return "", 0, fmt.Errorf("read the binlog position (%s): %w", q, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		if !rows.Next() {
			return "", 0, fmt.Errorf("%s returned nothing: is log_bin on?", q)
		}
		vals := make([]any, len(cols))
		var file string
		var pos uint64
		vals[0], vals[1] = &file, &pos
		for i := 2; i < len(cols); i++ {
			vals[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(vals...); err != nil {
			return "", 0, fmt.Errorf("read the binlog position (%s): %w", q, err)
		}
		return file, uint32(pos), rows.Err()
	}
	return "", 0, errors.New("no statement to read the binlog position with")
}

// SetupError is a problem reconnecting cannot fix: the server's settings
// or grants, a checkpoint that is not a binlog position.
type SetupError struct{ Err error }

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

// Run streams from the position after from (nil: the server's position
// now) until ctx ends. A lost connection or a server restart is retried
// with backoff, from the last checkpoint handed over; so is a position the
// server no longer has (purged binlog), which Status and /readyz show
// with the position until an operator acts. It returns an error only for
// a SetupError.
func (s *Source) Run(ctx context.Context, from cdc.Position, out chan<- cdc.Batch) error {
	var start *position
	if from != nil {
		p, err := parsePosition(from)
		if err != nil {
			err = &SetupError{fmt.Errorf("source %s: checkpoint: %w (was it written by another source type?)", s.name, err)}
			s.setStatus(func(st *Status) { st.Err = err.Error() })
			return err
		}
		start = &p
	}
	bo := backoff.Backoff{Base: time.Second, Cap: 30 * time.Second}
	for {
		streamed, err := s.session(ctx, &start, out)
		s.setStatus(func(st *Status) {
			st.Connected = false
			if err != nil && ctx.Err() == nil {
				st.Err = err.Error()
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		var se *SetupError
		if errors.As(err, &se) {
			return err
		}
		if streamed {
			bo.Reset()
		}
		wait := bo.Next()
		s.log.Warn("binlog reading stopped; reconnecting", "error", err, "in", wait.Round(time.Millisecond))
		if !backoff.Sleep(ctx, wait, nil) {
			return nil
		}
	}
}

// session is one connection's life. *start is the position to read after
// (nil: the server's now, handed over at once as a checkpoint); it follows
// the checkpoints handed over. streamed says whether events were read.
func (s *Source) session(ctx context.Context, start **position, out chan<- cdc.Batch) (bool, error) {
	db, err := s.open()
	if err != nil {
		return false, err
	}
	defer db.Close()
	flavor, problems, err := check(ctx, db, s.o.ServerID)
	if err != nil {
		return false, err
	}
	if len(problems) > 0 {
		return false, &SetupError{fmt.Errorf("source %s: the server is not ready for a binlog source: %s", s.name, strings.Join(problems, "; "))}
	}
	s.setStatus(func(st *Status) { st.Flavor = flavor })
	if err := s.checkTables(ctx, db); err != nil {
		return false, err
	}
	srv := server{flavor: flavor}
	if srv.charsets, err = charsets(ctx, db); err != nil {
		return false, err
	}
	if srv.tls, err = binlogTLS(ctx, db, s.dsn); err != nil {
		return false, err
	}
	if *start == nil {
		var p position
		if s.o.Initial == "emit" {
			// The last chunk of the load carries the checkpoint.
			if p, err = s.snapshot(ctx, flavor, out); err != nil {
				return false, err
			}
		} else {
			if p, err = current(ctx, db, flavor); err != nil {
				return false, err
			}
			s.log.Info("no checkpoint: reading the binlog from the server's position now", "position", p.String())
			// Checkpointed at once: a daemon stopped before the first
			// transaction it reads must not start again from a later "now".
			select {
			case out <- cdc.Batch{Source: s.name, Position: p.encode()}:
			case <-ctx.Done():
				return false, nil
			}
		}
		*start = &p
	}
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		s.watchLag(lagCtx, db)
	}()
	defer func() { stopLag(); <-lagDone }()
	return s.stream(ctx, srv, start, out)
}

// watchLag measures Status.Behind every LagEvery until ctx ends (every
// second until there is a checkpoint to measure from).
func (s *Source) watchLag(ctx context.Context, db *sql.DB) {
	for {
		wait := s.opt.LagEvery
		if st := s.Status(); st.file == "" {
			wait = min(wait, time.Second)
		} else if n, err := behind(ctx, db, st.file, st.pos); err == nil {
			s.setStatus(func(st *Status) { st.Behind = n })
		} else if ctx.Err() == nil {
			s.log.Debug("could not measure how far behind the binlog source is", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// behind is how many bytes the server has written to its binlog after
// file:pos (SHOW BINARY LOGS); -1 when it no longer has file.
func behind(ctx context.Context, db *sql.DB, file string, pos uint32) (int64, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return -1, fmt.Errorf("list the binlog files: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return -1, err
	}
	vals := make([]any, len(cols)) // Log_name, File_size (and MySQL's Encrypted)
	var name string
	var size int64
	vals[0], vals[1] = &name, &size
	for i := 2; i < len(cols); i++ {
		vals[i] = new(sql.RawBytes)
	}
	n, found := int64(0), false
	for rows.Next() {
		if err := rows.Scan(vals...); err != nil {
			return -1, err
		}
		switch {
		case found:
			n += size
		case name == file:
			found, n = true, max(0, size-int64(pos))
		}
	}
	if err := rows.Err(); err != nil {
		return -1, err
	}
	if !found {
		return -1, nil
	}
	return n, nil
}

// stream reads events after *start, moving *start to each checkpoint it
// hands over.
//
// On MariaDB a checkpoint with a GTID is read from its binlog file and
// position: asked for a GTID, the server reads its binlog file from the
// start to find it (a 1 GiB file took 0.4 s before the first event). The
// first transaction read must then be the one after the checkpoint's GTID
// in its domain; if it is not (another server, or a file that was purged
// or renamed), or the server refuses the file before that, the same
// checkpoint is read again from its GTID, which is what it stands for.
func (s *Source) stream(ctx context.Context, srv server, startp **position, out chan<- cdc.Batch) (streamed bool, err error) {
	start := **startp
	if srv.flavor == gomysql.MariaDBFlavor && start.GTID != "" && start.File != "" {
		streamed, err = s.streamFrom(ctx, srv, startp, out, true)
		var fe *fileStartError
		if !errors.As(err, &fe) {
			return streamed, err
		}
		s.log.Info("reading the binlog from the checkpoint's GTID: its file and position do not lead to it on this server", "checkpoint", start.String(), "why", fe.Error())
	}
	return s.streamFrom(ctx, srv, startp, out, false)
}

// fileStartError: a checkpoint's file and position did not lead to the
// transaction after its GTID.
type fileStartError struct{ err error }

func (e *fileStartError) Error() string { return e.err.Error() }

// server is what a session learned of the server before reading its
// binlog.
type server struct {
	flavor   string            // gomysql.MySQLFlavor or MariaDBFlavor
	charsets map[uint64]string // collation id -> character set
	tls      *tls.Config       // nil: the binlog is read unencrypted
}

// binlogTLS is the TLS the binlog connection uses: the DSN's (tls=true,
// skip-verify, or preferred when the server offers it, as the SQL
// connections do), so a DSN that asks for TLS never has its password and
// rows sent in the clear by the replication connection.
func binlogTLS(ctx context.Context, db *sql.DB, dsn *mysql.Config) (*tls.Config, error) {
	if dsn.TLS == nil {
		return nil, nil
	}
	if dsn.AllowFallbackToPlaintext { // tls=preferred
		var name, cipher string
		if err := db.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
			return nil, fmt.Errorf("read whether the server's connections are encrypted: %w", err)
		}
		if cipher == "" {
			return nil, nil
		}
	}
	return dsn.TLS.Clone(), nil
}

// syncerConfig is how the source registers with the server as a replica
// and how the library parses what it sends.
func (s *Source) syncerConfig(srv server) replication.BinlogSyncerConfig {
	host, portStr, err := net.SplitHostPort(s.dsn.Addr)
	if err != nil {
		host, portStr = s.dsn.Addr, "3306"
	}
	port, _ := strconv.Atoi(portStr)
	return replication.BinlogSyncerConfig{
		ServerID: s.o.ServerID, Flavor: srv.flavor, Host: host, Port: uint16(port),
		User: s.dsn.User, Password: s.dsn.Passwd, TLSConfig: srv.tls,
		// DATETIME and TIMESTAMP as time.Time (wall-clock fields in UTC,
		// and the instant): formatting them to text and parsing it back
		// was a tenth of the source's CPU. Zero and pre-1970 dates still
		// arrive as text (see convert).
		ParseTime: true,
		// MySQL's binary JSON as MySQL writes it as text (key order,
		// 1.0 kept a double, dates without a time), as the polling
		// reader reads it, but for spacing: no space after ':' and ','.
		RenderJSONAsMySQLText: true,
		HeartbeatPeriod:       10 * time.Second, ReadTimeout: 30 * time.Second,
		DisableRetrySync: true, // a lost connection ends the session; Run starts again from the checkpoint
		Logger:           slog.New(slog.DiscardHandler),
		// Events parsed ahead of the reader: a rows event holds up to
		// binlog_row_event_max_size (8 KiB) of rows, so the library's
		// default of 10,240 could hold a million rows of a large
		// transaction in memory. 64 keep the reader busy.
		EventCacheCount: 64,
	}
}

// streamFrom is stream from the checkpoint's GTID, or (atFile) from its
// file and position.
func (s *Source) streamFrom(ctx context.Context, srv server, startp **position, out chan<- cdc.Batch, atFile bool) (streamed bool, err error) {
	start := **startp
	// Behind is measured from here until a checkpoint moves on.
	s.setStatus(func(st *Status) { st.file, st.pos = start.File, start.Pos })
	syncer := replication.NewBinlogSyncer(s.syncerConfig(srv))
	defer syncer.Close()
	var streamer *replication.BinlogStreamer
	r := reader{s: s, out: out, pos: start, shapes: map[uint64]*shape{}, sent: startp, charsets: srv.charsets}
	if start.GTID != "" {
		set, err := gomysql.ParseGTIDSet(srv.flavor, start.GTID)
		if err != nil {
			return false, &SetupError{fmt.Errorf("source %s: checkpoint %s: %w", s.name, start, err)}
		}
		if atFile {
			// The library keeps the GTID set only when asked for a GTID:
			// the reader keeps it from here.
			r.gset, r.verify = set.(*gomysql.MariadbGTIDSet), true
			streamer, err = syncer.StartSync(gomysql.Position{Name: start.File, Pos: start.Pos})
		} else {
			streamer, err = syncer.StartSyncGTID(set)
		}
		if err != nil {
			return false, fmt.Errorf("start reading the binlog at %s: %w", start, err)
		}
	} else {
		if streamer, err = syncer.StartSync(gomysql.Position{Name: start.File, Pos: start.Pos}); err != nil {
			return false, fmt.Errorf("start reading the binlog at %s: %w", start, err)
		}
	}
	connected := false
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return streamed, nil
			}
			var me *gomysql.MyError
			if errors.As(err, &me) && sameServerID(me) {
				// MariaDB's 4052, MySQL's 1236 with this message: not a
				// purged binlog, whatever the code.
				return streamed, fmt.Errorf("another binlog reader connected with this source's server_id %d (a second capisync, or a replica with the same id), and the server dropped this one: give each reader a server_id of its own (%s)", s.o.ServerID, me.Message)
			}
			if r.verify {
				return streamed, &fileStartError{fmt.Errorf("at %s:%d: %w", start.File, start.Pos, err)}
			}
			if errors.As(err, &me) && me.Code == gomysql.ER_MASTER_FATAL_ERROR_READING_BINLOG {
				return streamed, fmt.Errorf("the server cannot send the binlog after %s (purged, or a GTID it does not have): %s; "+
					"nothing after it is read. To go on and accept the gap: stop capisync, run capisync slot reset --source %s, start it",
					start, me.Message, s.name)
			}
			return streamed, fmt.Errorf("read the binlog after %s: %w", r.pos, err)
		}
		if !connected {
			// The server answers: reading (an error about the position,
			// if any, comes before the first event).
			connected = true
			s.setStatus(func(st *Status) { st.Connected, st.Err = true, "" })
		}
		switch ev.Event.(type) {
		case *replication.RotateEvent, *replication.FormatDescriptionEvent, *replication.HeartbeatEvent:
		default:
			streamed = true // backoff starts over after the next failure
		}
		if err := r.handle(ctx, ev); err != nil {
			if ctx.Err() != nil {
				return streamed, nil
			}
			return streamed, err
		}
	}
}

// sameServerID says whether the server dropped the connection because
// another reader registered with the same server_id.
func sameServerID(me *gomysql.MyError) bool {
	return me.Code == 4052 || strings.Contains(strings.ToLower(me.Message), "same server_uuid/server_id")
}

// reader turns events into batches.
type reader struct {
	s   *Source
	out chan<- cdc.Batch
	pos position // the last transaction end read
	// gset is the GTID set read so far when the stream was started at a
	// file and position (the library keeps none then); verify: the first
	// transaction is still to be checked against it.
	gset     *gomysql.MariadbGTIDSet
	verify   bool
	warned   map[string]bool   // the warnings logged (see firstWarning)
	shapes   map[uint64]*shape // table maps of watched tables by table id
	charsets map[uint64]string // collation id -> character set
	// The transaction being read.
	txGTID  string
	changes []cdc.Change
	rows    int // changes of this transaction so far (positions)
	when    time.Time
	// pending: a checkpoint past transactions with no watched change, not
	// yet handed over.
	pending  bool
	lastSent time.Time
	// XA transactions: inXA says the one being read is (XA START to XA
	// PREPARE); prepared holds the changes of those prepared and not yet
	// committed or rolled back, by XID (as xidText writes it).
	inXA     bool
	prepared map[string][]cdc.Change
	// inTx: the statements read are inside a transaction (after a BEGIN,
	// or a MariaDB GTID event of a group that is not standalone), so none
	// but its commit or a ROLLBACK ends it.
	inTx   bool
	sent   **position // the last checkpoint handed over (Run restarts there)
	posBuf []byte     // where change positions are cut from
}

func (r *reader) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		r.pos.File, r.pos.Pos = string(e.NextLogName), uint32(e.Position)
	case *replication.MariadbGTIDEvent:
		if r.verify {
			prev, ok := r.gset.Sets[e.GTID.DomainID]
			if !ok || e.GTID.SequenceNumber != prev.SequenceNumber+1 {
				return &fileStartError{fmt.Errorf("at %s:%d the transaction is %s, not the one after %s", r.pos.File, r.pos.Pos, e.GTID.String(), r.gset.String())}
			}
			r.verify = false
		}
		if r.gset != nil {
			if err := r.gset.AddSet(&e.GTID); err != nil {
				return fmt.Errorf("at %s: GTID %s: %w", r.pos, e.GTID.String(), err)
			}
		}
		r.begin(e.GTID.String())
		r.inXA = e.Flags&mariadbPreparedXA != 0 // XA START is in the GTID event
		// A group of more than one statement, ended by its commit; a
		// standalone one (DDL) ends with its statement.
		r.inTx = e.Flags&replication.BINLOG_MARIADB_FL_STANDALONE == 0
	case *replication.GTIDEvent:
		r.begin(mysqlGTID(ev.Header, e))
	case *replication.GtidTaggedLogEvent: // MySQL 8.3+: uuid:tag:gno
		r.begin(mysqlGTID(ev.Header, &e.GTIDEvent))
	case *replication.HeartbeatEvent:
		// The server is idle: hand over a checkpoint left pending.
		if r.pending && r.txGTID == "" && len(r.changes) == 0 {
			return r.send(ctx, cdc.Batch{Source: r.s.name, Position: r.pos.encode()})
		}
	case *replication.TableMapEvent:
		key := string(e.Schema) + "." + string(e.Table)
		name, ok := r.s.tables[key]
		if !ok {
			delete(r.shapes, e.TableID)
			return nil
		}
		sh, err := newShape(name, e, r.charsets)
		if err != nil {
			return fmt.Errorf("at %s: %w", r.pos, err)
		}
		r.shapes[e.TableID] = sh
	case *replication.RowsEvent:
		sh := r.shapes[e.TableID]
		if sh == nil {
			return nil
		}
		if err := r.rowsEvent(ctx, ev.Header, sh, e); err != nil {
			return err
		}
	case *replication.XIDEvent:
		return r.commit(ctx, ev.Header, e.GSet)
	case *replication.GenericEvent:
		if ev.Header.EventType == replication.XA_PREPARE_LOG_EVENT {
			return r.xaPrepare(ctx, ev.Header, e.Data)
		}
	case *replication.TransactionPayloadEvent:
		// MySQL with binlog_transaction_compression: a transaction's
		// events after its GTID come compressed in one payload, which the
		// library decodes. They are read as if they came one by one.
		for _, inner := range e.Events {
			if err := r.handle(ctx, inner); err != nil {
				return err
			}
		}
	case *replication.QueryEvent:
		q := strings.TrimSpace(string(e.Query))
		switch {
		case strings.EqualFold(q, "BEGIN"):
			if r.txGTID == "" {
				r.begin("")
			}
			r.inTx = true
		case strings.EqualFold(q, "COMMIT"):
			return r.commit(ctx, ev.Header, e.GSet)
		default:
			// Outside a transaction: DDL, committed by itself. Every
			// table map carries the table's column names, so rows after
			// an ALTER TABLE map by their new names: nothing to reload.
			// It is logged for a watched table. A row change written as a
			// statement (a session with binlog_format STATEMENT or MIXED)
			// has no rows to read: that is a warning. Inside a
			// transaction (SAVEPOINT, ROLLBACK TO, statements) a
			// statement ends nothing, but a ROLLBACK ends a transaction
			// whose non-transactional changes stay.
			verb := statementVerb(q)
			if verb == "XA" {
				return r.xaStatement(ctx, ev.Header, e.GSet, q)
			}
			ends := !r.inTx || strings.EqualFold(q, "ROLLBACK")
			for key, name := range r.s.tables {
				db, table, _ := strings.Cut(key, ".")
				if !mentions(q, table) || string(e.Schema) != db && !mentions(q, db) {
					continue
				}
				switch verb {
				case "INSERT", "UPDATE", "DELETE", "REPLACE":
					r.s.log.Warn("a change to a watched table was written to the binlog as a statement (binlog_format STATEMENT or MIXED in that session), not as rows: it is not read",
						"table", name, "at", r.pos.String(), "statement", truncate(q, 200))
				case "TRUNCATE":
					r.s.log.Warn("a watched table was truncated: the binlog holds the statement, not its rows, so no delete is read for them",
						"table", name, "at", r.pos.String())
				default:
					if !r.inTx {
						r.s.log.Info("schema change of a watched table read from the binlog; its rows are read by the column names the binlog gives from here on",
							"table", name, "statement", truncate(q, 200))
					}
				}
			}
			if !ends {
				return nil
			}
			return r.commit(ctx, ev.Header, e.GSet)
		}
	}
	return nil
}

// XA transactions are written to the binlog in two parts: at XA PREPARE
// the rows (XA START, the rows, XA END, the prepare event), later XA
// COMMIT or XA ROLLBACK as a transaction of its own. The rows are handed
// over at the commit, and never if rolled back; until then no checkpoint
// passes the prepare (see send), so a restart reads them again. A one-phase
// XA commit is an ordinary transaction (MariaDB), or ends with a prepare
// event that says so (MySQL).

// mariadbPreparedXA is the flag of a MariaDB GTID event that starts an XA
// transaction's prepared part (FL_PREPARED_XA).
const mariadbPreparedXA = 64

// xaStatement reads the XA statement q.
func (r *reader) xaStatement(ctx context.Context, h *replication.EventHeader, gset gomysql.GTIDSet, q string) error {
	f := strings.Fields(q)
	if len(f) < 2 {
		return nil
	}
	xid := ""
	if len(f) > 2 {
		xid = strings.ToLower(f[2])
	}
	switch strings.ToUpper(f[1]) {
	case "START", "BEGIN": // MySQL writes it as a statement
		r.inXA = true
		return nil
	case "END":
		return nil
	case "COMMIT":
		if r.inXA { // XA COMMIT ... ONE PHASE, in the transaction
			r.inXA = false
			return r.commit(ctx, h, gset)
		}
		if held, ok := r.prepared[xid]; ok {
			delete(r.prepared, xid)
			r.changes, r.rows = append(held, r.changes...), r.rows+len(held)
		}
	case "ROLLBACK":
		if held, ok := r.prepared[xid]; ok {
			delete(r.prepared, xid)
			r.s.log.Info("an XA transaction prepared in the binlog was rolled back: its changes are not read", "xid", xid, "changes", len(held), "at", r.pos.String())
		}
		r.inXA = false
	}
	return r.commit(ctx, h, gset)
}

// xaPrepare reads an XA prepare event (data: one_phase, formatID,
// gtrid_length, bqual_length, the XID's bytes): the XA transaction being
// read is prepared, its changes wait for its commit; or, one-phase, it is
// committed.
func (r *reader) xaPrepare(ctx context.Context, h *replication.EventHeader, data []byte) error {
	r.inXA = false
	if len(data) < 13 {
		return fmt.Errorf("at %s: an XA prepare event of %d bytes", r.pos, len(data))
	}
	format := int32(binary.LittleEndian.Uint32(data[1:]))
	gtrid, bqual := int(binary.LittleEndian.Uint32(data[5:])), int(binary.LittleEndian.Uint32(data[9:]))
	if len(data) < 13+gtrid+bqual {
		return fmt.Errorf("at %s: an XA prepare event's XID is cut short", r.pos)
	}
	if data[0] != 0 { // one phase: committed here
		return r.commit(ctx, h, nil)
	}
	xid := xidText(format, data[13:13+gtrid], data[13+gtrid:13+gtrid+bqual])
	if len(r.changes) > 0 {
		if r.prepared == nil {
			r.prepared = map[string][]cdc.Change{}
		}
		r.prepared[xid] = r.changes
		r.s.log.Info("an XA transaction is prepared: its changes are read at its XA COMMIT, and the checkpoint waits until then", "xid", xid, "changes", len(r.changes), "at", r.pos.String())
	}
	r.pos.Pos, r.pos.Row = h.LogPos, 0
	r.begin("")
	return nil
}

// xidText is an XID as XA COMMIT and XA ROLLBACK name it in the binlog
// (X'gtrid',X'bqual',formatID), lower-cased.
func xidText(format int32, gtrid, bqual []byte) string {
	return fmt.Sprintf("x'%x',x'%x',%d", gtrid, bqual, format)
}

// mysqlGTID is the GTID a MySQL transaction's GTID event gives it; ""
// for an anonymous transaction (gtid_mode OFF, MySQL's default): its event
// names no GTID (a zero server uuid and number), and its changes are
// named by where it starts instead, which tells them apart.
func mysqlGTID(h *replication.EventHeader, e *replication.GTIDEvent) string {
	if h != nil && h.EventType == replication.ANONYMOUS_GTID_EVENT || e.GNO == 0 {
		return ""
	}
	set, err := e.GTIDNext()
	if err != nil {
		return ""
	}
	return set.String()
}

// partialImage logs, once per table and session, that a row image left
// columns out.
func (r *reader) partialImage(table string) {
	if r.firstWarning("image\x00" + table) {
		r.s.log.Warn("a row image in the binlog leaves columns out (a session with binlog_row_image MINIMAL or NOBLOB): those columns are absent from its changes, and rules reading them see no value",
			"table", table, "at", r.pos.String())
	}
}

// odd logs a value that did not convert, once per column and error in a
// session.
func (r *reader) odd(col string, err error) {
	if r.firstWarning(col + "\x00" + err.Error()) {
		r.s.log.Warn("a value read from the binlog does not convert; it is passed on as its text", "column", col, "at", r.pos.String(), "error", err)
	}
}

// firstWarning says whether a warning of this key is the session's first
// (at most 100 keys are remembered; past them nothing more is logged).
func (r *reader) firstWarning(key string) bool {
	if r.warned[key] || len(r.warned) >= 100 {
		return false
	}
	if r.warned == nil {
		r.warned = map[string]bool{}
	}
	r.warned[key] = true
	return true
}

// statementVerb is a query event's first word, upper-cased.
func statementVerb(q string) string {
	verb, _, _ := strings.Cut(strings.TrimLeft(q, "( \t\n"), " ")
	return strings.ToUpper(verb)
}

func (r *reader) begin(gtid string) {
	r.txGTID, r.changes, r.rows, r.inTx, r.inXA = gtid, nil, 0, false, false
}

func (r *reader) rowsEvent(ctx context.Context, h *replication.EventHeader, sh *shape, e *replication.RowsEvent) error {
	when := time.Unix(int64(h.Timestamp), 0).UTC()
	var op cdc.Op
	step := 1
	switch h.EventType {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2,
		replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		op = cdc.Insert
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2,
		replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		op = cdc.Delete
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
		op, step = cdc.Update, 2
	case replication.PARTIAL_UPDATE_ROWS_EVENT:
		return fmt.Errorf("table %s at %s: a partial JSON update (binlog_row_value_options PARTIAL_JSON in the writing session) carries JSON changes as diffs, which the binlog source cannot read; set binlog_row_value_options to '' on the server and in the sessions that write", sh.table, r.pos)
	default:
		return fmt.Errorf("table %s at %s: row event %s is not supported", sh.table, r.pos, h.EventType)
	}
	// A session may write its rows with binlog_row_image MINIMAL or NOBLOB
	// whatever the server's setting: the columns an image leaves out are
	// absent from the change (not NULL), as an unchanged TOASTed value is
	// from a PostgreSQL source.
	image := func(j int) (cdc.Row, error) {
		var skipped []int
		if j < len(e.SkippedColumns) {
			skipped = e.SkippedColumns[j]
		}
		if len(skipped) > 0 {
			r.partialImage(sh.table)
		}
		return sh.row(e.Rows[j], skipped, r.s.loc, r.odd)
	}
	for i := 0; i+step <= len(e.Rows); i += step {
		c := cdc.Change{Source: r.s.name, Table: sh.table, Op: op, CommitTime: when}
		row, err := image(i)
		if err != nil {
			return fmt.Errorf("at %s: %w", r.pos, err)
		}
		switch op {
		case cdc.Insert:
			c.New = row
		case cdc.Delete:
			c.Old = row
		case cdc.Update:
			c.Old = row
			if c.New, err = image(i + 1); err != nil {
				return fmt.Errorf("at %s: %w", r.pos, err)
			}
		}
		if op == cdc.Delete {
			c.Key = sh.keyOf(c.Old, cdc.Row{})
		} else {
			c.Key = sh.keyOf(c.New, c.Old)
		}
		r.rows++
		// A change is named by its transaction's GTID, or without GTIDs
		// by where the transaction starts (the end of the one before),
		// and its place in it: the same whenever it is read.
		p := position{GTID: r.txGTID, Row: r.rows}
		if p.GTID == "" {
			p.GTID, p.File, p.Pos = "-", r.pos.File, r.pos.Pos
		}
		// Positions are cut from a buffer shared by a chunk's changes: one
		// allocation per few hundred instead of two per change.
		if cap(r.posBuf)-len(r.posBuf) < 64+len(p.GTID)+len(p.File) {
			r.posBuf = make([]byte, 0, 16<<10)
		}
		c.Position = p.appendTo(r.posBuf)
		r.posBuf = r.posBuf[:len(r.posBuf)+len(c.Position)]
		if r.changes == nil {
			r.changes = make([]cdc.Change, 0, min(r.s.opt.ChunkSize, 1024))
		}
		r.changes = append(r.changes, c)
		if len(r.changes) >= r.s.opt.ChunkSize && !r.inXA {
			// Part of a large transaction: no checkpoint (a restart reads
			// the whole transaction again, and the id memory refuses what
			// was queued).
			if err := r.send(ctx, cdc.Batch{Source: r.s.name, Changes: r.changes}); err != nil {
				return err
			}
			r.changes = nil
		}
	}
	return nil
}

// commit ends a transaction at the event whose header is h; gset is the
// server's GTID set after it (nil when reading by file and position).
func (r *reader) commit(ctx context.Context, h *replication.EventHeader, gset gomysql.GTIDSet) error {
	r.pos.Pos = h.LogPos
	when := time.Unix(int64(h.Timestamp), 0)
	r.s.setStatus(func(st *Status) { st.LastCommit = when })
	if gset != nil {
		r.pos.GTID = gset.String()
	} else if r.gset != nil {
		r.pos.GTID = r.gset.String()
	}
	r.pos.Row = 0
	changes, rows := r.changes, r.rows
	r.begin("")
	r.changes = nil // handed over below
	if rows == 0 {
		// Nothing watched in it: the checkpoint moves at most every
		// IdleCheckpoint (or at the next heartbeat).
		r.pending = true
		if time.Since(r.lastSent) < r.s.opt.IdleCheckpoint {
			return nil
		}
	}
	return r.send(ctx, cdc.Batch{Source: r.s.name, Changes: changes, Position: r.pos.encode()})
}

func (r *reader) send(ctx context.Context, b cdc.Batch) error {
	if b.Position != nil && len(r.prepared) > 0 {
		// An XA transaction prepared before here is not committed yet:
		// a restart must read it again, so no checkpoint passes it.
		b.Position = nil
		if len(b.Changes) == 0 {
			return nil
		}
	}
	select {
	case r.out <- b:
	case <-ctx.Done():
		return ctx.Err()
	}
	if b.Position != nil {
		r.pending, r.lastSent = false, time.Now()
		p := r.pos
		*r.sent = &p
		pos := r.pos.String()
		r.s.setStatus(func(st *Status) { st.Position, st.file, st.pos = pos, r.pos.File, r.pos.Pos })
	}
	return nil
}

// mentions says whether the statement q names ident as a word.
func mentions(q, ident string) bool {
	lq, li := strings.ToLower(q), strings.ToLower(ident)
	for i := 0; ; {
		j := strings.Index(lq[i:], li)
		if j < 0 {
			return false
		}
		j += i
		before := j == 0 || !isIdentByte(lq[j-1])
		after := j+len(li) == len(lq) || !isIdentByte(lq[j+len(li)])
		if before && after {
			return true
		}
		i = j + 1
	}
}

func isIdentByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= 0x80
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
