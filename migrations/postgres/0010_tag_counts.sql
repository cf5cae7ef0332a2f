-- Members per tag, maintained by the database itself in the transactions that
-- change tags (and in the cascades of contact and tenant deletion), so counting
-- one tag's audience reads one row instead of walking its index (issue 8, D).
-- Statement-level triggers: a million-row import adds to each tag's count once.
CREATE TABLE tag_counts (
    tenant_id TEXT NOT NULL,
    tag       TEXT NOT NULL,
    members   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, tag)
);
INSERT INTO tag_counts (tenant_id, tag, members) SELECT tenant_id, tag, COUNT(*) FROM contact_tags GROUP BY tenant_id, tag;

CREATE FUNCTION contact_tags_count_in() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- In key order, so concurrent writers lock the count rows in one order.
    INSERT INTO tag_counts (tenant_id, tag, members)
    SELECT tenant_id, tag, COUNT(*) FROM added GROUP BY tenant_id, tag ORDER BY tenant_id, tag
    ON CONFLICT (tenant_id, tag) DO UPDATE SET members = tag_counts.members + excluded.members;
    RETURN NULL;
END $$;

CREATE FUNCTION contact_tags_count_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tag_counts t SET members = t.members - r.n
    FROM (SELECT tenant_id, tag, COUNT(*) AS n FROM removed GROUP BY tenant_id, tag ORDER BY tenant_id, tag) r
    WHERE t.tenant_id = r.tenant_id AND t.tag = r.tag;
    RETURN NULL;
END $$;

CREATE TRIGGER contact_tags_count_in AFTER INSERT ON contact_tags
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION contact_tags_count_in();
CREATE TRIGGER contact_tags_count_out AFTER DELETE ON contact_tags
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION contact_tags_count_out();
