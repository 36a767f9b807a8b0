package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"text/tabwriter"
	"time"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/rules"
)

// clientFlags are the flags of every subcommand that talks to the daemon.
type clientFlags struct {
	socket string
	config string
	json   bool
}

func (f *clientFlags) setup(fs *flag.FlagSet) {
	f.setupSocket(fs)
	fs.BoolVar(&f.json, "json", false, "print JSON instead of a table")
}

// setupSocket declares only the socket flags, for commands with nothing to
// print as JSON.
func (f *clientFlags) setupSocket(fs *flag.FlagSet) {
	fs.StringVar(&f.socket, "s", "", "control socket `path` (default: the config's, else "+defaultSocket+")")
	fs.StringVar(&f.config, "c", "", "read the control socket path from this config `file`")
}

// socketPath resolves the control socket: -s, else the config's, else the
// default. Of the config only control.socket is read: an error elsewhere
// in the file (an edit not yet reloaded) does not keep the client from a
// healthy daemon.
func (f *clientFlags) socketPath() (string, error) {
	if f.socket != "" {
		return f.socket, nil
	}
	if f.config != "" {
		return rules.ControlSocket(f.config)
	}
	return defaultSocket, nil
}

// call sends one request to the daemon.
func (f *clientFlags) call(ctx context.Context, cmd string, args, out any) error {
	path, err := f.socketPath()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return control.Call(ctx, path, cmd, args, out)
}

// newTableWriter returns the writer every table of the client commands is
// printed through: tab-separated cells aligned in columns two spaces apart.
// Flush it when done.
func newTableWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// writeTable prints rows as a table: the tab-separated header, then one
// line per row printed by row, aligned; without rows, the line empty alone.
func writeTable[R any](w io.Writer, rows []R, empty, header string, row func(tw io.Writer, r R)) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, empty)
		return err
	}
	tw := newTableWriter(w)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		row(tw, r)
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// buildVersion is the stamped version, else the module version the Go
// toolchain recorded: the tagged version for go install, or, since Go 1.24,
// a pseudo-version with the commit for a build in a checkout with VCS
// stamping on (v0.0.0-20260101120000-0123456789ab+dirty), else "dev".
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}
