//! Sending: campaigns to an audience and single transactional emails. Both only
//! queue: the request commits the outbox rows and answers 202; the worker sends.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::require_json_content_type;
use super::extract::required_json;
use super::idempotency::{repeat_response, KeyedRequest};
use super::required_text;
use crate::auth::TenantAccess;
use crate::domain::TenantId;
use crate::domain::{new_id, parse_id, EmailAddress, Tag};
use crate::error::{ApiError, ApiResult};
use crate::provider::EmailTag;
use crate::state::AppState;
use crate::store::{EnqueueOutcome, KeyRepeat, NewCampaign, NewSingle, Targeting};

const SUBJECT_MAX: usize = 998; // RFC 5322 line length limit

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SendIn {
    /// Inline content: `{{first_name}}` is replaced per recipient. Required
    /// unless `template_id` is given.
    pub(crate) subject: Option<String>,
    /// Inline content: `{{first_name}}` is replaced (HTML-escaped) and
    /// `{{unsubscribe_url}}` filled in per recipient; without the latter an
    /// unsubscribe footer is added. Required unless `template_id` is given.
    pub(crate) html: Option<String>,
    pub(crate) text: Option<String>,
    /// Send this template (its current version) instead of inline content.
    pub(crate) template_id: Option<String>,
    /// Values for the template: `{{ order_id }}` or `{{ variables.order_id }}`.
    #[schema(value_type = Option<Object>)]
    pub(crate) variables: Option<Value>,
    /// Only contacts with this tag.
    pub(crate) tag: Option<String>,
    /// Only contacts in this segment (static, or dynamic: its filter is
    /// evaluated now); wins over `tag`.
    pub(crate) segment_id: Option<String>,
    /// Only contacts matching this filter (the grammar of a dynamic segment's
    /// `filter`); not together with `tag`, `segment_id` or `resume_from_campaign_id`.
    #[schema(value_type = Option<Object>)]
    pub(crate) filter: Option<Value>,
    pub(crate) reply_to: Option<String>,
    /// An address on the customer's verified domain; default `hello@{domain}`.
    pub(crate) from: Option<String>,
    /// RFC 3339 time, at most a year ahead; the campaign stays `scheduled`
    /// until then. A time already past sends at once.
    pub(crate) scheduled_at: Option<String>,
    /// Send to the part of that earlier campaign that was never sent (its queued,
    /// paused, cancelled and dead-lettered recipients); its unsent rows are cancelled.
    pub(crate) resume_from_campaign_id: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SendOut {
    success: bool,
    campaign_id: String,
    /// Recipients queued.
    sent_to: u64,
    from: String,
    /// `queued` (the worker sends from here on) or `scheduled`.
    status: String,
    /// Sent all the same, but worth fixing: e.g. the domain publishes no DMARC
    /// record (from the last `GET .../domains/status`; absent when all is well).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SingleIn {
    pub(crate) to_email: String,
    /// Required unless `template_id` is given.
    pub(crate) subject: Option<String>,
    /// Required unless `template_id` is given.
    pub(crate) html: Option<String>,
    pub(crate) text: Option<String>,
    /// Send this template (its current version) instead of inline content.
    pub(crate) template_id: Option<String>,
    /// Values for the template.
    #[schema(value_type = Option<Object>)]
    pub(crate) variables: Option<Value>,
    /// Add one-click unsubscribe headers (and a footer, as campaign mail has).
    #[serde(default)]
    pub(crate) unsubscribe: bool,
    pub(crate) reply_to: Option<String>,
    pub(crate) from: Option<String>,
    /// Resend tags, as `[{"name", "value"}]` or `{"name": "value"}`.
    #[schema(value_type = Option<Object>)]
    pub(crate) tags: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct SingleOut {
    success: bool,
    /// mailroom's id for this message: `GET /customers/{id}/messages/{email_id}`.
    email_id: String,
    to: String,
    from: String,
    status: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_campaign))
        .routes(routes!(send_single))
        .routes(routes!(audience_count, audience_count_of))
}

