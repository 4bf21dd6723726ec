-- A tiny CRM: leads move new -> contacted -> qualified -> won.
CREATE TABLE IF NOT EXISTS leads (
  id          INTEGER PRIMARY KEY,
  email       TEXT,
  phone       TEXT,
  first_name  TEXT,
  last_name   TEXT,
  status      TEXT NOT NULL DEFAULT 'new',
  deal_value  TEXT,                 -- money as text: SQLite has no exact decimal
  updated_at  TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX IF NOT EXISTS leads_updated ON leads (updated_at, id);

INSERT OR IGNORE INTO leads (id, email, phone, first_name, last_name, status) VALUES
  (1, 'ada@example.com',   '+44 20 7946 0958', 'Ada',   'Lovelace', 'new'),
  (2, 'grace@example.com', '+1 650 555 1234',  'Grace', 'Hopper',   'contacted'),
  (3, 'alan@example.com',  '+44 161 496 0000', 'Alan',  'Turing',   'contacted');
