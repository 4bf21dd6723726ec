// Package rules compiles the conversion rules analysts write in the config
// and evaluates them against changes, building Meta server events.
//
// Every expression is compiled and type-checked once, when the config
// loads (Compile); a compile error names the rule, the field and the place
// in the config file. Evaluation (Set.Eval) is pure and deterministic: the
// same change always yields the same events, with the same default
// event_id, so a change read twice is de-duplicated by the outbox and by
// Meta. A runtime error in one rule fails only that rule's event for that
// change, with a reason naming rule, field and key; it never stops the
// pipeline.
//
// # Environment
//
//	op                     "insert", "update" or "delete"
//	source, table          names as in the config
//	new, old               column -> value; old is nil on insert, new on delete
//	commit_time            when the source committed the change (time.Time)
//	changed(col)           old and new differ (insert: new value not null; delete: false)
//	changed_to(col, v)     changed(col) and new value equals v
//	changed_from(col, v)   changed(col) and old value equals v
//	coalesce(a, b, ...)    first argument that is neither nil nor ""
//	unix(t)                a time (time.Time, RFC 3339 string or unix seconds) as unix seconds
//	days_since(t)          days from t to the change's commit_time (not the wall clock,
//	                       so that a replayed change yields the same event)
//
// plus expr's builtins (lower, upper, trim, len, string, int, float, now, ...).
//
// Only this package imports the expression language.
package rules
