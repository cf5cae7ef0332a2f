//! Sessions of the web dashboard: opened by signing in with a key, ended by
//! signing out or by expiry. Only the hash of the session token is stored.

use sqlx::FromRow;

use super::Store;
use crate::domain::TenantId;

#[derive(Clone, Debug, FromRow)]
pub struct UiSessionRow {
    pub id: String,
    /// The hash of the key the session was opened with.
    pub key_hash: String,
    /// `None`: the operator's session.
    pub tenant_id: Option<String>,
    pub csrf_token: String,
    pub expires_at: i64,
}

impl Store {
    /// Opens a session (and drops expired ones, so the table stays small).
    pub async fn create_ui_session(
        &self,
        id_hash: &str,
        key_hash: &str,
        tenant_id: Option<&TenantId>,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at < $1").bind(now).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO ui_sessions (id, key_hash, tenant_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id_hash)
        .bind(key_hash)
        .bind(tenant_id.map(TenantId::as_str))
        .bind(csrf_token)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// A session that has not expired.
    pub async fn ui_session(&self, id_hash: &str) -> Result<Option<UiSessionRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, key_hash, tenant_id, csrf_token, expires_at FROM ui_sessions WHERE id = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    /// Ends a session (signing out).
    pub async fn delete_ui_session(&self, id_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM ui_sessions WHERE id = $1").bind(id_hash).execute(&self.pool).await.map(|_| ())
    }
}
