-- step: two orders are paid, and at once one is delivered, the other refunded; the pending one is cancelled
UPDATE binlog_orders SET status = 'paid' WHERE id IN (1001, 1002);
UPDATE binlog_orders SET status = 'delivered' WHERE id = 1001;
UPDATE binlog_orders SET status = 'refunded' WHERE id = 1002;
UPDATE binlog_orders SET status = 'cancelled' WHERE id = 1003;
