package metacapi

import (
	"fmt"
	"time"

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
// batch), so that it is dead-lettered before it is sent.
func Check(e *capi.Event, now time.Time) error {
	if e.EventName == "" {
		return fmt.Errorf("event_name is empty")
	}
	if err := CheckAge(e, now); err != nil {
		return err
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
	}
	if e.EventName == "Purchase" {
		if e.CustomData["value"] == nil || e.CustomData["currency"] == nil {
			return fmt.Errorf("a Purchase requires custom_data.value and custom_data.currency")
		}
	}
	if !hasMatchKey(e.UserData) {
		return fmt.Errorf("no usable user_data key: Meta needs at least one customer information parameter to match the event")
	}
	return nil
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
