package pipeline

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// diskFullRetry is how often a write refused for want of disk space is
// tried again (sooner when a sender settles events, which frees pages in
// the store's file).
const diskFullRetry = 5 * time.Second

// IsDiskFull reports whether err says the store's disk has no room left
// (ENOSPC, or EDQUOT for a user over quota).
func IsDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// DiskFull reports whether the store's disk is full, and what the
// pipeline does about it (for /readyz and status).
func (p *Pipeline) DiskFull() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.diskFull != "", p.diskFull
}

func (p *Pipeline) setDiskFull(why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.diskFull = why
}

// whileDiskFull runs write until it succeeds, fails for another reason,
// or ctx ends. While the disk is full, reading stays paused (the
// committer waits here, so sources wait for it) and the senders go on
// delivering what is queued; the write is tried again every
// diskFullRetry, or as soon as events are settled.
func (p *Pipeline) whileDiskFull(ctx context.Context, what string, write func() error) error {
	var logged time.Time
	for {
		err := write()
		if !IsDiskFull(err) {
			if err == nil && !logged.IsZero() {
				p.setDiskFull("")
				p.log.Info("the store's disk has room again: reading resumed", "write", what)
			}
			return err
		}
		p.setDiskFull(fmt.Sprintf("the store's disk is full (%v): reading is paused, queued events are still delivered; free space and capisync resumes by itself", err))
		if time.Since(logged) > time.Minute {
			p.log.Error("the store's disk is full: reading paused, delivering what is queued", "write", what, "error", err)
			logged = time.Now()
		}
		t := time.NewTimer(diskFullRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-p.settled:
		case <-t.C:
		}
		t.Stop()
	}
}