/// The customer's sending domain, if it is verified, with the warnings a send
/// from it carries (no DMARC record).
async fn verified_domain(state: &AppState, tenant_id: &TenantId) -> ApiResult<(String, Vec<String>)> {
    let tenant = state.store.tenant(tenant_id).await?.ok_or(ApiError::NotFound("customer"))?;
    let verified = tenant.domain_verified();
    let warnings = crate::sending_domains::sending_warnings(&tenant);
    match (tenant.domain_name, verified) {
        (Some(domain), true) => Ok((domain, warnings)),
        (None, _) => Err(ApiError::precondition(
            "domain_not_verified",
            "no domain registered: add and verify a domain before sending",
        )),
        (Some(d), false) => {
            Err(ApiError::precondition("domain_not_verified", format!("domain {d} is not verified yet")))
        }
    }
}

/// The sender: the given address if it is on the verified domain, else `hello@{domain}`.
fn from_address(given: Option<&str>, domain: &str) -> ApiResult<String> {
    match given.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(format!("hello@{domain}")),
        Some(raw) => {
            let email = EmailAddress::parse(raw).map_err(|e| ApiError::Invalid { code: "invalid_from", message: e })?;
            if email.domain() != domain {
                return Err(ApiError::Invalid {
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
pub(crate) async fn resolve_targeting(
    state: &AppState,
    tenant_id: &TenantId,
    resume: Option<&str>,
    segment_id: Option<&str>,
    tag: Option<&str>,
    filter: Option<&Value>,
) -> ApiResult<Targeting> {
    let present = |v: Option<&str>| v.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(filter) = filter.filter(|f| !f.is_null()) {
        if present(resume).is_some() || present(segment_id).is_some() || present(tag).is_some() {
            return Err(ApiError::validation(
                "`filter` cannot be combined with `tag`, `segment_id` or `resume_from_campaign_id`",
            ));
        }
        return Ok(Targeting::Filter { filter: super::segments::parse_filter(filter)?, segment_id: None });
    }
    if let Some(old) = present(resume) {
        let old = parse_id(&old).ok_or(ApiError::NotFound("campaign"))?;
        state.store.campaign(tenant_id, &old).await?.ok_or(ApiError::NotFound("campaign"))?;
        return Ok(Targeting::Resume(old));
    }
    if let Some(sid) = present(segment_id) {
        let sid = parse_id(&sid).ok_or(ApiError::NotFound("segment"))?;
        let seg = state.store.segment(tenant_id, &sid).await?.ok_or(ApiError::NotFound("segment"))?;
        if let Some(filter) = super::segments::stored_filter(&seg)? {
            return Ok(Targeting::Filter { filter, segment_id: Some(sid) });
        }
        return Ok(Targeting::Segment(sid));
    }
    match present(tag) {
        Some(tag) => Ok(Targeting::Tag(Tag::parse(&tag).map_err(ApiError::validation)?.into_string())),
        None => Ok(Targeting::All),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AudienceQuery {
    tag: Option<String>,
    segment_id: Option<String>,
    resume_from_campaign_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Audience {
    /// Subscribed, unsuppressed contacts a send with this targeting would reach now.
    count: i64,
}

/// Count the audience a send would reach, without sending.
#[utoipa::path(get, path = "/customers/{id}/audience", tag = "send", params(("id" = String, Path), AudienceQuery),
    responses((status = 200, body = Audience), (status = 404, body = crate::error::ErrorBody)))]
async fn audience_count(
    t: TenantAccess,
    State(state): State<AppState>,
    q: Result<Query<AudienceQuery>, QueryRejection>,
) -> ApiResult<Json<Audience>> {
    let Query(q) = q.map_err(|e| ApiError::validation(e.body_text()))?;
    let targeting = resolve_targeting(
        &state,
        &t.tenant_id,
        q.resume_from_campaign_id.as_deref(),
        q.segment_id.as_deref(),
        q.tag.as_deref(),
        None,
    )
    .await?;
    Ok(Json(Audience { count: state.store.audience_count(&t.tenant_id, &targeting).await? }))
}

/// One way to choose an audience (at most one field; none means everyone).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceIn {
    /// A dynamic segment's filter grammar (see `POST /customers/{id}/segments`).
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    tag: Option<String>,
    segment_id: Option<String>,
}

/// Count the audience of a filter, tag or segment, without sending.
#[utoipa::path(post, path = "/customers/{id}/audience", tag = "send", params(("id" = String, Path)), request_body = AudienceIn,
    responses((status = 200, body = Audience), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "invalid filter (with its path) or more than one targeting")))]
async fn audience_count_of(
    t: TenantAccess,
    State(state): State<AppState>,
    super::ApiJson(body): super::ApiJson<AudienceIn>,
) -> ApiResult<Json<Audience>> {
    let given = [body.filter.as_ref().is_some_and(|f| !f.is_null()), body.tag.is_some(), body.segment_id.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(ApiError::validation("give one of `filter`, `tag` or `segment_id`"));
    }
    let targeting = resolve_targeting(
        &state,
        &t.tenant_id,
        None,
        body.segment_id.as_deref(),
        body.tag.as_deref(),
        body.filter.as_ref(),
    )
    .await?;
    Ok(Json(Audience { count: state.store.audience_count(&t.tenant_id, &targeting).await? }))
}

/// Furthest ahead a campaign may be scheduled (a year and a day).
const MAX_SCHEDULE_AHEAD_MS: i64 = 366 * 24 * 3_600_000;

/// Parses an RFC 3339 time into epoch milliseconds.
fn parse_time(raw: &str) -> ApiResult<i64> {
    crate::domain::parse_rfc3339(raw).map_err(|e| match e {
        crate::domain::TimeError::NotRfc3339 => {
            ApiError::validation("`scheduled_at` must be an RFC 3339 time, e.g. 2026-12-01T09:00:00Z")
        }
        crate::domain::TimeError::OutOfRange => ApiError::validation("`scheduled_at` is out of range"),
    })
}

fn reply_to(raw: Option<&str>) -> ApiResult<Option<String>> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|r| {
            EmailAddress::parse(r).map(|e| e.to_string()).map_err(|e| ApiError::validation(format!("reply_to: {e}")))
        })
        .transpose()
}

