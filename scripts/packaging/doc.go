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
// Everything runs unprivileged except the checks that say otherwise; tests
// that need something this machine lacks skip with the reason (and fail
// instead when CI=true, where that something must be installed).
package packaging
