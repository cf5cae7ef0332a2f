//! A customer's automations: rules that act on delivery events (a trigger,
//! actions in order, an optional AI `agent` step with a fallback), and the log
//! of their runs.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::paging::next_page;
use super::ApiJson;
use crate::auth::TenantAccess;
use crate::domain::automation::{Action, Trigger};
use crate::domain::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::service::automations::{self, NewRule, RuleChanges};
use crate::state::AppState;
use crate::store::RunRow;

pub use crate::service::automations::Automation;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomationIn {
    name: String,
    /// Default true.
    enabled: Option<bool>,
    trigger: Trigger,
    /// Carried out in order, 1 to 10.
    actions: Vec<Action>,
    /// For a rule with an `agent` action: what is done instead when the model
    /// fails, times out, answers with something malformed, or chooses what the
    /// guardrails refuse.
    fallback: Option<Action>,
}

/// Absent fields stay as they are; `"fallback": null` removes the fallback.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomationPatchIn {
    name: Option<String>,
    enabled: Option<bool>,
    trigger: Option<Trigger>,
    actions: Option<Vec<Action>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    fallback: Option<Value>,
}

impl From<AutomationIn> for NewRule {
    fn from(a: AutomationIn) -> Self {
        Self { name: a.name, enabled: a.enabled, trigger: a.trigger, actions: a.actions, fallback: a.fallback }
    }
}

impl From<AutomationPatchIn> for RuleChanges {
    fn from(a: AutomationPatchIn) -> Self {
        Self { name: a.name, enabled: a.enabled, trigger: a.trigger, actions: a.actions, fallback: a.fallback }
    }
}

/// `Some(Value::Null)` for an explicit null, `None` (by `default`) when absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct RunTrigger {
    /// The event type.
    #[serde(rename = "type")]
    event_type: String,
    /// The event's svix id (see `GET /customers/{id}/events`).
    event_id: String,
    email_id: String,
    campaign_id: Option<String>,
    contact_id: Option<String>,
    link: Option<String>,
}

/// What the agent decided, for a rule with an `agent` action.
#[derive(Serialize, ToSchema)]
pub struct AgentRun {
    /// The tool the model called (null when it failed before choosing).
    tool: Option<String>,
    #[schema(value_type = Option<Object>)]
    arguments: Option<Value>,
    /// The model's stated reason.
    reason: Option<String>,
    /// What came of it: `done: ...`, `refused: ...; fallback ...`, `failed: ...`,
    /// `budget_exhausted: ...; fallback ...` (the day's model calls were used up: none was made).
    outcome: Option<String>,
    latency_ms: Option<i64>,
    /// Tokens the model's answer used (its `usage`); null when no answer came.
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Run {
    id: String,
    automation_id: String,
    /// `pending` (due, or waiting for a delayed action: see `next_at`), `done`,
    /// `skipped` (a condition did not hold), `cancelled` (the contact
    /// unsubscribed or was suppressed before a delayed email), `failed`.
    status: String,
    trigger: RunTrigger,
    /// One entry per action carried out: `action`, `outcome`, `detail`, `at`.
    #[schema(value_type = Vec<Object>)]
    steps: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<AgentRun>,
    /// When a pending run is carried on.
    next_at: Option<String>,
    attempts: i64,
    created_at: String,
    updated_at: String,
}

impl From<RunRow> for Run {
    fn from(r: RunRow) -> Self {
        let agent = (r.tool.is_some() || r.latency_ms.is_some() || r.outcome.is_some()).then(|| AgentRun {
            tool: r.tool,
            arguments: r.arguments.as_deref().and_then(|a| serde_json::from_str(a).ok()),
            reason: r.reason,
            outcome: r.outcome,
            latency_ms: r.latency_ms,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
        });
        Self {
            next_at: (r.status == "pending").then(|| rfc3339(r.due_at)),
            id: r.id,
            automation_id: r.automation_id,
            status: r.status,
            trigger: RunTrigger {
                event_type: r.event_type,
                event_id: r.svix_id,
                email_id: r.message_id,
                campaign_id: r.campaign_id,
                contact_id: r.contact_id,
                link: r.link,
            },
            steps: serde_json::from_str(&r.log).unwrap_or(Value::Array(Vec::new())),
            agent,
            attempts: r.attempts,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// Where the next page starts: set by the `Link` header of the previous page.
    cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_automation, list_automations))
        .routes(routes!(get_automation, update_automation, delete_automation))
        .routes(routes!(list_runs))
}

/// Add a rule: when `trigger` happens to a customer's email, carry out
/// `actions` in order. A rule fires at most once per email and event type,
/// after the event is stored (never inside the webhook request).
#[utoipa::path(post, path = "/customers/{id}/automations", tag = "automations", params(("id" = String, Path)),
    request_body = AutomationIn,
    responses((status = 201, body = Automation), (status = 422, body = crate::error::ErrorBody,
        description = "invalid rule, unknown template or campaign, or an `agent` action without a configured model")))]
