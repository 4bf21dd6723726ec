package sqlpoll

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strconv"
	"strings"
	"time"
)

// textTimeLayouts are the text timestamp formats a cursor may hold.
var textTimeLayouts = []string{
	"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999-07:00", "2006-01-02",
}

// convert maps a scanned value to capisync's common value types
// (internal/cdc): exact decimals as strings, times in UTC, JSON decoded.
func convert(k valueKind, zoneless bool, loc *time.Location, v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case int64:
		if k == kBool {
			return x != 0, nil
		}
		return x, nil
	case int32:
		return int64(x), nil
	case int:
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return strconv.FormatUint(x, 10), nil
		}
		return int64(x), nil
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case bool:
		return x, nil
	case time.Time:
		if zoneless {
			return wallClock(x, loc), nil
		}
		return x.UTC(), nil
	case []byte:
		return convertText(k, zoneless, loc, string(x), true)
	case string:
		return convertText(k, zoneless, loc, x, false)
	}
	return fmt.Sprint(v), nil
}

func convertText(k valueKind, zoneless bool, loc *time.Location, s string, raw bool) (any, error) {
	switch k {
	case kInt:
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
		return s, nil // too large for int64: keep the exact digits
	case kFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("not a number: %q", s)
		}
		return f, nil
	case kDecimal:
		return s, nil
	case kJSON:
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		return v, nil
	case kBytes:
		if raw {
			return []byte(s), nil
		}
		return s, nil
	case kTime:
		if s == "infinity" || s == "-infinity" {
			return s, nil
		}
		for _, l := range textTimeLayouts {
			if t, err := time.Parse(l, s); err == nil {
				if zoneless && !strings.ContainsAny(s[min(len(s), 19):], "Z+-") {
					return wallClock(t, loc), nil
				}
				return t.UTC(), nil
			}
		}
		return s, nil
	case kBool:
		return s == "1" || strings.EqualFold(s, "true") || s == "t", nil
	}
	return s, nil
}

// wallClock reads t's wall-clock digits as time in loc and returns UTC.
func wallClock(t time.Time, loc *time.Location) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc).UTC()
}

// Value encoding, for shadows and keys: a tag byte, then the payload.
// Deterministic, so equal values encode to equal bytes.
const (
	tNil byte = iota
	tString
	tInt
	tFloat
	tTrue
	tFalse
	tTime
	tBytes
	tJSON
)

func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, tNil)
	case string:
		b = append(b, tString)
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	case int64:
		return binary.AppendVarint(append(b, tInt), x)
	case float64:
		return binary.BigEndian.AppendUint64(append(b, tFloat), math.Float64bits(x))
	case bool:
		if x {
			return append(b, tTrue)
		}
		return append(b, tFalse)
	case time.Time:
		return binary.AppendVarint(append(b, tTime), x.UnixNano())
	case []byte:
		b = append(b, tBytes)
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	}
	// maps and lists (JSON): encoding/json sorts map keys, so it is
	// deterministic.
	j, _ := json.Marshal(v)
	b = append(b, tJSON)
	b = binary.AppendUvarint(b, uint64(len(j)))
	return append(b, j...)
}

var errCorrupt = errors.New("corrupt encoded value")

func readValue(b []byte) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errCorrupt
	}
	tag, b := b[0], b[1:]
	switch tag {
	case tNil:
		return nil, b, nil
	case tTrue:
		return true, b, nil
	case tFalse:
		return false, b, nil
	case tInt, tTime:
		n, k := binary.Varint(b)
		if k <= 0 {
			return nil, nil, errCorrupt
		}
		if tag == tTime {
			return time.Unix(0, n).UTC(), b[k:], nil
		}
		return n, b[k:], nil
	case tFloat:
		if len(b) < 8 {
			return nil, nil, errCorrupt
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
	case tString, tBytes, tJSON:
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, nil, errCorrupt
		}
		payload := b[k : k+int(n)]
		rest := b[k+int(n):]
		switch tag {
		case tString:
			return string(payload), rest, nil
		case tBytes:
			return append([]byte(nil), payload...), rest, nil
		}
		var v any
		if err := json.Unmarshal(payload, &v); err != nil {
			return nil, nil, errCorrupt
		}
		return v, rest, nil
	}
	return nil, nil, errCorrupt
}

// encodeKey encodes a row's key values.
func encodeKey(vals []any) []byte {
	var b []byte
	for _, v := range vals {
		b = appendValue(b, v)
	}
	return b
}

func decodeValues(b []byte, n int) ([]any, error) {
	out := make([]any, 0, n)
	for len(b) > 0 {
		v, rest, err := readValue(b)
		if err != nil {
			return nil, err
		}
		out, b = append(out, v), rest
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w: %d values, want %d", errCorrupt, len(out), n)
	}
	return out, nil
}

// shadowCodec encodes the tracked values of a row, prefixed with a
// fingerprint of the tracked column names: when `track` changes, old
// shadows no longer match and are treated as unknown rather than misread.
type shadowCodec struct {
	cols []string
	fp   [4]byte
}

func newShadowCodec(cols []string) shadowCodec {
	c := shadowCodec{cols: cols}
	binary.BigEndian.PutUint32(c.fp[:], crc32.ChecksumIEEE([]byte(strings.Join(cols, "\x00"))))
	return c
}

func (c shadowCodec) encode(vals []any) []byte {
	b := append([]byte{}, c.fp[:]...)
	for _, v := range vals {
		b = appendValue(b, v)
	}
	return b
}

// decode returns the values, or ok=false when the shadow was written for
// other tracked columns (or is damaged).
func (c shadowCodec) decode(b []byte) (vals []any, ok bool) {
	if len(b) < 4 || !bytes.Equal(b[:4], c.fp[:]) {
		return nil, false
	}
	vals, err := decodeValues(b[4:], len(c.cols))
	return vals, err == nil
}
