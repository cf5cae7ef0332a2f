-- Issue 23, section 4: erasure (GDPR art. 17). What stays of an erased
-- person's address is a keyed hash (HMAC-SHA256 under the server's secret,
-- see domain::keys::address_hash), per tenant, so that the tenant never mails
-- the address again: a single send to it is refused like a suppressed one,
-- and when it comes back as a contact (API, import, a form) it is suppressed
-- with reason `erased` (only a confirmed double opt-in lifts that).
-- Keep in step with postgres/0036.
CREATE TABLE erased_addresses (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    address_hash TEXT NOT NULL,
    erased_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, address_hash)
);
