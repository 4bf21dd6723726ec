// Package initcfg drafts a starter config from what `capisync init` read of
// a database's tables: a source, a dry-run destination, and one commented
// rule per value of each status-like column, with user_data mapped from
// the columns whose names and values look like Meta's match keys. It also
// writes a changes file for `capisync rules test` from the sampled rows,
// with the values of personal columns replaced by made-up ones.
//
// It works on samples held in memory; it prints nothing and never puts a
// row's value in the config (only column names and status values).
package initcfg

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/capisync/capisync/internal/cdc"
)

// Input is what a draft is made from.
type Input struct {
	SourceName string // e.g. crm
	SourceType string // postgres (logical), mysql, postgres_poll, sqlite
	DSNVar     string // the environment variable the config reads the DSN from
	DSNDefault string // its default in the config (a SQLite path); "" for none
	Samples    []Sample
}

// Sample is what was read of one table: its columns in order, its primary
// key, and some rows (values in Columns order, in the common forms of
// internal/cdc).
type Sample struct {
	Table   string
	Columns []string
	Key     []string
	Rows    [][]any
}

// Draft is the config and the changes file, and what was found (for the
// command's summary: column names and status values only).
type Draft struct {
	Config  []byte
	Changes []byte
	Summary []string
}

// Make drafts the config.
func Make(in Input) (Draft, error) {
	var d Draft
	var b bytes.Buffer
	fmt.Fprintf(&b, "# A starter config written by capisync init on %s. Read every rule,\n", time.Now().UTC().Format("2006-01-02"))
	b.WriteString("# then: capisync validate --config FILE --connect, and\n")
	b.WriteString("#       capisync rules test --config FILE --changes CHANGES.jsonl\n")
	b.WriteString("# The destination is a dry run: set dry_run: false, pixel_id and\n")
	b.WriteString("# access_token to send for real.\n")
	b.WriteString("state:\n  path: ${CAPISYNC_STATE:-./capisync.db}\nhttp:\n  listen: 127.0.0.1:9464\n")
	fmt.Fprintf(&b, "sources:\n  %s:\n    type: %s\n", in.SourceName, in.SourceType)
	if in.DSNDefault != "" {
		fmt.Fprintf(&b, "    dsn: ${%s:-%s}\n", in.DSNVar, in.DSNDefault)
	} else {
		fmt.Fprintf(&b, "    dsn: ${%s}\n", in.DSNVar)
	}
	var tables []*table
	for _, s := range in.Samples {
		tables = append(tables, analyze(s))
	}
	if in.SourceType == "postgres" {
		b.WriteString("    # logical replication: the rules below read old values, so the tables\n")
		b.WriteString("    # need REPLICA IDENTITY FULL (validate --connect says so), or old_values: shadow\n")
		b.WriteString("    old_values: shadow\n    tables:\n")
		for _, t := range tables {
			fmt.Fprintf(&b, "      - %s\n", qualified(t.name))
		}
	} else {
		b.WriteString("    schedule: \"@every 30s\"\n    tables:\n")
		for _, t := range tables {
			if len(t.key) == 0 || t.cursor == "" {
				return d, fmt.Errorf("table %s: polling needs a primary key and a column that grows when a row changes (such as updated_at); found key %v, cursor %q", t.name, t.key, t.cursor)
			}
			fmt.Fprintf(&b, "      %s:\n        key: [%s]\n        cursor: %s\n", t.name, strings.Join(t.key, ", "), t.cursor)
		}
	}
	b.WriteString("destinations:\n  meta:\n    type: meta_capi\n    dry_run: true              # prints each request body; sends nothing\n")
	b.WriteString("    pixel_id: \"${META_PIXEL_ID:-}\"\n    access_token: ${META_ACCESS_TOKEN:-}\n")
	b.WriteString("rules:\n")
	var changes bytes.Buffer
	nrules := 0
	for _, t := range tables {
		d.Summary = append(d.Summary, fmt.Sprintf("table %s: columns %s", t.name, strings.Join(t.columns, ", ")))
		if len(t.userData) > 0 {
			keys := make([]string, 0, len(t.userData))
			for k, col := range t.userData {
				keys = append(keys, k+"="+col)
			}
			sort.Strings(keys)
			d.Summary = append(d.Summary, fmt.Sprintf("table %s: match keys %s", t.name, strings.Join(keys, ", ")))
		}
		if t.status == "" {
			d.Summary = append(d.Summary, fmt.Sprintf("table %s: no status-like column: write the rules by hand", t.name))
			continue
		}
		d.Summary = append(d.Summary, fmt.Sprintf("table %s: status column %s with values %s", t.name, t.status, strings.Join(t.values, ", ")))
		for _, v := range t.values {
			nrules++
			writeRule(&b, in, t, v)
			writeChange(&changes, in, t, v)
		}
	}
	if nrules == 0 {
		return d, fmt.Errorf("no status-like column with values in %d table(s): capisync init drafts rules from one (status, stage, state...)", len(tables))
	}
	d.Config, d.Changes = b.Bytes(), changes.Bytes()
	return d, nil
}

