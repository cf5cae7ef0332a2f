//! Sending: campaigns to an audience and single transactional emails. Both
//! only queue: the outbox rows are committed here; the worker sends.
//!
//! Every single email — the API's `send/single`, the dashboard's "send one
//! email", an automation's `send_template` — is checked and built by the same
//! three steps: [`verified_domain`], [`sender`], [`compose_single`].

use serde_json::Value;

use super::{parse_id, required_text, Error, Result};
use crate::domain::{new_id, EmailAddress, Tag, TenantId};
use crate::provider::EmailTag;
use crate::state::AppState;
use crate::store::{
    ContactRow, EnqueueOutcome, KeyRepeat, NewCampaign, NewSingle, RequestKey, Store, Targeting, TemplateRow,
};

const SUBJECT_MAX: usize = 998; // RFC 5322 line length limit

/// Furthest ahead a campaign may be scheduled (a year and a day).
const MAX_SCHEDULE_AHEAD_MS: i64 = 366 * 24 * 3_600_000;

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

/// Who a send reaches: an earlier campaign's unsent part, else a segment, else a
/// filter, else a tag, else every subscribed contact. Unknown campaigns and
/// segments are 404; a filter beside other targeting is refused.
pub async fn resolve_targeting(
    state: &AppState,
    tenant_id: &TenantId,
    resume: Option<&str>,
    segment_id: Option<&str>,
    tag: Option<&str>,
    filter: Option<&Value>,
) -> Result<Targeting> {
    let present = |v: Option<&str>| v.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(filter) = filter.filter(|f| !f.is_null()) {
        if present(resume).is_some() || present(segment_id).is_some() || present(tag).is_some() {
            return Err(Error::validation(
                "`filter` cannot be combined with `tag`, `segment_id` or `resume_from_campaign_id`",
            ));
        }
        return Ok(Targeting::Filter { filter: super::segments::parse_filter(filter)?, segment_id: None });
    }
    if let Some(old) = present(resume) {
        let old = parse_id(&old, "campaign")?;
        state.store.campaign(tenant_id, &old).await?.ok_or(Error::NotFound("campaign"))?;
        return Ok(Targeting::Resume(old));
    }
    if let Some(sid) = present(segment_id) {
        let sid = parse_id(&sid, "segment")?;
        let seg = state.store.segment(tenant_id, &sid).await?.ok_or(Error::NotFound("segment"))?;
        if let Some(filter) = super::segments::stored_filter(&seg)? {
            return Ok(Targeting::Filter { filter, segment_id: Some(sid) });
        }
        return Ok(Targeting::Segment(sid));
    }
    match present(tag) {
        Some(tag) => Ok(Targeting::Tag(Tag::parse(&tag).map_err(Error::validation)?.into_string())),
        None => Ok(Targeting::All),
    }
}

/// Subscribed, unsuppressed contacts a send with this targeting would reach now.
pub async fn audience_count(state: &AppState, tenant_id: &TenantId, targeting: &Targeting) -> Result<i64> {
    Ok(state.store.audience_count(tenant_id, targeting).await?)
}

/// Parses an RFC 3339 time into epoch milliseconds.
fn parse_time(raw: &str) -> Result<i64> {
    let t = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| Error::validation("`scheduled_at` must be an RFC 3339 time, e.g. 2026-12-01T09:00:00Z"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| Error::validation("`scheduled_at` is out of range"))
}

