package pipeline

import (
	"strings"
	"time"

	"github.com/capisync/capisync/rules"
)

// droppedWarnEvery is how often a rule's invalid user_data values are
// logged (they are counted every time).
const droppedWarnEvery = time.Minute

// reasonName makes a normalizer's reason usable in a counter name
// (counter names are split at "/").
func reasonName(why string) string { return strings.ReplaceAll(why, "/", " ") }

// warnDropped logs, at most once a minute per rule, key and reason, that
// a rule's user_data values are left out: a phone number without country
// code hashes to something Meta cannot match, so it is not sent, and the
// person who wrote the rule should hear of it.
func (p *Pipeline) warnDropped(rule string, d rules.Dropped) {
	k := rule + "\x00" + d.Key + "\x00" + d.Reason
	now := time.Now()
	p.mu.Lock()
	if p.droppedWarned == nil {
		p.droppedWarned = map[string]time.Time{}
	}
	last, seen := p.droppedWarned[k]
	if seen && now.Sub(last) < droppedWarnEvery {
		p.mu.Unlock()
		return
	}
	p.droppedWarned[k] = now
	p.mu.Unlock()
	p.log.Warn("user_data values left out as invalid (counted in status and capisync_rule_dropped_values_total)", "rule", rule, "key", d.Key, "reason", d.Reason)
}
