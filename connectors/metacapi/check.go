package metacapi

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"golang.org/x/text/currency"

	"github.com/capisync/capisync/internal/capi"
)

// Meta's age windows for event_time.
const (
	MaxAge            = 7 * 24 * time.Hour
	MaxAgePhysical    = 62 * 24 * time.Hour
	MaxFutureSkew     = time.Minute
	physicalStore     = "physical_store"
	website           = "website"
	businessMessaging = "business_messaging"
)

// maxAge is the oldest event_time Meta accepts for the action source.
func maxAge(actionSource string) time.Duration {
	if actionSource == physicalStore {
		return MaxAgePhysical
	}
	return MaxAge
}

// CheckAge reports whether Meta would still accept the event's event_time.
func CheckAge(e *capi.Event, now time.Time) error {
	t := time.Unix(e.EventTime, 0)
	if age := now.Sub(t); age > maxAge(e.ActionSource) {
		return fmt.Errorf("age rule: event_time %s is %s old; Meta accepts at most %d days for action_source %s",
			t.UTC().Format(time.RFC3339), age.Round(time.Minute), int(maxAge(e.ActionSource).Hours()/24), e.ActionSource)
	}
	if t.Sub(now) > MaxFutureSkew {
		return fmt.Errorf("future rule: event_time %s is %s in the future; Meta rejects events from the future",
			t.UTC().Format(time.RFC3339), t.Sub(now).Round(time.Second))
	}
	return nil
}

// Check finds what would make Meta reject the event (and with it the whole
// batch), so that it is dead-lettered before it is sent. Each check names
// the field; the rules come from Meta's Conversions API parameter
// reference (server event, customer information and custom data
// parameters) and its business SDKs (facebook-python-business-sdk
// adobjects/serverside, facebook-nodejs-business-sdk objects/serverside),
// as docs/rules.md lists.
func Check(e *capi.Event, now time.Time) error {
	if err := CheckAge(e, now); err != nil {
		return err
	}
	return CheckShape(e)
}

// CheckShape is Check without the age rule, which depends on when the
// event is sent (capisync rules test runs it).
func CheckShape(e *capi.Event) error {
	if e.EventName == "" {
		return fmt.Errorf("event_name is empty")
	}
	if u := e.EventSourceURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return fmt.Errorf("event_source_url must be a full URL beginning with http:// or https://")
	}
	if c := e.MessagingChannel; c != "" && !messagingChannels[c] {
		return fmt.Errorf("messaging_channel %q is not one of whatsapp, messenger, instagram", c)
	}
	switch e.ActionSource {
	case website:
		if e.EventSourceURL == "" {
			return fmt.Errorf("action_source website requires event_source_url")
		}
		if s, _ := e.UserData["client_user_agent"].(string); s == "" {
			return fmt.Errorf("action_source website requires user_data.client_user_agent")
		}
	case businessMessaging:
		if e.MessagingChannel == "" {
			return fmt.Errorf("action_source business_messaging requires messaging_channel")
		}
	case "app":
		for _, k := range []string{"advertiser_tracking_enabled", "application_tracking_enabled", "extinfo"} {
			if e.AppData[k] == nil {
				return fmt.Errorf("action_source app requires app_data.%s", k)
			}
		}
	}
	if err := checkUserData(e.UserData); err != nil {
		return err
	}
	if err := checkCustomData(e.EventName, e.CustomData); err != nil {
		return err
	}
	if !hasMatchKey(e.UserData) {
		return fmt.Errorf("no usable user_data key: Meta needs at least one customer information parameter to match the event")
	}
	if weak := weakOnly(e.UserData); weak != "" {
		return fmt.Errorf("no usable user_data key: %s alone cannot match anyone (Meta's customer information best practices); add em, ph, external_id, lead_id or a click id", weak)
	}
	return nil
}

// messagingChannels are the channels of action_source business_messaging.
var messagingChannels = map[string]bool{"whatsapp": true, "messenger": true, "instagram": true}

// singleValued are the user_data keys Meta takes as one string, never a
// list (unlike em, ph, external_id and the other hashed keys).
var singleValued = []string{"client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id", "fb_login_id",
	"lead_id", "anon_id", "madid", "page_id", "page_scoped_user_id", "ctwa_clid", "ig_account_id", "ig_sid",
	"whatsapp_business_account_id"}

