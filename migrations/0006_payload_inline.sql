-- A compressed payload (a 16 KB comment payload is about 4 KB once compressed) stays in the delivery's own
-- row instead of moving to the TOAST table: one heap tuple per delivery, not a tuple plus TOAST chunks and
-- their index entries. Payloads still too large for a page after compression are moved out as before.
ALTER TABLE webhook_deliveries ALTER COLUMN payload SET STORAGE MAIN;
ALTER TABLE webhook_deliveries SET (toast_tuple_target = 8160);
