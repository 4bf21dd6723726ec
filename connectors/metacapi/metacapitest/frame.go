package metacapitest

import (
	"encoding/json"
	"errors"
	"fmt"
)

// frame reads a request body's top level without decoding its events: how
// many elements "data" holds, the access_token and the test_event_code. It
// serves the requests a benchmark does not validate in full (SampleEvery):
// a structural scan costs a fraction of decoding every event, and on a
// small machine the fake's CPU would otherwise be taken from the process
// being measured. Unknown top-level keys are refused, as in full validation.
func frame(b []byte) (events int, token, testCode string, err error) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return 0, "", "", errors.New("the body is not a JSON object")
	}
	i = skipWS(b, i+1)
	for i < len(b) && b[i] != '}' {
		end, err := skipString(b, i)
		if err != nil {
			return 0, "", "", err
		}
		key := string(b[i+1 : end-1])
		if i = skipWS(b, end); i >= len(b) || b[i] != ':' {
			return 0, "", "", fmt.Errorf("no value for %q", key)
		}
		i = skipWS(b, i+1)
		switch key {
		case "data":
			if i >= len(b) || b[i] != '[' {
				return 0, "", "", errors.New("data is not an array")
			}
			for i = skipWS(b, i+1); i < len(b) && b[i] != ']'; {
				if b[i] != '{' {
					return 0, "", "", fmt.Errorf("data[%d] is not an object", events)
				}
				if i, err = skipValue(b, i); err != nil {
					return 0, "", "", fmt.Errorf("data[%d]: %w", events, err)
				}
				events++
				if i = skipWS(b, i); i < len(b) && b[i] == ',' {
					i = skipWS(b, i+1)
				}
			}
			i++
		case "access_token", "test_event_code", "partner_agent":
			end, err := skipValue(b, i)
			if err != nil {
				return 0, "", "", err
			}
			var v string
			if err := json.Unmarshal(b[i:end], &v); err != nil {
				return 0, "", "", fmt.Errorf("%s: %w", key, err)
			}
			if key == "access_token" {
				token = v
			} else if key == "test_event_code" {
				testCode = v
			}
			i = end
		default:
			return 0, "", "", fmt.Errorf("json: unknown field %q", key)
		}
		if i = skipWS(b, i); i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
	if i >= len(b) {
		return 0, "", "", errors.New("unexpected end of the body")
	}
	return events, token, testCode, nil
}

var errTruncated = errors.New("unexpected end of JSON")

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errors.New("expected a string")
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errTruncated
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errTruncated
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, errTruncated
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	if j == i {
		return 0, fmt.Errorf("unexpected %q", b[i])
	}
	return j, nil
}
