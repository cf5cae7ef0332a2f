//! Topics and each contact's choice per topic. A contact without a row in
//! `contact_topics` is at the topic's default.

use sqlx::FromRow;

use super::{Placeholders, Store, StoreError};
use crate::domain::{ConsentOrigin, TenantId, TopicChoice, TopicDefault, TopicDescription, TopicName};

/// Most topics a tenant may have.
pub const TOPICS_MAX: usize = 1000;

#[derive(Clone, Debug, FromRow)]
pub struct TopicRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub default_subscription: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A topic and one contact's own choice on it (`None`: at the default).
#[derive(Clone, Debug, FromRow)]
pub struct ContactTopicRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub default_subscription: String,
    pub choice: Option<String>,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Default)]
pub struct TopicPatch {
    pub name: Option<TopicName>,
    pub description: Option<TopicDescription>,
    pub default: Option<TopicDefault>,
}

/// What creating a topic came to.
pub enum TopicCreated {
    Created(TopicRow),
    /// The tenant has [`TOPICS_MAX`] topics already.
    TooMany,
}

const TOPIC_COLUMNS: &str = "id, tenant_id, name, description, default_subscription, created_at, updated_at";

/// SQL for a contact's effective state on a topic: `'subscribed'`,
/// `'unsubscribed'`, or `'none'` when the topic no longer exists (or is
/// not the tenant's). `contact_id`, `tenant_id` and `topic` are SQL
/// expressions. The contact's own choice is probed by the primary key of
/// `contact_topics`; the default by the topic's.
pub(super) fn topic_state_sql(contact_id: &str, tenant_id: &str, topic: &str) -> String {
    format!(
        "COALESCE((SELECT x.state FROM contact_topics x WHERE x.contact_id = {contact_id} AND x.topic_id = {topic}), \
           (SELECT CASE WHEN tp.default_subscription = 'opt_out' THEN 'subscribed' ELSE 'unsubscribed' END \
              FROM topics tp WHERE tp.id = {topic} AND tp.tenant_id = {tenant_id}), 'none')"
    )
}

impl Store {
    /// Creates a topic; a name the tenant has already (in any case) is a
    /// [`StoreError::Duplicate`].
    pub async fn create_topic(
        &self,
        tenant_id: &TenantId,
        id: &str,
        name: &TopicName,
        description: &TopicDescription,
        default: TopicDefault,
    ) -> Result<TopicCreated, StoreError> {
        let mut tx = self.begin_write().await?;
        if !tx.below_limit("topics", tenant_id.as_str(), TOPICS_MAX).await? {
            tx.rollback().await?;
            return Ok(TopicCreated::TooMany);
        }
        let now = tx.now;
        let row: TopicRow = sqlx::query_as(&format!(
            "INSERT INTO topics (id, tenant_id, name, name_key, description, default_subscription, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {TOPIC_COLUMNS}"
        ))
        .bind(id)
        .bind(tenant_id)
        .bind(name.as_str())
        .bind(name.key())
        .bind(description.as_str())
        .bind(default.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        tx.commit().await?;
        Ok(TopicCreated::Created(row))
    }

    pub async fn topic(&self, tenant_id: &TenantId, id: &str) -> Result<Option<TopicRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {TOPIC_COLUMNS} FROM topics WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// One page of the tenant's topics in id (creation) order, after the topic
    /// id `after` ("" from the start). Fetches `limit + 1`, so the caller
    /// knows whether a next page exists.
    pub async fn topics(&self, tenant_id: &TenantId, after: &str, limit: i64) -> Result<Vec<TopicRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {TOPIC_COLUMNS} FROM topics WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
    }

