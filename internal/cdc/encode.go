package cdc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strings"
	"time"
)

// Value encoding, for shadow keys and values: a tag byte, then the
// payload. Deterministic, so equal values encode to equal bytes; sources
// that keep row shadows (polling, and logical replication with
// old_values: shadow) share it.
//
// Keys write integers as tKeyInt, 8 bytes whose byte order is their
// numeric order, so that rows read in key order (a baseline) are stored
// side by side rather than all over the store's tree; values keep the
// shorter varint (tInt). Both decode anywhere.
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
	tKeyInt
	tDecimal
)

// AppendValue appends v's encoding to b.
func AppendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, tNil)
	case string:
		b = append(b, tString)
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	case Decimal:
		b = append(b, tDecimal)
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

// ErrCorrupt is returned for bytes that are no encoded values.
var ErrCorrupt = errors.New("corrupt encoded value")

func readValue(b []byte) (any, []byte, error) {
	n, err := valueLen(b)
	if err != nil {
		return nil, nil, err
	}
	tag, payload, rest := b[0], b[1:n], b[n:]
	switch tag {
	case tNil:
		return nil, rest, nil
	case tTrue:
		return true, rest, nil
	case tFalse:
		return false, rest, nil
	case tInt:
		x, _ := binary.Varint(payload)
		return x, rest, nil
	case tTime:
		x, _ := binary.Varint(payload)
		return time.Unix(0, x).UTC(), rest, nil
	case tFloat:
		return math.Float64frombits(binary.BigEndian.Uint64(payload)), rest, nil
	case tKeyInt:
		return int64(binary.BigEndian.Uint64(payload) ^ signBit), rest, nil
	}
	_, k := binary.Uvarint(payload) // tString, tDecimal, tBytes, tJSON: a length, then the bytes
	payload = payload[k:]
	switch tag {
	case tString:
		return string(payload), rest, nil
	case tDecimal:
		return Decimal(payload), rest, nil
	case tBytes:
		return append([]byte(nil), payload...), rest, nil
	}
	var v any
	if err := json.Unmarshal(payload, &v); err != nil {
		return nil, nil, ErrCorrupt
	}
	return v, rest, nil
}

// valueLen is the length of the encoded value b starts with.
func valueLen(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, ErrCorrupt
	}
	switch b[0] {
	case tNil, tTrue, tFalse:
		return 1, nil
	case tInt, tTime:
		if _, k := binary.Varint(b[1:]); k > 0 {
			return 1 + k, nil
		}
	case tFloat, tKeyInt:
		if len(b) >= 9 {
			return 9, nil
		}
	case tString, tDecimal, tBytes, tJSON:
		if n, k := binary.Uvarint(b[1:]); k > 0 && uint64(len(b)-1-k) >= n {
			return 1 + k + int(n), nil
		}
	}
	return 0, ErrCorrupt
}

// EncodeKey encodes a row's key values.
func EncodeKey(vals []any) []byte {
	var b []byte
	for _, v := range vals {
		b = appendKeyValue(b, v)
	}
	return b
}

// AppendKeyOf appends EncodeKey(vals[idx[0]], vals[idx[1]], ...) to b.
func AppendKeyOf(b []byte, vals []any, idx []int) []byte {
	for _, j := range idx {
		b = appendKeyValue(b, vals[j])
	}
	return b
}

// signBit flips int64's sign so that negative numbers sort first.
const signBit = 1 << 63

// appendKeyValue is AppendValue with integers in key order.
// A decimal key is written as the string it was before decimals had a
// type of their own, so that stored keys still match.
func appendKeyValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case int64:
		return binary.BigEndian.AppendUint64(append(b, tKeyInt), uint64(x)^signBit)
	case Decimal:
		return AppendValue(b, string(x))
	}
	return AppendValue(b, v)
}

// UpgradeKey re-encodes a key written before keys had tKeyInt (varint
// integers) as EncodeKey writes it now; changed is false when it holds no
// such integer.
func UpgradeKey(key []byte) (upgraded []byte, changed bool, err error) {
	for b := key; len(b) > 0; {
		n, err := valueLen(b)
		if err != nil {
			return nil, false, err
		}
		changed = changed || b[0] == tInt
		b = b[n:]
	}
	if !changed {
		return key, false, nil
	}
	out := make([]byte, 0, len(key)+8)
	for b := key; len(b) > 0; {
		v, rest, err := readValue(b)
		if err != nil {
			return nil, false, err
		}
		out, b = appendKeyValue(out, v), rest
	}
	return out, true, nil
}

