package pgstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/capisync/capisync/state"
)

// The leader lease: of the daemons that share a PostgreSQL state, the one
// that holds it reads the sources and sends; the others wait. It is a row
// of the lease table with an epoch, the fencing token: taking over an
// expired lease increments it. Acquire and Renew are conditional updates
// on the server's clock. Once a store is fenced with an epoch (Acquire
// does it), every transaction that writes first checks, holding the lease
// row FOR KEY SHARE, that the epoch is still current and unexpired: a
// leader that lost its lease can never commit, and a takeover (which locks
// the row FOR UPDATE) waits for a commit in progress to end, so the two
// never interleave; the leader's renewals do not wait for its commits. (An advisory lock
// would be lost in silence with its connection and carries no token.)

// ErrFenced is returned (wrapped) by a write of a store whose lease was
// lost: expired, or taken over by another daemon.
var ErrFenced = errors.New("the leader lease is no longer held: another capisync may lead")

const leaseSQL = `CREATE TABLE IF NOT EXISTS %[1]s.lease (name text PRIMARY KEY, holder text NOT NULL, epoch bigint NOT NULL, expires timestamptz NOT NULL);`

type fence struct {
	holder string
	epoch  int64
}

// Acquire takes the lease for holder for ttl, or renews it if holder
// holds it: it returns the epoch and true. Held by another and not
// expired: false. A lease taken anew (never held, expired, or released)
// gets a new epoch. On success the store is fenced with the epoch.
func (s *Store) Acquire(ctx context.Context, holder string, ttl time.Duration) (int64, bool, error) {
	var epoch int64
	taken := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Held by another and unexpired: nothing to lock or write (a
		// standby asks often; it must not hold up the leader's commits).
		var cur string
		var valid bool
		err := tx.QueryRow(ctx, s.sql("SELECT holder, expires > now() FROM %s.lease WHERE name = 'leader'")).Scan(&cur, &valid)
		if err == nil && valid && cur != holder {
			return nil
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// FOR UPDATE waits for the writes in progress under the current
		// epoch (they hold the row FOR KEY SHARE, checkFence), so a new
		// epoch starts after the last of them committed.
		if _, err := tx.Exec(ctx, s.sql("SELECT 1 FROM %s.lease WHERE name = 'leader' FOR UPDATE")); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, s.sql(`INSERT INTO %s.lease AS l VALUES ('leader', $1, 1, now() + $2 * interval '1 millisecond')
			ON CONFLICT (name) DO UPDATE SET
				epoch = CASE WHEN l.holder = excluded.holder AND l.expires > now() THEN l.epoch ELSE l.epoch + 1 END,
				holder = excluded.holder, expires = excluded.expires
			WHERE (l.holder = excluded.holder AND l.expires > now()) OR l.expires <= now()
			RETURNING epoch`), holder, ttl.Milliseconds()).Scan(&epoch)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		taken = err == nil
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("acquire the leader lease: %w", err)
	}
	if !taken {
		return 0, false, nil
	}
	s.fence.Store(&fence{holder: holder, epoch: epoch})
	return epoch, true, nil
}

// Renew extends the lease holder holds with epoch by ttl from now; false
// when it is no longer held (expired or taken over).
func (s *Store) Renew(ctx context.Context, holder string, epoch int64, ttl time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, s.sql(`UPDATE %s.lease SET expires = now() + $3 * interval '1 millisecond'
		WHERE name = 'leader' AND holder = $1 AND epoch = $2 AND expires > now()`), holder, epoch, ttl.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("renew the leader lease: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Release ends the lease holder holds with epoch at once, so that a
// standby takes over without waiting for it to expire (a clean stop).
func (s *Store) Release(ctx context.Context, holder string, epoch int64) error {
	_, err := s.pool.Exec(ctx, s.sql(`UPDATE %s.lease SET expires = now() WHERE name = 'leader' AND holder = $1 AND epoch = $2`), holder, epoch)
	if err != nil {
		return fmt.Errorf("release the leader lease: %w", err)
	}
	return nil
}

// Leader reads who holds the lease (zero Lease when nobody ever did).
func (s *Store) Leader(ctx context.Context) (state.Lease, error) {
	var l state.Lease
	err := s.pool.QueryRow(ctx, s.sql("SELECT holder, epoch, expires FROM %s.lease WHERE name = 'leader'")).Scan(&l.Holder, &l.Epoch, &l.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return state.Lease{}, nil
	}
	return l, err
}

// checkFence queues, in w, the check that the store's epoch still holds
// the lease; it keeps the lease row locked (FOR KEY SHARE) until w ends: a
// takeover (Acquire, FOR UPDATE) waits for it, a renewal (a plain update
// of other columns) does not. The transaction fails (leaseError: ErrFenced)
// if the lease was lost. A store never fenced (a command run beside the
// daemons, or a single process without a lease) may write only while no
// daemon holds the lease: otherwise it fails with state.ErrLocked, since
// the leader's id memory would not see what it queued. The check is a
// function of the schema, so that it travels with the transaction's first
// statements.
func (s *Store) checkFence(w *wtx) {
	if f := s.fence.Load(); f != nil {
		w.later(s.sql("SELECT %s.check_lease($1, $2)"), f.holder, f.epoch)
		return
	}
	w.later(s.sql("SELECT %s.check_lease(NULL, NULL)"))
}

// The SQLSTATEs check_lease raises.
const (
	codeFenced = "CSFEN" // the epoch given no longer holds the lease
	codeLed    = "CSLED" // a daemon holds the lease (its holder is the message)
)

const checkLeaseSQL = `CREATE OR REPLACE FUNCTION %[1]s.check_lease(h text, e bigint) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE cur text;
BEGIN
	IF h IS NULL THEN
		SELECT holder INTO cur FROM %[1]s.lease WHERE name = 'leader' AND expires > now() FOR KEY SHARE;
		IF FOUND THEN
			RAISE EXCEPTION USING ERRCODE = 'CSLED', MESSAGE = cur;
		END IF;
		RETURN;
	END IF;
	PERFORM 1 FROM %[1]s.lease WHERE name = 'leader' AND holder = h AND epoch = e AND expires > now() FOR KEY SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION USING ERRCODE = 'CSFEN', MESSAGE = 'the lease was lost';
	END IF;
END $f$;`

// leaseError turns check_lease's errors into ErrFenced and state.ErrLocked.
func (s *Store) leaseError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case codeFenced:
		epoch := int64(0)
		if f := s.fence.Load(); f != nil {
			epoch = f.epoch
		}
		return fmt.Errorf("%w (this one held epoch %d)", ErrFenced, epoch)
	case codeLed:
		return fmt.Errorf("state schema %s: %w: the daemon %s leads", s.schema, state.ErrLocked, pe.Message)
	}
	return err
}
