package capi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalid is wrapped by every normalization error: the value cannot be
// made into what Meta expects and must be dropped, never sent raw.
var ErrInvalid = errors.New("invalid value")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// IsSHA256 reports whether s already is a SHA-256 hex digest.
func IsSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// Hash returns the lowercase hex SHA-256 of s.
func Hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	var out [64]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// Normalize turns a raw user_data value into the form Meta hashes, following
// Meta's customer-information rules and its business SDKs. defaultCountry
// (ISO alpha-2, may be empty) is assumed for phone numbers written without
// a country code. Keys Meta does not hash are returned trimmed.
func Normalize(key string, v any, defaultCountry string) (string, error) {
	if t, ok := v.(time.Time); ok {
		if key == "db" {
			return t.Format("20060102"), nil
		}
		return "", invalid("a time is not a %s", key)
	}
	s, err := scalarString(v)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid("empty")
	}
	switch key {
	case "em":
		return normalizeEmail(s)
	case "ph":
		return normalizePhone(s, defaultCountry)
	case "fn", "ln":
		return normalizeName(s)
	case "ge":
		return normalizeGender(s)
	case "db":
		return normalizeDOB(s)
	case "ct":
		return normalizeCity(s)
	case "st":
		return normalizeState(s)
	case "zp":
		return normalizeZip(s)
	case "country":
		return normalizeCountry(s)
	case "external_id":
		return strings.ToLower(s), nil
	}
	return s, nil
}

// NormalizeAndHash returns the value to send for a hashed key: a SHA-256
// digest passes through (lowercased); anything else is normalized and
// hashed.
func NormalizeAndHash(key string, v any, defaultCountry string) (string, error) {
	if s, ok := v.(string); ok && IsSHA256(strings.TrimSpace(s)) {
		return strings.ToLower(strings.TrimSpace(s)), nil
	}
	n, err := Normalize(key, v, defaultCountry)
	if err != nil {
		return "", err
	}
	return Hash(n), nil
}

// scalarString renders a column value as text for normalization.
func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10), nil
		}
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return "", invalid("a boolean")
	case nil:
		return "", invalid("empty")
	}
	return "", invalid("a %T", v)
}

// normalizeEmail lowercases an address and checks its shape: a local part
// of letters, digits and .!#$%&'*+/=?^_{|}~- (no leading, trailing or
// double dot), "@", and a domain of two or more labels of letters, digits
// and inner hyphens. Letters of any script are allowed (internationalized
// addresses). Hand-written rather than a regexp: it runs for every event.
func normalizeEmail(s string) (string, error) {
	s = strings.ToLower(s)
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at > 64 || !validLocal(s[:at]) || !validDomain(s[at+1:]) {
		return "", invalid("not an email address")
	}
	return s, nil
}

func validLocal(l string) bool {
	if l[0] == '.' || l[len(l)-1] == '.' || strings.Contains(l, "..") {
		return false
	}
	for _, r := range l {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(".!#$%&'*+/=?^_{|}~-", r) {
			return false
		}
	}
	return true
}

func validDomain(d string) bool {
	if !strings.Contains(d, ".") || len(d) > 253 {
		return false
	}
	for l := range strings.SplitSeq(d, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' {
				return false
			}
		}
	}
	return true
}

func onlyDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// normalizePhone returns the number's digits with country code and no
// leading zeros or +. Written with + or 00 the country code is read from
// the number; otherwise defaultCountry supplies it; without either, the
// digits are taken as already holding a country code (Meta's SDKs do the
// same).
func normalizePhone(s, defaultCountry string) (string, error) {
	// Cut an extension: "555-1234 x12", "ext. 12", "#12". Searched on the
	// bytes of s itself (lowercasing can change byte offsets).
	for i := 1; i < len(s); i++ {
		if c := s[i]; c == 'x' || c == 'X' || c == '#' || c == ';' || (c == 'e' || c == 'E') && i+3 <= len(s) && strings.EqualFold(s[i:i+3], "ext") {
			s = s[:i]
			break
		}
	}
	if strings.ContainsFunc(s, unicode.IsLetter) {
		return "", invalid("a phone number holds letters")
	}
	s = strings.TrimSpace(s)
	digits := onlyDigits(s)
	if len(digits) < 6 || len(digits) > 17 {
		return "", invalid("a phone number has 6 to 17 digits")
	}
	intl := strings.HasPrefix(s, "+")
	if !intl && strings.HasPrefix(digits, "00") && strings.HasPrefix(s, "00") {
		intl, digits = true, digits[2:]
	}
	region := strings.ToUpper(defaultCountry)
	if intl {
		region = ""
	}
	if intl || region != "" {
		if out, ok := fastPhone(digits, intl, region); ok {
			return out, nil
		}
		in := digits
		if intl {
			in = "+" + digits
		}
		num, err := phonenumbers.Parse(in, region)
		if err != nil || !phonenumbers.IsPossibleNumber(num) {
			return "", invalid("not a possible phone number")
		}
		return strconv.Itoa(int(num.GetCountryCode())) + phonenumbers.GetNationalSignificantNumber(num), nil
	}
	// No "+", no "00" and no default country: the digits must already
	// start with a country code, as Meta requires. A number that is not
	// a valid one read so ("(650) 555-0100" would be Singapore's +65...)
	// lacks it: hashed as it is, Meta could never match it.
	d := strings.TrimLeft(digits, "0")
	if len(d) < 8 || len(d) > 15 {
		return "", invalid("a phone number without country code (set default_country)")
	}
	num, err := phonenumbers.Parse("+"+d, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", invalid("a phone number without country code (set default_country)")
	}
	return strconv.Itoa(int(num.GetCountryCode())) + phonenumbers.GetNationalSignificantNumber(num), nil
}

