// Package stores opens the store the configuration names: the one place
// above state/ that knows its implementations (state/bolt, one embedded
// file, today).
package stores

import (
	"github.com/capisync/capisync/internal/config"
	"github.com/capisync/capisync/state"
	"github.com/capisync/capisync/state/bolt"
)

// Open opens the configured store, exclusively (state.ErrLocked, wrapped,
// when another process holds it).
func Open(c config.State) (state.Store, error) {
	return bolt.Open(c.Path, bolt.Options{})
}
