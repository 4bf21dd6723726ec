package capi

import (
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
)

// stateCodes maps lower-case US state and Canadian province names (and
// their codes) to Meta's 2-letter lower-case code.
var stateCodes = func() map[string]string {
	names := map[string]string{
		"al": "alabama", "ak": "alaska", "az": "arizona", "ar": "arkansas", "ca": "california",
		"co": "colorado", "ct": "connecticut", "de": "delaware", "dc": "district of columbia",
		"fl": "florida", "ga": "georgia", "hi": "hawaii", "id": "idaho", "il": "illinois",
		"in": "indiana", "ia": "iowa", "ks": "kansas", "ky": "kentucky", "la": "louisiana",
		"me": "maine", "md": "maryland", "ma": "massachusetts", "mi": "michigan", "mn": "minnesota",
		"ms": "mississippi", "mo": "missouri", "mt": "montana", "ne": "nebraska", "nv": "nevada",
		"nh": "new hampshire", "nj": "new jersey", "nm": "new mexico", "ny": "new york",
		"nc": "north carolina", "nd": "north dakota", "oh": "ohio", "ok": "oklahoma", "or": "oregon",
		"pa": "pennsylvania", "ri": "rhode island", "sc": "south carolina", "sd": "south dakota",
		"tn": "tennessee", "tx": "texas", "ut": "utah", "vt": "vermont", "va": "virginia",
		"wa": "washington", "wv": "west virginia", "wi": "wisconsin", "wy": "wyoming",
		"pr": "puerto rico", "gu": "guam", "vi": "virgin islands", "as": "american samoa",
		"mp": "northern mariana islands",
		// Canadian provinces and territories.
		"ab": "alberta", "bc": "british columbia", "mb": "manitoba", "nb": "new brunswick",
		"nl": "newfoundland and labrador", "ns": "nova scotia", "nt": "northwest territories",
		"nu": "nunavut", "on": "ontario", "pe": "prince edward island", "qc": "quebec",
		"sk": "saskatchewan", "yt": "yukon",
	}
	m := make(map[string]string, 2*len(names))
	for code, name := range names {
		m[code] = code
		m[name] = code
	}
	m["québec"] = "qc"
	m["washington dc"] = "dc"
	return m
}()

var (
	countriesOnce sync.Once
	countryNames  map[string]string // lower-case English name -> code
	regions       map[string]bool   // lower-case ISO 3166-1 alpha-2 codes
)

func loadCountries() {
	countryNames = map[string]string{}
	regions = map[string]bool{}
	namer := display.English.Regions()
	for code := range phonenumbers.GetSupportedRegions() {
		lc := strings.ToLower(code)
		regions[lc] = true
		if r, err := language.ParseRegion(code); err == nil {
			countryNames[stripPunct(namer.Name(r), true)] = lc
		}
	}
	for alias, code := range map[string]string{
		"usa": "us", "united states of america": "us", "america": "us", "uk": "gb",
		"great britain": "gb", "england": "gb", "scotland": "gb", "wales": "gb",
		"northern ireland": "gb", "deutschland": "de", "españa": "es", "holland": "nl",
		"the netherlands": "nl", "czech republic": "cz", "russia": "ru", "south korea": "kr",
		"korea": "kr", "uae": "ae", "brasil": "br", "méxico": "mx", "türkiye": "tr", "turkey": "tr",
		"ivory coast": "ci", "viet nam": "vn",
	} {
		countryNames[alias] = code
	}
}

func isRegion(code string) bool {
	countriesOnce.Do(loadCountries)
	return regions[code]
}

func countryCode(name string) string {
	countriesOnce.Do(loadCountries)
	return countryNames[name]
}