// DecodeValues decodes n encoded values.
func DecodeValues(b []byte, n int) ([]any, error) {
	out := make([]any, 0, n)
	for len(b) > 0 {
		v, rest, err := readValue(b)
		if err != nil {
			return nil, err
		}
		out, b = append(out, v), rest
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w: %d values, want %d", ErrCorrupt, len(out), n)
	}
	return out, nil
}

// ShadowCodec encodes the tracked values of a row, prefixed with a
// fingerprint of the tracked column names: when `track` changes, old
// shadows no longer match and are treated as unknown rather than misread.
type ShadowCodec struct {
	cols []string
	fp   [4]byte
}

// NewShadowCodec returns the codec for these tracked columns, in order.
func NewShadowCodec(cols []string) ShadowCodec {
	c := ShadowCodec{cols: cols}
	binary.BigEndian.PutUint32(c.fp[:], crc32.ChecksumIEEE([]byte(strings.Join(cols, "\x00"))))
	return c
}

// Encode encodes the tracked values, in the codec's column order.
func (c ShadowCodec) Encode(vals []any) []byte {
	b := append([]byte{}, c.fp[:]...)
	for _, v := range vals {
		b = AppendValue(b, v)
	}
	return b
}

// AppendOf appends Encode(vals[idx[0]], vals[idx[1]], ...) to b.
func (c ShadowCodec) AppendOf(b []byte, vals []any, idx []int) []byte {
	b = append(b, c.fp[:]...)
	for _, j := range idx {
		b = AppendValue(b, vals[j])
	}
	return b
}

// Decode returns the values, or ok=false when the shadow was written for
// other tracked columns (or is damaged).
func (c ShadowCodec) Decode(b []byte) (vals []any, ok bool) {
	if len(b) < 4 || !bytes.Equal(b[:4], c.fp[:]) {
		return nil, false
	}
	vals, err := DecodeValues(b[4:], len(c.cols))
	return vals, err == nil
}

// DecodeInto decodes a shadow as Decode does, into dst (dst[j] for the
// codec's column j). cur is the current row's encoding by this codec,
// AppendOf(nil, vals, idx): a column whose bytes are the same in both
// takes its current value vals[idx[j]] instead of a decoded copy, so only
// the columns that changed are decoded. On ok=false dst may hold some of
// the values.
func (c ShadowCodec) DecodeInto(dst []any, stored, cur []byte, vals []any, idx []int) (ok bool) {
	if len(stored) < 4 || !bytes.Equal(stored[:4], c.fp[:]) {
		return false
	}
	stored = stored[4:]
	if len(cur) >= 4 && bytes.Equal(cur[:4], c.fp[:]) {
		cur = cur[4:]
	} else {
		cur = nil
	}
	if len(dst) < len(c.cols) {
		return false
	}
	for j := range c.cols {
		n, err := valueLen(stored)
		if err != nil {
			return false
		}
		seg := stored[:n]
		stored = stored[n:]
		if m, err := valueLen(cur); err == nil && j < len(idx) {
			same := bytes.Equal(seg, cur[:m])
			cur = cur[m:]
			if same {
				dst[j] = vals[idx[j]]
				continue
			}
		} else {
			cur = nil
		}
		v, _, err := readValue(seg)
		if err != nil {
			return false
		}
		dst[j] = v
	}
	return len(stored) == 0
}

// AppendFingerprint appends, as an encoded []byte value, a 64-bit FNV-1a
// digest of vals[idx[0]], vals[idx[1]], ... as encoded (a Decimal as its
// text). Polling shadows keep it for the columns rules read only as new
// values: it tells that one of them changed without keeping what they
// held.
func AppendFingerprint(b []byte, vals []any, idx []int) []byte {
	var scratch [64]byte
	h := uint64(14695981039346656037) // FNV-1a, written out: no allocation per row
	for _, j := range idx {
		v := vals[j]
		if d, ok := v.(Decimal); ok {
			v = string(d)
		}
		for _, c := range AppendValue(scratch[:0], v) {
			h ^= uint64(c)
			h *= 1099511628211
		}
	}
	return binary.BigEndian.AppendUint64(append(b, tBytes, 8), h)
}

// Same reports whether two codecs read and write the same shadows.
func (c ShadowCodec) Same(o ShadowCodec) bool { return c.fp == o.fp && slices.Equal(c.cols, o.cols) }

// Format names the shadows the codec writes (its columns), for a store
// to remember that a table's shadows are all in it.
func (c ShadowCodec) Format() string { return strings.Join(c.cols, "\x00") }

// Columns returns the codec's column names, in order. The caller must not
// change them.
func (c ShadowCodec) Columns() []string { return c.cols }
