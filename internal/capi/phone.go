package capi

import (
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

var callingCodes = phonenumbers.GetSupportedCallingCodes()

// nationalPrefix is how the parser reads a region's national prefix:
// plain when it is none or just the prefix itself (0 in France, 1 in the
// US), which fastPhone strips as the parser would; otherwise (carrier
// codes and such, as in Britain, Japan or Argentina) a pattern, and a
// number it matches goes to the parser.
type nationalPrefix struct {
	plain bool
	ndd   string         // the national prefix, digits only ("" when none)
	re    *regexp.Regexp // nil when not plain and not compiled: always the parser
}

var nationalPrefixes = sync.OnceValue(func() map[string]nationalPrefix {
	m := map[string]nationalPrefix{}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return m
	}
	for _, md := range coll.GetMetadata() {
		p := md.GetNationalPrefixForParsing()
		np := nationalPrefix{plain: md.GetNationalPrefixTransformRule() == "" && (p == "" || p == md.GetNationalPrefix()),
			ndd: phonenumbers.GetNddPrefixForRegion(md.GetId(), true)}
		if !np.plain {
			np.re, _ = regexp.Compile("^(?:" + p + ")")
		}
		m[md.GetId()] = np
	}
	return m
})

// fastPhone does what phonenumbers.Parse does for the plain cases — digits
// with a country code, or national digits with a known region — using the
// library's own metadata (calling codes, national prefixes, possible
// lengths) but none of its regular expressions, which cost ~10 µs a number.
// It answers ok only when libphonenumber itself calls the result a possible
// number; anything else goes to the full parser. TestFastPhoneAgrees and
// FuzzFastPhone keep the two in step.
func fastPhone(digits string, intl bool, region string) (string, bool) {
	cc := 0
	national := digits
	if intl {
		if strings.HasPrefix(digits, "0") { // no country code starts with 0: the parser rejects it
			return "", false
		}
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
	np, ok := nationalPrefixes()[region]
	if !ok || !np.plain && (np.re == nil || np.re.MatchString(national)) {
		return "", false
	}
	if !intl && (strings.HasPrefix(national, strconv.Itoa(cc)) || strings.HasPrefix(national, "0") && np.ndd != "0") {
		// Perhaps the country code written without "+" or "00", or the
		// region's international prefix (011 in the US): the parser
		// decides by the number's length and patterns.
		return "", false
	}
	if ndd := np.ndd; np.plain && ndd != "" && strings.HasPrefix(national, ndd) {
		national = national[len(ndd):]
		if strings.HasPrefix(national, ndd) {
			return "", false // whether to strip it again is the parser's call
		}
	}
	if national == "" || len(national) > 17 {
		return "", false
	}
	nn, err := strconv.ParseUint(national, 10, 64)
	if err != nil || nn == 0 {
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
	// The national significant number is the leading zeros (kept above)
	// and the number's digits: national itself, without the library's
	// builder.
	return strconv.Itoa(cc) + national, true
}
