package pipeline

// The tests' configs name source types, which the connectors declare.
import (
	_ "github.com/capisync/capisync/connectors/mysqlbinlog"
	_ "github.com/capisync/capisync/connectors/postgres"
	_ "github.com/capisync/capisync/connectors/sqlpoll"
)