    /// Changes a topic; `None` if the tenant has no such topic.
    pub async fn update_topic(
        &self,
        tenant_id: &TenantId,
        id: &str,
        p: &TopicPatch,
    ) -> Result<Option<TopicRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let row: Option<TopicRow> = sqlx::query_as(&format!(
            "UPDATE topics SET name = COALESCE($3, name), name_key = COALESCE($4, name_key), \
               description = COALESCE($5, description), default_subscription = COALESCE($6, default_subscription), \
               updated_at = $7 \
             WHERE tenant_id = $1 AND id = $2 RETURNING {TOPIC_COLUMNS}"
        ))
        .bind(tenant_id)
        .bind(id)
        .bind(p.name.as_ref().map(TopicName::as_str))
        .bind(p.name.as_ref().map(TopicName::key))
        .bind(p.description.as_ref().map(TopicDescription::as_str))
        .bind(p.default.map(TopicDefault::as_str))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        tx.commit().await?;
        Ok(row)
    }

    /// Deletes a topic and every contact's choice on it (`ON DELETE CASCADE`).
    pub async fn delete_topic(&self, tenant_id: &TenantId, id: &str) -> Result<bool, sqlx::Error> {
        self.delete_owned("topics", tenant_id, id).await
    }

    /// Every topic of the tenant (in creation order) with the contact's own
    /// choice on it; `None` when the tenant has no such contact.
    pub async fn contact_topics(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
    ) -> Result<Option<Vec<ContactTopicRow>>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        contact_topics_in(&mut conn, tenant_id, contact_id).await
    }

    /// Applies choices (topic id, choice) to one contact's topics, in one
    /// transaction; with `reset_others`, every topic not named goes back to
    /// its default (a replacement). Answers the contact's topics after it, or
    /// `None` when the tenant has no such contact. Every topic id must be the
    /// tenant's: the caller checks ([`Store::unknown_topic`]); one that is not
    /// (deleted meanwhile) is skipped.
    pub async fn set_contact_topics(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
        choices: &[(String, TopicChoice)],
        reset_others: bool,
        origin: &ConsentOrigin,
    ) -> Result<Option<Vec<ContactTopicRow>>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let lock = match self.backend {
            super::Backend::Postgres => " FOR UPDATE",
            super::Backend::Sqlite => "",
        };
        let exists: Option<String> =
            sqlx::query_scalar(&format!("SELECT id FROM contacts WHERE tenant_id = $1 AND id = $2{lock}"))
                .bind(tenant_id)
                .bind(contact_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let topics = match write_choices(&mut tx, now, tenant_id, contact_id, choices, reset_others, origin).await? {
            Some(topics) => Some(topics),
            // Nothing to change: the contact's topics as they are.
            None => contact_topics_in(&mut tx, tenant_id, contact_id).await?,
        };
        tx.commit().await?;
        Ok(topics)
    }

    /// Unsubscribes a contact from one topic (a one-click link from a topic
    /// campaign's email); false when the contact or the topic is gone. A
    /// contact not unsubscribed by its own choice before gets a record.
    pub async fn leave_topic(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
        topic_id: &str,
        origin: &ConsentOrigin,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let lock = match self.backend {
            super::Backend::Postgres => " FOR UPDATE",
            super::Backend::Sqlite => "",
        };
        let before: Option<String> = sqlx::query_scalar(&format!(
            "SELECT state FROM contact_topics WHERE tenant_id = $1 AND contact_id = $2 AND topic_id = $3{lock}"
        ))
        .bind(tenant_id)
        .bind(contact_id)
        .bind(topic_id)
        .fetch_optional(&mut *tx)
        .await?;
        let done = sqlx::query(
            "INSERT INTO contact_topics (tenant_id, contact_id, topic_id, state, updated_at) \
             SELECT c.tenant_id, c.id, tp.id, 'unsubscribed', $4 FROM contacts c JOIN topics tp ON tp.tenant_id = c.tenant_id \
             WHERE c.tenant_id = $1 AND c.id = $2 AND tp.id = $3 \
             ON CONFLICT (contact_id, topic_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(contact_id)
        .bind(topic_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let left = done.rows_affected() > 0;
        if left && before.as_deref() != Some("unsubscribed") {
            let change = crate::domain::ConsentChange::TopicUnsubscribed;
            super::consent::record(&mut tx, now, tenant_id.as_str(), contact_id, change, Some(topic_id), origin)
                .await?;
            // The tenant hears of it once: when this click is what moved the contact.
            let about: Option<(String, String)> = sqlx::query_as(
                "SELECT c.email_normalized, tp.name FROM contacts c JOIN topics tp ON tp.tenant_id = c.tenant_id \
                 WHERE c.tenant_id = $1 AND c.id = $2 AND tp.id = $3",
            )
            .bind(tenant_id)
            .bind(contact_id)
            .bind(topic_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((email, name)) = about {
                let data = serde_json::json!({
                    "email": email,
                    "contact_id": contact_id,
                    "campaign_id": origin.campaign_id,
                    "topic": { "id": topic_id, "name": name },
                    "created_at": crate::domain::rfc3339(now),
                });
                let event = "contact.topic_unsubscribed";
                super::enqueue_tenant_events(&mut tx, now, tenant_id.as_str(), event, &data).await?;
            }
        }
        tx.commit().await?;
        Ok(left)
    }

    /// The topic the tenant's campaign `campaign_id` targets, if any (a
    /// deleted campaign's too: its mail's events still trigger rules).
    pub async fn campaign_topic(&self, tenant_id: &TenantId, campaign_id: &str) -> Result<Option<String>, sqlx::Error> {
        let topic: Option<Option<String>> =
            sqlx::query_scalar("SELECT topic_id FROM campaigns WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(campaign_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(topic.flatten())
    }

    /// One of the tenant's topics by name, and whether contact `contact_id`
    /// is subscribed to it now (its own choice, or the topic's default), the
    /// same reading as a campaign's audience and the claim's; `None` when
    /// the tenant has no such topic (deleted).
    pub async fn topic_standing(
        &self,
        tenant_id: &TenantId,
        topic_id: &str,
        contact_id: &str,
    ) -> Result<Option<(String, bool)>, sqlx::Error> {
        let row: Option<(String, String)> = sqlx::query_as(&format!(
            "SELECT tp.name, {} AS state FROM topics tp WHERE tp.tenant_id = $1 AND tp.id = $2",
            topic_state_sql("$3", "$1", "$2")
        ))
        .bind(tenant_id)
        .bind(topic_id)
        .bind(contact_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(name, state)| (name, state == "subscribed")))
    }

    /// The first of `ids` that is not one of the tenant's topics, if any.
    pub async fn unknown_topic<'a>(
        &self,
        tenant_id: &TenantId,
        ids: &'a [String],
    ) -> Result<Option<&'a str>, sqlx::Error> {
        let mut known = std::collections::HashSet::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id FROM topics WHERE tenant_id = $1 AND id IN ({})",
                Placeholders::after(1).list(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql).bind(tenant_id);
            for id in chunk {
                q = q.bind(id);
            }
            known.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(ids.iter().find(|id| !known.contains(*id)).map(String::as_str))
    }
}

