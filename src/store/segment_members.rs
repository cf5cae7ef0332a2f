//! A static segment's members a page at a time, for the dashboard's segment
//! page (the API's detail shows the first 1000 inline instead).

use super::contacts::CONTACT_COLUMNS;
use super::{ContactRow, Store};
use crate::domain::TenantId;

impl Store {
    /// The members of one of the tenant's segments after the contact id
    /// `after` ("" from the start), at most `limit` in id order. The tenant is
    /// checked on the contact, so another tenant's segment id finds nobody.
    pub async fn segment_members_after(
        &self,
        tenant_id: &TenantId,
        segment_id: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ContactRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {CONTACT_COLUMNS} FROM segment_members m JOIN contacts c ON c.id = m.contact_id \
             WHERE m.segment_id = $2 AND c.tenant_id = $1 AND c.id > $3 ORDER BY c.id LIMIT $4"
        ))
        .bind(tenant_id)
        .bind(segment_id)
        .bind(after)
        .bind(limit.clamp(0, 10_000))
        .fetch_all(&self.pool)
        .await
    }
}