fn reply_to(raw: Option<&str>) -> Result<Option<String>> {
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
async fn content(
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
        let variables = super::templates::variables(variables)?;
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

/// A campaign send as asked for (the API's body, the dashboard's form).
#[derive(Default)]
pub struct CampaignInput {
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub template_id: Option<String>,
    pub variables: Option<Value>,
    pub tag: Option<String>,
    pub segment_id: Option<String>,
    pub filter: Option<Value>,
    pub reply_to: Option<String>,
    pub from: Option<String>,
    pub scheduled_at: Option<String>,
    pub resume_from_campaign_id: Option<String>,
}

/// A campaign checked and ready to queue.
pub struct PreparedCampaign {
    pub campaign: NewCampaign,
    pub from: String,
    pub warnings: Vec<String>,
    /// `queued` or `scheduled`.
    pub status: &'static str,
}

/// Checks a send request: verified domain, sender, content, schedule, audience.
pub async fn prepare_campaign(
    state: &AppState,
    tenant_id: &TenantId,
    input: CampaignInput,
) -> Result<PreparedCampaign> {
    let domain = verified_domain(&state.store, tenant_id).await?;
    let from = sender(input.from.as_deref(), &domain)?;
    let content = content(
        state,
        tenant_id,
        (input.subject.as_deref(), input.html.as_deref(), input.text.as_deref()),
        input.template_id.as_deref(),
        input.variables,
    )
    .await?;
    let now = crate::domain::now_ms();
    let scheduled_at = input.scheduled_at.as_deref().map(parse_time).transpose()?;
    if scheduled_at.is_some_and(|t| t > now.saturating_add(MAX_SCHEDULE_AHEAD_MS)) {
        return Err(Error::validation("`scheduled_at` is more than a year ahead"));
    }
    let scheduled_at = scheduled_at.filter(|t| *t > now);
    let targeting = resolve_targeting(
        state,
        tenant_id,
        input.resume_from_campaign_id.as_deref(),
        input.segment_id.as_deref(),
        input.tag.as_deref(),
        input.filter.as_ref(),
    )
    .await?;
    let campaign = NewCampaign {
        id: new_id(),
        subject: content.subject,
        html: content.html,
        text: content.text,
        template: content.template,
        variables: content.variables,
        from_address: from.clone(),
        reply_to: reply_to(input.reply_to.as_deref())?,
        targeting,
        scheduled_at,
    };
    let status = if scheduled_at.is_some() { "scheduled" } else { "queued" };
    Ok(PreparedCampaign { campaign, from, warnings: domain.warnings, status })
}

fn no_recipients() -> Error {
    Error::precondition("no_recipients", "no subscribed contacts match the targeting")
}

/// Queues a prepared campaign. With a request key, a repeat of the key is
/// answered from what `respond` (given the recipients queued) said the first time.
pub async fn queue_campaign(
    state: &AppState,
    tenant_id: &TenantId,
    p: &PreparedCampaign,
    key: Option<RequestKey<'_>>,
    respond: impl FnOnce(u64) -> String,
) -> Result<std::result::Result<(u64, String), KeyRepeat>> {
    match state.store.enqueue_campaign(tenant_id, &p.campaign, key, respond).await? {
        EnqueueOutcome::NoRecipients => Err(no_recipients()),
        EnqueueOutcome::Repeat(repeat) => Ok(Err(repeat)),
        EnqueueOutcome::Enqueued { recipients, response } => {
            tracing::info!(tenant = %tenant_id, campaign = %p.campaign.id, recipients, "campaign queued");
            state.wake.notify_waiters();
            Ok(Ok((recipients, response)))
        }
    }
}

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
}

/// The one way a single email is made: refused when the recipient is
/// suppressed (`recipient_suppressed`), else the outbox row to queue.
pub async fn compose_single(store: &Store, tenant_id: &TenantId, mail: SingleMail) -> Result<NewSingle> {
    if store.is_suppressed(tenant_id, &mail.to_normalized).await? {
        return Err(Error::Invalid {
            code: "recipient_suppressed",
            message: "this address bounced or complained earlier and is suppressed".into(),
        });
    }
    Ok(NewSingle {
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
    })
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
    let from = sender(input.from.as_deref(), &domain)?;
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

/// Queues a campaign without a request key (the dashboard, whose form carries
/// a one-time CSRF token instead); returns the recipients queued.
pub async fn queue_campaign_unkeyed(state: &AppState, tenant_id: &TenantId, p: &PreparedCampaign) -> Result<u64> {
    match queue_campaign(state, tenant_id, p, None, |_| String::new()).await? {
        Ok((recipients, _)) => Ok(recipients),
        Err(_) => Err(Error::conflict("repeat", "this campaign was already queued")),
    }
}
