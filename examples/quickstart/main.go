// Command quickstart creates the quickstart's SQLite CRM (examples/quickstart/
// crm.db) from schema.sql when it is missing, and runs any SQL given with
// -sql, so the quickstart needs no sqlite3 client.
package main

import (
	"database/sql"
	_ "embed"
	"flag"
	"fmt"
	"os"

	_ "modernc.org/sqlite"
)

//go:embed schema.sql
var schema string

func main() {
	db := flag.String("db", "examples/quickstart/crm.db", "SQLite file")
	stmt := flag.String("sql", "", "SQL to run after making sure the schema exists")
	flag.Parse()
	conn, err := sql.Open("sqlite", "file:"+*db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	if _, err := conn.Exec(schema); err != nil {
		fail(fmt.Errorf("apply schema: %w", err))
	}
	if *stmt != "" {
		res, err := conn.Exec(*stmt)
		if err != nil {
			fail(err)
		}
		n, _ := res.RowsAffected()
		fmt.Printf("%d row(s) changed\n", n)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "quickstart:", err)
	os.Exit(1)
}
