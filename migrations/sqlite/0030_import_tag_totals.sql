-- Issue 21: an import adds each chunk's tag totals to tag_counts with one
-- upsert instead of the trigger's upsert per contact_tags row. While the
-- import's transaction holds a row here, the trigger leaves the rows that
-- transaction inserts to it; the row is inserted and deleted inside that one
-- write transaction, so no other writer (SQLite has one at a time) and no
-- reader ever sees it. Every other path (a contact created or tagged through
-- the API, deletions and their cascades) is counted by the triggers as before.
CREATE TABLE tag_counts_by_writer (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);

DROP TRIGGER contact_tags_count_in;
CREATE TRIGGER contact_tags_count_in AFTER INSERT ON contact_tags
WHEN NOT EXISTS (SELECT 1 FROM tag_counts_by_writer)
BEGIN
    INSERT INTO tag_counts (tenant_id, tag, members) VALUES (NEW.tenant_id, NEW.tag, 1)
    ON CONFLICT (tenant_id, tag) DO UPDATE SET members = members + 1;
END;