/// What a send sends: inline content, or a template at its current version.
struct Content {
    subject: String,
    html: String,
    text: Option<String>,
    /// The template and version, when the content is one.
    template: Option<(String, i64)>,
    /// The send's `variables` as JSON, for templates.
    variables: Option<String>,
}

/// Inline `subject`/`html`/`text`, or `template_id` (+ `variables`): exactly one of the two.
async fn content(
    state: &AppState,
    tenant_id: &TenantId,
    inline: (Option<&str>, Option<&str>, Option<&str>),
    template_id: Option<&str>,
    variables: Option<Value>,
) -> ApiResult<Content> {
    let (subject, html, text) = inline;
    let max_bytes = state.config.max_html_bytes;
    if let Some(raw) = template_id.map(str::trim).filter(|s| !s.is_empty()) {
        if subject.is_some() || html.is_some() || text.is_some() {
            return Err(ApiError::validation("give either `template_id` or inline `subject`/`html`/`text`, not both"));
        }
        let variables = super::templates::variables(variables)?;
        let id = parse_id(raw).ok_or(ApiError::NotFound("template"))?;
        let t = state.store.template(tenant_id, &id, None).await?.ok_or(ApiError::NotFound("template"))?;
        return Ok(Content {
            subject: t.subject,
            html: t.html,
            text: t.text_body,
            template: Some((t.id, t.version)),
            variables: Some(variables.to_string()),
        });
    }
    if variables.is_some() {
        return Err(ApiError::validation("`variables` needs a `template_id`"));
    }
    let (Some(subject), Some(html)) = (subject, html) else {
        return Err(ApiError::validation("`subject` and `html` are required (or give a `template_id`)"));
    };
    for (field, len) in [("html", html.len()), ("text", text.map_or(0, str::len))] {
        if len > max_bytes {
            return Err(ApiError::TooLarge(format!(
                "`{field}` is {len} bytes; at most {max_bytes} are accepted (MAILROOM_MAX_HTML_BYTES)"
            )));
        }
    }
    let subject = required_text(subject, "subject", SUBJECT_MAX)?;
    if html.trim().is_empty() {
        return Err(ApiError::validation("`html` must not be empty"));
    }
    // A text body is many lines: only trimmed, and empty means none.
    let text = text.map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    Ok(Content { subject, html: html.to_owned(), text, template: None, variables: None })
}

