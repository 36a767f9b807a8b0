//go:build !linux

package iptables

import (
	"context"
	"fmt"

	"github.com/nfqfw/nfqfw/rules"
)

// DetectBackend returns ErrUnsupported: iptables exists only on Linux.
func DetectBackend(want rules.Backend) (Backend, error) {
	return Backend{}, fmt.Errorf("detect iptables backend: %w", ErrUnsupported)
}

// Install returns ErrUnsupported.
func (in *Installer) Install(ctx context.Context) error {
	return fmt.Errorf("install kernel rules: %w", ErrUnsupported)
}

// Replace returns ErrUnsupported.
func (in *Installer) Replace(ctx context.Context, c *rules.Config) error {
	return fmt.Errorf("replace kernel rules: %w", ErrUnsupported)
}

// Remove returns ErrUnsupported.
func (in *Installer) Remove(ctx context.Context) error {
	return fmt.Errorf("remove kernel rules: %w", ErrUnsupported)
}

// Check returns ErrUnsupported.
func (in *Installer) Check(ctx context.Context) (map[rules.Family]string, error) {
	return nil, fmt.Errorf("check kernel rules: %w", ErrUnsupported)
}

// Reinstall returns ErrUnsupported.
func (in *Installer) Reinstall(ctx context.Context, fams ...rules.Family) error {
	return fmt.Errorf("reinstall kernel rules: %w", ErrUnsupported)
}
