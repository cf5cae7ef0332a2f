//! A customer's automations: rules that act on delivery events (a trigger,
//! actions in order, an optional AI `agent` step with a fallback), and the log
//! of their runs.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{page_limit, path_id, required_text, ApiJson};
use crate::auth::TenantAccess;
use crate::domain::automation::{Action, Rule, Trigger};
use crate::domain::{rfc3339, TenantId};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{AutomationRow, NewAutomation, RunRow};

/// Most rules one customer may have.
const MAX_AUTOMATIONS: usize = 100;

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

/// `Some(Value::Null)` for an explicit null, `None` (by `default`) when absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct Automation {
    id: String,
    customer_id: String,
    name: String,
    enabled: bool,
    trigger: Trigger,
    actions: Vec<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<Action>,
    /// Which starter rule this is (every customer gets them, disabled).
    starter: Option<String>,
    created_at: String,
    updated_at: String,
}

impl Automation {
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    fn from_row(a: AutomationRow) -> ApiResult<Self> {
        let rule = a.rule().map_err(|e| ApiError::Internal(anyhow::anyhow!("stored rule {}: {e}", a.id)))?;
        Ok(Self {
            id: a.id,
            customer_id: a.tenant_id,
            name: a.name,
            enabled: a.enabled == 1,
            trigger: rule.trigger,
            actions: rule.actions,
            fallback: rule.fallback,
            starter: a.starter,
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        })
    }
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
    /// What came of it: `done: ...`, `refused: ...; fallback ...`, `failed: ...`.
    outcome: Option<String>,
    latency_ms: Option<i64>,
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

#[derive(Serialize, ToSchema)]
pub struct RunPage {
    data: Vec<Run>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_automation, list_automations))
        .routes(routes!(get_automation, update_automation, delete_automation))
        .routes(routes!(list_runs))
}

/// Which parts of a rule a write gives anew: only those are checked against
/// what may have changed in the database since the rule was saved.
#[derive(Clone, Copy)]
struct Given {
    trigger: bool,
    actions: bool,
}

/// Checks a rule as a whole: its own validity, then what only the database
/// knows (the templates and campaign are the customer's), then the model. A
/// PATCH that leaves the trigger or the actions alone (switching a rule off,
/// say) is not refused because a campaign or template it names was deleted since.
async fn checked_rule(state: &AppState, tenant_id: &TenantId, mut rule: Rule, given: Given) -> ApiResult<Rule> {
    rule.validate().map_err(ApiError::validation)?;
    let actions_changed = given.actions;
    if let Some(cid) = rule.trigger.campaign_id.as_ref().filter(|_| given.trigger) {
        let found = match crate::domain::parse_id(cid) {
            Some(id) => state.store.campaign(tenant_id, &id).await?.map(|c| c.id),
            None => None,
        };
        rule.trigger.campaign_id =
            Some(found.ok_or_else(|| ApiError::validation("trigger.campaign_id: no such campaign"))?);
    }
    if actions_changed {
        for id in rule.template_ids() {
            if state.store.template(tenant_id, id, None).await?.is_none() {
                return Err(ApiError::validation(format!("no such template: {id}")));
            }
        }
    }
    if rule.has_agent() && state.config.llm.is_none() && actions_changed {
        return Err(ApiError::validation(
            "an `agent` action needs a language model, and this mailroom has none configured: its operator sets \
             MAILROOM_LLM_URL and MAILROOM_LLM_MODEL (and MAILROOM_LLM_API=openai|anthropic, MAILROOM_LLM_API_KEY \
             as needed)",
        ));
    }
    Ok(rule)
}

async fn own_automation(state: &AppState, tenant_id: &TenantId, aid: &str) -> ApiResult<AutomationRow> {
    let aid = path_id(aid, "automation")?;
    state.store.automation(tenant_id, &aid).await?.ok_or(ApiError::NotFound("automation"))
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
    Ok((StatusCode::CREATED, Json(create(&state, &t.tenant_id, body).await?)))
}

impl AutomationIn {
    /// A rule from the dashboard's form.
    pub(crate) fn new(
        name: String,
        enabled: bool,
        trigger: Trigger,
        actions: Vec<Action>,
        fallback: Option<Action>,
    ) -> Self {
        Self { name, enabled: Some(enabled), trigger, actions, fallback }
    }
}

/// Checks and adds a rule: what `POST /customers/{id}/automations` does, and
/// the dashboard's form.
pub(crate) async fn create(state: &AppState, tenant_id: &TenantId, body: AutomationIn) -> ApiResult<Automation> {
    let name = required_text(&body.name, "name", 200)?;
    let rule = Rule { trigger: body.trigger, actions: body.actions, fallback: body.fallback };
    let rule = checked_rule(state, tenant_id, rule, Given { trigger: true, actions: true }).await?;
    let new = NewAutomation { name: &name, enabled: body.enabled.unwrap_or(true), rule: &rule };
    let Some(id) = state.store.create_automation(tenant_id, &new, MAX_AUTOMATIONS).await? else {
        return Err(ApiError::validation(format!("a customer may have at most {MAX_AUTOMATIONS} automations")));
    };
    tracing::info!(tenant = %tenant_id, automation = %id, "automation created");
    let row = state.store.automation(tenant_id, &id).await?.ok_or(ApiError::NotFound("automation"))?;
    Automation::from_row(row)
}

