package capi

import (
	"strconv"
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
		digits := onlyDigits(c.in)
		fast, ok := fastPhone(digits, c.region == "", c.region)
		if !ok {
			continue
		}
		num, err := phonenumbers.Parse(c.in, c.region)
		if err != nil {
			t.Errorf("%s/%s: fast path gave %s, parser failed: %v", c.in, c.region, fast, err)
			continue
		}
		full := strconv.Itoa(int(num.GetCountryCode())) + phonenumbers.GetNationalSignificantNumber(num)
		if fast != full {
			t.Errorf("%s/%s: fast %s, parser %s", c.in, c.region, fast, full)
		}
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
