//! Sending: campaigns to an audience and single transactional emails. Both
//! only queue: the outbox rows are committed here; the worker sends.
//!
//! Every single email — the API's `send/single`, the dashboard's "send one
//! email", an automation's `send_template` — is checked and built by the same
//! three steps: [`verified_domain`], [`sender`], [`compose_single`]. They live
//! in [`crate::outbox::compose`] ("what enters the outbox"), below the service
//! layer, so that the automation worker calls them too; a `ComposeError` becomes
//! this layer's [`Error`] (`From` in `service::error`), as it always was.
//!
//! [`verified_domain`]: crate::outbox::compose::verified_domain
//! [`sender`]: crate::outbox::compose::sender
//! [`compose_single`]: crate::outbox::compose::compose_single

mod campaign;
mod preview;
mod single;
mod test_send;

use serde_json::Value;

pub use campaign::{
    audience_count, prepare_campaign, queue_campaign, queue_campaign_unkeyed, resolve_targeting, resolve_topic,
    CampaignInput, PreparedCampaign,
};
pub use preview::{preview, PreviewInput};
pub use single::{send_single, QueuedSingle, SingleInput};
pub use test_send::{send_test, QueuedTest, TEST_RECIPIENTS_MAX};

use super::{parse_id, required_text, Error, Result};
use crate::domain::{EmailAddress, TenantId};
use crate::outbox::compose::{sender, Content, VerifiedDomain};
use crate::state::AppState;

const SUBJECT_MAX: usize = 998; // RFC 5322 line length limit

pub(super) fn reply_to(raw: Option<&str>) -> Result<Option<String>> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|r| EmailAddress::parse(r).map(|e| e.to_string()).map_err(|e| Error::validation(format!("reply_to: {e}"))))
        .transpose()
}

/// The From header of a send: `given` when it names a sender (an address on
/// the verified domain), else the tenant's default sender (`PATCH
/// /customers/{id}`), else `hello@{domain}`.
pub(super) async fn from_header(
    state: &AppState,
    tenant_id: &TenantId,
    given: Option<&str>,
    domain: &VerifiedDomain,
) -> Result<String> {
    if given.is_some_and(|g| !g.trim().is_empty()) {
        return Ok(sender(given, domain)?);
    }
    let tenant = state.store.tenant(tenant_id).await?.ok_or(Error::NotFound("customer"))?;
    Ok(crate::domain::sender::default_from(tenant.from_name.as_deref(), tenant.from_address.as_deref(), &domain.name))
}

/// Inline `subject`/`html`/`text`, or `template_id` (+ `variables`): exactly one of the two.
pub(super) async fn content(
    state: &AppState,
    tenant_id: &TenantId,
    inline: (Option<&str>, Option<&str>, Option<&str>),
    template_id: Option<&str>,
    variables: Option<Value>,
) -> Result<Content> {
    let (subject, html, text) = inline;
    let max_bytes = state.config.max_html_bytes;
    if let Some(raw) = template_id.map(str::trim).filter(|s| !s.is_empty()) {
        if subject.is_some() || html.is_some() || text.is_some() {
            return Err(Error::validation("give either `template_id` or inline `subject`/`html`/`text`, not both"));
        }
        let variables = crate::service::templates::variables(variables)?;
        let id = parse_id(raw, "template")?;
        let t = state.store.template(tenant_id, &id, None).await?.ok_or(Error::NotFound("template"))?;
        return Ok(Content::template(t, variables.to_string()));
    }
    if variables.is_some() {
        return Err(Error::validation("`variables` needs a `template_id`"));
    }
    let (Some(subject), Some(html)) = (subject, html) else {
        return Err(Error::validation("`subject` and `html` are required (or give a `template_id`)"));
    };
    for (field, len) in [("html", html.len()), ("text", text.map_or(0, str::len))] {
        if len > max_bytes {
            return Err(Error::TooLarge(format!(
                "`{field}` is {len} bytes; at most {max_bytes} are accepted (MAILROOM_MAX_HTML_BYTES)"
            )));
        }
    }
    let subject = required_text(subject, "subject", SUBJECT_MAX)?;
    if html.trim().is_empty() {
        return Err(Error::validation("`html` must not be empty"));
    }
    // A text body is many lines: only trimmed, and empty means none.
    let text = text.map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    Ok(Content::inline(subject, html.to_owned(), text))
}