/// A customer's rules, the (disabled) starter rules included.
#[utoipa::path(get, path = "/customers/{id}/automations", tag = "automations", params(("id" = String, Path)),
    responses((status = 200, body = [Automation])))]
async fn list_automations(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Vec<Automation>>> {
    let rows = state.store.automations(&t.tenant_id).await?;
    Ok(Json(rows.into_iter().map(Automation::from_row).collect::<ApiResult<_>>()?))
}

#[utoipa::path(get, path = "/customers/{id}/automations/{aid}", tag = "automations",
    params(("id" = String, Path), ("aid" = String, Path)),
    responses((status = 200, body = Automation), (status = 404, body = crate::error::ErrorBody)))]
async fn get_automation(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, aid)): Path<(String, String)>,
) -> ApiResult<Json<Automation>> {
    Ok(Json(Automation::from_row(own_automation(&state, &t.tenant_id, &aid).await?)?))
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
    Ok(Json(patch_automation(&state, &t.tenant_id, &aid, body).await?))
}

impl AutomationPatchIn {
    /// A patch that only switches a rule on or off (the dashboard's button).
    pub(crate) fn switch(enabled: bool) -> Self {
        Self { name: None, enabled: Some(enabled), trigger: None, actions: None, fallback: None }
    }

    /// A patch that rewrites a rule (the dashboard's edit form): its on/off
    /// state stays, and no fallback removes the fallback.
    pub(crate) fn rewrite(
        name: String,
        trigger: Trigger,
        actions: Vec<Action>,
        fallback: Option<Action>,
    ) -> ApiResult<Self> {
        let fallback = match fallback {
            None => Value::Null,
            Some(f) => serde_json::to_value(f).map_err(|e| ApiError::Internal(anyhow::anyhow!("fallback: {e}")))?,
        };
        Ok(Self {
            name: Some(name),
            enabled: None,
            trigger: Some(trigger),
            actions: Some(actions),
            fallback: Some(fallback),
        })
    }
}

/// Applies a patch to one of the tenant's rules: what `PATCH
/// /customers/{id}/automations/{aid}` does, and the dashboard's switch.
pub(crate) async fn patch_automation(
    state: &AppState,
    tenant_id: &TenantId,
    aid: &str,
    body: AutomationPatchIn,
) -> ApiResult<Automation> {
    let row = own_automation(state, tenant_id, aid).await?;
    let current = row.rule().map_err(|e| ApiError::Internal(anyhow::anyhow!("stored rule {}: {e}", row.id)))?;
    let name = match body.name.as_deref() {
        Some(n) => required_text(n, "name", 200)?,
        None => row.name.clone(),
    };
    let given = Given { trigger: body.trigger.is_some(), actions: body.actions.is_some() || body.fallback.is_some() };
    let fallback = match body.fallback {
        None => current.fallback,
        Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v).map_err(|e| ApiError::validation(format!("fallback: {e}")))?),
    };
    let rule = Rule {
        trigger: body.trigger.unwrap_or(current.trigger),
        actions: body.actions.unwrap_or(current.actions),
        fallback,
    };
    let rule = checked_rule(state, tenant_id, rule, given).await?;
    let new = NewAutomation { name: &name, enabled: body.enabled.unwrap_or(row.enabled == 1), rule: &rule };
    if !state.store.update_automation(tenant_id, &row.id, &new).await? {
        return Err(ApiError::NotFound("automation"));
    }
    let row = state.store.automation(tenant_id, &row.id).await?.ok_or(ApiError::NotFound("automation"))?;
    Automation::from_row(row)
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
    delete(&state, &t.tenant_id, &aid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes one of the tenant's rules with its pending runs (404 for any other id).
pub(crate) async fn delete(state: &AppState, tenant_id: &TenantId, aid: &str) -> ApiResult<()> {
    let aid = path_id(aid, "automation")?;
    if !state.store.delete_automation(tenant_id, &aid).await? {
        return Err(ApiError::NotFound("automation"));
    }
    tracing::info!(tenant = %tenant_id, automation = %aid, "automation deleted");
    Ok(())
}

/// A rule's runs, newest first: the triggering event, each step's outcome,
/// and for an `agent` step the tool chosen, its arguments, the model's reason,
/// the outcome and the latency.
#[utoipa::path(get, path = "/customers/{id}/automations/{aid}/runs", tag = "automations",
    params(("id" = String, Path), ("aid" = String, Path), RunParams),
    responses((status = 200, body = RunPage), (status = 404, body = crate::error::ErrorBody)))]
async fn list_runs(
    t: TenantAccess,
    State(state): State<AppState>,
    Path((_id, aid)): Path<(String, String)>,
    params: Result<Query<RunParams>, QueryRejection>,
) -> ApiResult<Json<RunPage>> {
    let row = own_automation(&state, &t.tenant_id, &aid).await?;
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let limit = page_limit(params.limit.as_deref())?;
    let cursor = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(crate::domain::parse_id(c).ok_or_else(|| ApiError::validation("`cursor` is not valid"))?),
    };
    let mut rows = state.store.automation_runs(&row.id, cursor.as_deref(), limit).await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if more { rows.last().map(|r| r.id.clone()) } else { None };
    Ok(Json(RunPage { data: rows.into_iter().map(Run::from).collect(), next_cursor }))
}
