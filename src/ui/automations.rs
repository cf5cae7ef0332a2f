//! A tenant's automations: the rules in words, a button to switch each on or
//! off, and per rule its recent runs with each step and the agent's decision.
//! Rules are created, edited and deleted with a form (`automation_form`)
//! whose rule goes through the API's own functions, validation included.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::automation_form::{humanize, RuleFields, KINDS};
use super::form::Fields;
use super::{page, scope, see_other, Frame, UiError, UiResult, UiUser};
use crate::api::automations::{self as api, patch_automation, AutomationIn, AutomationPatchIn};
use crate::domain::automation::TRIGGER_EVENTS;
use crate::domain::automation::{Action, Rule, Trigger};
use crate::domain::TenantId;
use crate::domain::{parse_id, rfc3339};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::TenantRow;
use crate::store::{AutomationRow, RunRow};

/// Runs shown per page.
const PAGE: i64 = 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/automations", get(list).post(create))
        .route("/ui/t/{tid}/automations/new", get(new_form))
        .route("/ui/t/{tid}/automations/{aid}", get(detail))
        .route("/ui/t/{tid}/automations/{aid}/switch", post(switch))
        .route("/ui/t/{tid}/automations/{aid}/edit", get(edit_form).post(save))
        .route("/ui/t/{tid}/automations/{aid}/delete", get(confirm_delete).post(delete))
}

#[derive(Serialize)]
struct RuleView {
    id: String,
    name: String,
    enabled: bool,
    starter: bool,
    event: String,
    /// The trigger in words: "an email is opened, of campaign …".
    when: String,
    /// One sentence per action, in order.
    actions: Vec<String>,
    fallback: Option<String>,
    updated_at: String,
}

/// Template ids to names, for the actions in words.
type Names = HashMap<String, String>;

fn rule_view(row: AutomationRow, names: &Names) -> UiResult<RuleView> {
    let rule: Rule = row
        .rule()
        .map_err(|e| UiError::Api(crate::error::ApiError::Internal(anyhow::anyhow!("stored rule {}: {e}", row.id))))?;
    Ok(RuleView {
        when: trigger_words(&rule.trigger),
        event: rule.trigger.event.clone(),
        actions: rule.actions.iter().map(|a| action_words(a, names)).collect(),
        fallback: rule.fallback.as_ref().map(|a| action_words(a, names)),
        id: row.id,
        name: row.name,
        enabled: row.enabled == 1,
        starter: row.starter.is_some(),
        updated_at: rfc3339(row.updated_at),
    })
}

fn trigger_words(t: &Trigger) -> String {
    let mut s = match t.event.as_str() {
        "email.opened" => "an email is opened".to_owned(),
        "email.clicked" => "a link in an email is clicked".to_owned(),
        "email.bounced" => "an email bounces".to_owned(),
        "email.complained" => "a recipient marks an email as spam".to_owned(),
        "email.delivery_delayed" => "an email's delivery is delayed".to_owned(),
        "email.delivered" => "an email is delivered".to_owned(),
        other => other.to_owned(),
    };
    if let Some(c) = &t.campaign_id {
        s.push_str(&format!(", in campaign {c}"));
    }
    if let Some(tag) = &t.tag {
        s.push_str(&format!(", to a contact tagged “{tag}”"));
    }
    if let Some(link) = &t.link {
        s.push_str(&format!(", on the link {link}"));
    }
    if let Some(h) = t.no_delivery_within_hours {
        let unit = if h == 1 { "hour" } else { "hours" };
        s.push_str(&format!(", and it is still not delivered {h} {unit} later"));
    }
    s
}

fn template_name(id: &str, names: &Names) -> String {
    match names.get(id) {
        Some(n) => format!("“{n}”"),
        None => format!("{id} (deleted)"),
    }
}

