package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// dsnForm is the form of a source type's DSN (a registered type's, or
// the form itself).
func dsnForm(typ string) string {
	if t, ok := sourceType(typ); ok {
		return t.DSN
	}
	return typ
}

// checkDSN parses a DSN with the driver that will use it (typ is a source
// type or a DSN form) and returns what is wrong, never including the
// password.
func checkDSN(typ string, dsn Secret) error {
	raw := dsn.Reveal()
	var err error
	switch dsnForm(typ) {
	case DSNPostgres:
		_, err = pgconn.ParseConfig(raw)
	case DSNMySQL:
		_, err = mysql.ParseDSN(raw)
	case DSNSQLite:
		if strings.TrimSpace(raw) == "" {
			err = fmt.Errorf("empty path")
		}
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s", Scrub(err.Error(), raw))
}

// Scrub removes a DSN, and the password inside it, from a message.
func Scrub(msg, dsn string) string {
	if dsn == "" {
		return msg
	}
	if pw := dsnPassword(dsn); pw != "" {
		msg = strings.ReplaceAll(msg, pw, redacted)
	}
	return strings.ReplaceAll(msg, dsn, "<dsn>")
}

var kvPassword = regexp.MustCompile(`(?i)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// dsnPassword finds the password in a URL DSN, a key=value DSN or a MySQL
// user:pass@tcp(...) DSN.
func dsnPassword(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			return pw
		}
	}
	if m := kvPassword.FindStringSubmatch(dsn); m != nil {
		return strings.Trim(m[1], "'")
	}
	if at := strings.LastIndex(dsn, "@"); at > 0 && !strings.Contains(dsn, "://") {
		if _, pw, ok := strings.Cut(dsn[:at], ":"); ok {
			return pw
		}
	}
	return ""
}

// DescribeDSN names the host, user and database of a DSN for messages, with
// no password; typ is a source type or a DSN form.
func DescribeDSN(typ string, dsn Secret) string {
	raw := dsn.Reveal()
	switch dsnForm(typ) {
	case DSNPostgres:
		if c, err := pgconn.ParseConfig(raw); err == nil {
			return fmt.Sprintf("postgres %s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
		}
	case DSNMySQL:
		if c, err := mysql.ParseDSN(raw); err == nil {
			return fmt.Sprintf("mysql %s@%s/%s", c.User, c.Addr, c.DBName)
		}
	case DSNSQLite:
		return "sqlite " + raw
	}
	return typ + " <unparseable dsn>"
}
