//! A contact's consent history (issue 23): every change of its consent, as
//! recorded when it happened, newest first.

use serde::Serialize;
use utoipa::ToSchema;

use super::{parse_id, Error, Result};
use crate::domain::{rfc3339, TenantId};
use crate::state::AppState;
use crate::store::ConsentRecordRow;

/// A topic a record is about.
#[derive(Serialize, ToSchema)]
pub struct ConsentTopic {
    pub id: String,
    /// `null` once the topic is deleted.
    pub name: Option<String>,
}

/// The person's client, where there was one (a public page's POST), while it is kept.
#[derive(Serialize, ToSchema)]
pub struct ConsentClientOut {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One change of a contact's consent.
#[derive(Serialize, ToSchema)]
pub struct ConsentRecord {
    pub id: String,
    /// When the change happened (for an import with `consented_at`, the time given).
    pub at: String,
    /// `created`, `confirmed`, `topic_subscribed`, `topic_unsubscribed`,
    /// `unsubscribed`, `resubscribed`, `suppressed`, `suppressed_bounce`,
    /// `suppressed_complaint` or `imported`.
    #[schema(example = "topic_subscribed")]
    pub change: String,
    pub topic: Option<ConsentTopic>,
    /// `form`, `api`, `import`, `preference_centre`, `one_click`,
    /// `complaint`, `bounce`, `dashboard`, `automation` or
    /// `before_consent_records` (contacts that existed before records were kept).
    #[schema(example = "api")]
    pub source: String,
    /// Free text about the source (an import's `consent_source` column).
    pub source_note: Option<String>,
    pub form_id: Option<String>,
    pub campaign_id: Option<String>,
    /// The consent statement the person was shown, and its version.
    pub consent_text: Option<String>,
    pub consent_text_version: Option<String>,
    /// The person's client, when there was one and its details are kept.
    pub client: Option<ConsentClientOut>,
}

impl From<ConsentRecordRow> for ConsentRecord {
    fn from(r: ConsentRecordRow) -> Self {
        let client = (r.ip.is_some() || r.user_agent.is_some())
            .then_some(ConsentClientOut { ip: r.ip, user_agent: r.user_agent });
        Self {
            at: rfc3339(r.at),
            topic: r.topic_id.map(|id| ConsentTopic { id, name: r.topic_name }),
            id: r.id,
            change: r.change,
            source: r.source,
            source_note: r.source_note,
            form_id: r.form_id,
            campaign_id: r.campaign_id,
            consent_text: r.consent_text,
            consent_text_version: r.consent_text_version,
            client,
        }
    }
}

/// A page of the contact's consent history, newest first, after the record
/// `after` (a page's last); one more than `limit` when a next page exists.
/// 404 when the tenant has no such contact; 422 for a cursor that is not
/// one of the contact's records.
pub async fn history(
    state: &AppState,
    tenant_id: &TenantId,
    raw_contact: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ConsentRecord>> {
    let contact = parse_id(raw_contact, "contact")?;
    state.store.contact(tenant_id, &contact).await?.ok_or(Error::NotFound("contact"))?;
    let cursor = match after.filter(|a| !a.is_empty()) {
        None => None,
        Some(raw) => {
            let not_one = || Error::validation("`after` must be the id of one of the contact's consent records");
            let id = crate::domain::parse_id(raw).ok_or_else(not_one)?;
            let at = state.store.consent_record_at(tenant_id, &contact, &id).await?.ok_or_else(not_one)?;
            Some((at, id))
        }
    };
    let rows = state
        .store
        .consent_records(tenant_id, &contact, cursor.as_ref().map(|(at, id)| (*at, id.as_str())), limit)
        .await?;
    Ok(rows.into_iter().map(ConsentRecord::from).collect())
}
