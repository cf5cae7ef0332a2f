-- Whether a message's `sent` figure has been counted. Every email is sent, so
-- the `message_firsts` row this used to be cost every email of a fan-out an
-- insert into a growing table; the flag rides on the message row that the
-- same transaction updates anyway. Other figures stay in `message_firsts`.
ALTER TABLE messages ADD COLUMN sent_counted INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET sent_counted = 1
 WHERE id IN (SELECT message_id FROM message_firsts WHERE kind = 'sent');
DELETE FROM message_firsts WHERE kind = 'sent';
