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
		run: func(_ context.Context, _ []string, stdout io.Writer) error {
			fmt.Fprintf(stdout, "nfqfw %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	})
}
