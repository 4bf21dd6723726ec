package main

import (
	"errors"
	"flag"
	"io"
)

// newFlags returns a flag set that reports errors as usage errors.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("capisync "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// errHelp is returned after a command printed its usage for --help: the
// command stops there, reads no config, and exits 0.
var errHelp = errors.New("help printed")

// parse parses args and requires a --config value when config is non-nil.
func parse(fs *flag.FlagSet, args []string, config *string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return errHelp
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	if config != nil && *config == "" {
		return usagef("%s: --config FILE is required", fs.Name())
	}
	return nil
}
