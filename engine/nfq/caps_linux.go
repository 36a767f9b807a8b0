package nfq

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// CheckPermission returns ErrPermission unless this process holds
// CAP_NET_ADMIN in its effective set: nfnetlink refuses every queue command
// without it. The daemon calls it before anything else, so that an operator
// who is not root reads that, not a failure halfway through the start.
func CheckPermission() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData // version 3: two 32-bit words
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	if data[0].Effective&(1<<unix.CAP_NET_ADMIN) == 0 {
		return ErrPermission
	}
	return nil
}
