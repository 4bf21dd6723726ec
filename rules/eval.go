package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/capisync/capisync/internal/capi"
	"github.com/capisync/capisync/internal/cdc"
)

// Result is what one rule made of one change: an event, or an error that
// dead-letters this one event.
type Result struct {
	Rule        string
	Destination string // "" means every destination
	Event       capi.Event
	// Dropped lists user_data values that were invalid and left out
	// (never sent raw), with the normalizer's reason, for the per-rule
	// counts.
	Dropped []Dropped
	// Err is set when the rule matched (or could not tell) but building the
	// event failed; it names rule, field and key.
	Err *EvalError
}

// Dropped is a user_data value left out, and why (the normalizer's
// reason, such as "a phone number without country code (set
// default_country)").
type Dropped struct {
	Key, Reason string
}

// EvalError is a runtime failure of one rule on one change.
type EvalError struct {
	Rule  string
	Field string // when, event_time, user_data.em, ...
	Key   string // the change's key, e.g. id=42
	Err   error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("rule %q, %s, key %s: %v", e.Rule, e.Field, e.Key, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }

var states = sync.Pool{New: func() any { return newState() }}

// Eval evaluates every rule on the change's source and table, in config
// order, and returns one Result per rule whose `when` holds (or failed).
// It is safe for concurrent use.
func (s *Set) Eval(c *cdc.Change) []Result { return s.EvalAppend(nil, c) }

// EvalAppend is Eval appending to out, so that a caller evaluating many
// changes reuses one slice.
func (s *Set) EvalAppend(out []Result, c *cdc.Change) []Result {
	key := c.Source + "\x00" + c.Table
	rs := s.byTable[key]
	if len(rs) == 0 {
		return out
	}
	st := states.Get().(*state)
	st.bind(c, s.wholeRows[key], s.clock())
	defer func() {
		st.unbind()
		states.Put(st)
	}()
	ev := evaluator{st: st, change: c}
	for _, r := range rs {
		if res, ok := ev.rule(r); ok {
			out = append(out, res)
		}
	}
	return out
}

type evaluator struct {
	st     *state
	change *cdc.Change
	key    string // rendered lazily for error messages
}

// fail records a runtime error of field in res.
func (ev *evaluator) fail(res *Result, field string, err error) {
	if ev.key == "" {
		ev.key = renderKey(ev.change)
	}
	res.Err = &EvalError{Rule: res.Rule, Field: field, Key: ev.key, Err: err}
}

func (ev *evaluator) run(p *vm.Program) (v any, err error) {
	defer func() {
		if r := recover(); r != nil { // expr recovers its own panics; this guards helpers
			err = fmt.Errorf("%v", r)
		}
	}()
	return ev.st.vm.Run(p, ev.st.vars)
}

func (ev *evaluator) rule(r *rule) (Result, bool) {
	res := Result{Rule: r.name, Destination: r.destination}
	if r.whenFast != nil {
		if !r.whenFast(ev.st) {
			return res, false
		}
	} else {
		match, err := ev.run(r.when)
		if err != nil {
			ev.fail(&res, "when", cleanErr(err))
			return res, true
		}
		if m, _ := match.(bool); !m {
			return res, false
		}
	}
	evt := &res.Event
	evt.EventName = r.event
	evt.ActionSource = r.actionSource
	evt.UserData = make(map[string]any, len(r.userData))

	// All fields at once when the combined program runs cleanly; field by
	// field otherwise, to name the one that failed.
	var vals []any
	if r.combined != nil {
		if v, err := ev.run(r.combined); err == nil {
			vals, _ = v.([]any)
		}
	}
	next := 0
	get := func(p *vm.Program, raw colRef) (any, error) {
		v, err := any(nil), error(nil)
		if vals != nil && next < len(vals) {
			next++
			v = vals[next-1]
		} else {
			v, err = ev.run(p)
		}
		if raw.col != "" && err == nil {
			// A field that is one column read sends the column's value
			// as read: a decimal with its exact digits, not the number
			// expressions compute with.
			v = raw.value(ev.change)
		}
		return v, err
	}

	timeSet := false
	for i, prog := range r.scalars {
		if prog == nil {
			continue
		}
		v, err := get(prog, r.rawScalars[i])
		if err != nil {
			ev.fail(&res, scalarNames[i], cleanErr(err))
			return res, true
		}
		if v == nil || v == "" {
			continue
		}
		if err := setScalar(evt, i, v); err != nil {
			ev.fail(&res, scalarNames[i], err)
			return res, true
		}
		timeSet = timeSet || i == fEventTime
	}
	if !timeSet { // not configured, or NULL: the change's commit time
		evt.EventTime = ev.change.CommitTime.Unix()
	}
	if evt.EventID == "" {
		evt.EventID = DefaultEventID(r.name, ev.change)
	}
	if len(r.original) > 0 {
		var o capi.OriginalEvent
		for _, f := range r.original {
			v, err := get(f.prog, f.raw)
			if err != nil {
				ev.fail(&res, "original_event_data."+f.key, cleanErr(err))
				return res, true
			}
			if v == nil || v == "" {
				continue
			}
			switch f.key {
			case "event_time":
				t, err := toTime(v)
				if err != nil {
					ev.fail(&res, "original_event_data.event_time", err)
					return res, true
				}
				o.EventTime = t.Unix()
			case "event_name":
				o.EventName, err = toText(v)
			case "order_id":
				o.OrderID, err = toText(v)
			case "event_id":
				o.EventID, err = toText(v)
			}
			if err != nil {
				ev.fail(&res, "original_event_data."+f.key, err)
				return res, true
			}
		}
		if o != (capi.OriginalEvent{}) {
			evt.OriginalEventData = &o
		}
	}
	for _, f := range r.userData {
		v, err := get(f.prog, f.raw)
		if err != nil {
			ev.fail(&res, "user_data."+f.key, cleanErr(err))
			return res, true
		}
		if v == nil || v == "" {
			continue
		}
		out, why := ev.st.userDataValue(f.key, v, r.country)
		if why != "" {
			res.Dropped = append(res.Dropped, Dropped{f.key, why})
		}
		if out == nil {
			continue
		}
		evt.UserData[f.key] = out
	}
	for _, m := range [...]struct {
		name   string
		fields []field
		out    *map[string]any
	}{{"custom_data", r.customData, &evt.CustomData}, {"app_data", r.appData, &evt.AppData}, {"attribution_data", r.attributionData, &evt.AttributionData}} {
		for _, f := range m.fields {
			v, err := get(f.prog, f.raw)
			if err != nil {
				ev.fail(&res, m.name+"."+f.key, cleanErr(err))
				return res, true
			}
			if v == nil || v == "" {
				continue
			}
			cv, err := customValue(f.key, v)
			if err != nil {
				ev.fail(&res, m.name+"."+f.key, err)
				return res, true
			}
			if *m.out == nil {
				*m.out = make(map[string]any, len(m.fields))
			}
			(*m.out)[f.key] = cv
		}
	}
	return res, true
}

// The top-level fields that hold one value, in the order they are built.
const (
	fEventTime = iota
	fEventID
	fSourceURL
	fReferrer
	fChannel
	fOptOut
	fDPO
	fDPOCountry
	fDPOState
	numScalars
)

var scalarNames = [numScalars]string{
	"event_time", "event_id", "event_source_url", "referrer_url", "messaging_channel",
	"opt_out", "data_processing_options", "data_processing_options_country", "data_processing_options_state",
}

// setScalar stores the value of top-level field i in evt.
func setScalar(evt *capi.Event, i int, v any) (err error) {
	switch i {
	case fEventTime:
		var t time.Time
		if t, err = toTime(v); err != nil {
			return err
		}
		if t.Unix() <= 0 {
			// Never replaced by the commit time in silence: a zero date
			// in the database is a mistake to see, not to paper over.
			return fmt.Errorf("event_time is %s, not a real time (a zero or missing date in the database?)", t.UTC().Format(time.RFC3339))
		}
		evt.EventTime = t.Unix()
	case fEventID:
		evt.EventID, err = toText(v)
	case fSourceURL:
		evt.EventSourceURL, err = toText(v)
	case fReferrer:
		evt.ReferrerURL, err = toText(v)
	case fChannel:
		evt.MessagingChannel, err = toText(v)
	case fOptOut:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("opt_out must be true or false, got %T", v)
		}
		evt.OptOut = &b
	case fDPO:
		evt.DataProcessingOptions, err = toStrings(v)
	case fDPOCountry:
		evt.DataProcessingOptionsCountry, err = toIntPtr(v)
	case fDPOState:
		evt.DataProcessingOptionsState, err = toIntPtr(v)
	}
	return err
}

