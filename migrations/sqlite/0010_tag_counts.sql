-- Members per tag, maintained by the database itself in the transactions that
-- change tags (and in the cascades of contact and tenant deletion), so counting
-- one tag's audience reads one row instead of walking its index (issue 8, D).
CREATE TABLE tag_counts (
    tenant_id TEXT NOT NULL,
    tag       TEXT NOT NULL,
    members   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, tag)
);
INSERT INTO tag_counts (tenant_id, tag, members) SELECT tenant_id, tag, COUNT(*) FROM contact_tags GROUP BY tenant_id, tag;

CREATE TRIGGER contact_tags_count_in AFTER INSERT ON contact_tags BEGIN
    INSERT INTO tag_counts (tenant_id, tag, members) VALUES (NEW.tenant_id, NEW.tag, 1)
    ON CONFLICT (tenant_id, tag) DO UPDATE SET members = members + 1;
END;

CREATE TRIGGER contact_tags_count_out AFTER DELETE ON contact_tags BEGIN
    UPDATE tag_counts SET members = members - 1 WHERE tenant_id = OLD.tenant_id AND tag = OLD.tag;
END;
