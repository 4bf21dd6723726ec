package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at build time: go build -ldflags "-X main.version=v1.2.3 -X
// main.commit=<sha> -X main.buildDate=2026-12-06T10:00:00Z" (make build
// and the Dockerfile do).
// Without them, the module version and the commit come from the build
// information Go records (go install .../cmd/capisync@v1.2.3, or a build
// in a git checkout).
var (
	version   = ""
	commit    = ""
	buildDate = ""
)

// versionCmd is `capisync version`: the module version, the commit it was
// built from, the build date, and the Go toolchain.
func versionCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if err := parse(newFlags("version", stderr), args, nil); err != nil {
		return err
	}
	v, rev, date := version, commit, buildDate
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.time":
				if date == "" {
					date = s.Value + " (commit time)"
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && rev != "" && version == "" {
			rev += "+dirty"
		}
	}
	if v == "" {
		v = "devel"
	}
	if rev == "" {
		rev = "unknown"
	}
	if date == "" {
		date = "unknown"
	}
	fmt.Fprintf(stdout, "capisync %s\ncommit %s\nbuilt %s\n%s %s/%s\n", v, rev, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
