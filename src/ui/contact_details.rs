//! What a contact's page shows beside its fields: its attributes as
//! key/value rows (read back with the form's typed values, see
//! [`typed_value`]), and its recent messages and delivery events.

use serde_json::{json, Value};

use super::form::{shown_value, typed_value, Fields};
use super::UiResult;
use crate::domain::{rfc3339, TenantId};
use crate::render::{personalise, Context as RenderContext};
use crate::service::contacts::Contact;
use crate::service::events::{self, EventQuery};
use crate::state::AppState;

/// Blank attribute rows under a contact's own (more rows: save, and two more appear).
const BLANK_ATTRIBUTE_ROWS: usize = 2;

/// A contact's attributes as key/value rows (see [`typed_value`]), then blank rows for new ones.
pub fn attribute_rows(attributes: &Value) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = attributes
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), shown_value(v).unwrap_or_else(|| v.to_string()))).collect())
        .unwrap_or_default();
    rows.extend(std::iter::repeat((String::new(), String::new())).take(BLANK_ATTRIBUTE_ROWS));
    rows
}

/// The attributes a contact form posts: each row with a key and a value (an
/// empty key or value removes it); `None` when the form has no attribute rows.
pub fn posted_attributes(f: &Fields) -> Option<Value> {
    let keys = f.all("attr_key");
    if keys.is_empty() {
        return None;
    }
    let values = f.all("attr_value");
    let mut map = serde_json::Map::new();
    for (k, v) in keys.iter().zip(values.iter()) {
        if !k.trim().is_empty() && !v.trim().is_empty() {
            map.insert(k.trim().to_owned(), typed_value(v));
        }
    }
    Some(Value::Object(map))
}

/// Messages and events shown on a contact's page, newest first.
pub const RECENT: i64 = 10;

/// The last messages to the contact (its campaign mail and transactional mail
/// to its address), each with the subject it went out with.
pub async fn recent_messages(state: &AppState, id: &TenantId, c: &Contact) -> UiResult<Vec<Value>> {
    let rows = state.store.messages_to(id, Some(&c.id), &c.email, RECENT).await?;
    let mut subjects: std::collections::BTreeMap<String, String> = Default::default();
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        let subject = match &m.campaign_id {
            Some(cid) => {
                if !subjects.contains_key(cid) {
                    let subject = state.store.campaign(id, cid).await?.map(|k| k.subject).unwrap_or_default();
                    subjects.insert(cid.clone(), subject);
                }
                subjects.get(cid).cloned()
            }
            None => m.subject.clone(),
        };
        // As this contact received it (`Hello {{first_name}}` is "Hello Ada").
        let subject = subject.map(|s| personalise(&s, c.first_name.as_deref(), RenderContext::Text));
        out.push(json!({
            "id": m.id, "subject": subject, "status": m.status, "campaign_id": m.campaign_id,
            "created_at": rfc3339(m.created_at), "updated_at": rfc3339(m.updated_at),
        }));
    }
    Ok(out)
}

/// The last delivery events about the contact's mail (the API's event listing, filtered to it).
pub async fn recent_events(state: &AppState, id: &TenantId, cid: &str) -> UiResult<Value> {
    let query =
        EventQuery { contact_id: Some(cid.to_owned()), limit: Some(RECENT.to_string()), ..EventQuery::default() };
    let (listed, _, _) = events::list(state, id, &query).await?;
    Ok(serde_json::to_value(listed.data).unwrap_or_default())
}
