package capi

import (
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

var callingCodes = phonenumbers.GetSupportedCallingCodes()

// fastPhone does what phonenumbers.Parse does for the plain cases — digits
// with a country code, or national digits with a known region — using the
// library's own metadata (calling codes, national prefixes, possible
// lengths) but none of its regular expressions, which cost ~10 µs a number.
// It answers ok only when libphonenumber itself calls the result a possible
// number; anything else goes to the full parser. TestFastPhoneAgrees keeps
// the two in step.
func fastPhone(digits string, intl bool, region string) (string, bool) {
	cc := 0
	national := digits
	if intl {
		for n := 1; n <= 3 && n < len(digits); n++ {
			code, _ := strconv.Atoi(digits[:n])
			if callingCodes[code] {
				cc, national = code, digits[n:]
				break
			}
		}
		if cc == 0 {
			return "", false
		}
		region = phonenumbers.GetRegionCodeForCountryCode(cc)
	} else {
		cc = phonenumbers.GetCountryCodeForRegion(region)
		if cc == 0 {
			return "", false
		}
	}
	if ndd := phonenumbers.GetNddPrefixForRegion(region, true); ndd != "" && strings.HasPrefix(national, ndd) {
		national = national[len(ndd):]
	}
	if national == "" || len(national) > 17 {
		return "", false
	}
	nn, err := strconv.ParseUint(national, 10, 64)
	if err != nil {
		return "", false
	}
	cc32 := int32(cc)
	pn := &phonenumbers.PhoneNumber{CountryCode: &cc32, NationalNumber: &nn}
	if zeros := len(national) - len(strings.TrimLeft(national, "0")); zeros > 0 {
		yes, z := true, int32(zeros)
		pn.ItalianLeadingZero, pn.NumberOfLeadingZeros = &yes, &z
	}
	if phonenumbers.IsPossibleNumberWithReason(pn) != phonenumbers.IS_POSSIBLE {
		return "", false
	}
	return strconv.Itoa(cc) + phonenumbers.GetNationalSignificantNumber(pn), true
}
