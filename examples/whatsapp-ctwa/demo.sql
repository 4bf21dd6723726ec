-- step: a chat from an ad is qualified, then buys
INSERT INTO ctwa.chats (id, wa_phone, ctwa_clid, page_id, waba_id) VALUES (9, '+55 11 91234-5678', 'ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0', '102345678901234', '109876543210987');
UPDATE ctwa.chats SET stage = 'qualified', updated_at = now() WHERE id = 9;
UPDATE ctwa.chats SET stage = 'won', order_value = 349.90, updated_at = now() WHERE id = 9;