/// Queue a campaign to all subscribed contacts, a tag, or a segment.
#[utoipa::path(post, path = "/customers/{id}/send", tag = "send", params(("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body, same answer, sent once")),
    request_body = SendIn,
    responses((status = 202, body = SendOut), (status = 400, body = crate::error::ErrorBody, description = "domain not verified, or nobody matches"),
        (status = 404, body = crate::error::ErrorBody, description = "unknown segment"), (status = 409, body = crate::error::ErrorBody)))]
async fn send_campaign(
    t: TenantAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    require_json_content_type(&headers)?;
    let input: SendIn = required_json(&body)?;
    let PreparedCampaign { campaign, from, warnings, status } = prepare_campaign(&state, &t.tenant_id, input).await?;
    let key = KeyedRequest::from_headers(&headers, "send", &body)?;
    let campaign_id = campaign.id.clone();
    let respond = |sent_to| {
        serde_json::to_string(&SendOut { success: true, campaign_id, sent_to, from, status: status.into(), warnings })
            .unwrap_or_default()
    };
    match state.store.enqueue_campaign(&t.tenant_id, &campaign, key.as_ref().map(KeyedRequest::as_key), respond).await?
    {
        EnqueueOutcome::NoRecipients => Err(no_recipients()),
        EnqueueOutcome::Repeat(repeat) => repeat_response(repeat),
        EnqueueOutcome::Enqueued { recipients, response } => {
            tracing::info!(tenant = %t.tenant_id, campaign = %campaign.id, recipients, "campaign queued");
            state.wake.notify_waiters();
            Ok((StatusCode::ACCEPTED, [(axum::http::header::CONTENT_TYPE, "application/json")], response)
                .into_response())
        }
    }
}

fn no_recipients() -> ApiError {
    ApiError::precondition("no_recipients", "no subscribed contacts match the targeting")
}

/// A campaign checked and ready to queue.
pub(crate) struct PreparedCampaign {
    pub(crate) campaign: NewCampaign,
    from: String,
    warnings: Vec<String>,
    /// `queued` or `scheduled`.
    pub(crate) status: &'static str,
}

/// Checks a send request: verified domain, sender, content, schedule, audience.
pub(crate) async fn prepare_campaign(
    state: &AppState,
    tenant_id: &TenantId,
    input: SendIn,
) -> ApiResult<PreparedCampaign> {
    let (domain, warnings) = verified_domain(state, tenant_id).await?;
    let from = from_address(input.from.as_deref(), &domain)?;
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
        return Err(ApiError::validation("`scheduled_at` is more than a year ahead"));
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
    Ok(PreparedCampaign { campaign, from, warnings, status })
}

/// Queues a campaign without an idempotency key (the dashboard, whose form
/// carries a one-time CSRF token instead); returns the recipients queued.
pub(crate) async fn queue_campaign(state: &AppState, tenant_id: &TenantId, p: &PreparedCampaign) -> ApiResult<u64> {
    match state.store.enqueue_campaign(tenant_id, &p.campaign, None, |_| String::new()).await? {
        EnqueueOutcome::Enqueued { recipients, .. } => {
            tracing::info!(tenant = %tenant_id, campaign = %p.campaign.id, recipients, "campaign queued");
            state.wake.notify_waiters();
            Ok(recipients)
        }
        EnqueueOutcome::NoRecipients => Err(no_recipients()),
        EnqueueOutcome::Repeat(_) => Err(ApiError::conflict("repeat", "this campaign was already queued")),
    }
}

fn resend_tags(v: Option<Value>) -> ApiResult<Vec<EmailTag>> {
    let pairs: Vec<(String, String)> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(ApiError::validation("tag values must be strings")),
            })
            .collect::<ApiResult<_>>()?,
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                if let Some(extra) = t.as_object().and_then(|o| o.keys().find(|k| *k != "name" && *k != "value")) {
                    return Err(ApiError::validation(format!(
                        "tags[{i}]: unknown field `{extra}`, expected `name` and `value`"
                    )));
                }
                match (t.get("name").and_then(Value::as_str), t.get("value").and_then(Value::as_str)) {
                    (Some(n), Some(v)) => Ok((n.to_owned(), v.to_owned())),
                    _ => Err(ApiError::validation("each tag needs a string `name` and `value`")),
                }
            })
            .collect::<ApiResult<_>>()?,
        Some(_) => return Err(ApiError::validation("`tags` must be an array of {name, value} or an object")),
    };
    let valid = |s: &str| {
        !s.is_empty() && s.len() <= 256 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    for (n, v) in &pairs {
        if !valid(n) || !valid(v) {
            return Err(ApiError::validation(
                "tag names and values may contain only ASCII letters, digits, `_` and `-`",
            ));
        }
        if matches!(n.as_str(), "tenant" | "message" | "campaign") {
            return Err(ApiError::validation(format!("the tag name `{n}` is reserved by mailroom")));
        }
    }
    Ok(pairs.into_iter().map(|(n, v)| EmailTag { name: n, value: v }).collect())
}

