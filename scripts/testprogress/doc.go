// Command testprogress reads "go test -json" on its standard input and
// prints what "go test" prints (the ok and FAIL line of each package, the
// output of failed tests, build errors), plus a line as each top-level test
// that ran for a second or more finishes, so that a long suite (the
// privileged end-to-end tests take minutes) shows its progress. It exits 1
// when a test or a package failed or the input is not test2json; run it
// with "set -o pipefail" so go test's own status counts too.
//
//	go test -json ./... | go run ./scripts/testprogress
package main
