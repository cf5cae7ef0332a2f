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

use super::extract::{require_json_content_type, required_json};
use super::idempotency::{repeat_response, KeyedRequest};
use crate::auth::TenantAccess;
use crate::error::{ApiError, ApiResult};
use crate::service::sending::{self, CampaignInput, PreparedCampaign, SingleInput};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendIn {
    /// Inline content: `{{first_name}}` is replaced per recipient. Required
    /// unless `template_id` is given.
    subject: Option<String>,
    /// Inline content: `{{first_name}}` is replaced (HTML-escaped) and
    /// `{{unsubscribe_url}}` and `{{preferences_url}}` filled in per recipient;
    /// a footer adds whichever of the two links is not placed. Required unless
    /// `template_id` is given.
    html: Option<String>,
    text: Option<String>,
    /// Send this template (its current version) instead of inline content.
    template_id: Option<String>,
    /// Values for the template: `{{ order_id }}` or `{{ variables.order_id }}`.
    #[schema(value_type = Option<Object>)]
    variables: Option<Value>,
    /// Only contacts with this tag.
    tag: Option<String>,
    /// Only contacts in this segment (static, or dynamic: its filter is
    /// evaluated now); wins over `tag`.
    segment_id: Option<String>,
    /// Only contacts matching this filter (the grammar of a dynamic segment's
    /// `filter`); not together with `tag`, `segment_id` or `resume_from_campaign_id`.
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    reply_to: Option<String>,
    /// An address on the customer's verified domain; default `hello@{domain}`.
    from: Option<String>,
    /// RFC 3339 time, at most a year ahead; the campaign stays `scheduled`
    /// until then. A time already past sends at once.
    scheduled_at: Option<String>,
    /// Send to the part of that earlier campaign that was never sent (its queued,
    /// paused, cancelled and dead-lettered recipients); its unsent rows are cancelled.
    resume_from_campaign_id: Option<String>,
    /// Only contacts subscribed to this topic (`POST /customers/{id}/topics`):
    /// those who chose it, and, for an `opt_out` topic, those who did not
    /// unsubscribe from it. Combines with `tag`, `segment_id` or `filter` (both
    /// must hold); checked again when each email is sent. A resume keeps its
    /// campaign's topic.
    topic_id: Option<String>,
}

impl From<SendIn> for CampaignInput {
    fn from(i: SendIn) -> Self {
        Self {
            subject: i.subject,
            html: i.html,
            text: i.text,
            template_id: i.template_id,
            variables: i.variables,
            tag: i.tag,
            segment_id: i.segment_id,
            filter: i.filter,
            reply_to: i.reply_to,
            from: i.from,
            scheduled_at: i.scheduled_at,
            resume_from_campaign_id: i.resume_from_campaign_id,
            topic_id: i.topic_id,
        }
    }
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
    to_email: String,
    /// Required unless `template_id` is given.
    subject: Option<String>,
    /// Required unless `template_id` is given.
    html: Option<String>,
    text: Option<String>,
    /// Send this template (its current version) instead of inline content.
    template_id: Option<String>,
    /// Values for the template.
    #[schema(value_type = Option<Object>)]
    variables: Option<Value>,
    /// Add one-click unsubscribe headers (and a footer, as campaign mail has).
    #[serde(default)]
    unsubscribe: bool,
    reply_to: Option<String>,
    from: Option<String>,
    /// Resend tags, as `[{"name", "value"}]` or `{"name": "value"}`.
    #[schema(value_type = Option<Object>)]
    tags: Option<Value>,
}

