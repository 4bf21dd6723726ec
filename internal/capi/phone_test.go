package capi

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// TestFastPhoneAgrees checks the fast path against libphonenumber's full
// parser wherever the fast path answers.
func TestFastPhoneAgrees(t *testing.T) {
	cases := []struct {
		in     string
		region string
	}{
		{"+16505551234", ""}, {"+442079460958", ""}, {"+4402079460958", ""}, {"+33612345678", ""},
		{"+390612345678", ""}, {"+5511912345678", ""}, {"+4915123456789", ""}, {"+819012345678", ""},
		{"+61412345678", ""}, {"+79161234567", ""}, {"+912212345678", ""}, {"+27821234567", ""},
		{"6505551234", "US"}, {"16505551234", "US"}, {"02079460958", "GB"}, {"0612345678", "FR"},
		{"0612345678", "IT"}, {"3123456789", "IT"}, {"030123456", "DE"}, {"015123456789", "DE"},
		{"84951234567", "RU"}, {"0412345678", "AU"}, {"09012345678", "JP"}, {"11912345678", "BR"},
		{"5512345678", "MX"}, {"0201234567", "NL"}, {"123", "US"}, {"+999123456", ""},
	}
	for _, c := range cases {
		checkFastPhone(t, c.in, c.region)
	}
}

// FuzzFastPhone: wherever the fast path answers, libphonenumber's parser
// gives the same number.
func FuzzFastPhone(f *testing.F) {
	for _, s := range []string{"+16505551234", "+390612345678", "0612345678", "+3900000", "+1 650 555 0000"} {
		f.Add(s, "")
		f.Add(s, "IT")
	}
	f.Fuzz(func(t *testing.T, in, region string) {
		if region != "" && region != "US" && region != "IT" && region != "DE" && region != "GB" {
			region = "US"
		}
		checkFastPhone(t, in, region)
	})
}

// checkFastPhone gives fastPhone what normalizePhone would (digits after
// a "+" or "00", or national digits with a region) and compares.
func checkFastPhone(t *testing.T, in, region string) {
	digits := onlyDigits(in)
	intl := region == ""
	if !intl && strings.HasPrefix(digits, "00") {
		return // normalizePhone reads it as international
	}
	if len(digits) < 6 || len(digits) > 17 {
		return // normalizePhone rejects it first
	}
	fast, ok := fastPhone(digits, intl, region)
	if !ok {
		return
	}
	parse := digits
	if intl {
		parse = "+" + digits
	}
	num, err := phonenumbers.Parse(parse, region)
	if err != nil {
		t.Errorf("%s/%s: fast path gave %s, parser failed: %v", in, region, fast, err)
		return
	}
	full := strconv.Itoa(int(num.GetCountryCode())) + phonenumbers.GetNationalSignificantNumber(num)
	if fast != full {
		t.Errorf("%s/%s: fast %s, parser %s", in, region, fast, full)
	}
}

func BenchmarkNormalizePhone(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Normalize("ph", "+1 (650) 555-1234", ""); err != nil {
			b.Fatal(err)
		}
	}
}
