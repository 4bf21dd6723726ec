-- Point-of-sale receipts synced from the stores (MySQL / MariaDB).
CREATE TABLE IF NOT EXISTS pos_sales (
  id          BIGINT PRIMARY KEY AUTO_INCREMENT,
  store_id    INT NOT NULL,
  receipt_no  VARCHAR(40) NOT NULL,
  email       VARCHAR(200),
  phone       VARCHAR(50),
  amount      DECIMAL(12,2) NOT NULL,
  currency    CHAR(3) NOT NULL DEFAULT 'USD',
  sold_at     DATETIME NOT NULL,                              -- store local time
  synced_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  INDEX pos_sales_cursor (synced_at, id)
);