/// Writes a contact's choices inside `tx` (the contact is the tenant's:
/// the caller checked); with `reset_others`, every topic not named goes back
/// to its default. A topic id that is not the tenant's writes nothing. Each
/// change of the contact's stand on a topic is recorded, from `origin`.
/// Answers the contact's topics after it (`None`: no such contact).
pub(super) async fn write_choices(
    tx: &mut sqlx::AnyConnection,
    now: i64,
    tenant_id: &TenantId,
    contact_id: &str,
    choices: &[(String, TopicChoice)],
    reset_others: bool,
    origin: &ConsentOrigin,
) -> Result<Option<Vec<ContactTopicRow>>, sqlx::Error> {
    if choices.is_empty() && !reset_others {
        return Ok(None);
    }
    let before = contact_topics_in(tx, tenant_id, contact_id).await?.unwrap_or_default();
    if reset_others {
        let mut p = Placeholders::after(2);
        let keep = match choices.len() {
            0 => String::new(),
            n => format!(" AND topic_id NOT IN ({})", p.list(n)),
        };
        let sql = format!("DELETE FROM contact_topics WHERE tenant_id = $1 AND contact_id = $2{keep}");
        let mut q = sqlx::query(&sql).bind(tenant_id).bind(contact_id);
        for (id, _) in choices {
            q = q.bind(id);
        }
        q.execute(&mut *tx).await?;
    }
    for (topic_id, choice) in choices {
        match choice {
            TopicChoice::Default => {
                sqlx::query("DELETE FROM contact_topics WHERE contact_id = $1 AND topic_id = $2")
                    .bind(contact_id)
                    .bind(topic_id)
                    .execute(&mut *tx)
                    .await?;
            }
            TopicChoice::Set(state) => {
                // Selected from the tenant's own topics: another tenant's id inserts nothing.
                sqlx::query(
                        "INSERT INTO contact_topics (tenant_id, contact_id, topic_id, state, updated_at) \
                         SELECT tp.tenant_id, $2, tp.id, $4, $5 FROM topics tp WHERE tp.tenant_id = $1 AND tp.id = $3 \
                         ON CONFLICT (contact_id, topic_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                    )
                    .bind(tenant_id)
                    .bind(contact_id)
                    .bind(topic_id)
                    .bind(state.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    let after = contact_topics_in(tx, tenant_id, contact_id).await?;
    if let Some(after) = &after {
        record_topic_changes(tx, now, tenant_id.as_str(), contact_id, &before, after, origin).await?;
    }
    Ok(after)
}

pub(super) async fn contact_topics_in(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    contact_id: &str,
) -> Result<Option<Vec<ContactTopicRow>>, sqlx::Error> {
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM contacts WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(contact_id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT tp.id, tp.name, tp.description, tp.default_subscription, x.state AS choice \
         FROM topics tp LEFT JOIN contact_topics x ON x.topic_id = tp.id AND x.contact_id = $2 \
         WHERE tp.tenant_id = $1 ORDER BY tp.id",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .fetch_all(&mut *conn)
    .await
    .map(Some)
}

/// Records the changes between a contact's topics before and after a change
/// of its choices (see [`crate::domain::consent::TopicStand::change`]).
async fn record_topic_changes(
    tx: &mut sqlx::AnyConnection,
    at: i64,
    tenant_id: &str,
    contact_id: &str,
    before: &[ContactTopicRow],
    after: &[ContactTopicRow],
    origin: &ConsentOrigin,
) -> Result<(), sqlx::Error> {
    for now in after {
        let was = before.iter().find(|b| b.id == now.id).and_then(|b| b.choice.as_deref());
        let stand = crate::domain::consent::TopicStand {
            before: was,
            after: now.choice.as_deref(),
            default: TopicDefault::from_stored(&now.default_subscription),
        };
        if let Some(change) = stand.change() {
            super::consent::record(tx, at, tenant_id, contact_id, change, Some(&now.id), origin).await?;
        }
    }
    Ok(())
}
