package testenv

import "strings"

// OrderRules are the polling benchmark's rules, as the config's rules
// list: three on one table of orders (qualified, paid, refunded), of
// which a status changed to paid matches one. The polling tests and the
// benchmarks of rule evaluation share them, so that each measures the
// same rules.
func OrderRules(source, table string) string {
	return strings.NewReplacer("SOURCE", source, "TABLE", table).Replace(`
  - name: qualified
    source: SOURCE
    table: TABLE
    when: changed_to("status", "qualified")
    event: Lead
    event_id: '"lead-" + string(new.id)'
    user_data: {em: new.email, external_id: string(new.id)}
  - name: paid
    source: SOURCE
    table: TABLE
    when: changed_to("status", "paid")
    event: Purchase
    event_time: new.updated_at
    event_id: '"order-" + string(new.id) + "-paid"'
    user_data: {em: new.email}
    custom_data: {value: new.total, currency: '"EUR"'}
  - name: refunded
    source: SOURCE
    table: TABLE
    when: changed_from("status", "paid") && new.status == "refunded"
    event: CancelledOrder
    event_id: '"order-" + string(new.id) + "-refunded"'
    user_data: {em: new.email}
    custom_data: {value: new.total, currency: '"EUR"', previous: old.status}
`)
}
