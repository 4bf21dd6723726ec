package capi

import "strings"

// StandardEvents are Meta's standard event names, spelled as Meta spells
// them. Any other name is a custom event.
var StandardEvents = []string{
	"AddPaymentInfo", "AddToCart", "AddToWishlist", "CompleteRegistration",
	"Contact", "CustomizeProduct", "Donate", "FindLocation",
	"InitiateCheckout", "Lead", "PageView", "Purchase", "Schedule", "Search",
	"StartTrial", "SubmitApplication", "Subscribe", "ViewContent",
}

// StandardEventFold returns the standard event name equal to name ignoring
// case, when name is spelled differently ("lead" -> "Lead"), or "".
func StandardEventFold(name string) string {
	for _, s := range StandardEvents {
		if strings.EqualFold(s, name) && s != name {
			return s
		}
	}
	return ""
}

// ActionSources are the values Meta accepts for action_source.
var ActionSources = []string{
	"website", "app", "email", "phone_call", "chat", "physical_store",
	"system_generated", "business_messaging", "other",
}

// MessagingChannels are the values Meta accepts for messaging_channel.
var MessagingChannels = []string{"whatsapp", "messenger", "instagram"}

// HashedKeys are the user_data keys Meta wants normalized and SHA-256 hashed.
var HashedKeys = []string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}

// PlainKeys are the user_data keys Meta wants as given, never hashed.
var PlainKeys = []string{
	"client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id",
	"fb_login_id", "lead_id", "anon_id", "madid", "page_id",
	"page_scoped_user_id", "ctwa_clid", "ig_account_id", "ig_sid",
	"whatsapp_business_account_id",
}

// IsHashedKey reports whether Meta wants the user_data key hashed.
func IsHashedKey(k string) bool { return contains(HashedKeys, k) }

// IsUserDataKey reports whether k is a user_data key Meta accepts.
func IsUserDataKey(k string) bool { return contains(HashedKeys, k) || contains(PlainKeys, k) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