// userDataValue normalizes (and hashes, for keys Meta hashes) one value or
// list. out is nil when nothing valid is left; why is the reason of the
// (last) value left out, "" when none was.
func (st *state) userDataValue(key string, v any, country string) (out any, why string) {
	one := func(x any) (string, string) {
		if d, ok := x.(cdc.Decimal); ok {
			x = string(d)
		}
		if capi.IsHashedKey(key) {
			if s, ok := x.(string); ok && lowCardinality[key] {
				return st.cachedHash(key, s, country)
			}
			h, err := capi.NormalizeAndHash(key, x, country)
			if err != nil {
				return "", reason(err)
			}
			return h, ""
		}
		s, err := toText(x)
		if s = strings.TrimSpace(s); err != nil || s == "" {
			return "", "not text"
		}
		return s, ""
	}
	if list, ok := v.([]any); ok {
		var vals []string
		for _, x := range list {
			if x == nil || x == "" {
				continue
			}
			s, w := one(x)
			if w != "" {
				why = w
				continue
			}
			vals = append(vals, s)
		}
		switch len(vals) {
		case 0:
			return nil, why
		case 1:
			return vals[0], why
		}
		return vals, why
	}
	s, w := one(v)
	if w != "" {
		return nil, w
	}
	return s, ""
}

