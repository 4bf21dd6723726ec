package mysqlbinlog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/unicode"
)

// The binlog carries a text column's bytes in the column's character set;
// the polling reader gets them converted to UTF-8 by the server. The
// source converts them the same way, by the column's collation (from the
// table map) and the server's list of collations.

// charsets maps collation ids to character set names, as the server lists
// them.
func charsets(ctx context.Context, db *sql.DB) (map[uint64]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
	if err != nil {
		return nil, fmt.Errorf("read the server's collations: %w", err)
	}
	defer rows.Close()
	out := map[uint64]string{}
	for rows.Next() {
		var id uint64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, err
		}
		out[id] = strings.ToLower(name)
	}
	return out, rows.Err()
}

// mysqlEncodings are MySQL's names for character sets whose WHATWG name
// differs (MySQL's latin1 is Windows-1252).
var mysqlEncodings = map[string]encoding.Encoding{
	"latin1": charmap.Windows1252, "latin2": charmap.ISO8859_2, "latin5": charmap.ISO8859_9, "latin7": charmap.ISO8859_13,
	"greek": charmap.ISO8859_7, "hebrew": charmap.ISO8859_8, "koi8r": charmap.KOI8R, "koi8u": charmap.KOI8U,
	"cp1250": charmap.Windows1250, "cp1251": charmap.Windows1251, "cp1256": charmap.Windows1256, "cp1257": charmap.Windows1257,
	"cp850": charmap.CodePage850, "cp852": charmap.CodePage852, "cp866": charmap.CodePage866, "macroman": charmap.Macintosh,
	"ucs2": unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM), "utf16": unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM),
	"utf16le": unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM),
}

// decoderFor returns how to turn a character set's bytes into UTF-8 (nil:
// they are UTF-8 or ASCII already), or an error for one it does not know.
func decoderFor(charset string) (func([]byte) (string, error), error) {
	switch charset {
	case "", "utf8mb4", "utf8mb3", "utf8", "ascii", "binary":
		return nil, nil
	}
	enc, ok := mysqlEncodings[charset]
	if !ok {
		var err error
		if enc, err = htmlindex.Get(charset); err != nil {
			return nil, fmt.Errorf("character set %s is not supported by the binlog source", charset)
		}
	}
	return func(b []byte) (string, error) {
		out, err := enc.NewDecoder().Bytes(b)
		return string(out), err
	}, nil
}
