-- A shop's orders (MariaDB, read from the binlog): pending -> paid -> delivered, or refunded / cancelled.
CREATE TABLE IF NOT EXISTS binlog_orders (
  id          BIGINT PRIMARY KEY,
  email       VARCHAR(200),
  phone       VARCHAR(50),
  zip         VARCHAR(20),
  country     VARCHAR(60),
  user_agent  VARCHAR(400),   -- stored at checkout, for the server copy of the pixel's Purchase
  client_ip   VARCHAR(45),
  fbp         VARCHAR(100),
  status      VARCHAR(20) NOT NULL DEFAULT 'pending',
  total       DECIMAL(12,2) NOT NULL,
  currency    CHAR(3) NOT NULL DEFAULT 'EUR'
);
INSERT IGNORE INTO binlog_orders (id, email, phone, zip, country, user_agent, client_ip, fbp, status, total, currency) VALUES
  (1001, 'buyer@example.de', '030 1234567', '10115', 'Germany', 'Mozilla/5.0 (X11; Linux x86_64)', '203.0.113.7', 'fb.1.1700000000000.1111111111', 'pending', 49.90, 'EUR'),
  (1002, 'two@example.com', '+1 415 555 0100', '94105-1234', 'US', 'Mozilla/5.0 (iPhone)', '198.51.100.20', NULL, 'pending', 120.00, 'USD'),
  (1003, 'three@example.fr', '+33 6 12 34 56 78', '75001', 'France', 'Mozilla/5.0 (Macintosh)', '192.0.2.44', NULL, 'pending', 15.50, 'EUR');
