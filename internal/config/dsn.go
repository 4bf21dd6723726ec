package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// checkDSN parses a source's DSN with the driver that will use it and
// returns what is wrong, never including the password.
func checkDSN(typ string, dsn Secret) error {
	raw := dsn.Reveal()
	var err error
	switch typ {
	case TypePostgres, TypePostgresPoll:
		_, err = pgconn.ParseConfig(raw)
	case TypeMySQL, TypeMySQLBinlog:
		_, err = mysql.ParseDSN(raw)
	case TypeSQLite:
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
// no password.
func DescribeDSN(typ string, dsn Secret) string {
	raw := dsn.Reveal()
	switch typ {
	case TypePostgres, TypePostgresPoll:
		if c, err := pgconn.ParseConfig(raw); err == nil {
			return fmt.Sprintf("postgres %s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
		}
	case TypeMySQL, TypeMySQLBinlog:
		if c, err := mysql.ParseDSN(raw); err == nil {
			return fmt.Sprintf("mysql %s@%s/%s", c.User, c.Addr, c.DBName)
		}
	case TypeSQLite:
		return "sqlite " + raw
	}
	return typ + " <unparseable dsn>"
}
