//! A tenant's automations: the rules in words, a button to switch each on or
//! off, and per rule its recent runs with each step and the agent's decision.
//! Rules are created, edited and deleted in `automation_edit`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::operator::Done;
use super::tenant_scope::{Posted, Scoped};
use super::{page, see_other, Frame, UiError, UiResult};
use crate::domain::automation::{Action, Rule, Trigger};
use crate::domain::{parse_id, rfc3339};
use crate::service::automations::{patch_automation, RuleChanges};
use crate::state::AppState;
use crate::store::{AutomationRow, RunRow};

/// Runs shown per page.
const PAGE: i64 = 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/automations", get(list).post(super::automation_edit::create))
        .route("/ui/t/{tid}/automations/{aid}", get(detail))
        .route("/ui/t/{tid}/automations/{aid}/switch", post(switch))
        .merge(super::automation_edit::router())
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

/// Template and topic ids (UUIDs, never the same) to names, for the actions in words.
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
        Action::SendTemplate { template_id, delay, topic_id } => {
            let t = template_name(template_id, names);
            let about = match topic_id {
                Some(id) => match names.get(id) {
                    Some(n) => format!(" if subscribed to the topic “{n}”"),
                    None => format!(" if subscribed to the topic {id} (deleted)"),
                },
                None => String::new(),
            };
            match delay {
                Some(d) => format!("Send the template {t} to the recipient{about}, {d} later"),
                None => format!("Send the template {t} to the recipient{about}"),
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

async fn action_names(state: &AppState, id: &crate::domain::TenantId) -> UiResult<Names> {
    let mut names: Names = state.store.template_names(id).await?.into_iter().collect();
    let topics = state.store.topics(id, "", crate::store::TOPICS_MAX as i64).await?;
    names.extend(topics.into_iter().map(|t| (t.id, t.name)));
    Ok(names)
}

async fn list(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let names = action_names(&state, &id).await?;
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
    /// `input + output` tokens of the model's answer.
    tokens: Option<String>,
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
        tokens: match (r.input_tokens, r.output_tokens) {
            (None, None) => None,
            (i, o) => Some(format!("{} in + {} out", i.unwrap_or(0), o.unwrap_or(0))),
        },
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
    Path((_, aid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<RunsQuery>>,
) -> UiResult<Response> {
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
    let email_ids: Vec<&str> = runs.iter().map(|r| r.email_id.as_str()).collect();
    let recipients = state.store.recipients_of(&id, &email_ids).await?;
    let names = action_names(&state, &id).await?;
    let rule = rule_view(automation, &names)?;
    let frame = Frame::new(&user, Some(&row), "automations").notice(q.done.as_deref());
    Ok(page(
        StatusCode::OK,
        "automation.html",
        &frame,
        minijinja::context! { rule, runs, recipients, next, older => before.is_some() },
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
    Path((_, aid)): Path<(String, String)>,
    Posted { id, form: Form(f), .. }: Posted<Form<SwitchForm>>,
) -> UiResult<Response> {
    let enabled = match f.to.as_str() {
        "on" => true,
        "off" => false,
        _ => return Err(UiError::Api(crate::error::ApiError::validation("choose on or off"))),
    };
    let aid = parse_id(&aid).ok_or(UiError::NotFound)?;
    patch_automation(&state, &id, &aid, RuleChanges::switch(enabled)).await?;
    let done = if enabled { "automation_enabled" } else { "automation_disabled" };
    let back =
        if f.back == "detail" { format!("/ui/t/{id}/automations/{aid}") } else { format!("/ui/t/{id}/automations") };
    Ok(see_other(&back, done))
}

super::tenant_scope::csrf_field!(SwitchForm);
