-- step: work lead 1 through the funnel; lead 2's score crosses 80
UPDATE crm.leads SET stage = 'contacted', updated_at = now() WHERE id = 1;
UPDATE crm.leads SET stage = 'qualified', updated_at = now() WHERE id = 1;
UPDATE crm.leads SET score = 85, updated_at = now() WHERE id = 2;
UPDATE crm.leads SET stage = 'won', deal_value = 4200.00, updated_at = now() WHERE id = 1;