// table is what was learned of one table.
type table struct {
	name     string
	columns  []string
	key      []string
	cursor   string            // updated_at-like
	status   string            // status-like column
	values   []string          // its distinct values, in the order first seen
	userData map[string]string // user_data key -> column
	value    string            // money column
	currency string            // currency column
	rows     []map[string]any
}

var (
	statusRe   = regexp.MustCompile(`(?i)^(status|stage|state|phase|step|lifecycle_stage|deal_stage|lead_status|order_status|pipeline_stage)$`)
	cursorRe   = regexp.MustCompile(`(?i)^(updated_at|updated|modified_at|modified|last_modified|changed_at|updated_on|mtime)$`)
	valueRe    = regexp.MustCompile(`(?i)^(value|amount|total|deal_value|price|revenue|order_total|grand_total)$`)
	currencyRe = regexp.MustCompile(`(?i)^(currency|currency_code)$`)
	emailRe    = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	// Column names for the user_data keys, in the order tried.
	keyNames = []struct {
		key string
		re  *regexp.Regexp
	}{
		{"em", regexp.MustCompile(`(?i)^(e_?mail|email_address|mail)$`)},
		{"ph", regexp.MustCompile(`(?i)^(phone|phone_number|mobile|cell|tel|telephone|whatsapp|wa_phone)$`)},
		{"fn", regexp.MustCompile(`(?i)^(first_?name|given_?name|fname)$`)},
		{"ln", regexp.MustCompile(`(?i)^(last_?name|surname|family_?name|lname)$`)},
		{"ct", regexp.MustCompile(`(?i)^(city|town)$`)},
		{"zp", regexp.MustCompile(`(?i)^(zip|zip_?code|postal_?code|postcode)$`)},
		{"country", regexp.MustCompile(`(?i)^(country|country_code)$`)},
		{"fbc", regexp.MustCompile(`(?i)^(fbc|fb_click_id)$`)},
		{"fbp", regexp.MustCompile(`(?i)^(fbp|fb_browser_id)$`)},
		{"ctwa_clid", regexp.MustCompile(`(?i)^(ctwa_clid|ctwa_click_id)$`)},
		{"lead_id", regexp.MustCompile(`(?i)^(meta_lead_id|fb_lead_id|facebook_lead_id|lead_ads_id)$`)},
		{"external_id", regexp.MustCompile(`(?i)^(customer_id|contact_id|user_id|client_id|external_id)$`)},
	}
	fbclidRe = regexp.MustCompile(`(?i)^fbclid$`)
)

