//! Single transactional emails: the API's and the dashboard's, checked and
//! composed by the one way every single email is (`outbox::compose`).

use serde_json::Value;

use super::{content, from_header, reply_to};
use crate::domain::{EmailAddress, TenantId};
use crate::outbox::compose::{compose_single, verified_domain, SingleMail};
use crate::provider::EmailTag;
use crate::service::{Error, Result};
use crate::state::AppState;
use crate::store::{ContactRow, KeyRepeat, RequestKey};

/// Resend tags, as `[{"name", "value"}]` or `{"name": "value"}`.
fn resend_tags(v: Option<Value>) -> Result<Vec<EmailTag>> {
    let pairs: Vec<(String, String)> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(Error::validation("tag values must be strings")),
            })
            .collect::<Result<_>>()?,
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                if let Some(extra) = t.as_object().and_then(|o| o.keys().find(|k| *k != "name" && *k != "value")) {
                    return Err(Error::validation(format!(
                        "tags[{i}]: unknown field `{extra}`, expected `name` and `value`"
                    )));
                }
                match (t.get("name").and_then(Value::as_str), t.get("value").and_then(Value::as_str)) {
                    (Some(n), Some(v)) => Ok((n.to_owned(), v.to_owned())),
                    _ => Err(Error::validation("each tag needs a string `name` and `value`")),
                }
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(Error::validation("`tags` must be an array of {name, value} or an object")),
    };
    let valid = |s: &str| {
        !s.is_empty() && s.len() <= 256 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    for (n, v) in &pairs {
        if !valid(n) || !valid(v) {
            return Err(Error::validation("tag names and values may contain only ASCII letters, digits, `_` and `-`"));
        }
        if matches!(n.as_str(), "tenant" | "message" | "campaign") {
            return Err(Error::validation(format!("the tag name `{n}` is reserved by mailroom")));
        }
    }
    Ok(pairs.into_iter().map(|(n, v)| EmailTag { name: n, value: v }).collect())
}

/// A transactional email as asked for (the API's body, the dashboard's form).
pub struct SingleInput {
    pub to_email: String,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub template_id: Option<String>,
    pub variables: Option<Value>,
    pub unsubscribe: bool,
    pub reply_to: Option<String>,
    pub from: Option<String>,
    /// Resend tags, as `[{"name", "value"}]` or `{"name": "value"}`.
    pub tags: Option<Value>,
}

/// A transactional email queued.
pub struct QueuedSingle {
    /// mailroom's id for the message.
    pub email_id: String,
    pub to: String,
    pub from: String,
    /// What `respond` made of it (kept with the request key).
    pub response: String,
}

/// Checks, then queues one transactional email (sent ahead of campaign mail),
/// or finds the earlier answer of a repeated request key. `respond` is given
/// the queued email (its `response` still empty) and says what to answer.
pub async fn send_single(
    state: &AppState,
    tenant_id: &TenantId,
    input: SingleInput,
    key: Option<RequestKey<'_>>,
    respond: impl FnOnce(&QueuedSingle) -> String,
) -> Result<std::result::Result<QueuedSingle, KeyRepeat>> {
    let domain = verified_domain(&state.store, tenant_id).await?;
    let from = from_header(state, tenant_id, input.from.as_deref(), &domain).await?;
    let to = EmailAddress::parse(&input.to_email).map_err(|e| Error::Invalid { code: "invalid_email", message: e })?;
    let content = content(
        state,
        tenant_id,
        (input.subject.as_deref(), input.html.as_deref(), input.text.as_deref()),
        input.template_id.as_deref(),
        input.variables,
    )
    .await?;
    let tags = resend_tags(input.tags)?;
    let reply_to = reply_to(input.reply_to.as_deref());
    let contact: Option<ContactRow> = state.store.contact_by_email(tenant_id, &to.normalized()).await?;
    let mail = SingleMail {
        to_email: to.to_string(),
        to_normalized: to.normalized(),
        first_name: contact.as_ref().and_then(|c| c.first_name.clone()),
        contact_id: contact.map(|c| c.id),
        from: from.clone(),
        content,
        list_unsubscribe: input.unsubscribe,
        reply_to: None,
        tags,
        automation_id: None,
        topic_id: None,
    };
    let mut single = compose_single(&state.store, tenant_id, mail).await?;
    single.reply_to = reply_to?;
    let mut queued =
        QueuedSingle { email_id: single.id.clone(), to: single.to_email.clone(), from, response: String::new() };
    queued.response = respond(&queued);
    if let Some(repeat) = state.store.enqueue_single(tenant_id, &single, key, &queued.response).await? {
        return Ok(Err(repeat));
    }
    tracing::info!(tenant = %tenant_id, message = %single.id, "transactional email queued");
    state.wake.notify_waiters();
    Ok(Ok(queued))
}
