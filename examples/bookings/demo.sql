-- step: someone registers, books, asks a question and checks out
INSERT INTO bookings.accounts (id, email, phone, first_name, last_name, city, zip, country) VALUES (7, 'Maria.Garcia@example.es', '+34 612 345 678', 'María', 'García', 'Madrid', '28013', 'Spain');
INSERT INTO bookings.appointments (id, account_id, email, service, status, starts_at, price) VALUES (70, 7, 'Maria.Garcia@example.es', 'haircut', 'requested', now() + interval '2 days', 35.00);
UPDATE bookings.appointments SET status = 'booked' WHERE id = 70;
INSERT INTO bookings.contact_requests (id, email, phone, topic) VALUES (700, 'Maria.Garcia@example.es', '+34 612 345 678', 'gift cards');
INSERT INTO bookings.carts (id, account_id, email, items, total) VALUES (7000, 7, 'Maria.Garcia@example.es', 2, 59.80);
UPDATE bookings.carts SET checkout_started_at = now() WHERE id = 7000;
UPDATE bookings.carts SET payment_added_at = now() WHERE id = 7000;
