-- Sessions of the web dashboard (/ui). The cookie holds a random token; only
-- its SHA-256 is stored, as for API keys. A session remembers the hash of the
-- key it was opened with, so revoking that key (or changing the admin key)
-- ends the session too. Deleting a tenant deletes its sessions.
CREATE TABLE ui_sessions (
    id         TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL,
    tenant_id  TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);