/// Queue one transactional email; it is sent ahead of campaign mail.
#[utoipa::path(post, path = "/customers/{id}/send/single", tag = "send", params(("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body, same answer, sent once")),
    request_body = SingleIn,
    responses((status = 202, body = SingleOut), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
async fn send_single(
    t: TenantAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    require_json_content_type(&headers)?;
    let input: SingleIn = required_json(&body)?;
    let key = KeyedRequest::from_headers(&headers, "send/single", &body)?;
    match queue_single(&state, &t.tenant_id, input, key).await? {
        Ok(queued) => {
            Ok((StatusCode::ACCEPTED, [(axum::http::header::CONTENT_TYPE, "application/json")], queued.response)
                .into_response())
        }
        Err(repeat) => repeat_response(repeat),
    }
}

/// A transactional email queued: its id, and the API's answer (JSON).
pub(crate) struct QueuedSingle {
    pub email_id: String,
    pub response: String,
}

/// What `POST /customers/{id}/send/single` does once its body is read (the
/// dashboard's "send one email" too): checks, then queues the email, or
/// finds the earlier answer of a repeated `Idempotency-Key`.
pub(crate) async fn queue_single(
    state: &AppState,
    tenant_id: &TenantId,
    input: SingleIn,
    key: Option<KeyedRequest>,
) -> ApiResult<Result<QueuedSingle, KeyRepeat>> {
    let (domain, _) = verified_domain(state, tenant_id).await?;
    let from = from_address(input.from.as_deref(), &domain)?;
    let to =
        EmailAddress::parse(&input.to_email).map_err(|e| ApiError::Invalid { code: "invalid_email", message: e })?;
    let content = content(
        state,
        tenant_id,
        (input.subject.as_deref(), input.html.as_deref(), input.text.as_deref()),
        input.template_id.as_deref(),
        input.variables,
    )
    .await?;
    let tags = resend_tags(input.tags)?;
    if state.store.is_suppressed(tenant_id, &to.normalized()).await? {
        return Err(ApiError::Invalid {
            code: "recipient_suppressed",
            message: "this address bounced or complained earlier and is suppressed".into(),
        });
    }
    let contact = state.store.contact_by_email(tenant_id, &to.normalized()).await?;
    let single = NewSingle {
        id: new_id(),
        to_email: to.to_string(),
        first_name: contact.as_ref().and_then(|c| c.first_name.clone()),
        contact_id: contact.map(|c| c.id),
        from_address: from.clone(),
        subject: content.subject,
        html: content.html,
        text: content.text,
        template: content.template,
        variables: content.variables,
        list_unsubscribe: input.unsubscribe,
        reply_to: reply_to(input.reply_to.as_deref())?,
        tags_json: (!tags.is_empty()).then(|| serde_json::to_string(&tags).unwrap_or_default()),
        automation_id: None,
    };
    let out = SingleOut {
        success: true,
        email_id: single.id.clone(),
        to: single.to_email.clone(),
        from,
        status: "queued".into(),
    };
    let response = serde_json::to_string(&out).unwrap_or_default();
    if let Some(repeat) =
        state.store.enqueue_single(tenant_id, &single, key.as_ref().map(KeyedRequest::as_key), &response).await?
    {
        return Ok(Err(repeat));
    }
    tracing::info!(tenant = %tenant_id, message = %single.id, "transactional email queued");
    state.wake.notify_waiters();
    Ok(Ok(QueuedSingle { email_id: single.id, response }))
}
