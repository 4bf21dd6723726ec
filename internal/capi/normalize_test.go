package capi

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		key     string
		in      any
		country string
		want    string // "" means invalid
	}{
		{"em", "  Jane.Doe@Example.COM ", "", "jane.doe@example.com"},
		{"em", "jane+crm@sub.example.co.uk", "", "jane+crm@sub.example.co.uk"},
		{"em", "not-an-email", "", ""},
		{"em", "a@b", "", ""},
		{"em", "a..b@example.com", "", ""},
		{"em", "josé@exämple.de", "", "josé@exämple.de"},
		{"ph", "+1 (650) 555-1234", "", "16505551234"},
		{"ph", "+44 (0)20 7946 0958", "", "442079460958"},
		{"ph", "0044 20 7946 0958", "", "442079460958"},
		{"ph", "020 7946 0958", "GB", "442079460958"},
		{"ph", "(650) 555-1234", "US", "16505551234"},
		{"ph", "06 12 34 56 78", "FR", "33612345678"},
		{"ph", "0016505551234", "", "16505551234"},
		{"ph", "16505551234", "", "16505551234"},
		{"ph", int64(16505551234), "", "16505551234"},
		{"ph", "555-1234", "", ""},
		{"ph", "+1 650 555 1234 ext. 12", "", "16505551234"},
		{"ph", "(650) 555-1234 x7", "US", "16505551234"},
		{"ph", "İİ", "US", ""}, // lowercasing changes its length: found by FuzzEval
		{"ph", "call me", "US", ""},
		{"ph", "12", "US", ""},
		// No country code and no default country: left out, not hashed
		// into something Meta cannot match.
		{"ph", "(650) 555-1234", "", ""},
		{"ph", "650 555 1234", "", ""},
		{"ph", "441614960000", "", "441614960000"},
		{"fn", "  JOHN ", "", "john"},
		{"fn", "Mary-Ann", "", "maryann"},
		{"fn", "Zoë", "", "zoë"},
		{"fn", "Ólafur", "", "ólafur"},
		{"ln", "O'Brien", "", "obrien"},
		{"ln", "Müller", "", "müller"},
		{"ln", "山田", "", "山田"},
		{"ln", "...", "", ""},
		{"ge", "Female", "", "f"},
		{"ge", " M ", "", "m"},
		{"ge", "x", "", ""},
		{"db", "1990-02-28", "", "19900228"},
		{"db", "02/28/1990", "", "19900228"},
		{"db", "28/02/1990", "", "19900228"},
		{"db", "28.02.1990", "", "19900228"},
		{"db", "19900228", "", "19900228"},
		{"db", "February 28, 1990", "", "19900228"},
		{"db", time.Date(1990, 2, 28, 0, 0, 0, 0, time.UTC), "", "19900228"},
		{"db", "1990-02-30", "", ""},
		{"db", "yesterday", "", ""},
		{"ct", "San Francisco", "", "sanfrancisco"},
		{"ct", "Saint-Étienne", "", "saintétienne"},
		{"st", "California", "", "ca"},
		{"st", " CA ", "", "ca"},
		{"st", "Ontario", "", "on"},
		{"st", "Bavaria", "", "bavaria"},
		{"zp", "94105-1234", "", "94105"},
		{"zp", "94105", "", "94105"},
		{"zp", "SW1A 1AA", "", "sw1a1aa"},
		{"zp", int64(2134), "", "2134"},
		{"country", "US", "", "us"},
		{"country", "United States", "", "us"},
		{"country", "Germany", "", "de"},
		{"country", "united kingdom", "", "gb"},
		{"country", "Narnia", "", ""},
		{"country", "ZZ", "", ""},
		{"external_id", "  CRM-42 ", "", "crm-42"},
		{"external_id", int64(42), "", "42"},
		{"em", nil, "", ""},
		{"em", true, "", ""},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.key, tt.in, tt.country)
		if tt.want == "" {
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("Normalize(%s, %#v) = %q, %v; want ErrInvalid", tt.key, tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%s, %#v, %q) = %q, %v; want %q", tt.key, tt.in, tt.country, got, err, tt.want)
		}
	}
}

func TestNormalizeAndHash(t *testing.T) {
	const janeHash = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d" // printf jane.doe@example.com | sha256sum
	got, err := NormalizeAndHash("em", " Jane.Doe@Example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	if got != janeHash {
		t.Errorf("hash = %s", got)
	}
	// An already-hashed value passes through, lowercased.
	upper := strings.ToUpper(got)
	if pass, _ := NormalizeAndHash("em", upper, ""); pass != got {
		t.Errorf("pre-hashed value changed: %s", pass)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"Jane@Example.com", "+44 (0)20 7946 0958", "Zoë", "1990-02-28", "94105-1234", "Germany", "", "00", "+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, k := range HashedKeys {
			out, err := NormalizeAndHash(k, s, "US")
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("%s: error not ErrInvalid: %v", k, err)
				}
				continue
			}
			if !IsSHA256(out) || out != strings.ToLower(out) {
				t.Fatalf("%s(%q) = %q: not a lowercase sha256", k, s, out)
			}
			if n, err := Normalize(k, s, "US"); err == nil && !utf8.ValidString(n) && utf8.ValidString(s) {
				t.Fatalf("%s(%q): invalid utf-8 %q", k, s, n)
			}
		}
	})
}

// FuzzStripPunctASCII: the ASCII fast path gives what the Unicode one does.
func FuzzStripPunctASCII(f *testing.F) {
	f.Add("  Mary-Ann  O'Neil\t Jr. 3rd\x00\x7f", true)
	f.Add("San Francisco", false)
	f.Fuzz(func(t *testing.T, s string, keepSpaces bool) {
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return
			}
		}
		if got, want := stripPunct(s, keepSpaces), stripPunctUnicode(s, keepSpaces); got != want {
			t.Fatalf("stripPunct(%q, %v) = %q, the Unicode path gives %q", s, keepSpaces, got, want)
		}
	})
}
