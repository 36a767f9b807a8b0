package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
)

func init() {
	register(&command{
		name:    "version",
		summary: "print the version of this binary",
		help: `Prints the version, the Go toolchain and the platform. The version is
the one stamped at build time (-ldflags "-X main.version=v1.2.3", as "make
build" and the container image do), else the module version "go install"
recorded (a pseudo-version naming the Git commit, "+dirty" with uncommitted
changes, for a build in a checkout with -buildvcs on), else "dev".`,
		run: func(_ context.Context, _ []string, stdout io.Writer) error {
			fmt.Fprintf(stdout, "nfqfw %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	})
}
