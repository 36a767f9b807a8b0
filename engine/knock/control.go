package knock

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nfqfw/nfqfw/engine/control"
	"github.com/nfqfw/nfqfw/rules"
)

// StatusCommand is the control socket command answered with a Status.
const StatusCommand = "knock.status"

// ControlHandlers returns the control socket handlers of the Knocker:
// StatusCommand ("knock.status", no arguments) answers Status at the
// Knocker's clock (see WithClock).
func (k *Knocker) ControlHandlers() map[string]control.Handler {
	return map[string]control.Handler{
		StatusCommand: func(context.Context, json.RawMessage) (any, error) {
			return k.Status(k.clock().UnixNano()), nil
		},
	}
}

// Find returns the knock named name.
func Find(knocks []rules.Knock, name string) (rules.Knock, error) {
	for _, k := range knocks {
		if k.Name == name {
			return k, nil
		}
	}
	return rules.Knock{}, fmt.Errorf("find knock %q: %w", name, ErrUnknownKnock)
}