fn action_words(a: &Action, names: &Names) -> String {
    match a {
        Action::SendTemplate { template_id, delay } => {
            let t = template_name(template_id, names);
            match delay {
                Some(d) => format!("Send the template {t} to the recipient, {d} later"),
                None => format!("Send the template {t} to the recipient"),
            }
        }
        Action::AddTag { tag } => format!("Tag the contact “{tag}”"),
        Action::RemoveTag { tag } => format!("Remove the tag “{tag}” from the contact"),
        Action::Suppress {} => "Suppress the recipient's address".to_owned(),
        Action::Notify { message } => format!("Alert the webhooks (automation.alert): “{message}”"),
        Action::Agent { instructions, allowed_templates, allowed_tags } => {
            let templates: Vec<String> = allowed_templates.iter().map(|t| template_name(t, names)).collect();
            let list = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
            let tags: Vec<String> = allowed_tags.iter().map(|t| format!("“{t}”")).collect();
            format!(
                "Ask the language model to choose one action (templates: {}; tags: {}): “{instructions}”",
                list(&templates),
                list(&tags)
            )
        }
    }
}

async fn template_names(state: &AppState, id: &crate::domain::TenantId) -> UiResult<Names> {
    Ok(state.store.templates(id).await?.into_iter().map(|t| (t.id, t.name)).collect())
}

#[derive(Deserialize)]
pub struct ListQuery {
    done: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    user: UiUser,
    Path(tid): Path<String>,
    Query(q): Query<ListQuery>,
) -> UiResult<Response> {
    let (id, row) = scope(&state, &user, &tid).await?;
    let names = template_names(&state, &id).await?;
    let rules =
        state.store.automations(&id).await?.into_iter().map(|r| rule_view(r, &names)).collect::<UiResult<Vec<_>>>()?;
    let frame = Frame::new(&user, Some(&row), "automations").notice(q.done.as_deref());
    Ok(page(StatusCode::OK, "automations.html", &frame, minijinja::context! { rules }))
}

#[derive(Serialize)]
struct Step {
    action: String,
    outcome: String,
    detail: String,
    at: String,
}

#[derive(Serialize)]
struct Agent {
    tool: Option<String>,
    arguments: Option<String>,
    reason: Option<String>,
    outcome: Option<String>,
    latency_ms: Option<i64>,
}

#[derive(Serialize)]
struct RunView {
    id: String,
    status: String,
    event_type: String,
    email_id: String,
    link: Option<String>,
    steps: Vec<Step>,
    agent: Option<Agent>,
    next_at: Option<String>,
    attempts: i64,
    created_at: String,
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => rfc3339_or_number(n),
        Some(other) => other.to_string(),
    }
}

/// A step's `at` is milliseconds since the epoch; anything else is shown as it is.
fn rfc3339_or_number(n: &serde_json::Number) -> String {
    n.as_i64().map(rfc3339).unwrap_or_else(|| n.to_string())
}

fn run_view(r: RunRow) -> RunView {
    let steps = match serde_json::from_str::<Value>(&r.log) {
        Ok(Value::Array(items)) => items
            .iter()
            .map(|s| Step {
                action: text_of(s.get("action")),
                outcome: text_of(s.get("outcome")),
                detail: text_of(s.get("detail")),
                at: text_of(s.get("at")),
            })
            .collect(),
        _ => Vec::new(),
    };
    let agent = (r.tool.is_some() || r.latency_ms.is_some() || r.outcome.is_some()).then(|| Agent {
        tool: r.tool,
        // Shown compactly, as the API returns it.
        arguments: r.arguments.as_deref().map(|a| match serde_json::from_str::<Value>(a) {
            Ok(v) => v.to_string(),
            Err(_) => a.to_owned(),
        }),
        reason: r.reason,
        outcome: r.outcome,
        latency_ms: r.latency_ms,
    });
    RunView {
        next_at: (r.status == "pending").then(|| rfc3339(r.due_at)),
        id: r.id,
        status: r.status,
        event_type: r.event_type,
        email_id: r.message_id,
        link: r.link,
        steps,
        agent,
        attempts: r.attempts,
        created_at: rfc3339(r.created_at),
    }
}

#[derive(Deserialize)]
pub struct RunsQuery {
    /// The last run id of the previous page: show older runs.
    before: Option<String>,
    done: Option<String>,
}

