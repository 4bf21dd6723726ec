// Command capisync turns database changes into Meta Conversions API events.
// Each subcommand lives in its own file; this file maps errors to exit
// codes: 0 success, 1 runtime failure, 2 bad usage or bad config.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/capisync/capisync/internal/config"
)

type command struct {
	name, usage string
	run         func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run --config FILE                      run the daemon", runCmd},
		{"validate", "validate --config FILE [--connect]     check the config and compile every rule", validateCmd},
		{"init", "init --source-type T --dsn D --table T  draft a starter config from tables", initCmd},
		{"rules", "rules test --config FILE --changes F    print the events each change yields", rulesCmd},
		{"status", "status --config FILE                   checkpoints, outbox, dead letters, lag", statusCmd},
		{"dlq", "dlq list|retry|drop --config FILE       inspect and replay dead letters", dlqCmd},
		{"slot", "slot drop|reset --config FILE --source NAME  drop a logical source's slot; forget its checkpoint", slotCmd},
		{"version", "version                                print the version", versionCmd},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError marks bad usage (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// run executes one command line and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(stderr, c.run(ctx, args[1:], stdout, stderr))
		}
	}
	fmt.Fprintf(stderr, "capisync: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return 2
}

func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var problems config.Problems
	var usage usageError
	switch {
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errSilent):
		return 1
	case errors.As(err, &problems):
		fmt.Fprintln(stderr, problems.Error())
		fmt.Fprintf(stderr, "capisync: %d problem(s) in the config\n", len(problems))
		return 2
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "capisync: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "capisync: %v\n", err)
		return 1
	}
}

// errSilent is returned by a command that already told the user what went
// wrong and only needs the runtime-failure exit code.
var errSilent = errors.New("failed")

func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "capisync — database changes to Meta Conversions API events\n\nUsage:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  capisync %s\n", c.usage)
	}
}