// reason is a normalizer's error as a short reason for counters.
func reason(err error) string {
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), capi.ErrInvalid.Error()), ": ")
}

// lowCardinality are the hashed user_data keys whose values repeat from
// row to row — a few cities, states, zip codes, countries, genders — so
// that their hashes are worth remembering.
var lowCardinality = map[string]bool{"ct": true, "st": true, "zp": true, "country": true, "ge": true}

// hashCacheSize bounds a state's remembered hashes; the cache starts over
// when full.
const hashCacheSize = 4096

type hashKey struct{ key, raw, country string }

// cachedHash is capi.NormalizeAndHash of a string, remembered per state
// (states are pooled, so the cache lives as long as the pool keeps it),
// with the reason of a value that is not valid.
func (st *state) cachedHash(key, raw, country string) (string, string) {
	k := hashKey{key, raw, country}
	if h, ok := st.hashes[k]; ok {
		return h.hash, h.why
	}
	var h hashed
	var err error
	if h.hash, err = capi.NormalizeAndHash(key, raw, country); err != nil {
		h = hashed{why: reason(err)} // remembered as invalid
	}
	if st.hashes == nil || len(st.hashes) >= hashCacheSize {
		st.hashes = make(map[hashKey]hashed, 64)
	}
	st.hashes[k] = h
	return h.hash, h.why
}

// hashed is a remembered hash, or why the value is not valid.
type hashed struct{ hash, why string }

// customValue makes a custom_data value JSON-ready. Money kept as an exact
// decimal is sent as a JSON number with the same digits. A number Meta
// cannot read (NaN or an infinity, as a division by zero gives, or a
// decimal beyond float64) is an error: the event is refused with the
// field named, rather than sent with a null.
func customValue(key string, v any) (any, error) {
	switch x := v.(type) {
	case cdc.Decimal:
		if !validDecimal(string(x)) {
			return nil, fmt.Errorf("%q is not a finite number Meta can read", string(x))
		}
		return json.Number(strings.TrimPrefix(string(x), "+")), nil
	case string:
		if moneyKey[key] && validDecimal(x) {
			return json.Number(strings.TrimPrefix(x, "+")), nil
		}
		return x, nil
	case time.Time:
		return x.UTC().Format(time.RFC3339), nil
	case []byte:
		return string(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("the expression gives %v (a division by zero?): Meta needs a finite number", x)
		}
		return x, nil
	case float32:
		return customValue(key, float64(x))
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = customValue("", e); err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			var err error
			if out[k], err = customValue(k, e); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
		}
		return out, nil
	}
	return v, nil
}

