-- Issue 23: the tenant's language for the pages its recipients see (the
-- preference centre, unsubscribe pages): `en` or `de`.
ALTER TABLE tenants ADD COLUMN locale TEXT NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'de'));
