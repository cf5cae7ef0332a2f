//! An import's topic columns: each written contact's choices per topic, set
//! for a chunk at once, with a consent record (source `import`) for each
//! choice that changes where the contact stood, as the API's choices make.

use super::Store;
use crate::domain::TenantId;

/// SQLite: choices per statement (4 values each).
const SQLITE_CHOICES_PER_STATEMENT: usize = 1_000;

/// `(?, ?, ...), (?, ?, ...)`: `rows` rows of `cols` anonymous parameters.
pub(super) fn placeholders(rows: usize, cols: usize) -> String {
    let row = format!("({})", vec!["?"; cols].join(", "));
    vec![row.as_str(); rows].join(", ")
}

/// The record's change for a state chosen: `topic_subscribed` or `topic_unsubscribed`.
pub(super) fn change_sql(state: &str) -> String {
    format!("CASE {state} WHEN 'subscribed' THEN 'topic_subscribed' ELSE 'topic_unsubscribed' END")
}

/// PostgreSQL: the common table expressions that set the choices of the
/// contacts `written` returns (its `id` and `email_normalized`), given as
/// the JSON array `$choices` of `[email_normalized, topic id, state]`, and
/// record each change (ids by `record_id`). Data-modifying CTEs of one
/// statement all see the rows as they were before it, so the records
/// compare with the choice the contact had.
pub(super) fn postgres_ctes(choices: &str, record_id: &str) -> String {
    format!(
        ", chosen AS (SELECT w.id AS contact_id, c.topic AS topic_id, c.state FROM written w \
           JOIN (SELECT r ->> 0 AS email, r ->> 1 AS topic, r ->> 2 AS state \
                 FROM jsonb_array_elements(CAST({choices} AS jsonb)) AS r) c ON c.email = w.email_normalized \
           JOIN topics tp ON tp.id = c.topic AND tp.tenant_id = $1), \
         chosen_set AS (INSERT INTO contact_topics (tenant_id, contact_id, topic_id, state, updated_at) \
           SELECT $1, contact_id, topic_id, state, $2 FROM chosen \
           ON CONFLICT (contact_id, topic_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at \
           WHERE contact_topics.state <> excluded.state), \
         chosen_recorded AS (INSERT INTO consent_records (id, tenant_id, contact_id, at, change, topic_id, source) \
           SELECT {record_id}, $1, c.contact_id, $2, {}, c.topic_id, 'import' FROM chosen c \
           LEFT JOIN contact_topics x ON x.contact_id = c.contact_id AND x.topic_id = c.topic_id \
           WHERE x.state IS DISTINCT FROM c.state) ",
        change_sql("c.state")
    )
}

impl Store {
    /// SQLite: sets `choices` (contact id, topic id, state) of contacts just
    /// written, recording first each that changes the contact's stand (the
    /// record reads the choice before it is set). A topic that is not the
    /// tenant's (deleted meanwhile) writes nothing.
    pub(super) async fn import_topic_choices(
        tx: &mut sqlx::AnyConnection,
        tenant_id: &TenantId,
        choices: &[(&str, &str, &str)],
        now: i64,
    ) -> Result<(), sqlx::Error> {
        for part in choices.chunks(SQLITE_CHOICES_PER_STATEMENT) {
            let full = part.len() == SQLITE_CHOICES_PER_STATEMENT;
            let sql = format!(
                "INSERT INTO consent_records (id, tenant_id, contact_id, at, change, topic_id, source) \
                 SELECT v.column1, p.tenant, v.column2, p.now, {}, v.column3, 'import' \
                 FROM (SELECT ? AS tenant, ? AS now) p, (VALUES {}) v \
                 WHERE EXISTS (SELECT 1 FROM topics tp WHERE tp.id = v.column3 AND tp.tenant_id = p.tenant) \
                 AND NOT EXISTS (SELECT 1 FROM contact_topics x WHERE x.contact_id = v.column2 \
                   AND x.topic_id = v.column3 AND x.state = v.column4)",
                change_sql("v.column4"),
                placeholders(part.len(), 4)
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str()).bind(now);
            for (contact, topic, state) in part {
                q = q.bind(crate::domain::new_id()).bind(*contact).bind(*topic).bind(*state);
            }
            q.persistent(full).execute(&mut *tx).await?;
            let sql = format!(
                "INSERT INTO contact_topics (tenant_id, contact_id, topic_id, state, updated_at) \
                 SELECT p.tenant, v.column1, v.column2, v.column3, p.now \
                 FROM (SELECT ? AS tenant, ? AS now) p, (VALUES {}) v \
                 JOIN topics tp ON tp.id = v.column2 AND tp.tenant_id = p.tenant WHERE true \
                 ON CONFLICT (contact_id, topic_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at \
                 WHERE contact_topics.state <> excluded.state",
                placeholders(part.len(), 3)
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.as_str()).bind(now);
            for (contact, topic, state) in part {
                q = q.bind(*contact).bind(*topic).bind(*state);
            }
            q.persistent(full).execute(&mut *tx).await?;
        }
        Ok(())
    }
}