func analyze(s Sample) *table {
	t := &table{name: s.Table, columns: s.Columns, key: s.Key, userData: map[string]string{}}
	for _, r := range s.Rows {
		m := make(map[string]any, len(s.Columns))
		for i, c := range s.Columns {
			if i < len(r) {
				m[c] = r[i]
			}
		}
		t.rows = append(t.rows, m)
	}
	for _, c := range s.Columns {
		switch {
		case statusRe.MatchString(c) && t.status == "":
			t.status = c
		case cursorRe.MatchString(c) && t.cursor == "":
			t.cursor = c
		case valueRe.MatchString(c) && t.value == "":
			t.value = c
		case currencyRe.MatchString(c) && t.currency == "":
			t.currency = c
		case fbclidRe.MatchString(c):
			t.userData["fbc"] = "fbclid:" + c
		}
		for _, k := range keyNames {
			if _, taken := t.userData[k.key]; !taken && k.re.MatchString(c) {
				t.userData[k.key] = c
			}
		}
	}
	// A column of another name whose values are emails.
	if _, ok := t.userData["em"]; !ok {
		for _, c := range s.Columns {
			if looksLikeEmails(t.rows, c) {
				t.userData["em"] = c
				break
			}
		}
	}
	if _, ok := t.userData["external_id"]; !ok && len(t.key) == 1 {
		t.userData["external_id"] = t.key[0]
	}
	if t.status != "" {
		seen := map[string]bool{}
		for _, r := range t.rows {
			if v, ok := r[t.status].(string); ok && v != "" && !seen[v] && len(t.values) < 20 {
				seen[v] = true
				t.values = append(t.values, v)
			}
		}
	}
	return t
}

func looksLikeEmails(rows []map[string]any, col string) bool {
	n, emails := 0, 0
	for _, r := range rows {
		if s, ok := r[col].(string); ok && s != "" {
			n++
			if emailRe.MatchString(strings.TrimSpace(s)) {
				emails++
			}
		}
	}
	return n > 0 && emails*10 >= n*9
}

// eventFor maps a status value to the nearest of Meta's standard events,
// or a custom event named after the value.
func eventFor(v string) (event string, standard bool) {
	l := strings.ToLower(v)
	for _, m := range []struct {
		event string
		words []string
	}{
		{"Purchase", []string{"won", "paid", "purchased", "purchase", "closed_won", "closed won", "sold", "completed"}},
		{"Lead", []string{"qualified", "lead", "mql", "sql"}},
		{"Schedule", []string{"booked", "scheduled", "appointment", "meeting"}},
		{"SubmitApplication", []string{"applied", "submitted", "application"}},
		{"CompleteRegistration", []string{"registered", "signed_up", "signup", "sign_up"}},
		{"Subscribe", []string{"subscribed", "active_subscription"}},
		{"StartTrial", []string{"trial", "trialing"}},
		{"Contact", []string{"contacted"}},
	} {
		if slices.Contains(m.words, l) {
			return m.event, true
		}
	}
	var b strings.Builder
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') }) {
		b.WriteString(strings.ToUpper(part[:1]) + strings.ToLower(part[1:]))
	}
	name := b.String()
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		name = "Status" + name
	}
	if len(name) > 50 {
		name = name[:50]
	}
	return name, false
}

func qualified(t string) string {
	if strings.Contains(t, ".") {
		return t
	}
	return "public." + t
}

func writeRule(b *bytes.Buffer, in Input, t *table, v string) {
	event, standard := eventFor(v)
	tbl := t.name
	if in.SourceType == "postgres" {
		tbl = qualified(t.name)
	}
	ruleName := ruleNameFor(t.name, v)
	fmt.Fprintf(b, "\n  # %s becomes %q", t.status, v)
	if standard {
		fmt.Fprintf(b, ": Meta's standard event %s.\n", event)
	} else {
		fmt.Fprintf(b, ": a custom event, %s (rename it, or map it to a standard one).\n", event)
	}
	fmt.Fprintf(b, "  - name: %s\n    source: %s\n    table: %s\n", ruleName, in.SourceName, tbl)
	fmt.Fprintf(b, "    when: changed_to(%q, %s)\n", t.status, jsonString(v))
	fmt.Fprintf(b, "    event: %s\n    action_source: system_generated\n", event)
	if t.cursor != "" {
		fmt.Fprintf(b, "    event_time: new.%s\n", t.cursor)
	}
	if len(t.key) > 0 {
		parts := make([]string, len(t.key))
		for i, k := range t.key {
			parts[i] = "string(new." + k + ")"
		}
		fmt.Fprintf(b, "    event_id: '%s + \"-%s\"'   # stable: the same change gives the same id\n", strings.Join(parts, " + \"-\" + "), strings.ToLower(ruleSafe(v)))
	}
	b.WriteString("    user_data:\n")
	keys := make([]string, 0, len(t.userData))
	for k := range t.userData {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		col := t.userData[k]
		switch {
		case strings.HasPrefix(col, "fbclid:"):
			at := "commit_time"
			if t.cursor != "" {
				at = "new." + t.cursor
			}
			fmt.Fprintf(b, "      %s: fbc(new.%s, %s)   # the click time is a guess: use when the fbclid was captured\n", k, strings.TrimPrefix(col, "fbclid:"), at)
		case k == "external_id":
			fmt.Fprintf(b, "      %s: string(new.%s)\n", k, col)
		case k == "ph":
			fmt.Fprintf(b, "      %s: new.%s   # numbers without a country code need default_country on the source\n", k, col)
		default:
			fmt.Fprintf(b, "      %s: new.%s\n", k, col)
		}
	}
	if event == "Purchase" || t.value != "" {
		b.WriteString("    custom_data:\n")
		if t.value != "" {
			fmt.Fprintf(b, "      value: new.%s\n", t.value)
		} else {
			b.WriteString("      value: '0'   # no amount column found: map the order's value\n")
		}
		if t.currency != "" {
			fmt.Fprintf(b, "      currency: new.%s\n", t.currency)
		} else {
			b.WriteString("      currency: '\"USD\"'   # your currency (ISO 4217)\n")
		}
	}
}

