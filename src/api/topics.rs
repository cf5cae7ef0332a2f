//! Topics: the subjects a customer mails about, and each contact's choice
//! per topic. A send with `topic_id` reaches only the contacts subscribed to it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::paging::{after_id, page_of};
use super::ApiJson;
use crate::auth::TenantAccess;
use crate::domain::{TopicChoice, TopicDefault, TopicState};
use crate::error::{ApiError, ApiResult};
use crate::service::topics;
use crate::state::AppState;

pub use crate::service::topics::{ContactTopic, Topic};

/// Where a contact stands on a topic it has made no choice about.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum DefaultIn {
    /// Not subscribed until the contact says so.
    OptIn,
    /// Subscribed until the contact says no.
    OptOut,
}

impl From<DefaultIn> for TopicDefault {
    fn from(d: DefaultIn) -> Self {
        match d {
            DefaultIn::OptIn => Self::OptIn,
            DefaultIn::OptOut => Self::OptOut,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicIn {
    /// 1 to 100 characters on one line; unique per customer, whatever the case.
    name: String,
    /// Shown to recipients: at most 500 characters (line breaks allowed).
    description: Option<String>,
    /// `opt_in` when absent.
    default: Option<DefaultIn>,
}

/// Absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicPatchIn {
    name: Option<String>,
    description: Option<String>,
    /// May go from `opt_out` to `opt_in`; the other way is a 409.
    default: Option<DefaultIn>,
}

/// A contact's choice on a topic.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum ChoiceIn {
    Subscribed,
    Unsubscribed,
    /// Forget the contact's choice: it follows the topic's default.
    Default,
}

impl From<ChoiceIn> for TopicChoice {
    fn from(c: ChoiceIn) -> Self {
        match c {
            ChoiceIn::Subscribed => Self::Set(TopicState::Subscribed),
            ChoiceIn::Unsubscribed => Self::Set(TopicState::Unsubscribed),
            ChoiceIn::Default => Self::Default,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicChoiceIn {
    /// The topic's id.
    id: String,
    state: ChoiceIn,
}

impl TopicChoiceIn {
    /// The (raw) topic id and the choice.
    pub(super) fn choice(self) -> (String, TopicChoice) {
        (self.id, self.state.into())
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactTopicsIn {
    /// At most 1000, each topic at most once.
    topics: Vec<TopicChoiceIn>,
}

impl ContactTopicsIn {
    fn choices(self) -> Vec<(String, TopicChoice)> {
        self.topics.into_iter().map(TopicChoiceIn::choice).collect()
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// Cursor: the last topic id of the previous page (see the `Link` header).
    after: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_topic, list_topics))
        .routes(routes!(get_topic, update_topic, delete_topic))
        .routes(routes!(contact_topics, replace_contact_topics, change_contact_topics))
}

/// Create a topic.
#[utoipa::path(post, path = "/customers/{id}/topics", tag = "topics", params(("id" = String, Path)), request_body = TopicIn,
    responses((status = 201, body = Topic),
        (status = 409, body = crate::error::ErrorBody, description = "a topic of that name exists, or the customer has 1000 topics"),
        (status = 422, body = crate::error::ErrorBody)))]
async fn create_topic(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TopicIn>,
) -> ApiResult<(StatusCode, Json<Topic>)> {
    let topic =
        topics::create(&state, &t.tenant_id, &body.name, body.description.as_deref(), body.default.map(Into::into))
            .await?;
    Ok((StatusCode::CREATED, Json(topic)))
}

/// List topics in creation order, a page at a time: a JSON array, and the
/// next page in `Link: <...>; rel="next"`.
#[utoipa::path(get, path = "/customers/{id}/topics", tag = "topics", params(("id" = String, Path), ListParams),
    responses((status = 200, body = [Topic], headers(("link" = String,
        description = "`<...>; rel=\"next\"`: the next page; absent on the last page"))),
        (status = 422, body = crate::error::ErrorBody)))]
async fn list_topics(
    t: TenantAccess,
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Vec<Topic>>)> {
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let limit = super::page_limit(params.limit.as_deref())?;
    let after = after_id(params.after.as_deref(), "topic")?;
    let rows = topics::list(&state, &t.tenant_id, after.as_deref(), limit).await?;
    let (headers, rows) = page_of(rows, limit, &format!("/customers/{}/topics", t.tenant_id), &[], |t| t.id());
    Ok((headers, Json(rows)))
}

/// Get a topic.
#[utoipa::path(get, path = "/customers/{id}/topics/{topic_id}", tag = "topics",
    params(("id" = String, Path), ("topic_id" = String, Path)),
    responses((status = 200, body = Topic), (status = 404, body = crate::error::ErrorBody)))]
