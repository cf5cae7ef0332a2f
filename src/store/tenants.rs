use sqlx::FromRow;

use super::{Store, StoreError};
use crate::domain::{Locale, TenantId};

#[derive(Clone, Debug, FromRow)]
pub struct TenantRow {
    pub id: TenantId,
    pub name: String,
    pub domain_name: Option<String>,
    pub resend_domain_id: Option<String>,
    pub domain_status: Option<String>,
    pub domain_records: Option<String>,
    /// The DMARC policy last seen in DNS: `none`/`quarantine`/`reject`, `missing`, or unknown.
    pub dmarc_policy: Option<String>,
    /// 1: campaign html without `{{unsubscribe_url}}` gets an unsubscribe footer.
    pub unsubscribe_footer: i64,
    /// Its share of the provider's rate against other tenants' (set by the operator).
    pub send_weight: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The operator's budget of model calls a day (`None`: `MAILROOM_AGENT_DAILY_CALLS`).
    pub agent_daily_calls: Option<i64>,
    /// The default From name of mail that names no sender.
    pub from_name: Option<String>,
    /// The default From address (on the verified domain) of mail that names
    /// no sender; `hello@{domain}` when unset.
    pub from_address: Option<String>,
    /// The language of recipients' pages: `en` or `de`.
    pub locale: String,
}

