//! What enters the outbox: the checks and the row of one email. Every single
//! email — the API's `send/single`, the dashboard's "send one email", an
//! automation's `send_template` — is checked and built by the same three
//! steps: [`verified_domain`], [`sender`], [`compose_single`] (campaigns share
//! the first two). They sit below the service layer so that the automation
//! worker uses them too; the service maps a [`ComposeError`] to its own error.

use crate::domain::{new_id, EmailAddress, TenantId};
use crate::provider::EmailTag;
use crate::store::{NewSingle, Store, TemplateRow};

/// Why an email cannot be composed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The tenant no longer exists.
    #[error("customer not found")]
    CustomerGone,
    #[error("no domain registered: add and verify a domain before sending")]
    DomainNotRegistered,
    /// The tenant's domain (named) is registered but not verified.
    #[error("domain {0} is not verified yet")]
    DomainNotVerified(String),
    /// The `from` address is unreadable or not on the verified domain (the message says which).
    #[error("{0}")]
    InvalidFrom(String),
    /// The recipient bounced or complained earlier.
    #[error("this address bounced or complained earlier and is suppressed")]
    Suppressed,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A tenant's sending domain, known to be verified: the only domain its mail
/// may come from. `warnings` are worth fixing but do not stop a send (no DMARC record).
pub struct VerifiedDomain {
    pub name: String,
    pub warnings: Vec<String>,
}

/// The tenant's sending domain, if it is verified.
pub async fn verified_domain(store: &Store, tenant_id: &TenantId) -> Result<VerifiedDomain, ComposeError> {
    let tenant = store.tenant(tenant_id).await?.ok_or(ComposeError::CustomerGone)?;
    let verified = tenant.domain_verified();
    let warnings = crate::sending_domains::sending_warnings(&tenant);
    match (tenant.domain_name, verified) {
        (Some(name), true) => Ok(VerifiedDomain { name, warnings }),
        (None, _) => Err(ComposeError::DomainNotRegistered),
        (Some(d), false) => Err(ComposeError::DomainNotVerified(d)),
    }
}

/// The sender: the given address if it is on the verified domain, else `hello@{domain}`.
pub fn sender(given: Option<&str>, domain: &VerifiedDomain) -> Result<String, ComposeError> {
    let domain = domain.name.as_str();
    match given.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(format!("hello@{domain}")),
        Some(raw) => {
            let email = EmailAddress::parse(raw).map_err(ComposeError::InvalidFrom)?;
            if email.domain() != domain {
                return Err(ComposeError::InvalidFrom(format!("`from` must be an address on {domain}")));
            }
            Ok(email.to_string())
        }
    }
}

/// What a send sends: inline content, or a template at its current version.
/// Made by [`Content::template`] or [`Content::inline`]; a campaign reads its parts.
pub struct Content {
    pub(crate) subject: String,
    pub(crate) html: String,
    pub(crate) text: Option<String>,
    /// The template and version, when the content is one.
    pub(crate) template: Option<(String, i64)>,
    /// The send's `variables` as JSON, for templates.
    pub(crate) variables: Option<String>,
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

    /// Inline content, already checked (the service's `content` does).
    pub fn inline(subject: String, html: String, text: Option<String>) -> Self {
        Self { subject, html, text, template: None, variables: None }
    }
}

/// One transactional email, its checks done but for the recipient's suppression.
pub struct SingleMail {
    /// The address as it is written on the envelope.
    pub to_email: String,
    /// The address as suppressions and contacts are keyed.
    pub to_normalized: String,
    pub first_name: Option<String>,
    pub contact_id: Option<String>,
    /// From [`sender`].
    pub from: String,
    pub content: Content,
    /// One-click unsubscribe headers and footer, as campaign mail has.
    pub list_unsubscribe: bool,
    pub reply_to: Option<String>,
    pub tags: Vec<EmailTag>,
    /// The rule that sends it, for an automation's email.
    pub automation_id: Option<String>,
    /// The topic it is about, for an automation's email that targets one.
    pub topic_id: Option<String>,
}

/// The one way a single email is made: refused when the recipient is
/// suppressed ([`ComposeError::Suppressed`]), else the outbox row to queue.
pub async fn compose_single(store: &Store, tenant_id: &TenantId, mail: SingleMail) -> Result<NewSingle, ComposeError> {
    if store.is_suppressed(tenant_id, &mail.to_normalized).await? {
        return Err(ComposeError::Suppressed);
    }
    Ok(single_row(mail))
}

/// A double opt-in's confirmation email, made as every single email is but
/// for one rule: an address suppressed because it unsubscribed or was erased
/// still gets it (confirming is how such a person comes back, issue 23); a
/// bounce's or a complaint's suppression stops it like any other mail.
pub async fn compose_confirmation(
    store: &Store,
    tenant_id: &TenantId,
    mail: SingleMail,
) -> Result<NewSingle, ComposeError> {
    if store.blocks_confirmation(tenant_id, &mail.to_normalized).await? {
        return Err(ComposeError::Suppressed);
    }
    Ok(single_row(mail))
}

fn single_row(mail: SingleMail) -> NewSingle {
    NewSingle {
        id: new_id(),
        to_email: mail.to_email,
        first_name: mail.first_name,
        contact_id: mail.contact_id,
        from_address: mail.from,
        subject: mail.content.subject,
        html: mail.content.html,
        text: mail.content.text,
        template: mail.content.template,
        variables: mail.content.variables,
        list_unsubscribe: mail.list_unsubscribe,
        reply_to: mail.reply_to,
        tags_json: (!mail.tags.is_empty()).then(|| serde_json::to_string(&mail.tags).unwrap_or_default()),
        automation_id: mail.automation_id,
        topic_id: mail.topic_id,
    }
}