async fn get_topic(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Topic>> {
    Ok(Json(topics::get(&state, &t.tenant_id, &ids.1).await?))
}

/// Change a topic's name, description or default.
#[utoipa::path(patch, path = "/customers/{id}/topics/{topic_id}", tag = "topics",
    params(("id" = String, Path), ("topic_id" = String, Path)), request_body = TopicPatchIn,
    responses((status = 200, body = Topic), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "the name is taken, or an `opt_in` topic would become `opt_out`"),
        (status = 422, body = crate::error::ErrorBody)))]
async fn update_topic(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(body): ApiJson<TopicPatchIn>,
) -> ApiResult<Json<Topic>> {
    let topic = topics::update(
        &state,
        &t.tenant_id,
        &ids.1,
        body.name.as_deref(),
        body.description.as_deref(),
        body.default.map(Into::into),
    )
    .await?;
    Ok(Json(topic))
}

/// Delete a topic and every contact's choice on it. The unsent mail of
/// campaigns that target it is not sent.
#[utoipa::path(delete, path = "/customers/{id}/topics/{topic_id}", tag = "topics",
    params(("id" = String, Path), ("topic_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_topic(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    topics::delete(&state, &t.tenant_id, &ids.1).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every topic, with where the contact stands on it.
#[utoipa::path(get, path = "/customers/{id}/contacts/{contact_id}/topics", tag = "topics",
    params(("id" = String, Path), ("contact_id" = String, Path)),
    responses((status = 200, body = [ContactTopic]), (status = 404, body = crate::error::ErrorBody)))]
async fn contact_topics(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Vec<ContactTopic>>> {
    Ok(Json(topics::of_contact(&state, &t.tenant_id, &ids.1).await?))
}

/// Replace a contact's choices: the topics named are set, every other topic
/// goes back to its default. Answers every topic as the contact now stands.
#[utoipa::path(put, path = "/customers/{id}/contacts/{contact_id}/topics", tag = "topics",
    params(("id" = String, Path), ("contact_id" = String, Path)), request_body = ContactTopicsIn,
    responses((status = 200, body = [ContactTopic]),
        (status = 404, body = crate::error::ErrorBody, description = "no such contact or topic"),
        (status = 422, body = crate::error::ErrorBody)))]
async fn replace_contact_topics(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(body): ApiJson<ContactTopicsIn>,
) -> ApiResult<Json<Vec<ContactTopic>>> {
    set_contact_topics(&state, &t, &ids.1, body, true).await
}

/// Change a contact's choices on the topics named; others stay as they are.
/// Answers every topic as the contact now stands.
#[utoipa::path(patch, path = "/customers/{id}/contacts/{contact_id}/topics", tag = "topics",
    params(("id" = String, Path), ("contact_id" = String, Path)), request_body = ContactTopicsIn,
    responses((status = 200, body = [ContactTopic]),
        (status = 404, body = crate::error::ErrorBody, description = "no such contact or topic"),
        (status = 422, body = crate::error::ErrorBody)))]
async fn change_contact_topics(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(body): ApiJson<ContactTopicsIn>,
) -> ApiResult<Json<Vec<ContactTopic>>> {
    set_contact_topics(&state, &t, &ids.1, body, false).await
}

/// PUT and PATCH: the topics named are set; with `replace`, every other
/// topic goes back to its default. The tenant's server asks: no client of
/// the person's is recorded.
async fn set_contact_topics(
    state: &AppState,
    t: &TenantAccess,
    contact_id: &str,
    body: ContactTopicsIn,
    replace: bool,
) -> ApiResult<Json<Vec<ContactTopic>>> {
    let origin = crate::domain::ConsentOrigin::api();
    Ok(Json(topics::set_for_contact(state, &t.tenant_id, contact_id, body.choices(), replace, &origin).await?))
}
