package bolt

import (
	"encoding/binary"
	"errors"
)

// record is an outbox entry. It is stored in a small binary layout — a
// header of what delivery and settling need, then the event's JSON exactly
// as it will be sent — so that neither reading the outbox nor settling it
// parses JSON:
//
//	version(1) enqueued(8) attempts(4) first(8) last(8) event_time(8)
//	rule, event_name, event_id, action_source (each uvarint length + bytes)
//	event JSON (the rest)
type record struct {
	Enqueued     int64 // unix nanos
	Attempts     uint32
	First, Last  int64 // unix nanos of the first and last attempt, 0 before any
	EventTime    int64
	Rule         string
	EventName    string
	EventID      string
	ActionSource string
	Event        []byte // JSON
}

const recordVersion = 1

var errBadRecord = errors.New("malformed outbox record")

func (r *record) encode() []byte {
	return r.appendTo(make([]byte, 0, r.headerLen()+len(r.Event)))
}

// headerLen is how long the record's header is (all but the JSON).
func (r *record) headerLen() int {
	n := 37
	for _, s := range []string{r.Rule, r.EventName, r.EventID, r.ActionSource} {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

func (r *record) appendTo(b []byte) []byte {
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Enqueued))
	b = binary.BigEndian.AppendUint32(b, r.Attempts)
	b = binary.BigEndian.AppendUint64(b, uint64(r.First))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Last))
	b = binary.BigEndian.AppendUint64(b, uint64(r.EventTime))
	for _, s := range []string{r.Rule, r.EventName, r.EventID, r.ActionSource} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, r.Event...)
}

func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) < 37 || b[0] != recordVersion {
		return r, errBadRecord
	}
	r.Enqueued = int64(binary.BigEndian.Uint64(b[1:]))
	r.Attempts = binary.BigEndian.Uint32(b[9:])
	r.First = int64(binary.BigEndian.Uint64(b[13:]))
	r.Last = int64(binary.BigEndian.Uint64(b[21:]))
	r.EventTime = int64(binary.BigEndian.Uint64(b[29:]))
	b = b[37:]
	for _, dst := range []*string{&r.Rule, &r.EventName, &r.EventID, &r.ActionSource} {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return r, errBadRecord
		}
		*dst = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	r.Event = b
	return r, nil
}
