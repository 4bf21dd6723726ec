package state

import (
	"context"
	"time"

	"github.com/capisync/capisync/internal/cdc"
)

// Store is everything capisync keeps between runs. Its parts are declared
// apart, so that each consumer can ask for only what it uses.
type Store interface {
	Committer
	Checkpoints
	Outbox
	DeadLetters
	Shadows
	Status() (Status, error)
	Close() error
}

// Committer writes what a source read, atomically (see Batch).
type Committer interface {
	Commit(batches ...Batch) (CommitResult, error)
}

// Checkpoints are the sources' positions.
type Checkpoints interface {
	// Checkpoint is a source's last committed position (nil when none).
	Checkpoint(source string) (cdc.Position, error)
	// ForgetCheckpoint removes it and returns what it was: the source
	// starts from its beginning, as a new one does.
	ForgetCheckpoint(source string) (cdc.Position, error)
}

// Outbox is the events queued per destination, in sequence order.
type Outbox interface {
	// Pending is up to max of the oldest events queued for dest.
	Pending(dest string, max int) ([]Queued, error)
	// PendingAfter is up to max of the oldest events queued for dest
	// with a sequence number above after.
	PendingAfter(dest string, after uint64, max int) ([]Queued, error)
	// LastSeq is the sequence number of the last event ever queued for
	// dest (0 when none).
	LastSeq(dest string) (uint64, error)
	// Depth is how many events are queued for dest.
	Depth(dest string) (int64, error)
	// Settle records what became of queued events, in one transaction.
	Settle(dest string, outcomes []Outcome) error
}

// DeadLetters are the events Meta would not take and the rule failures.
type DeadLetters interface {
	// DeadLetters lists dest's (every destination's when dest is empty),
	// oldest first.
	DeadLetters(dest string) ([]DeadLetter, error)
	// RetryDead queues dead letters again (ids nil: all of dest's).
	RetryDead(dest string, ids []uint64) (int, error)
	// DropDead deletes dead letters (ids nil: all of dest's).
	DropDead(dest string, ids []uint64) (int, error)
}

// Shadows are what polling sources (and logical sources with
// old_values: shadow) remember of each row: a key and the source's own
// encoding of what it tracks.
type Shadows interface {
	// Shadows returns the shadows of keys in table (nil where none).
	Shadows(source, table string, keys [][]byte) ([][]byte, error)
	// ScanShadows calls fn for every shadow of table, in key order.
	ScanShadows(source, table string, fn func(key, value []byte) error) error
	// RewriteShadows rewrites every shadow of table with fn (ok false:
	// left as is), once per format: a store that finished a pass for
	// format does nothing. It returns how many were rewritten.
	RewriteShadows(source, table, format string, fn func(value []byte) (newValue []byte, ok bool)) (int, error)
}

// Leaser is a store that several daemons can share, one leading at a
// time (state/pgstate): the leader reads the sources and sends; the
// others wait. Taking the lease anew gives a new epoch, and a store that
// acquired it refuses to write once the epoch is no longer current.
type Leaser interface {
	// Acquire takes or renews the lease for holder for ttl: the epoch
	// and true, or false when another holds it.
	Acquire(ctx context.Context, holder string, ttl time.Duration) (int64, bool, error)
	// Renew extends the lease holder holds with epoch; false when lost.
	Renew(ctx context.Context, holder string, epoch int64, ttl time.Duration) (bool, error)
	// Release ends it at once (a clean stop: a standby takes over).
	Release(ctx context.Context, holder string, epoch int64) error
	// Leader reads who holds it (zero when nobody ever did).
	Leader(ctx context.Context) (Lease, error)
}

// Lease is who holds the leader lease, with which epoch, until when.
type Lease struct {
	Holder  string
	Epoch   int64
	Expires time.Time
}
