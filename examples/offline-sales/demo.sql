-- step: yesterday's and last month's receipts arrive from the stores
INSERT INTO pos_sales (id, store_id, receipt_no, email, phone, amount, currency, sold_at) VALUES
  (1, 12, 'R-000451', 'walkin@example.com', '+1 212 555 0142', 89.99, 'USD', NOW() - INTERVAL 1 DAY),
  (2, 12, 'R-000452', NULL, '+1 212 555 0199', 12.50, 'USD', NOW() - INTERVAL 30 DAY);
