package main

import (
	"context"
	"io"
)

// These commands exist so that the command line is whole; each says which
// capability it waits for until that work lands.

func runCmd(context.Context, []string, io.Writer, io.Writer) error {
	return notYet{"run", "the store and pipeline (issue #5) and a source (#6 polling, #7 logical replication)"}
}

func statusCmd(context.Context, []string, io.Writer, io.Writer) error {
	return notYet{"status", "the embedded store (issue #5)"}
}

func dlqCmd(context.Context, []string, io.Writer, io.Writer) error {
	return notYet{"dlq", "the embedded store's dead-letter queue (issue #5)"}
}

type notYet struct{ cmd, what string }

func (e notYet) Error() string {
	return "`capisync " + e.cmd + "` is not available yet: it waits for " + e.what
}
