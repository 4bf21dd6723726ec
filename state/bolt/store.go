package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/capisync/capisync/internal/gctune"
	"github.com/capisync/capisync/state"
)

// SchemaVersion is the layout version this code writes.
const SchemaVersion = 5

// migrations upgrade a store from version k to k+1 (migrations[k]).
var migrations = map[uint64]func(tx *bolt.Tx) error{
	// 2 writes outbox_ids values as sequence number + queued time, once, and
	// no longer rewrites them as delivered markers; parseID reads the values
	// schema 1 wrote, so nothing is rewritten. The version still moves, so
	// that a schema-1 capisync refuses a store it would misread.
	1: func(*bolt.Tx) error { return nil },
	// 3 adds the shadow_delta bucket (created with the others): shadows are
	// written there first, and a schema-2 capisync would not read them.
	2: func(*bolt.Tx) error { return nil },
	// 4 writes integers in shadow keys so that byte order is numeric
	// order (cdc.EncodeKey): a table read in key order is stored side by
	// side. Every table's shadow keys that hold an integer are rewritten.
	3: upgradeShadowKeys,
	// 5 moves the id memory from outbox_ids, in key order, to id_log, in
	// queueing order (see ids.go).
	4: migrateIDLog,
}

var (
	bMeta            = []byte("meta")
	bCheckpoints     = []byte("checkpoints")
	bCheckpointTimes = []byte("checkpoint_times")
	bOutbox          = []byte("outbox")
	bOutboxIDs       = []byte("outbox_ids") // up to schema 4
	bIDLog           = []byte("id_log")
	bDead            = []byte("dead")
	bShadows         = []byte("shadows")
	bShadowDelta     = []byte("shadow_delta")
	bCounters        = []byte("counters")
	kSchema          = []byte("schema")
)

// Store is the embedded store. It is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	path     string
	lockPath string
	now      func() time.Time
	prunePos map[string][]byte // per destination: where pruneDelivered resumes
	// prunedHour is the hour whose window counters were last pruned;
	// written inside write transactions only.
	prunedHour int64
	merger     *merger
	closed     bool
	// wmu is held by the write transactions that read or change the id
	// memory, from before the transaction until its changes are in ids.
	wmu         sync.Mutex
	ids         *idIndex
	idsReserved int64 // ids counted in gctune's reservation
}

// Options tune Open.
type Options struct {
	// NoSync skips fsync (tests and benchmarks of the logic only).
	NoSync bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ShadowMergeIdle is how long commits must pause before shadows
	// written to the delta are merged into the main tree in the background
	// (default 200 ms); negative: only FlushShadows merges (tests).
	ShadowMergeIdle time.Duration
}

// Open opens (creating if needed) the store file at path, exclusively.
func Open(path string, opt Options) (*Store, error) {
	// 16 KiB pages for a new file (an existing one keeps its own): an outbox
	// record is ~1 KiB, and bbolt writes each dirty page with its own
	// syscall, so a 1000-event commit takes ~60 writes instead of ~250. The
	// freelist is not written on every commit but rebuilt when the file is
	// opened, a scan of page headers.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: opt.NoSync,
		FreelistType: bolt.FreelistMapType, PageSize: 16 << 10, NoFreelistSync: true})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (%s); stop it, or give this one another state.path", path, state.ErrLocked, holder(path+".lock"))
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, path: path, lockPath: path + ".lock", now: opt.Now, prunePos: map[string][]byte{}, ids: newIDIndex()}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.View(s.ids.load); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: read the id memory: %w", path, err)
	}
	s.reserveIDMemory()
	idle := opt.ShadowMergeIdle
	if idle == 0 {
		idle = 200 * time.Millisecond
	}
	if err := s.startMerger(idle); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	host, _ := os.Hostname()
	lock := fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	_ = os.WriteFile(s.lockPath, []byte(lock), 0o600)
	return s, nil
}

// holder describes who holds the lock, from the file the holder wrote.
func holder(lockPath string) string {
	b, err := os.ReadFile(lockPath)
	if err != nil {
		return "held by another process"
	}
	info := strings.TrimSpace(string(b))
	if f := strings.Fields(info); len(f) > 1 {
		if pid, err := strconv.Atoi(f[1]); err == nil {
			if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
				info += ": " + strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
			}
		}
	}
	return "held by " + info
}

// Path is the store file's path.
func (s *Store) Path() string { return s.path }

// Close stops merging shadows (what is left stays in the delta, merged
// after the next Open) and closes the store. It reports a merge that
// failed and was not retried successfully.
func (s *Store) Close() error {
	if !s.closed {
		s.closed = true
		close(s.merger.stop)
		<-s.merger.done
	}
	_ = os.Remove(s.lockPath)
	gctune.Reserve("ids "+s.path, 0)
	err := s.db.Close()
	if p := s.merger.err.Load(); p != nil {
		err = errors.Join(*p, err)
	}
	return err
}

// allBuckets are the store's top-level buckets.
func allBuckets() [][]byte {
	return [][]byte{bMeta, bCheckpoints, bCheckpointTimes, bOutbox, bIDLog, bDead, bShadows, bShadowDelta, bCounters}
}

func (s *Store) migrate() error {
	// A store that is already current is not written to: it opens even on
	// a full disk (the daemon then delivers what is queued).
	current := false
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range allBuckets() {
			if tx.Bucket(b) == nil {
				return nil
			}
		}
		raw := tx.Bucket(bMeta).Get(kSchema)
		current = raw != nil && binary.BigEndian.Uint64(raw) == SchemaVersion
		return nil
	}); err != nil || current {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets() {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		meta := tx.Bucket(bMeta)
		v := uint64(0)
		if raw := meta.Get(kSchema); raw != nil {
			v = binary.BigEndian.Uint64(raw)
		} else {
			v = SchemaVersion // a new store starts at the current version
		}
		if v > SchemaVersion {
			return fmt.Errorf("store %s has schema version %d, newer than this capisync (%d): upgrade capisync", s.path, v, SchemaVersion)
		}
		for ; v < SchemaVersion; v++ {
			m, ok := migrations[v]
			if !ok {
				return fmt.Errorf("no migration from store schema %d", v)
			}
			if err := m(tx); err != nil {
				return fmt.Errorf("migrate store schema %d -> %d: %w", v, v+1, err)
			}
		}
		return meta.Put(kSchema, u64(SchemaVersion))
	})
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// sub returns the nested bucket name of root, creating it when create is set.
func sub(tx *bolt.Tx, root []byte, name string, create bool) (*bolt.Bucket, error) {
	r := tx.Bucket(root)
	if r == nil {
		return nil, fmt.Errorf("store has no %s bucket", root)
	}
	if create {
		return r.CreateBucketIfNotExists([]byte(name))
	}
	return r.Bucket([]byte(name)), nil
}