impl TenantRow {
    pub fn domain_verified(&self) -> bool {
        self.domain_status.as_deref() == Some("verified")
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub name: Option<String>,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Who a presented key belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOwner {
    Admin,
    Tenant(String),
}

const TENANT_COLUMNS: &str =
    "id, name, domain_name, resend_domain_id, domain_status, domain_records, dmarc_policy, unsubscribe_footer, send_weight, \
   agent_daily_calls, created_at, updated_at, from_name, from_address, locale";

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.pool).await
    }

    /// Stores `value` under `key` unless one is already there; returns whether it was stored.
    pub async fn insert_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A new tenant, with the starter templates and the starter automations (disabled).
    pub async fn create_tenant(&self, id: &TenantId, name: &str) -> Result<TenantRow, sqlx::Error> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query_as(&format!(
            "INSERT INTO tenants (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING {TENANT_COLUMNS}"
        ))
        .bind(id)
        .bind(name)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let follow_up = super::templates::insert_starters(&mut tx, id, now).await?;
        super::automations::insert_starters(&mut tx, id, &follow_up, now).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// The language of the tenant's recipients' pages.
    pub async fn set_tenant_locale(&self, id: &TenantId, locale: Locale) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE tenants SET locale = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(locale.as_str())
            .bind(self.now_ms())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Whether campaign html without `{{unsubscribe_url}}` gets an unsubscribe footer.
    pub async fn set_unsubscribe_footer(&self, id: &TenantId, on: bool) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE tenants SET unsubscribe_footer = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(i64::from(on))
            .bind(self.now_ms())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Sets the default sender of mail that names none: each part given
    /// (`Some`) is set, `Some(None)` removes it; `None` leaves it as it is.
    pub async fn set_default_sender(
        &self,
        id: &TenantId,
        name: Option<Option<&str>>,
        address: Option<Option<&str>>,
    ) -> Result<(), sqlx::Error> {
        let now = self.now_ms();
        for (column, value) in [("from_name", name), ("from_address", address)] {
            let Some(value) = value else { continue };
            sqlx::query(&format!("UPDATE tenants SET {column} = $2, updated_at = $3 WHERE id = $1"))
                .bind(id)
                .bind(value)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// A tenant's weight in the turns of sending (see [`crate::domain::fair_share`]).
    pub async fn set_send_weight(&self, id: &TenantId, weight: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE tenants SET send_weight = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(weight)
            .bind(self.now_ms())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn tenants(&self) -> Result<Vec<TenantRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id")).fetch_all(&self.pool).await
    }

    pub async fn rename_tenant(&self, id: &TenantId, name: &str) -> Result<Option<TenantRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "UPDATE tenants SET name = $2, updated_at = $3 WHERE id = $1 RETURNING {TENANT_COLUMNS}"
        ))
        .bind(id)
        .bind(name)
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    /// Deletes a tenant and everything it owns. Its messages go explicitly (the
    /// outbox has no foreign keys on PostgreSQL: see migration 0011), found
    /// through its campaigns and its transactional index, and so do its consent
    /// records and their client details (migration 0037); the rest by cascade.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM messages WHERE campaign_id IN (SELECT c.id FROM campaigns c WHERE c.tenant_id = $1)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM messages WHERE campaign_id IS NULL AND tenant_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Consent records and their client details have no foreign key on
        // PostgreSQL (migration 0037), client details none on either backend.
        sqlx::query(
            "DELETE FROM consent_clients WHERE record_id IN (SELECT r.id FROM consent_records r WHERE r.tenant_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM consent_records WHERE tenant_id = $1").bind(id).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM tenants WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the DMARC policy seen in DNS (`missing` when there is none).
    pub async fn set_dmarc_policy(&self, id: &TenantId, policy: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE tenants SET dmarc_policy = $2 WHERE id = $1")
            .bind(id)
            .bind(policy)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// The tenant a sending domain belongs to, if any.
    pub async fn domain_owner(&self, domain_name: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM tenants WHERE domain_name = $1")
            .bind(domain_name)
            .fetch_optional(&self.pool)
            .await
    }

    /// Records the tenant's sending domain; a default From address on another
    /// domain is forgotten (mail may come only from the tenant's own domain).
    pub async fn set_tenant_domain(
        &self,
        id: &TenantId,
        domain_name: &str,
        resend_domain_id: &str,
        status: &str,
        records_json: &str,
    ) -> Result<Option<TenantRow>, StoreError> {
        sqlx::query_as(&format!(
            "UPDATE tenants SET domain_name = $2, resend_domain_id = $3, domain_status = $4, domain_records = $5, updated_at = $6, \
               from_address = CASE WHEN domain_name = $2 THEN from_address END \
             WHERE id = $1 RETURNING {TENANT_COLUMNS}"
        ))
        .bind(id)
        .bind(domain_name)
        .bind(resend_domain_id)
        .bind(status)
        .bind(records_json)
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from_sqlx)
    }

    pub async fn update_domain_status(
        &self,
        id: &TenantId,
        status: &str,
        records_json: Option<&str>,
    ) -> Result<Option<TenantRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "UPDATE tenants SET domain_status = $2, domain_records = COALESCE($3, domain_records), updated_at = $4 \
             WHERE id = $1 RETURNING {TENANT_COLUMNS}"
        ))
        .bind(id)
        .bind(status)
        .bind(records_json)
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    /// Tenants whose domain is registered but not (yet) verified, for the re-check task.
    pub async fn tenants_with_pending_domains(&self) -> Result<Vec<TenantRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE resend_domain_id IS NOT NULL \
             AND (domain_status IS NULL OR domain_status NOT IN ('verified', 'failed'))"
        ))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn create_api_key(
        &self,
        id: &str,
        tenant_id: &TenantId,
        name: Option<&str>,
        prefix: &str,
        key_hash: &str,
    ) -> Result<ApiKeyRow, sqlx::Error> {
        sqlx::query_as(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING id, tenant_id, name, prefix, created_at, revoked_at",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(name)
        .bind(prefix)
        .bind(key_hash)
        .bind(self.now_ms())
        .fetch_one(&self.pool)
        .await
    }

    pub async fn api_keys(&self, tenant_id: &TenantId) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, tenant_id, name, prefix, created_at, revoked_at FROM api_keys WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn revoke_api_key(&self, tenant_id: &TenantId, key_id: &str) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL")
                .bind(tenant_id)
                .bind(key_id)
                .bind(self.now_ms())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The tenant owning an active key with this hash.
    pub async fn tenant_for_key_hash(&self, key_hash: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
    }
}
