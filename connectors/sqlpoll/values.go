package sqlpoll

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/capisync/capisync/internal/cdc"
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
			return cdc.Decimal(strconv.FormatUint(x, 10)), nil
		}
		return int64(x), nil
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case bool:
		return x, nil
	case time.Time:
		if x.IsZero() {
			switch k {
			case kMySQLDateTime:
				return "0000-00-00 00:00:00", nil
			case kMySQLDate:
				return "0000-00-00", nil
			}
		}
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
		return cdc.Decimal(s), nil // too large for int64: keep the exact digits
	case kFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("not a number: %q", s)
		}
		return f, nil
	case kDecimal:
		return cdc.Decimal(s), nil
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
	case kTime, kMySQLDateTime, kMySQLDate:
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
