use sqlx::FromRow;

use super::{placeholders, Store, StoreError};
use crate::domain::{ConsentChange, ConsentOrigin, Tag, TenantId, TopicChoice};

#[derive(Clone, Debug, FromRow)]
pub struct ContactRow {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub tags: String,
    pub attributes: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct NewContact {
    pub id: String,
    pub email: String,
    pub email_normalized: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub tags: Vec<Tag>,
    pub attributes_json: String,
    /// Choices on the tenant's topics (ids checked by the caller), written with the contact.
    pub topics: Vec<(String, TopicChoice)>,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Default)]
pub struct ContactPatch {
    pub email: Option<(String, String)>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub tags: Option<Vec<Tag>>,
    pub attributes_json: Option<String>,
    pub status: Option<&'static str>,
    /// Choices on the topics named (ids checked by the caller); the others stay.
    pub topics: Option<Vec<(String, TopicChoice)>>,
}

pub struct ContactFilter {
    pub tag: Option<Tag>,
    pub after: Option<String>,
    pub limit: i64,
}

#[derive(Clone, Debug, FromRow)]
pub struct SegmentRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub created_at: i64,
    pub contact_count: i64,
    /// A dynamic segment's filter (JSON); `None` for a static segment.
    pub filter: Option<String>,
}

pub(super) const CONTACT_COLUMNS: &str =
    "c.id, c.tenant_id, c.email, c.first_name, c.last_name, c.tags, c.attributes, c.status, c.created_at, c.updated_at";
/// The same columns unqualified, for `RETURNING` (SQLite does not take aliases there).
const CONTACT_RETURNING: &str =
    "id, tenant_id, email, first_name, last_name, tags, attributes, status, created_at, updated_at";

