-- A CRM's leads, synced from Lead Ads: new -> contacted -> qualified -> won (or lost).
CREATE SCHEMA IF NOT EXISTS crm;
CREATE TABLE IF NOT EXISTS crm.leads (
  id           bigint PRIMARY KEY,
  meta_lead_id text,                       -- the 15-16 digit id from Meta Lead Ads
  email        text,
  phone        text,
  first_name   text,
  last_name    text,
  stage        text NOT NULL DEFAULT 'new',
  score        int NOT NULL DEFAULT 0,
  deal_value   numeric(12,2),
  currency     text NOT NULL DEFAULT 'USD',
  updated_at   timestamptz NOT NULL DEFAULT now()
);
-- Rules read old values (changed_to, old.score): updates must carry the whole old row.
ALTER TABLE crm.leads REPLICA IDENTITY FULL;
INSERT INTO crm.leads (id, meta_lead_id, email, phone, first_name, last_name, stage, score) VALUES
  (1, '1234567890123456', 'Ada.Lovelace@Example.com', '+44 20 7946 0958', 'Ada', 'Lovelace', 'new', 10),
  (2, '2345678901234567', 'grace@example.com', '(650) 555-1234', 'Grace', 'Hopper', 'contacted', 70)
ON CONFLICT (id) DO NOTHING;
