-- Issue 22: a tenant's default sender (From name and address on its verified
-- domain), used when a send names none; until one is set mail comes from
-- `hello@{domain}`. A test send's messages are marked, so that they are told
-- apart from real mail and counted in no figure.
ALTER TABLE tenants ADD COLUMN from_name TEXT;
ALTER TABLE tenants ADD COLUMN from_address TEXT;
ALTER TABLE messages ADD COLUMN test BIGINT NOT NULL DEFAULT 0;