// moneyKey are the custom_data keys Meta reads as numbers (at any depth:
// item_price sits in contents): text holding a decimal is sent there as a
// JSON number with the same digits.
var moneyKey = map[string]bool{"value": true, "predicted_ltv": true, "net_revenue": true, "item_price": true}

// validDecimal reports whether s is a finite decimal number JSON can carry
// as it is written.
func validDecimal(s string) bool {
	_, err := strconv.ParseFloat(s, 64) // beyond float64 is an error: Meta reads a double
	return err == nil && !strings.ContainsAny(s, "xXpP_ \t") &&
		!strings.EqualFold(s, "nan") && !strings.Contains(strings.ToLower(s), "inf")
}

// DefaultEventID is the event_id of a rule without one: the hex SHA-256 of
// rule name, table, key and position, so that a change read again yields the
// same id. A change without key or position (as in `rules test`) is
// identified by its op, rows and commit time instead.
func DefaultEventID(rule string, c *cdc.Change) string {
	// The bytes hashed are those fmt wrote before (ids remembered by a
	// running store must not change), built with appends: no fmt, no
	// interface boxing, one small buffer.
	var stack [256]byte
	b := append(append(append(append(stack[:0], rule...), 0), c.Table...), 0)
	if c.Key.Len() > 0 || len(c.Position) > 0 {
		b = appendRow(b, c.Key)
		b = append(append(b, 0), c.Position...)
	} else {
		b = append(append(b, c.Op...), 0)
		b = appendRow(b, c.Old)
		b = append(appendRow(append(b, 0), c.New), 0)
		b = strconv.AppendInt(b, c.CommitTime.UnixNano(), 10)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// appendRow appends "name=canonical value;" for row's columns in name order.
func appendRow(b []byte, row cdc.Row) []byte {
	var stack [16]string
	keys := stack[:0]
	for k := range row.All() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b = append(append(b, k...), '=')
		b = appendCanonical(b, row.Value(k))
		b = append(b, ';')
	}
	return b
}

// appendCanonical appends a key value as "%T:%v" writes it, with the
// types that have their own form (see canonical).
func appendCanonical(b []byte, v any) []byte {
	switch x := v.(type) {
	case int64:
		return strconv.AppendInt(append(b, "int64:"...), x, 10)
	case int32:
		return strconv.AppendInt(append(b, "int32:"...), int64(x), 10)
	case int:
		return strconv.AppendInt(append(b, "int:"...), int64(x), 10)
	case string:
		return append(append(b, "string:"...), x...)
	}
	return append(b, canonical(v)...)
}

func canonical(v any) string {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return hex.EncodeToString(x)
	case nil:
		return "\x01null"
	case cdc.Decimal:
		return "string:" + string(x) // as before decimals had their own type: ids stay the same
	}
	return fmt.Sprintf("%T:%v", v, v)
}

// renderKey renders a change's key for messages: "id=42" (no other
// columns, so no personal data reaches a dead letter's reason).
func renderKey(c *cdc.Change) string {
	if c.Key.Len() == 0 {
		return "(none)"
	}
	keys := make([]string, 0, c.Key.Len())
	for k := range c.Key.All() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, c.Key.Value(k))
	}
	return strings.Join(parts, ",")
}

func toText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case cdc.Decimal:
		return string(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case []byte:
		return string(x), nil
	}
	return "", fmt.Errorf("want a string, got %T", v)
}

func toStrings(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		if ss, ok := v.([]string); ok {
			return ss, nil
		}
		return nil, fmt.Errorf("want a list such as [\"LDU\"], got %T", v)
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, err := toText(x)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func toIntPtr(v any) (*int, error) {
	f, ok := number(v)
	if !ok {
		if s, isStr := v.(string); isStr {
			n, err := strconv.Atoi(s)
			if err != nil {
				return nil, fmt.Errorf("want a whole number, got %q", s)
			}
			return &n, nil
		}
		return nil, fmt.Errorf("want a whole number, got %T", v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return nil, fmt.Errorf("want a whole number, got %v", f)
	}
	n := int(f)
	return &n, nil
}

// cleanErr keeps expr's message and drops its source snippet, which could
// quote row values; the rule and field are named by the caller.
func cleanErr(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	return fmt.Errorf("%s", msg)
}
