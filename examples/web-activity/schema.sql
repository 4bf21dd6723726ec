-- What a shop backend writes as people browse. Each row keeps the browser
-- context of the request and the eventID the browser pixel sent with the
-- same action, so Meta de-duplicates the pixel's and the server's copies.
CREATE SCHEMA IF NOT EXISTS web;
CREATE TABLE IF NOT EXISTS web.page_views (
  id bigserial PRIMARY KEY, pixel_event_id text NOT NULL, user_id bigint, email text,
  url text NOT NULL, referrer text, ip text, user_agent text, fbp text, fbc text,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS web.product_views (LIKE web.page_views INCLUDING ALL);
ALTER TABLE web.product_views ADD COLUMN IF NOT EXISTS product_id text, ADD COLUMN IF NOT EXISTS price numeric(10,2), ADD COLUMN IF NOT EXISTS currency text DEFAULT 'USD';
CREATE TABLE IF NOT EXISTS web.cart_items (LIKE web.product_views INCLUDING ALL);
ALTER TABLE web.cart_items ADD COLUMN IF NOT EXISTS quantity int NOT NULL DEFAULT 1;
CREATE TABLE IF NOT EXISTS web.wishlist_items (LIKE web.product_views INCLUDING ALL);
CREATE TABLE IF NOT EXISTS web.searches (LIKE web.page_views INCLUDING ALL);
ALTER TABLE web.searches ADD COLUMN IF NOT EXISTS query text;