var (
	digitsRe = regexp.MustCompile(`^[0-9]{1,20}$`)
	// fbc is fb.<subdomain index 0-2>.<creation time, unix ms>.<fbclid>,
	// possibly followed by the parameter builder's .<appendix>.
	fbcRe = regexp.MustCompile(`^fb\.[0-2]\.[0-9]{13}\.\S+$`)
)

func checkUserData(ud map[string]any) error {
	for _, k := range singleValued {
		v, ok := ud[k]
		if !ok {
			continue
		}
		s, isString := v.(string)
		if !isString {
			return fmt.Errorf("user_data.%s takes one value, not a list", k)
		}
		switch k {
		case "client_ip_address":
			if net.ParseIP(s) == nil {
				return fmt.Errorf("user_data.client_ip_address %q is not an IPv4 or IPv6 address", s)
			}
		case "lead_id":
			if !digitsRe.MatchString(s) {
				return fmt.Errorf("user_data.lead_id must be the numeric id Lead Ads gave the lead")
			}
		case "fbc":
			if !fbcRe.MatchString(s) {
				return fmt.Errorf("user_data.fbc must look like fb.1.<click time in ms>.<fbclid>; build it from a raw fbclid with fbc(fbclid, click_time)")
			}
		}
	}
	return nil
}

// moneyKeys are the custom_data keys Meta reads as numbers.
var moneyKeys = []string{"value", "net_revenue", "predicted_ltv"}

func checkCustomData(event string, cd map[string]any) error {
	for _, k := range moneyKeys {
		if v, ok := cd[k]; ok && !isNumber(v) {
			return fmt.Errorf("custom_data.%s must be a number, got %s", k, valueKind(v))
		}
	}
	if cur, ok := cd["currency"]; ok {
		s, _ := cur.(string)
		if _, err := currency.ParseISO(s); err != nil || len(s) != 3 {
			return fmt.Errorf("custom_data.currency %v is not an ISO 4217 currency code (such as USD or EUR)", cur)
		}
	}
	if contents, ok := cd["contents"].([]any); ok {
		for i, c := range contents {
			m, _ := c.(map[string]any)
			if p, ok := m["item_price"]; ok && !isNumber(p) {
				return fmt.Errorf("custom_data.contents[%d].item_price must be a number, got %s", i, valueKind(p))
			}
		}
	}
	if event == "Purchase" && (cd["value"] == nil || cd["currency"] == nil) {
		return fmt.Errorf("a Purchase requires custom_data.value and custom_data.currency")
	}
	return nil
}

func isNumber(v any) bool {
	switch v.(type) {
	case json.Number, float64, float32, int, int64, int32, uint64:
		return true
	}
	return false
}

func valueKind(v any) string {
	switch v.(type) {
	case string:
		return "text"
	case nil:
		return "null"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func hasMatchKey(ud map[string]any) bool {
	for k, v := range ud {
		if v == nil || v == "" {
			continue
		}
		// client_user_agent alone does not identify anyone.
		if k != "client_user_agent" && capi.IsUserDataKey(k) {
			return true
		}
	}
	return false
}

// weakSets are sets of keys that do not match a person on their own,
// per Meta's best practices for customer information parameters: a first
// or last name with gender, or geography alone.
var weakSets = []struct {
	name string
	keys map[string]bool
}{
	{"a first name and gender", map[string]bool{"fn": true, "ge": true}},
	{"a last name and gender", map[string]bool{"ln": true, "ge": true}},
	{"geography (ct, st, zp, country)", map[string]bool{"ct": true, "st": true, "zp": true, "country": true}},
}

// weakOnly names the weak set the user_data keys fall within, or "".
func weakOnly(ud map[string]any) string {
	for _, w := range weakSets {
		within := true
		for k, v := range ud {
			if v == nil || v == "" || k == "client_user_agent" {
				continue
			}
			if !w.keys[k] {
				within = false
				break
			}
		}
		if within {
			return w.name
		}
	}
	return ""
}
