// Package sdnotify speaks systemd's notification protocol (sd_notify(3)):
// READY=1, STOPPING=1, STATUS=..., WATCHDOG=1 as datagrams to the socket
// named by $NOTIFY_SOCKET, and the watchdog interval from $WATCHDOG_USEC.
// Without $NOTIFY_SOCKET (not started by systemd with Type=notify) every
// call does nothing. It is the few lines the protocol needs; a library
// would bring more than it saves.
package sdnotify
