-- A booking service: accounts, appointments, contact requests and carts.
CREATE SCHEMA IF NOT EXISTS bookings;
CREATE TABLE IF NOT EXISTS bookings.accounts (
  id bigint PRIMARY KEY, email text, phone text, first_name text, last_name text,
  city text, zip text, country text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS bookings.appointments (
  id bigint PRIMARY KEY, account_id bigint NOT NULL, email text, service text,
  status text NOT NULL DEFAULT 'requested', starts_at timestamptz, price numeric(10,2), currency text DEFAULT 'EUR');
CREATE TABLE IF NOT EXISTS bookings.contact_requests (
  id bigint PRIMARY KEY, email text, phone text, topic text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS bookings.carts (
  id bigint PRIMARY KEY, account_id bigint, email text, items int NOT NULL DEFAULT 0,
  total numeric(10,2), currency text DEFAULT 'EUR', checkout_started_at timestamptz, payment_added_at timestamptz);
-- changed_to / changed() read old values.
ALTER TABLE bookings.appointments REPLICA IDENTITY FULL;
ALTER TABLE bookings.carts REPLICA IDENTITY FULL;