async fn create_automation(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AutomationIn>,
) -> ApiResult<(StatusCode, Json<Automation>)> {
    Ok((StatusCode::CREATED, Json(automations::create(&state, &t.tenant_id, body.into()).await?)))
}

/// A customer's rules, the (disabled) starter rules included.
#[utoipa::path(get, path = "/customers/{id}/automations", tag = "automations", params(("id" = String, Path)),
    responses((status = 200, body = [Automation])))]
async fn list_automations(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Vec<Automation>>> {
    Ok(Json(automations::list(&state, &t.tenant_id).await?))
}

#[utoipa::path(get, path = "/customers/{id}/automations/{aid}", tag = "automations",
    params(("id" = String, Path), ("aid" = String, Path)),
    responses((status = 200, body = Automation), (status = 404, body = crate::error::ErrorBody)))]
async fn get_automation(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, aid)): Path<(String, String)>,
) -> ApiResult<Json<Automation>> {
    Ok(Json(automations::get(&state, &t.tenant_id, &aid).await?))
}

/// Change a rule, or switch it on or off (`enabled`). Runs already queued
/// carry on with the rule as it is when they run; a disabled rule's pending
/// runs are skipped.
#[utoipa::path(patch, path = "/customers/{id}/automations/{aid}", tag = "automations",
    params(("id" = String, Path), ("aid" = String, Path)), request_body = AutomationPatchIn,
    responses((status = 200, body = Automation), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
async fn update_automation(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, aid)): Path<(String, String)>,
    ApiJson(body): ApiJson<AutomationPatchIn>,
) -> ApiResult<Json<Automation>> {
    Ok(Json(automations::patch_automation(&state, &t.tenant_id, &aid, body.into()).await?))
}

/// Remove a rule; its pending runs (delayed emails included) go with it.
#[utoipa::path(delete, path = "/customers/{id}/automations/{aid}", tag = "automations",
    params(("id" = String, Path), ("aid" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_automation(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, aid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    automations::delete(&state, &t.tenant_id, &aid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A rule's runs, newest first, a page at a time (a JSON array; the next,
/// older, page in `Link: <...>; rel="next"`): the triggering event, each step's
/// outcome, and for an `agent` step the tool chosen, its arguments, the
/// model's reason, the outcome and the latency.
#[utoipa::path(get, path = "/customers/{id}/automations/{aid}/runs", tag = "automations",
    params(("id" = String, Path), ("aid" = String, Path), RunParams),
    responses((status = 200, body = [Run], headers(("link" = String,
        description = "`<...>; rel=\"next\"`: the next page; absent on the last page"))),
        (status = 404, body = crate::error::ErrorBody)))]
async fn list_runs(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, aid)): Path<(String, String)>,
    params: Result<Query<RunParams>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Vec<Run>>)> {
    let row = automations::own_automation(&state, &t.tenant_id, &aid).await?;
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let (rows, next_cursor) =
        automations::runs(&state, &row, params.limit.as_deref(), params.cursor.as_deref()).await?;
    let headers = match &next_cursor {
        None => HeaderMap::new(),
        Some(cursor) => {
            let limit = super::page_limit(params.limit.as_deref())?.to_string();
            let path = format!("/customers/{}/automations/{}/runs", t.tenant_id, row.id);
            next_page(&path, &[("limit", Some(&limit)), ("cursor", Some(cursor))])
        }
    };
    Ok((headers, Json(rows.into_iter().map(Run::from).collect())))
}
