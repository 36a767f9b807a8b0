package control

import (
	"context"
	"encoding/json"

	"github.com/nfqfw/nfqfw/engine/clock"
	"github.com/nfqfw/nfqfw/engine/knock"
)

// CmdKnockStatus is the command answered with a knock.Status, served by
// KnockHandlers.
const CmdKnockStatus = "knock.status"

// KnockHandlers returns the handler of CmdKnockStatus (no arguments) on k:
// its Status at its own clock (see knock.WithClock).
func KnockHandlers(k *knock.Knocker) map[string]Handler {
	return map[string]Handler{
		CmdKnockStatus: func(context.Context, json.RawMessage) (any, error) {
			return k.Status(clock.Mono(k.Now())), nil
		},
	}
}
