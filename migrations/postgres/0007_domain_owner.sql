-- A sending domain belongs to one tenant (issue 8, B3). Where an earlier
-- version let two tenants register the same domain, the tenant that registered
-- it first keeps it; the others must register a domain of their own.
UPDATE tenants SET domain_name = NULL, resend_domain_id = NULL, domain_status = NULL, domain_records = NULL
WHERE domain_name IS NOT NULL AND EXISTS (
    SELECT 1 FROM tenants first
    WHERE first.domain_name = tenants.domain_name
      AND (first.created_at < tenants.created_at OR (first.created_at = tenants.created_at AND first.id < tenants.id))
);
CREATE UNIQUE INDEX tenants_domain_owner ON tenants (domain_name);
