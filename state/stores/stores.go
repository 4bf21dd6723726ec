// Package stores opens the store the configuration names: the one place
// above state/ that knows its implementations (state/bolt, one embedded
// file, and state/pgstate, in PostgreSQL).
package stores

import (
	"context"
	"time"

	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/state"
	"github.com/capisync/capisync/state/bolt"
	"github.com/capisync/capisync/state/pgstate"
)

// Open opens the configured store: bolt exclusively (state.ErrLocked,
// wrapped, when another process holds it); postgres shared, the daemons
// taking turns through its lease (state.Leaser).
func Open(ctx context.Context, c config.State) (state.Store, error) {
	if c.Type == config.StatePostgres {
		// A transaction left idle (its daemon frozen) ends well before
		// the lease would pass to a standby.
		idle := max(c.LeaseTTL.Duration/2, 500*time.Millisecond)
		return pgstate.Open(ctx, c.DSN.Reveal(), pgstate.Options{Schema: c.Schema, IdleInTransaction: idle})
	}
	return bolt.Open(c.Path, bolt.Options{})
}
