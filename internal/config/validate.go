package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/capisync/capisync/internal/capi"
)

var (
	nameRe    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)
	identRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)
	versionRe = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)
	digitsRe  = regexp.MustCompile(`^[0-9]{1,20}$`)
	countryRe = regexp.MustCompile(`^[A-Za-z]{2}$`)
	eventRe   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,49}$`)
)

// CronParser is the one cron syntax capisync accepts: five fields with an
// optional leading seconds field, or a descriptor such as "@every 30s".
var CronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func (c *Config) has(path string) bool { _, ok := c.pos[path]; return ok }

func (c *Config) validate(r *Reporter) {
	if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			r.Add("http.listen", "%q is not host:port (e.g. 127.0.0.1:9464)", c.HTTP.Listen)
		}
	}
	c.validateState(r)
	oneOf(r, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(r, "log.format", c.Log.Format, "text", "json")

	if len(c.Sources) == 0 {
		r.Add("sources", "no sources: add at least one under sources:")
	}
	for _, name := range sortedKeys(c.Sources) {
		c.validateSource(r, name, c.Sources[name])
	}
	if len(c.Destinations) == 0 {
		r.Add("destinations", "no destinations: add at least one under destinations:")
	}
	for _, name := range sortedKeys(c.Destinations) {
		c.validateDestination(r, name, c.Destinations[name])
	}
	if len(c.Rules) == 0 {
		r.Add("rules", "no rules: nothing would ever be sent; add at least one under rules:")
	}
	names := map[string]int{}
	for i, rule := range c.Rules {
		if prev, dup := names[rule.Name]; dup && rule.Name != "" {
			r.Add(keyPath(rule.Path(), "name"), "rule name %q is already used by rules[%d]; names must be unique", rule.Name, prev)
		}
		names[rule.Name] = i
		c.validateRule(r, rule)
	}
}

func (c *Config) validateState(r *Reporter) {
	st := &c.State
	if !oneOf(r, "state.type", st.Type, StateBolt, StatePostgres) {
		return
	}
	if st.Type == StateBolt {
		for _, k := range []string{"dsn", "schema", "lease_ttl"} {
			if c.has(keyPath("state", k)) {
				r.Add(keyPath("state", k), "%s applies only to state type postgres", k)
			}
		}
		return
	}
	if c.has("state.path") {
		r.Add("state.path", "path applies only to state type bolt (the state is in PostgreSQL)")
	}
	if st.DSN == "" {
		r.Add("state.dsn", "missing dsn: the PostgreSQL database that holds the state")
	} else if err := checkDSN(DSNPostgres, st.DSN); err != nil {
		r.Add("state.dsn", "invalid PostgreSQL DSN: %v", err)
	}
	if !schemaRe.MatchString(st.Schema) {
		r.Add("state.schema", "%q: use lowercase letters, digits and _, starting with a letter", st.Schema)
	}
	if st.LeaseTTL.Duration < 2*time.Second {
		r.Add("state.lease_ttl", "%s is too short: at least 2s (the leader renews every third of it)", st.LeaseTTL.Duration)
	}
}

var schemaRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func (c *Config) validateSource(r *Reporter, name string, s *Source) {
	p := keyPath("sources", name)
	if !nameRe.MatchString(name) {
		r.Add(p, "source name %q: use letters, digits, _ and -, starting with a letter", name)
	}
	if len(SourceTypeNames()) == 0 {
		r.Add(keyPath(p, "type"), "no source types are known: the program imports no connector")
		return
	}
	if s.Type == "" {
		r.Add(keyPath(p, "type"), "missing type: one of %s", strings.Join(SourceTypeNames(), ", "))
		return
	}
	if !oneOf(r, keyPath(p, "type"), s.Type, SourceTypeNames()...) {
		return
	}
	t, _ := sourceType(s.Type)
	if s.DSN == "" {
		r.Add(keyPath(p, "dsn"), "missing dsn")
	} else if err := checkDSN(s.Type, s.DSN); err != nil {
		r.Add(keyPath(p, "dsn"), "invalid %s DSN: %v", s.Type, err)
	}
	if _, err := time.LoadLocation(s.Timezone); err != nil {
		r.Add(keyPath(p, "timezone"), "unknown time zone %q: use an IANA name such as UTC or Europe/Berlin", s.Timezone)
	}
	if s.DefaultCountry != "" && !countryRe.MatchString(s.DefaultCountry) {
		r.Add(keyPath(p, "default_country"), "%q is not a 2-letter ISO country code (e.g. US, GB)", s.DefaultCountry)
	}
	if len(s.Tables.Names) == 0 {
		r.Add(keyPath(p, "tables"), "no tables: list the tables to read")
	}
	// A key of other types only.
	for _, k := range sourceKeys() {
		if types := typesReading(k); c.has(keyPath(p, k)) && !slices.Contains(types, s.Type) {
			r.Add(keyPath(p, k), "%s applies only to type%s %s, not to type %s", k, plural(len(types)), strings.Join(types, ", "), s.Type)
		}
	}
	switch {
	case t.TableOptions && s.Tables.Tables == nil && len(s.Tables.Names) > 0,
		!t.TableOptions && s.Tables.Tables != nil:
		r.Add(keyPath(p, "tables"), "a %s source %s: %s", s.Type, map[bool]string{true: "maps each table to its options", false: "lists its tables"}[t.TableOptions], t.Example)
	}
	if t.Validate != nil {
		t.Validate(s, SourceProblems{r: r, path: p})
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (c *Config) validateDestination(r *Reporter, name string, d *Destination) {
	p := keyPath("destinations", name)
	if d == nil {
		r.Add(p, "empty destination")
		return
	}
	if !nameRe.MatchString(name) {
		r.Add(p, "destination name %q: use letters, digits, _ and -, starting with a letter", name)
	}
	if d.Type == "" {
		r.Add(keyPath(p, "type"), "missing type: %s", TypeMetaCAPI)
	} else if !oneOf(r, keyPath(p, "type"), d.Type, TypeMetaCAPI) {
		return
	}
	switch {
	case d.PixelID == "" && !d.DryRun:
		r.Add(keyPath(p, "pixel_id"), "missing pixel_id: the pixel or dataset id from Events Manager")
	case d.PixelID != "" && !digitsRe.MatchString(d.PixelID):
		r.Add(keyPath(p, "pixel_id"), "pixel_id %q must be the numeric pixel or dataset id", d.PixelID)
	}
	if d.AccessToken == "" && !d.DryRun {
		r.Add(keyPath(p, "access_token"), "missing access_token (or set dry_run: true to send nothing)")
	}
	if !versionRe.MatchString(d.APIVersion) {
		r.Add(keyPath(p, "api_version"), "api_version %q: write it as Meta does, e.g. %s", d.APIVersion, DefaultAPIVersion)
	}
	if u, err := url.Parse(d.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		r.Add(keyPath(p, "base_url"), "base_url %q must be an http(s) URL with no query, e.g. %s", d.BaseURL, DefaultBaseURL)
	}
	if d.Endpoint != "" {
		if u, err := url.Parse(d.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			r.Add(keyPath(p, "endpoint"), "endpoint %q must be the http(s) URL events are posted to, with no query (e.g. https://capig.example.com/capi/events)", d.Endpoint)
		}
	}
	if d.BatchSize < 1 || d.BatchSize > MaxBatchSize {
		r.Add(keyPath(p, "batch_size"), "batch_size must be between 1 and %d (Meta's limit per request), got %d", MaxBatchSize, d.BatchSize)
	}
	if d.InFlight < 1 || d.InFlight > 64 {
		r.Add(keyPath(p, "in_flight"), "in_flight must be between 1 and 64, got %d", d.InFlight)
	}
	if d.MaxOutbox < 1 {
		r.Add(keyPath(p, "max_outbox"), "max_outbox must be at least 1, got %d", d.MaxOutbox)
	}
	if d.DryRunFile != "" && !d.DryRun {
		r.Add(keyPath(p, "dry_run_file"), "dry_run_file is used only with dry_run: true")
	}
}

func (c *Config) validateRule(r *Reporter, rule *Rule) {
	p := rule.Path()
	if rule.Name == "" {
		r.Add(keyPath(p, "name"), "missing name")
	} else if !nameRe.MatchString(rule.Name) {
		r.Add(keyPath(p, "name"), "rule name %q: use letters, digits, _ and -, starting with a letter", rule.Name)
	}
	src, ok := c.Sources[rule.Source]
	switch {
	case rule.Source == "":
		r.Add(keyPath(p, "source"), "missing source: one of %s", strings.Join(sortedKeys(c.Sources), ", "))
	case !ok:
		r.Add(keyPath(p, "source"), "unknown source %q%s", rule.Source, didYouMean(rule.Source, sortedKeys(c.Sources)))
	}
	switch {
	case rule.Table == "":
		r.Add(keyPath(p, "table"), "missing table")
	case ok && !src.Tables.Has(rule.Table):
		r.Add(keyPath(p, "table"), "table %q is not among source %q's tables (%s)%s", rule.Table, rule.Source, strings.Join(src.Tables.Names, ", "), didYouMean(rule.Table, src.Tables.Names))
	}
	if rule.Destination != "" {
		if _, ok := c.Destinations[rule.Destination]; !ok {
			r.Add(keyPath(p, "destination"), "unknown destination %q%s", rule.Destination, didYouMean(rule.Destination, sortedKeys(c.Destinations)))
		}
	}
	switch {
	case rule.Event == "":
		r.Add(keyPath(p, "event"), "missing event: the event_name to send, e.g. Lead or Purchase")
	case capi.StandardEventFold(rule.Event) != "":
		r.Add(keyPath(p, "event"), "%q is Meta's standard event %q in the wrong case; write %q (a differently spelled name is sent as a custom event)", rule.Event, capi.StandardEventFold(rule.Event), capi.StandardEventFold(rule.Event))
	case !eventRe.MatchString(rule.Event):
		r.Add(keyPath(p, "event"), "event name %q: use letters, digits, spaces, _ . and - (at most 50)", rule.Event)
	}
	oneOf(r, keyPath(p, "action_source"), rule.ActionSource, capi.ActionSources...)
	if rule.DefaultCountry != "" && !countryRe.MatchString(rule.DefaultCountry) {
		r.Add(keyPath(p, "default_country"), "%q is not a 2-letter ISO country code (e.g. US, GB)", rule.DefaultCountry)
	}
	if !rule.When.IsSet() {
		r.Add(keyPath(p, "when"), `missing when: an expression such as changed("status") && new.status == "qualified"`)
	}
	if rule.ActionSource == "business_messaging" && !rule.MessagingChannel.IsSet() {
		r.Add(keyPath(p, "messaging_channel"), `action_source business_messaging needs messaging_channel, e.g. '"whatsapp"'`)
	}
	known := append(append([]string{}, capi.HashedKeys...), capi.PlainKeys...)
	for _, k := range sortedKeys(rule.UserData) {
		if !capi.IsUserDataKey(k) {
			r.Add(keyPath(keyPath(p, "user_data"), k), "unknown user_data key %q%s", k, didYouMean(k, known))
		}
	}
	// The keys of Meta's OriginalEventData, AppData and AttributionData
	// (the business SDKs' serverside objects; Conversions API parameters).
	checkKeys(r, p, "original_event_data", rule.OriginalEventData, originalKeys)
	checkKeys(r, p, "app_data", rule.AppData, appDataKeys)
	checkKeys(r, p, "attribution_data", rule.AttributionData, attributionKeys)
	if _, ph := rule.UserData["ph"]; ph && rule.DefaultCountry == "" {
		c.notes = append(c.notes, Problem{File: c.File, Pos: c.PosOf(keyPath(keyPath(p, "user_data"), "ph")), Path: keyPath(keyPath(p, "user_data"), "ph"),
			Msg: fmt.Sprintf("rule %q maps ph with no default_country (on the rule or source %s): a phone number without a country code cannot be matched, so it is left out and counted; set default_country if your numbers lack one", rule.Name, rule.Source)})
	}
	if rule.ActionSource == "app" {
		for _, k := range []string{"advertiser_tracking_enabled", "application_tracking_enabled", "extinfo"} {
			if _, ok := rule.AppData[k]; !ok {
				r.Add(keyPath(keyPath(p, "app_data"), k), "action_source app needs app_data.%s (Meta refuses app events without advertiser_tracking_enabled, application_tracking_enabled and extinfo)", k)
			}
		}
	}
}

var (
	originalKeys = []string{"event_name", "event_time", "order_id", "event_id"}
	appDataKeys  = []string{"advertiser_tracking_enabled", "application_tracking_enabled", "app_user_id", "campaign_ids",
		"consider_views", "extinfo", "include_dwell_data", "include_video_data", "install_referrer", "installer_package",
		"receipt_data", "url_schemes", "windows_attribution_id"}
	attributionKeys = []string{"scope", "visit_time", "ad_id", "adset_id", "campaign_id", "attribution_share",
		"attribution_model", "attr_window", "attribution_value", "attribution_source", "touchpoint_type", "touchpoint_ts",
		"attribution_method", "decline_reason", "auditing_token", "linkage_key", "touchpoint_id", "attribution_setting"}
)

// checkKeys reports the keys of a rule's map field that Meta does not know.
func checkKeys(r *Reporter, rulePath, field string, m map[string]Expr, known []string) {
	for _, k := range sortedKeys(m) {
		if !slices.Contains(known, k) {
			r.Add(keyPath(keyPath(rulePath, field), k), "%s takes %s, not %q%s", field, strings.Join(known, ", "), k, didYouMean(k, known))
		}
	}
}

// oneOf reports a problem unless v is one of allowed; it returns whether v
// was allowed.
func oneOf(r *Reporter, path, v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	r.Add(path, "%q is not one of %s%s", v, strings.Join(allowed, ", "), didYouMean(v, allowed))
	return false
}

func didYouMean(s string, candidates []string) string {
	if m := Suggest(s, candidates); m != "" {
		return fmt.Sprintf(" (did you mean %q?)", m)
	}
	return ""
}
