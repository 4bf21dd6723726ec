-- step: Grace is qualified
UPDATE leads SET status = 'qualified', updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = 2;
-- step: and wins a deal
UPDATE leads SET status = 'won', deal_value = '1200.00', updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = 2;
