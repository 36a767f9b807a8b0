// Package store persists the daemon's stateful data (bans, recent lists,
// knock progress) across restarts, crash-safely.
//
// Save writes a versioned JSON envelope,
//
//	{"version":1,"saved_at":"2026-01-02T15:04:05Z","data":...}
//
// to a temporary file in the target's directory, fsyncs it, renames it over
// the target and fsyncs the directory: after a crash the file holds either
// the previous state or the new one, never a mix. Files are mode 0600.
//
// Load is forgiving in the way a firewall at boot must be: a missing file is
// an empty state, and a corrupt, truncated or unsupported file is moved
// aside (path + ".corrupt-<unixtime>") and reported with an error wrapping
// ErrCorrupt or ErrVersion, so the daemon logs it and starts empty instead
// of refusing to start. Save and Load may be called from any goroutine; two
// concurrent Saves to the same path are the caller's to serialise.
package store