async fn detail(
    State(state): State<AppState>,
    user: UiUser,
    Path((tid, aid)): Path<(String, String)>,
    Query(q): Query<RunsQuery>,
) -> UiResult<Response> {
    let (id, row) = scope(&state, &user, &tid).await?;
    let aid = parse_id(&aid).ok_or(UiError::NotFound)?;
    let automation = state.store.automation(&id, &aid).await?.ok_or(UiError::NotFound)?;
    let before = match q.before.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(parse_id(c).ok_or(UiError::NotFound)?),
    };
    let mut runs = state.store.automation_runs(&automation.id, before.as_deref(), PAGE).await?;
    let more = runs.len() as i64 > PAGE;
    runs.truncate(PAGE as usize);
    let next = if more { runs.last().map(|r| r.id.clone()) } else { None };
    let runs: Vec<RunView> = runs.into_iter().map(run_view).collect();
    let names = template_names(&state, &id).await?;
    let rule = rule_view(automation, &names)?;
    let frame = Frame::new(&user, Some(&row), "automations").notice(q.done.as_deref());
    Ok(page(
        StatusCode::OK,
        "automation.html",
        &frame,
        minijinja::context! { rule, runs, next, older => before.is_some() },
    ))
}

#[derive(Deserialize)]
pub struct SwitchForm {
    #[serde(default)]
    csrf: String,
    /// `on` or `off`: what the rule is to be, so a repeated post changes nothing more.
    #[serde(default)]
    to: String,
    /// `detail` to come back to the rule's page rather than the list.
    #[serde(default)]
    back: String,
}

async fn switch(
    State(state): State<AppState>,
    user: UiUser,
    Path((tid, aid)): Path<(String, String)>,
    Form(f): Form<SwitchForm>,
) -> UiResult<Response> {
    user.check_csrf(&f.csrf)?;
    let (id, _) = scope(&state, &user, &tid).await?;
    let enabled = match f.to.as_str() {
        "on" => true,
        "off" => false,
        _ => return Err(UiError::Api(crate::error::ApiError::validation("choose on or off"))),
    };
    let aid = parse_id(&aid).ok_or(UiError::NotFound)?;
    patch_automation(&state, &id, &aid, AutomationPatchIn::switch(enabled)).await?;
    let done = if enabled { "automation_enabled" } else { "automation_disabled" };
    let back =
        if f.back == "detail" { format!("/ui/t/{id}/automations/{aid}") } else { format!("/ui/t/{id}/automations") };
    Ok(see_other(&back, done))
}

/// Campaigns offered as a trigger's campaign (the newest; a rule's own is added).
const CAMPAIGN_CHOICES: usize = 100;

#[derive(Serialize)]
struct Choice {
    id: String,
    label: String,
}

