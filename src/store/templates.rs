//! Templates and their versions. A template row holds the name and the current
//! version number; every version's content is kept, and a change adds one.

use sqlx::FromRow;

use super::{Store, WriteTx};
use crate::domain::{new_id, starters, TenantId};

/// A template at one version.
#[derive(Clone, Debug, FromRow)]
pub struct TemplateRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub version: i64,
    pub subject: String,
    pub html: String,
    pub text_body: Option<String>,
    /// The variables the save check renders it with (a JSON object), if any.
    pub sample_variables: Option<String>,
    pub created_at: i64,
    /// When this version was made.
    pub updated_at: i64,
}

pub struct TemplateContent {
    pub name: String,
    pub subject: String,
    pub html: String,
    pub text: Option<String>,
    /// A JSON object, as text.
    pub sample_variables: Option<String>,
}

/// A change: absent fields stay; `text: Some(None)` removes the text part
/// (and `sample_variables: Some(None)` the sample variables).
#[derive(Default)]
pub struct TemplatePatch {
    pub name: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<Option<String>>,
    pub sample_variables: Option<Option<String>>,
}

const SELECT: &str =
    "SELECT t.id, t.tenant_id, v.name, v.version, v.subject, v.html, v.text_body, v.sample_variables, \
     t.created_at, v.created_at AS updated_at FROM templates t JOIN template_versions v ON v.template_id = t.id";

async fn insert_version(
    tx: &mut WriteTx,
    id: &str,
    version: i64,
    c: &TemplateContent,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO template_versions (template_id, version, name, subject, html, text_body, created_at, \
           sample_variables) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(version)
    .bind(&c.name)
    .bind(&c.subject)
    .bind(&c.html)
    .bind(&c.text)
    .bind(now)
    .bind(&c.sample_variables)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Adds a template at version 1 inside `tx`.
pub(super) async fn insert_template(
    tx: &mut WriteTx,
    tenant_id: &TenantId,
    id: &str,
    c: &TemplateContent,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO templates (id, tenant_id, name, version, created_at, updated_at) VALUES ($1, $2, $3, 1, $4, $4)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(&c.name)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    insert_version(tx, id, 1, c, now).await
}

/// The starter templates, for a new tenant, inside `tx`. Returns the id of the
/// follow-up template (which the starter follow-up automation sends).
pub(super) async fn insert_starters(tx: &mut WriteTx, tenant_id: &TenantId, now: i64) -> Result<String, sqlx::Error> {
    let mut follow_up = String::new();
    for s in &starters::STARTERS {
        let content = TemplateContent {
            name: s.name.to_owned(),
            subject: s.subject.to_owned(),
            html: s.html.to_owned(),
            text: None,
            sample_variables: None,
        };
        let id = new_id();
        insert_template(tx, tenant_id, &id, &content, now).await?;
        if s.name == starters::FOLLOW_UP {
            follow_up = id;
        }
    }
    Ok(follow_up)
}

impl Store {
    pub async fn create_template(&self, tenant_id: &TenantId, c: &TemplateContent) -> Result<TemplateRow, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let id = new_id();
        insert_template(&mut tx, tenant_id, &id, c, self.now_ms()).await?;
        tx.commit().await?;
        self.template(tenant_id, &id, None).await?.ok_or(sqlx::Error::RowNotFound)
    }

    /// The tenant's templates at their current versions, in creation order.
    pub async fn templates(&self, tenant_id: &TenantId) -> Result<Vec<TemplateRow>, sqlx::Error> {
        sqlx::query_as(&format!("{SELECT} AND v.version = t.version WHERE t.tenant_id = $1 ORDER BY t.id"))
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
    }

    /// A tenant's templates as (id, name), for choosing one: no bodies read.
    pub async fn template_names(&self, tenant_id: &TenantId) -> Result<Vec<(String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT t.id, v.name FROM templates t JOIN template_versions v ON v.template_id = t.id \
             AND v.version = t.version WHERE t.tenant_id = $1 ORDER BY t.id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
    }

    /// A template at `version`, or at its current version.
    pub async fn template(
        &self,
        tenant_id: &TenantId,
        id: &str,
        version: Option<i64>,
    ) -> Result<Option<TemplateRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "{SELECT} AND v.version = COALESCE($3, t.version) WHERE t.tenant_id = $1 AND t.id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
    }

    /// Every version of a template, newest first.
    pub async fn template_versions(&self, tenant_id: &TenantId, id: &str) -> Result<Vec<TemplateRow>, sqlx::Error> {
        sqlx::query_as(&format!("{SELECT} WHERE t.tenant_id = $1 AND t.id = $2 ORDER BY v.version DESC"))
            .bind(tenant_id)
            .bind(id)
            .fetch_all(&self.pool)
            .await
    }

    /// Applies a change as a new version. The version number is taken by
    /// updating the template row first, so concurrent changes queue on that
    /// row and each gets its own number.
    pub async fn update_template(
        &self,
        tenant_id: &TenantId,
        id: &str,
        patch: TemplatePatch,
    ) -> Result<Option<TemplateRow>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE templates SET version = version + 1, updated_at = $3, name = COALESCE($4, name) \
             WHERE tenant_id = $1 AND id = $2 RETURNING version",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .bind(&patch.name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(version) = version else {
            tx.rollback().await?;
            return Ok(None);
        };
        let current: TemplateRow =
            sqlx::query_as(&format!("{SELECT} AND v.version = $3 WHERE t.tenant_id = $1 AND t.id = $2"))
                .bind(tenant_id)
                .bind(id)
                .bind(version - 1)
                .fetch_one(&mut *tx)
                .await?;
        let content = TemplateContent {
            name: patch.name.unwrap_or(current.name),
            subject: patch.subject.unwrap_or(current.subject),
            html: patch.html.unwrap_or(current.html),
            text: patch.text.unwrap_or(current.text_body),
            sample_variables: patch.sample_variables.unwrap_or(current.sample_variables),
        };
        insert_version(&mut tx, id, version, &content, now).await?;
        tx.commit().await?;
        self.template(tenant_id, id, Some(version)).await
    }

    /// Deletes a template and its versions. Campaigns keep the content they copied.
    pub async fn delete_template(&self, tenant_id: &TenantId, id: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM template_versions WHERE template_id = (SELECT id FROM templates WHERE tenant_id = $1 AND id = $2)")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM templates WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