pub(super) fn tags_json(tags: &[Tag]) -> String {
    serde_json::to_string(&tags.iter().map(Tag::as_str).collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

pub(super) async fn write_tags(
    tx: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    contact_id: &str,
    tags: &[Tag],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM contact_tags WHERE contact_id = $1").bind(contact_id).execute(&mut *tx).await?;
    for tag in tags {
        sqlx::query("INSERT INTO contact_tags (tenant_id, contact_id, tag) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(tenant_id)
            .bind(contact_id)
            .bind(tag.as_str())
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Inserts a contact with this status (`subscribed`, or `pending` for an
/// unconfirmed double opt-in) and its tags.
pub(super) async fn insert_contact(
    tx: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    c: &NewContact,
    status: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO contacts (id, tenant_id, email, email_normalized, first_name, last_name, tags, attributes, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, $9, $9)",
    )
    .bind(&c.id)
    .bind(tenant_id)
    .bind(&c.email)
    .bind(&c.email_normalized)
    .bind(&c.first_name)
    .bind(&c.last_name)
    .bind(tags_json(&c.tags))
    .bind(&c.attributes_json)
    .bind(now)
    .bind(status)
    .execute(&mut *tx)
    .await?;
    write_tags(tx, tenant_id, &c.id, &c.tags).await
}

impl Store {
    /// Adds a contact, its creation recorded from `origin` (and each topic
    /// choice given with it).
    pub async fn create_contact(
        &self,
        tenant_id: &TenantId,
        c: NewContact,
        origin: &ConsentOrigin,
    ) -> Result<ContactRow, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        insert_contact(&mut tx, tenant_id, &c, "subscribed", now).await.map_err(StoreError::from_sqlx)?;
        super::erasure::suppress_erased(self, &mut tx, now, tenant_id.as_str(), &[&c.email_normalized]).await?;
        super::consent::record(&mut tx, now, tenant_id.as_str(), &c.id, ConsentChange::Created, None, origin).await?;
        super::topics::write_choices(&mut tx, now, tenant_id, &c.id, &c.topics, false, origin).await?;
        tx.commit().await?;
        Ok(ContactRow {
            tags: tags_json(&c.tags),
            id: c.id,
            tenant_id: tenant_id.to_string(),
            email: c.email,
            first_name: c.first_name,
            last_name: c.last_name,
            attributes: c.attributes_json,
            status: "subscribed".into(),
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn contact(&self, tenant_id: &TenantId, id: &str) -> Result<Option<ContactRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.tenant_id = $1 AND c.id = $2"))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// How many contacts the tenant has, whatever their status.
    pub async fn contact_total(&self, tenant_id: &TenantId) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM contacts WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_one(&self.pool)
            .await
    }

    /// One page of contacts in id (creation) order. Fetches `limit + 1` so the
    /// caller knows whether a next page exists.
    pub async fn contacts(&self, tenant_id: &TenantId, f: &ContactFilter) -> Result<Vec<ContactRow>, sqlx::Error> {
        let after = f.after.clone().unwrap_or_default();
        match &f.tag {
            Some(tag) => {
                sqlx::query_as(&format!(
                    "SELECT {CONTACT_COLUMNS} FROM contact_tags t JOIN contacts c ON c.id = t.contact_id \
                     WHERE t.tenant_id = $1 AND t.tag = $2 AND c.id > $3 ORDER BY c.id LIMIT $4"
                ))
                .bind(tenant_id)
                .bind(tag.as_str())
                .bind(after)
                .bind(f.limit + 1)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query_as(&format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.tenant_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3"
            ))
                .bind(tenant_id)
                .bind(after)
                .bind(f.limit + 1)
                .fetch_all(&self.pool)
                .await
            }
        }
    }

    /// Changes a contact; a change of its status (unsubscribed, subscribed
    /// again) or of its topics is recorded from `origin`.
    pub async fn update_contact(
        &self,
        tenant_id: &TenantId,
        id: &str,
        p: ContactPatch,
        origin: &ConsentOrigin,
    ) -> Result<Option<ContactRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        let status_before: Option<String> = match p.status {
            None => None,
            Some(_) => {
                let lock = if self.backend == super::Backend::Postgres { " FOR UPDATE" } else { "" };
                sqlx::query_scalar(&format!("SELECT status FROM contacts WHERE tenant_id = $1 AND id = $2{lock}"))
                    .bind(tenant_id)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
            }
        };
        let (email, email_normalized) = p.email.map_or((None, None), |(e, n)| (Some(e), Some(n)));
        let (set_first, first) = p.first_name.map_or((0, None), |v| (1, v));
        let (set_last, last) = p.last_name.map_or((0, None), |v| (1, v));
        let row: Option<ContactRow> = sqlx::query_as(&format!(
            "UPDATE contacts SET \
               email = COALESCE($3, email), email_normalized = COALESCE($4, email_normalized), \
               first_name = CASE WHEN $5 = 1 THEN $6 ELSE first_name END, \
               last_name = CASE WHEN $7 = 1 THEN $8 ELSE last_name END, \
               tags = COALESCE($9, tags), attributes = COALESCE($10, attributes), \
               status = COALESCE($11, status), updated_at = $12 \
             WHERE tenant_id = $1 AND id = $2 RETURNING {CONTACT_RETURNING}"
        ))
        .bind(tenant_id)
        .bind(id)
        .bind(email)
        .bind(email_normalized.clone())
        .bind(set_first)
        .bind(first)
        .bind(set_last)
        .bind(last)
        .bind(p.tags.as_deref().map(tags_json))
        .bind(p.attributes_json)
        .bind(p.status)
        .bind(self.now_ms())
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        if let (Some(_), Some(tags)) = (&row, &p.tags) {
            write_tags(&mut tx, tenant_id, id, tags).await?;
        }
        let now = tx.now;
        if let (Some(_), Some(address)) = (&row, &email_normalized) {
            super::erasure::suppress_erased(self, &mut tx, now, tenant_id.as_str(), &[address]).await?;
        }
        if let (Some(row), Some(before)) = (&row, &status_before) {
            let change = match row.status.as_str() {
                _ if row.status == *before => None,
                "unsubscribed" => Some(ConsentChange::Unsubscribed),
                "subscribed" => Some(ConsentChange::Resubscribed),
                _ => None,
            };
            if let Some(change) = change {
                super::consent::record(&mut tx, now, tenant_id.as_str(), id, change, None, origin).await?;
            }
        }
        if let (Some(_), Some(topics)) = (&row, &p.topics) {
            super::topics::write_choices(&mut tx, now, tenant_id, id, topics, false, origin).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Deletes a contact; its tags and segment memberships go with it (`ON DELETE CASCADE`).
    pub async fn delete_contact(&self, tenant_id: &TenantId, id: &str) -> Result<bool, sqlx::Error> {
        self.delete_owned("contacts", tenant_id, id).await
    }

    pub async fn is_suppressed(&self, tenant_id: &TenantId, email_normalized: &str) -> Result<bool, sqlx::Error> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM suppressions WHERE tenant_id = $1 AND email_normalized = $2")
                .bind(tenant_id)
                .bind(email_normalized)
                .fetch_one(&self.pool)
                .await?;
        // An erased address is kept only as its keyed hash, and is not mailed
        // again: when it comes back as a contact it is suppressed (`erased`),
        // and until then the hash refuses it. A contact of the address with
        // no suppression is one whose confirmed double opt-in lifted that.
        if n > 0 {
            return Ok(true);
        }
        Ok(self.is_erased(tenant_id, email_normalized).await?
            && self.contact_by_email(tenant_id, email_normalized).await?.is_none())
    }

    /// Whether a suppression stops a double opt-in's confirmation email: any
    /// but those a confirmation lifts (`unsubscribed`, `erased`).
    pub async fn blocks_confirmation(&self, tenant_id: &TenantId, email_normalized: &str) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM suppressions WHERE tenant_id = $1 AND email_normalized = $2 \
               AND reason NOT IN ('unsubscribed', 'erased')",
        )
        .bind(tenant_id)
        .bind(email_normalized)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    pub async fn create_segment(&self, tenant_id: &TenantId, id: &str, name: &str) -> Result<SegmentRow, sqlx::Error> {
        self.create_segment_with_filter(tenant_id, id, name, None).await
    }

    /// Creates a segment; with a filter (JSON), a dynamic one.
    pub async fn create_segment_with_filter(
        &self,
        tenant_id: &TenantId,
        id: &str,
        name: &str,
        filter: Option<&str>,
    ) -> Result<SegmentRow, sqlx::Error> {
        sqlx::query_as(
            "INSERT INTO segments (id, tenant_id, name, created_at, filter) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, tenant_id, name, created_at, CAST(0 AS BIGINT) AS contact_count, filter",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(name)
        .bind(self.now_ms())
        .bind(filter)
        .fetch_one(&self.pool)
        .await
    }

    /// Renames a segment and/or replaces a dynamic segment's filter; false if
    /// the tenant has no such segment.
    pub async fn update_segment(
        &self,
        tenant_id: &TenantId,
        id: &str,
        name: Option<&str>,
        filter: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE segments SET name = COALESCE($3, name), filter = COALESCE($4, filter) WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(name)
        .bind(filter)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn segments(&self, tenant_id: &TenantId) -> Result<Vec<SegmentRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT s.id, s.tenant_id, s.name, s.created_at, \
               (SELECT COUNT(*) FROM segment_members m WHERE m.segment_id = s.id) AS contact_count, s.filter \
             FROM segments s WHERE s.tenant_id = $1 ORDER BY s.id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn segment(&self, tenant_id: &TenantId, id: &str) -> Result<Option<SegmentRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT s.id, s.tenant_id, s.name, s.created_at, \
               (SELECT COUNT(*) FROM segment_members m WHERE m.segment_id = s.id) AS contact_count, s.filter \
             FROM segments s WHERE s.tenant_id = $1 AND s.id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn segment_contacts(&self, segment_id: &str, limit: i64) -> Result<Vec<ContactRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {CONTACT_COLUMNS} FROM segment_members m JOIN contacts c ON c.id = m.contact_id \
             WHERE m.segment_id = $1 ORDER BY c.id LIMIT $2"
        ))
        .bind(segment_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Deletes a segment; its memberships go with it, its contacts stay.
    pub async fn delete_segment(&self, tenant_id: &TenantId, id: &str) -> Result<bool, sqlx::Error> {
        self.delete_owned("segments", tenant_id, id).await
    }

    /// Adds the given contacts to a segment. Ids that are not this tenant's
    /// contacts are skipped: the insert selects only from the tenant's own rows.
    /// The ids of the segments a contact is a (static) member of.
    pub async fn segments_of_contact(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT m.segment_id FROM segment_members m JOIN segments s ON s.id = m.segment_id \
             WHERE m.contact_id = $1 AND s.tenant_id = $2",
        )
        .bind(contact_id)
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn add_segment_members(
        &self,
        tenant_id: &TenantId,
        segment_id: &str,
        contact_ids: &[String],
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let mut added = 0;
        for chunk in contact_ids.chunks(500) {
            let sql = format!(
                "INSERT INTO segment_members (segment_id, contact_id, added_at) \
                 SELECT $1, c.id, $2 FROM contacts c WHERE c.tenant_id = $3 AND c.id IN ({}) \
                 ON CONFLICT DO NOTHING",
                placeholders(4, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(segment_id).bind(self.now_ms()).bind(tenant_id);
            for id in chunk {
                q = q.bind(id);
            }
            added += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    pub async fn remove_segment_members(&self, segment_id: &str, contact_ids: &[String]) -> Result<u64, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let mut removed = 0;
        for chunk in contact_ids.chunks(500) {
            let sql = format!(
                "DELETE FROM segment_members WHERE segment_id = $1 AND contact_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(segment_id);
            for id in chunk {
                q = q.bind(id);
            }
            removed += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }
}

impl Store {
    /// Gives a contact one tag (`present`) or takes it away, in one transaction
    /// (the row is locked on PostgreSQL, so concurrent changes do not lose one
    /// another). `None`: no such contact; else whether anything changed.
    pub async fn set_contact_tag(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
        tag: &Tag,
        present: bool,
    ) -> Result<Option<bool>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let changed = set_tag_in(&mut tx, now, tenant_id.as_str(), contact_id, tag, present).await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn contact_by_email(
        &self,
        tenant_id: &TenantId,
        email_normalized: &str,
    ) -> Result<Option<ContactRow>, sqlx::Error> {
        contact_by_email_in(&self.pool, tenant_id, email_normalized).await
    }
}

/// The tenant's contact with this (normalized) address, read through `ex`:
/// the pool, or a transaction that goes on to write it.
pub(super) async fn contact_by_email_in<'c>(
    ex: impl sqlx::Executor<'c, Database = sqlx::Any>,
    tenant_id: &TenantId,
    email_normalized: &str,
) -> Result<Option<ContactRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.tenant_id = $1 AND c.email_normalized = $2"
    ))
    .bind(tenant_id)
    .bind(email_normalized)
    .fetch_optional(ex)
    .await
}

/// Rows inserted at once past which planner statistics are refreshed.
pub(super) const BULK_ROWS: u64 = 10_000;

impl Store {
    /// Generates `n` subscribed contacts `user{i}@{domain}`, all tagged `tag`,
    /// with attributes `plan` (`free`, `pro`, `team` for `i % 3` = 0, 1, 2) and
    /// `score` (`i % 100`),
    /// inside the database in two set-based statements (load tests and benchmarks:
    /// far faster than any import). The generators differ per backend.
    pub async fn seed_contacts(
        &self,
        tenant_id: &TenantId,
        n: i64,
        domain: &str,
        tag: &str,
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let series = match self.backend {
            super::Backend::Postgres => "generate_series(0, $2 - 1) AS seq(i)",
            super::Backend::Sqlite => "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < $2) SELECT i FROM s) AS seq",
        };
        let sql = format!(
            "INSERT INTO contacts (id, tenant_id, email, email_normalized, first_name, tags, attributes, status, created_at, updated_at) \
             SELECT {id}, $1, 'user' || CAST(seq.i AS TEXT) || '@' || $3, 'user' || CAST(seq.i AS TEXT) || '@' || $3, \
               'User' || CAST(seq.i AS TEXT), $4, \
               '{{\"plan\":\"' || (CASE seq.i % 3 WHEN 0 THEN 'free' WHEN 1 THEN 'pro' ELSE 'team' END) \
                 || '\",\"score\":' || CAST(seq.i % 100 AS TEXT) || '}}', \
               'subscribed', $5, $5 FROM {series} WHERE true \
             ON CONFLICT (tenant_id, email_normalized) DO NOTHING",
            id = self.sql_sequential_id("$6", "seq.i"),
        );
        let created = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(n)
            .bind(domain)
            .bind(serde_json::json!([tag]).to_string())
            .bind(self.now_ms())
            .bind(super::id_prefix())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO contact_tags (tenant_id, contact_id, tag) SELECT tenant_id, id, $2 FROM contacts WHERE tenant_id = $1 \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(tag)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.refresh_statistics(&["contacts", "contact_tags"]).await?;
        Ok(created)
    }
}

/// [`Store::set_contact_tag`] inside `tx` (the row locked on PostgreSQL).
pub(super) async fn set_tag_in(
    tx: &mut sqlx::AnyConnection,
    now: i64,
    tenant_id: &str,
    contact_id: &str,
    tag: &Tag,
    present: bool,
) -> Result<Option<bool>, sqlx::Error> {
    let lock = if tx.backend_name().eq_ignore_ascii_case("postgresql") { " FOR UPDATE" } else { "" };
    let tags: Option<String> =
        sqlx::query_scalar(&format!("SELECT tags FROM contacts WHERE tenant_id = $1 AND id = $2{lock}"))
            .bind(tenant_id)
            .bind(contact_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(tags) = tags else { return Ok(None) };
    let mut list: Vec<String> = serde_json::from_str(&tags).unwrap_or_default();
    if list.iter().any(|t| t == tag.as_str()) == present {
        return Ok(Some(false));
    }
    if present {
        list.push(tag.as_str().to_owned());
        sqlx::query("INSERT INTO contact_tags (tenant_id, contact_id, tag) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(tenant_id)
            .bind(contact_id)
            .bind(tag.as_str())
            .execute(&mut *tx)
            .await?;
    } else {
        list.retain(|t| t != tag.as_str());
        sqlx::query("DELETE FROM contact_tags WHERE contact_id = $1 AND tag = $2")
            .bind(contact_id)
            .bind(tag.as_str())
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE contacts SET tags = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(contact_id)
        .bind(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(Some(true))
}