impl From<SingleIn> for SingleInput {
    fn from(i: SingleIn) -> Self {
        Self {
            to_email: i.to_email,
            subject: i.subject,
            html: i.html,
            text: i.text,
            template_id: i.template_id,
            variables: i.variables,
            unsubscribe: i.unsubscribe,
            reply_to: i.reply_to,
            from: i.from,
            tags: i.tags,
        }
    }
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

/// A test send: the `/send` body (its audience is checked, not mailed) and
/// who gets the test. One flat object, so that its schema is one object too.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSendIn {
    /// 1 to 5 distinct addresses, each on the customer's verified domain or a
    /// subscribed contact tagged `test`.
    to: Vec<String>,
    subject: Option<String>,
    html: Option<String>,
    text: Option<String>,
    template_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    variables: Option<Value>,
    tag: Option<String>,
    segment_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    reply_to: Option<String>,
    from: Option<String>,
    scheduled_at: Option<String>,
    resume_from_campaign_id: Option<String>,
    topic_id: Option<String>,
}

impl TestSendIn {
    /// Who gets the test, and the send it tests.
    fn split(self) -> (Vec<String>, SendIn) {
        let send = SendIn {
            subject: self.subject,
            html: self.html,
            text: self.text,
            template_id: self.template_id,
            variables: self.variables,
            tag: self.tag,
            segment_id: self.segment_id,
            filter: self.filter,
            reply_to: self.reply_to,
            from: self.from,
            scheduled_at: self.scheduled_at,
            resume_from_campaign_id: self.resume_from_campaign_id,
            topic_id: self.topic_id,
        };
        (self.to, send)
    }
}

#[derive(Serialize, ToSchema)]
pub struct TestSendOut {
    success: bool,
    /// Always true: these emails are marked as a test and counted in no figure.
    test: bool,
    /// One per address, in the order given: `GET /customers/{id}/messages/{email_id}`.
    email_ids: Vec<String>,
    to: Vec<String>,
    from: String,
    status: String,
}

/// Content to preview, and for whom.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendPreviewIn {
    subject: Option<String>,
    html: Option<String>,
    text: Option<String>,
    template_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    variables: Option<Value>,
    /// Render for this contact; without it, for a sample contact with no name.
    contact_id: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_campaign))
        .routes(routes!(send_test))
        .routes(routes!(preview_send))
        .routes(routes!(send_single))
        .routes(routes!(audience_count, audience_count_of))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AudienceQuery {
    tag: Option<String>,
    segment_id: Option<String>,
    resume_from_campaign_id: Option<String>,
    /// Only contacts subscribed to this topic (with the other targeting: both).
    topic_id: Option<String>,
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
    let targeting = sending::resolve_targeting(
        &state,
        &t.tenant_id,
        q.resume_from_campaign_id.as_deref(),
        q.segment_id.as_deref(),
        q.tag.as_deref(),
        None,
    )
    .await?;
    let topic = sending::resolve_topic(&state, &t.tenant_id, q.topic_id.as_deref(), &targeting).await?;
    Ok(Json(Audience { count: sending::audience_count(&state, &t.tenant_id, &targeting, topic.as_deref()).await? }))
}

/// One way to choose an audience (at most one of `filter`, `tag` and
/// `segment_id`; none means everyone), and a topic.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceIn {
    /// A dynamic segment's filter grammar (see `POST /customers/{id}/segments`).
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    tag: Option<String>,
    segment_id: Option<String>,
    /// Only contacts subscribed to this topic (with the targeting above: both).
    topic_id: Option<String>,
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
    let targeting = sending::resolve_targeting(
        &state,
        &t.tenant_id,
        None,
        body.segment_id.as_deref(),
        body.tag.as_deref(),
        body.filter.as_ref(),
    )
    .await?;
    let topic = sending::resolve_topic(&state, &t.tenant_id, body.topic_id.as_deref(), &targeting).await?;
    Ok(Json(Audience { count: sending::audience_count(&state, &t.tenant_id, &targeting, topic.as_deref()).await? }))
}

/// Queue a campaign to all subscribed contacts, a tag, or a segment.
#[utoipa::path(post, path = "/customers/{id}/send", tag = "send", params(("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body, same answer, sent once")),
    request_body = SendIn,
    responses((status = 202, body = SendOut), (status = 400, body = crate::error::ErrorBody, description = "domain not verified, or nobody matches"),
        (status = 404, body = crate::error::ErrorBody, description = "unknown segment or topic"), (status = 409, body = crate::error::ErrorBody)))]
