//! Sending: campaigns to an audience and single transactional emails. Both
//! only queue: the outbox rows are committed here; the worker sends.
//!
//! Every single email — the API's `send/single`, the dashboard's "send one
//! email", an automation's `send_template` — is checked and built by the same
//! three steps: [`verified_domain`], [`sender`], [`compose_single`].

mod campaign;
mod single;

use serde_json::Value;

pub use campaign::{
    audience_count, prepare_campaign, queue_campaign, queue_campaign_unkeyed, resolve_targeting, CampaignInput,
    PreparedCampaign,
};
pub use single::{compose_single, send_single, QueuedSingle, SingleInput, SingleMail};

use super::{parse_id, required_text, Error, Result};
use crate::domain::{EmailAddress, TenantId};
use crate::state::AppState;
use crate::store::{Store, TemplateRow};

const SUBJECT_MAX: usize = 998; // RFC 5322 line length limit

/// A tenant's sending domain, known to be verified: the only domain its mail
/// may come from. `warnings` are worth fixing but do not stop a send (no DMARC record).
pub struct VerifiedDomain {
    pub name: String,
    pub warnings: Vec<String>,
}

/// The tenant's sending domain, if it is verified (a gone tenant is 404).
pub async fn verified_domain(store: &Store, tenant_id: &TenantId) -> Result<VerifiedDomain> {
    let tenant = store.tenant(tenant_id).await?.ok_or(Error::NotFound("customer"))?;
    let verified = tenant.domain_verified();
    let warnings = crate::sending_domains::sending_warnings(&tenant);
    match (tenant.domain_name, verified) {
        (Some(name), true) => Ok(VerifiedDomain { name, warnings }),
        (None, _) => Err(Error::precondition(
            "domain_not_verified",
            "no domain registered: add and verify a domain before sending",
        )),
        (Some(d), false) => Err(Error::precondition("domain_not_verified", format!("domain {d} is not verified yet"))),
    }
}

/// The sender: the given address if it is on the verified domain, else `hello@{domain}`.
pub fn sender(given: Option<&str>, domain: &VerifiedDomain) -> Result<String> {
    let domain = domain.name.as_str();
    match given.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(format!("hello@{domain}")),
        Some(raw) => {
            let email = EmailAddress::parse(raw).map_err(|e| Error::Invalid { code: "invalid_from", message: e })?;
            if email.domain() != domain {
                return Err(Error::Invalid {
                    code: "invalid_from",
                    message: format!("`from` must be an address on {domain}"),
                });
            }
            Ok(email.to_string())
        }
    }
}

pub(super) fn reply_to(raw: Option<&str>) -> Result<Option<String>> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|r| EmailAddress::parse(r).map(|e| e.to_string()).map_err(|e| Error::validation(format!("reply_to: {e}"))))
        .transpose()
}

/// What a send sends: inline content, or a template at its current version.
pub struct Content {
    subject: String,
    html: String,
    text: Option<String>,
    /// The template and version, when the content is one.
    template: Option<(String, i64)>,
    /// The send's `variables` as JSON, for templates.
    variables: Option<String>,
}

impl Content {
    /// A stored template at the version read, with the send's `variables` (JSON).
    pub fn template(t: TemplateRow, variables: String) -> Self {
        Self {
            subject: t.subject,
            html: t.html,
            text: t.text_body,
            template: Some((t.id, t.version)),
            variables: Some(variables),
        }
    }
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
    Ok(Content { subject, html: html.to_owned(), text, template: None, variables: None })
}
