-- Chats started from click-to-WhatsApp ads. The ctwa_clid comes from the
-- referral object of the first inbound message; the business must store it.
CREATE SCHEMA IF NOT EXISTS ctwa;
CREATE TABLE IF NOT EXISTS ctwa.chats (
  id          bigint PRIMARY KEY,
  wa_phone    text NOT NULL,          -- the customer's WhatsApp number
  ctwa_clid   text,
  page_id     text,
  waba_id     text,                   -- WhatsApp Business Account id
  stage       text NOT NULL DEFAULT 'new',
  order_value numeric(10,2),
  currency    text NOT NULL DEFAULT 'BRL',
  updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE ctwa.chats REPLICA IDENTITY FULL;
