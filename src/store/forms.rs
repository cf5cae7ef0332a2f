//! Signup forms (issue 23, section 2): the forms themselves, and the rate
//! limits of their public endpoint (keyed hashes only).

use sqlx::FromRow;

use super::{Store, StoreError};
use crate::domain::TenantId;

#[derive(Clone, Debug, FromRow)]
pub struct FormRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// JSON array of topic ids.
    pub topic_ids: String,
    /// JSON array of tags.
    pub tags: String,
    pub template_id: Option<String>,
    pub thank_you_url: Option<String>,
    pub confirmed_url: Option<String>,
    /// JSON array of hosts.
    pub redirect_hosts: String,
    /// JSON array of origins.
    pub allowed_origins: String,
    pub double_opt_in: i64,
    pub consent_text: String,
    pub consent_text_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A list a form row keeps as JSON text (topics, tags, hosts, origins);
/// empty for anything else.
pub fn stored_list(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

/// A form's fields as written (all of them: a change is merged by the caller).
pub struct FormFields {
    pub name: String,
    pub topic_ids: Vec<String>,
    pub tags: Vec<String>,
    pub template_id: Option<String>,
    pub thank_you_url: Option<String>,
    pub confirmed_url: Option<String>,
    pub redirect_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub double_opt_in: bool,
    pub consent_text: String,
}

/// The class of PostgreSQL transaction locks a tenant's signups take turns
/// on, the tenant's id hashed being the other key (two-key advisory locks
/// never meet the one-key ones other claims use).
const SIGNUP_LOCKS: i32 = 0x7369_676e;

const FORM_COLUMNS: &str = "id, tenant_id, name, topic_ids, tags, template_id, thank_you_url, confirmed_url, \
     redirect_hosts, allowed_origins, double_opt_in, consent_text, consent_text_version, created_at, updated_at";

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

impl Store {
    pub async fn create_form(&self, tenant_id: &TenantId, id: &str, f: &FormFields) -> Result<FormRow, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let sql = format!(
            "INSERT INTO signup_forms (id, tenant_id, name, topic_ids, tags, template_id, thank_you_url, confirmed_url, \
               redirect_hosts, allowed_origins, double_opt_in, consent_text, consent_text_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $13) RETURNING {FORM_COLUMNS}"
        );
        let q = sqlx::query_as(&sql).bind(id).bind(tenant_id);
        let row = bind_fields(q, f, now).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// One page of the tenant's forms in creation order, after the id `after`
    /// (`""` from the first); `limit + 1` rows when a next page exists.
    pub async fn forms(&self, tenant_id: &TenantId, after: &str, limit: i64) -> Result<Vec<FormRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {FORM_COLUMNS} FROM signup_forms WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn form(&self, tenant_id: &TenantId, id: &str) -> Result<Option<FormRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {FORM_COLUMNS} FROM signup_forms WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// A form by its id alone (its public endpoint names no tenant).
    pub async fn public_form(&self, id: &str) -> Result<Option<FormRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {FORM_COLUMNS} FROM signup_forms WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Writes a form's fields; its consent statement's version goes up when
    /// the text changes. `None` if the tenant has no such form.
    pub async fn update_form(
        &self,
        tenant_id: &TenantId,
        id: &str,
        f: &FormFields,
    ) -> Result<Option<FormRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let sql = format!(
            "UPDATE signup_forms SET name = $3, topic_ids = $4, tags = $5, template_id = $6, thank_you_url = $7, \
               confirmed_url = $8, redirect_hosts = $9, allowed_origins = $10, double_opt_in = $11, \
               consent_text_version = consent_text_version + CASE WHEN consent_text = $12 THEN 0 ELSE 1 END, \
               consent_text = $12, updated_at = $13 \
             WHERE id = $1 AND tenant_id = $2 RETURNING {FORM_COLUMNS}"
        );
        let q = sqlx::query_as(&sql).bind(id).bind(tenant_id);
        let row = bind_fields(q, f, now).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn delete_form(&self, tenant_id: &TenantId, id: &str) -> Result<bool, sqlx::Error> {
        self.delete_owned("signup_forms", tenant_id, id).await
    }

    /// The ids among `ids` that are the tenant's topics now.
    pub async fn existing_topics(&self, tenant_id: &TenantId, ids: &[String]) -> Result<Vec<String>, sqlx::Error> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let hit: Option<String> = sqlx::query_scalar("SELECT id FROM topics WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            found.extend(hit);
        }
        Ok(found)
    }

    /// Counts one attempt under each of `limits`' keys if none of them has
    /// had its limit of attempts since `window_ms` ago; otherwise counts
    /// nothing and answers the first key at its limit with the time its
    /// oldest attempt was made. The check and the count are one step:
    /// parallel posts never get past a limit (SQLite's writers take turns;
    /// PostgreSQL's, of one tenant, on a transaction lock).
    pub async fn take_signup_attempt(
        &self,
        tenant_id: &TenantId,
        limits: &[(&str, i64)],
        window_ms: i64,
    ) -> Result<Option<(usize, i64)>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        if self.backend == super::Backend::Postgres {
            // (Selecting the `void` itself would not decode through the Any driver.)
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1, hashtext($2))) AS turn")
                .bind(SIGNUP_LOCKS)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
        }
        for (i, (key, limit)) in limits.iter().enumerate() {
            let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), MIN(at) FROM signup_attempts WHERE tenant_id = $1 AND key_hash = $2 AND at > $3",
            )
            .bind(tenant_id)
            .bind(*key)
            .bind(now - window_ms)
            .fetch_one(&mut *tx)
            .await?;
            if count >= *limit {
                return Ok(Some((i, oldest.unwrap_or(now))));
            }
        }
        for (key, _) in limits {
            sqlx::query("INSERT INTO signup_attempts (tenant_id, key_hash, at) VALUES ($1, $2, $3)")
                .bind(tenant_id)
                .bind(*key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(None)
    }
}

/// Binds a form's fields as `$3`…`$12` and the time as `$13`, after the
/// form's id and its tenant (`$1`, `$2`): the insert's and the update's order.
fn bind_fields<'q>(
    q: sqlx::query::QueryAs<'q, sqlx::Any, FormRow, sqlx::any::AnyArguments<'q>>,
    f: &'q FormFields,
    now: i64,
) -> sqlx::query::QueryAs<'q, sqlx::Any, FormRow, sqlx::any::AnyArguments<'q>> {
    q.bind(&f.name)
        .bind(json(&f.topic_ids))
        .bind(json(&f.tags))
        .bind(&f.template_id)
        .bind(&f.thank_you_url)
        .bind(&f.confirmed_url)
        .bind(json(&f.redirect_hosts))
        .bind(json(&f.allowed_origins))
        .bind(i64::from(f.double_opt_in))
        .bind(&f.consent_text)
        .bind(now)
}