async fn send_campaign(
    t: TenantAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    require_json_content_type(&headers)?;
    let input: SendIn = required_json(&body)?;
    let prepared = sending::prepare_campaign(&state, &t.tenant_id, input.into()).await?;
    let key = KeyedRequest::from_headers(&headers, "send", &body)?;
    let PreparedCampaign { campaign, from, warnings, status } = &prepared;
    let respond = |sent_to| {
        let out = SendOut {
            success: true,
            campaign_id: campaign.id.clone(),
            sent_to,
            from: from.clone(),
            status: (*status).into(),
            warnings: warnings.clone(),
        };
        serde_json::to_string(&out).unwrap_or_default()
    };
    match sending::queue_campaign(&state, &t.tenant_id, &prepared, key.as_ref().map(KeyedRequest::as_key), respond)
        .await?
    {
        Err(repeat) => repeat_response(repeat),
        Ok((_, response)) => {
            Ok((StatusCode::ACCEPTED, [(axum::http::header::CONTENT_TYPE, "application/json")], response)
                .into_response())
        }
    }
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
    let respond = |q: &sending::QueuedSingle| {
        let out = SingleOut {
            success: true,
            email_id: q.email_id.clone(),
            to: q.to.clone(),
            from: q.from.clone(),
            status: "queued".into(),
        };
        serde_json::to_string(&out).unwrap_or_default()
    };
    let key_ref = key.as_ref().map(KeyedRequest::as_key);
    match sending::send_single(&state, &t.tenant_id, input.into(), key_ref, respond).await? {
        Ok(queued) => {
            Ok((StatusCode::ACCEPTED, [(axum::http::header::CONTENT_TYPE, "application/json")], queued.response)
                .into_response())
        }
        Err(repeat) => repeat_response(repeat),
    }
}

/// Send a campaign as a test, before sending it to its audience: the `/send`
/// body plus `to`. It goes through the outbox like any mail (suppression,
/// rendering, one-click unsubscribe headers), with "[Test] " before the
/// subject; it creates no campaign and counts in no figure.
#[utoipa::path(post, path = "/customers/{id}/send/test", tag = "send", params(("id" = String, Path)),
    request_body = TestSendIn,
    responses((status = 202, body = TestSendOut), (status = 400, body = crate::error::ErrorBody, description = "domain not verified"),
        (status = 404, body = crate::error::ErrorBody, description = "unknown template or segment"),
        (status = 413, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "more than 5 addresses, a duplicate, or an address that may not receive tests")))]
async fn send_test(
    t: TenantAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    require_json_content_type(&headers)?;
    let (to, send) = required_json::<TestSendIn>(&body)?.split();
    let queued = sending::send_test(&state, &t.tenant_id, &to, send.into()).await?;
    let out = TestSendOut {
        success: true,
        test: true,
        email_ids: queued.email_ids,
        to: queued.to,
        from: queued.from,
        status: "queued".into(),
    };
    Ok((StatusCode::ACCEPTED, Json(out)).into_response())
}

/// Render a send's content (inline, or a template) for a contact or a sample
/// one, as a recipient would get it, without sending.
#[utoipa::path(post, path = "/customers/{id}/send/preview", tag = "send", params(("id" = String, Path)),
    request_body = SendPreviewIn,
    responses((status = 200, body = crate::render::Rendered), (status = 404, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn preview_send(
    t: TenantAccess,
    State(state): State<AppState>,
    super::ApiJson(body): super::ApiJson<SendPreviewIn>,
) -> ApiResult<Json<crate::render::Rendered>> {
    let input = sending::PreviewInput {
        subject: body.subject,
        html: body.html,
        text: body.text,
        template_id: body.template_id,
        variables: body.variables,
        contact_id: body.contact_id,
    };
    Ok(Json(sending::preview(&state, &t.tenant_id, input).await?))
}