// stripPunct lowercases s and removes punctuation and symbols; with
// keepSpaces false it removes white space too. Letters of every script are
// kept as they are (no transliteration), as Meta asks.
func stripPunct(s string, keepSpaces bool) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return stripPunctUnicode(s, keepSpaces)
		}
	}
	// ASCII, the common case, byte by byte into one buffer.
	b := make([]byte, 0, len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
			fallthrough
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			if space && len(b) > 0 {
				b = append(b, ' ')
			}
			space = false
			b = append(b, c)
		case (c == ' ' || c >= '\t' && c <= '\r') && keepSpaces:
			space = true
		}
	}
	return string(b)
}

// stripPunctUnicode is stripPunct for any text.
func stripPunctUnicode(s string, keepSpaces bool) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToLower(s) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
		case unicode.IsSpace(r) && keepSpaces:
			space = true
		}
	}
	return b.String()
}

func normalizeName(s string) (string, error) {
	n := stripPunct(s, true)
	if n == "" {
		return "", invalid("a name has no letters")
	}
	return n, nil
}

func normalizeGender(s string) (string, error) {
	switch strings.ToLower(s) {
	case "f", "female", "woman", "w", "girl", "femme", "frau", "mujer":
		return "f", nil
	case "m", "male", "man", "boy", "homme", "mann", "hombre":
		return "m", nil
	}
	return "", invalid("gender is f or m")
}

var dobLayouts = []string{
	"20060102", "2006-01-02", "2006/01/02", "2006.01.02", "2006-1-2", "2006/1/2",
	"2006-01-02T15:04:05Z07:00", "2006-01-02 15:04:05",
	"January 2, 2006", "Jan 2, 2006", "2 January 2006", "2 Jan 2006", "January 2 2006", "Jan 2 2006",
}

// normalizeDOB reads common date layouts and returns YYYYMMDD. Day and month
// written as n/n/yyyy are read month first (US) unless the first number
// cannot be a month; n.n.yyyy and n-n-yyyy are read day first.
func normalizeDOB(s string) (string, error) {
	for _, l := range dobLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return checkDOB(t)
		}
	}
	for _, sep := range []string{"/", ".", "-"} {
		parts := strings.Split(s, sep)
		if len(parts) != 3 || len(parts[2]) != 4 {
			continue
		}
		a, err1 := strconv.Atoi(parts[0])
		b, err2 := strconv.Atoi(parts[1])
		y, err3 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		month, day := b, a // day first
		if sep == "/" && a <= 12 {
			month, day = a, b
		}
		if month > 12 && day <= 12 {
			month, day = day, month
		}
		t := time.Date(y, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		if t.Day() != day || int(t.Month()) != month {
			return "", invalid("not a date")
		}
		return checkDOB(t)
	}
	return "", invalid("not a date of birth")
}

func checkDOB(t time.Time) (string, error) {
	if t.Year() < 1900 || t.After(time.Now()) {
		return "", invalid("date of birth out of range")
	}
	return t.Format("20060102"), nil
}

func normalizeCity(s string) (string, error) {
	n := stripPunct(s, false)
	if n == "" {
		return "", invalid("a city has no letters")
	}
	return n, nil
}

func normalizeState(s string) (string, error) {
	key := stripPunct(s, true)
	if code, ok := stateCodes[key]; ok {
		return code, nil
	}
	n := strings.ReplaceAll(key, " ", "")
	if n == "" {
		return "", invalid("a state has no letters")
	}
	return n, nil
}

var usZip = regexp.MustCompile(`^[0-9]{5}(?:[- ]?[0-9]{4})?$`)

func normalizeZip(s string) (string, error) {
	if usZip.MatchString(s) {
		return s[:5], nil
	}
	n := stripPunct(s, false)
	if n == "" {
		return "", invalid("a postal code has no letters or digits")
	}
	return n, nil
}

func normalizeCountry(s string) (string, error) {
	key := stripPunct(s, true)
	if len(key) == 2 && isRegion(key) {
		return key, nil
	}
	if code := countryCode(key); code != "" {
		return code, nil
	}
	return "", invalid("not a country")
}