func ruleNameFor(table, v string) string {
	_, name, _ := strings.Cut(table, ".")
	if name == "" {
		name = table
	}
	n := strings.ToLower(ruleSafe(name + "-" + v))
	if n == "" || !(n[0] >= 'a' && n[0] <= 'z') {
		n = "r-" + n
	}
	if len(n) > 63 {
		n = n[:63]
	}
	return n
}

// ruleSafe keeps letters, digits, _ and -.
func ruleSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// writeChange writes a change in which a sampled row's status becomes v.
// Values of personal columns (the mapped user_data, and any other text)
// are made up: the changes file holds no one's data.
func writeChange(b *bytes.Buffer, in Input, t *table, v string) {
	var row map[string]any
	for _, r := range t.rows {
		if r[t.status] == v {
			row = r
			break
		}
	}
	if row == nil {
		return
	}
	newRow := map[string]any{}
	for _, c := range t.columns {
		newRow[c] = safeValue(t, c, row[c])
	}
	newRow[t.status] = v
	oldRow := map[string]any{}
	for k, x := range newRow {
		oldRow[k] = x
	}
	oldRow[t.status] = "previous"
	key := map[string]any{}
	for _, k := range t.key {
		key[k] = newRow[k]
	}
	tbl := t.name
	if in.SourceType == "postgres" {
		tbl = qualified(t.name)
	}
	line, _ := json.Marshal(map[string]any{"source": in.SourceName, "table": tbl, "op": "update", "key": key, "old": oldRow, "new": newRow})
	b.Write(line)
	b.WriteByte('\n')
}

// madeUp are the stand-ins for personal values in the changes file.
var madeUp = map[string]any{"em": "ada.lovelace@example.com", "ph": "+44 20 7946 0958", "fn": "Ada", "ln": "Lovelace",
	"ct": "London", "zp": "SW1A 1AA", "country": "GB", "fbc": "fb.1.1764000000000.IwAR0example", "fbp": "fb.1.1764000000000.1234567890",
	"ctwa_clid": "ARAkexampleclid", "lead_id": "1234567890123456", "external_id": "42"}

func safeValue(t *table, col string, v any) any {
	for k, c := range t.userData {
		if c == col || c == "fbclid:"+col {
			if k == "fbc" && c == "fbclid:"+col {
				return "IwAR0example"
			}
			if slices.Contains(t.key, col) {
				return jsonValue(v)
			}
			return madeUp[k]
		}
	}
	if col == t.cursor {
		return time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Format(time.RFC3339)
	}
	switch x := v.(type) {
	case string:
		if col == t.status || col == t.currency || col == t.value || slices.Contains(t.key, col) {
			return x
		}
		return "example"
	case time.Time:
		return time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Format(time.RFC3339)
	case []byte:
		return nil
	}
	return jsonValue(v)
}

// jsonValue is v as the changes file holds it.
func jsonValue(v any) any {
	switch x := v.(type) {
	case cdc.Decimal:
		return json.Number(string(x))
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	}
	return v
}
