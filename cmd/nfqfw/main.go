// Command nfqfw is a stateful firewall daemon and its command-line client.
//
// Run "nfqfw help" for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. Each lives in its own file and registers itself
// with register from an init function.
type command struct {
	name    string
	args    string // argument synopsis, e.g. "[-c FILE]"
	summary string // one line
	help    string // paragraphs after the synopsis
	// setup declares the flags; run gets the parsed flag set's remaining
	// arguments. Output goes to stdout; errors are returned.
	setup func(fs *flag.FlagSet)
	run   func(ctx context.Context, args []string, stdout io.Writer) error
	// flagsOnly: the command takes no arguments besides its flags; any is
	// refused as a usage error before run is called.
	flagsOnly bool
	// signals are delivered to signalsFromStart from the moment the
	// command is known, before its flags are parsed: such a signal is
	// queued for the command, never fatal.
	signals []os.Signal
}

// signalsFromStart receives the signals the running command asked for.
var signalsFromStart = make(chan os.Signal, 4)

// init registers the daemon's signals before anything else of main runs:
// a SIGHUP that arrives while "nfqfw run" starts must be queued for it,
// not kill it (the default action).
func init() {
	if len(os.Args) > 1 && os.Args[1] == "run" {
		signal.Notify(signalsFromStart, syscall.SIGHUP, syscall.SIGUSR2)
	}
}

// exitStatus is an error that sets the process's exit status.
type exitStatus struct {
	code int
	err  error
}

func (e exitStatus) Error() string { return e.err.Error() }
func (e exitStatus) Unwrap() error { return e.err }

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// errUsage makes main print the subcommand's usage and exit 2. Commands
// return it through usagef, which says what was wrong.
var errUsage = errors.New("usage")

// usageError is a wrong command line: main prints the reason, then the
// command's usage, and exits 2.
type usageError struct{ reason string }

func (e *usageError) Error() string        { return e.reason }
func (e *usageError) Is(target error) bool { return target == errUsage }

// usagef returns a usageError with the reason.
func usagef(format string, args ...any) error {
	return &usageError{reason: fmt.Sprintf(format, args...)}
}

// noArgs refuses positional arguments for a command that takes none.
func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (this command takes flags only)", args[0])
	}
	return nil
}

// version is stamped at build time: -ldflags "-X main.version=..."
var version = "dev"

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(argv []string, stdout, stderr io.Writer) int {
	if len(argv) > 0 && (argv[0] == "--version" || argv[0] == "-version") {
		argv = append([]string{"version"}, argv[1:]...)
	}
	if len(argv) == 0 || argv[0] == "help" || argv[0] == "-h" || argv[0] == "--help" {
		if len(argv) > 1 {
			if c, ok := commands[argv[1]]; ok {
				fs := newFlagSet(c, stdout)
				fs.Usage()
				return 0
			}
		}
		usage(stdout)
		if len(argv) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[argv[0]]
	if !ok {
		fmt.Fprintf(stderr, "nfqfw: unknown command %q\n\n", argv[0])
		usage(stderr)
		return 2
	}
	if len(c.signals) > 0 {
		signal.Notify(signalsFromStart, c.signals...)
		defer signal.Stop(signalsFromStart)
	}
	fs := newFlagSet(c, stderr)
	if err := fs.Parse(argv[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if c.flagsOnly {
		err = noArgs(fs.Args())
	}
	if err == nil {
		err = c.run(ctx, fs.Args(), stdout)
	}
	if err != nil {
		if errors.Is(err, errUsage) {
			if err != errUsage {
				fmt.Fprintf(stderr, "nfqfw %s: %v\n\n", c.name, err)
			}
			fs.Usage()
			return 2
		}
		fmt.Fprintf(stderr, "nfqfw %s: %v\n", c.name, err)
		var st exitStatus
		if errors.As(err, &st) {
			return st.code
		}
		return 1
	}
	return 0
}

func newFlagSet(c *command, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("nfqfw "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	if c.setup != nil {
		c.setup(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: nfqfw %s %s\n\n%s\n", c.name, c.args, c.summary)
		if c.help != "" {
			fmt.Fprintf(out, "\n%s\n", strings.TrimSpace(c.help))
		}
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(out, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `nfqfw is a stateful firewall: the kernel keeps established traffic, every
NEW flow is decided by the nfqfw engine through NFQUEUE.

Usage: nfqfw COMMAND [flags] [args]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s  %s\n", width, n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun \"nfqfw help COMMAND\" or \"nfqfw COMMAND -h\" for a command's flags.\n")
}

// defaultConfig is where the daemon and the CLI look for the config file.
const defaultConfig = "/etc/nfqfw/nfqfw.yaml"

// defaultSocket is the control socket path used when no config names one.
const defaultSocket = "/run/nfqfw/nfqfw.sock"
