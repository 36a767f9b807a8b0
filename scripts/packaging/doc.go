// Package packaging holds the tests of how nfqfw is built, shipped and
// started: the container image (Dockerfile, .dockerignore), the systemd unit
// and its drop-ins under scripts/systemd, scripts/install.sh, a plain
// "go build" from a fresh clone, and the completeness of the command-line
// help. It has no code of its own.
//
// No Docker engine is needed: the tests lint the Dockerfile (with hadolint
// when it is installed, and with their own rules always), run the build
// stage's commands in a shell against the build context the .dockerignore
// leaves, check the result is a static, stripped, reproducible binary that
// reports the stamped version, and check that the final stage's Debian
// packages provide every binary the daemon runs. The systemd unit is checked
// with systemd-analyze verify when it is installed, and against the binary's
// own subcommands always.
//
// A fresh clone is built with the Go toolchain alone, and "go install
// github.com/nfqfw/nfqfw/cmd/nfqfw@v0.0.1" runs against a file module proxy
// made from it, offline; "nfqfw version" must report each build's version.
// Every command's help is checked for a usage line, summary, description
// and described flags.
//
// Everything runs unprivileged except one test: as root, it runs the daemon
// in a fresh network namespace with only CAP_NET_ADMIN and CAP_NET_RAW, as
// the unit and the image do. Tests that need root or a Debian tool skip
// with the reason, and fail instead when CI=true; hadolint, which Debian
// does not package, is always optional. The heavy tests (builds, clones,
// the daemon) skip in -short.
package packaging