/// Renders the rule form: for a new rule (`aid` None) or an existing one.
async fn form_page(
    state: &AppState,
    user: &UiUser,
    (id, row): (&TenantId, &TenantRow),
    aid: Option<&str>,
    fields: RuleFields,
    rejected: Option<(StatusCode, String)>,
) -> UiResult<Response> {
    let templates: Vec<Choice> =
        state.store.templates(id).await?.into_iter().map(|t| Choice { id: t.id, label: t.name }).collect();
    let mut campaigns: Vec<Choice> = state
        .store
        .campaigns(id)
        .await?
        .into_iter()
        .enumerate()
        .filter(|(i, c)| *i < CAMPAIGN_CHOICES || c.id == fields.campaign_id)
        .map(|(_, c)| Choice { label: format!("{} ({})", c.subject, rfc3339(c.created_at)), id: c.id })
        .collect();
    if !fields.campaign_id.is_empty() && !campaigns.iter().any(|c| c.id == fields.campaign_id) {
        // A deleted campaign, or a value not from the list: shown as it is, for the API to judge.
        campaigns.push(Choice { id: fields.campaign_id.clone(), label: fields.campaign_id.clone() });
    }
    let (status, error) = match rejected {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let kinds: Vec<Choice> =
        KINDS.iter().map(|(k, l)| Choice { id: (*k).to_owned(), label: (*l).to_owned() }).collect();
    let frame = Frame::new(user, Some(row), "automations");
    Ok(page(
        status,
        "automation_form.html",
        &frame,
        minijinja::context! {
            aid, form => fields, error, templates, campaigns, kinds, events => TRIGGER_EVENTS,
            llm => state.config.llm.is_some(),
        },
    ))
}

/// A client error of the rule (invalid, unknown template, no model for an
/// agent...) is shown on the form; anything else is an error page.
fn rule_error(e: ApiError) -> UiResult<(StatusCode, String)> {
    match e {
        ApiError::NotFound(_) => Err(UiError::NotFound),
        e if e.status().is_client_error() => Ok((e.status(), humanize(&e.to_string()))),
        e => Err(UiError::Api(e)),
    }
}

async fn new_form(State(state): State<AppState>, user: UiUser, Path(tid): Path<String>) -> UiResult<Response> {
    let (id, row) = scope(&state, &user, &tid).await?;
    form_page(&state, &user, (&id, &row), None, RuleFields::default(), None).await
}

async fn create(State(state): State<AppState>, user: UiUser, Path(tid): Path<String>, f: Fields) -> UiResult<Response> {
    f.check_csrf(&user)?;
    let (id, row) = scope(&state, &user, &tid).await?;
    let fields = RuleFields::posted(&f);
    let outcome = match fields.rule() {
        Err(message) => Err((StatusCode::UNPROCESSABLE_ENTITY, message)),
        Ok((trigger, actions, fallback)) => {
            let input = AutomationIn::new(fields.name.clone(), fields.enabled, trigger, actions, fallback);
            match api::create(&state, &id, input).await {
                Ok(created) => Ok(created.id().to_owned()),
                Err(e) => Err(rule_error(e)?),
            }
        }
    };
    match outcome {
        Ok(aid) => Ok(see_other(&format!("/ui/t/{id}/automations/{aid}"), "automation_created")),
        Err(rejected) => form_page(&state, &user, (&id, &row), None, fields, Some(rejected)).await,
    }
}

async fn edit_form(
    State(state): State<AppState>,
    user: UiUser,
    Path((tid, aid)): Path<(String, String)>,
) -> UiResult<Response> {
    let (id, row) = scope(&state, &user, &tid).await?;
    let aid = parse_id(&aid).ok_or(UiError::NotFound)?;
    let automation = state.store.automation(&id, &aid).await?.ok_or(UiError::NotFound)?;
    let rule = automation
        .rule()
        .map_err(|e| UiError::Api(ApiError::Internal(anyhow::anyhow!("stored rule {}: {e}", automation.id))))?;
    let fields = RuleFields::of(&automation.name, automation.enabled == 1, &rule);
    form_page(&state, &user, (&id, &row), Some(&automation.id), fields, None).await
}

async fn save(
    State(state): State<AppState>,
    user: UiUser,
    Path((tid, aid)): Path<(String, String)>,
    f: Fields,
) -> UiResult<Response> {
    f.check_csrf(&user)?;
    let (id, row) = scope(&state, &user, &tid).await?;
    let aid = parse_id(&aid).ok_or(UiError::NotFound)?;
    let fields = RuleFields::posted(&f);
    let outcome = match fields.rule() {
        Err(message) => Err((StatusCode::UNPROCESSABLE_ENTITY, message)),
        Ok((trigger, actions, fallback)) => {
            let patch = AutomationPatchIn::rewrite(fields.name.clone(), trigger, actions, fallback);
            match patch_automation(&state, &id, &aid, patch).await {
                Ok(_) => Ok(()),
                Err(e) => Err(rule_error(e)?),
            }
        }
    };
    match outcome {
        Ok(()) => Ok(see_other(&format!("/ui/t/{id}/automations/{aid}"), "automation_saved")),
        Err(rejected) => form_page(&state, &user, (&id, &row), Some(&aid), fields, Some(rejected)).await,
    }
}

async fn confirm_delete(
    State(state): State<AppState>,
    user: UiUser,
    Path((tid, aid)): Path<(String, String)>,
) -> UiResult<Response> {
    let (id, row) = scope(&state, &user, &tid).await?;
    let aid = parse_id(&aid).ok_or(UiError::NotFound)?;
    let automation = state.store.automation(&id, &aid).await?.ok_or(UiError::NotFound)?;
    let frame = Frame::new(&user, Some(&row), "automations");
    Ok(page(
        StatusCode::OK,
        "automation_delete.html",
        &frame,
        minijinja::context! { id => automation.id, name => automation.name },
    ))
}

async fn delete(
    State(state): State<AppState>,
    user: UiUser,
    Path((tid, aid)): Path<(String, String)>,
    f: Fields,
) -> UiResult<Response> {
    f.check_csrf(&user)?;
    let (id, _) = scope(&state, &user, &tid).await?;
    api::delete(&state, &id, &aid).await?;
    Ok(see_other(&format!("/ui/t/{id}/automations"), "automation_deleted"))
}
