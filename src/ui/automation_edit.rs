//! Writing automations from the dashboard: the rule form for a new rule and
//! for an existing one, and deletion after a confirmation. The form's fields
//! (`automation_form`) become the service's input, and the rule goes through
//! the same use case as the API's (`service::automations`): the domain's validation, the
//! template, topic and campaign checks and the "no language model" refusal are
//! theirs, shown on the form.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::automation_form::{humanize, RuleFields, KINDS};
use super::form::Fields;
use super::tenant_scope::{Posted, Scoped};
use super::{form_error, page, see_other, Frame, UiError, UiResult, UiUser};
use crate::domain::automation::TRIGGER_EVENTS;
use crate::domain::{parse_id, rfc3339, TenantId};
use crate::error::ApiError;
use crate::service::automations::{self, NewRule, RuleChanges};
use crate::state::AppState;
use crate::store::{TenantRow, TOPICS_MAX};

/// The form's routes (creation itself is `POST /ui/t/{tid}/automations`, beside the list).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/automations/new", get(new_form))
        .route("/ui/t/{tid}/automations/{aid}/edit", get(edit_form).post(save))
        .route("/ui/t/{tid}/automations/{aid}/delete", get(confirm_delete).post(delete))
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
        state.store.template_names(id).await?.into_iter().map(|(id, label)| Choice { id, label }).collect();
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
    let mut topics: Vec<Choice> = state
        .store
        .topics(id, "", TOPICS_MAX as i64)
        .await?
        .into_iter()
        .map(|t| Choice { id: t.id, label: t.name })
        .collect();
    for chosen in fields.actions.iter().chain([&fields.fallback]).map(|a| &a.topic_id) {
        if !chosen.is_empty() && !topics.iter().any(|t| &t.id == chosen) {
            // A deleted topic, or a value not from the list: shown as it is, for the API to judge.
            topics.push(Choice { id: chosen.clone(), label: chosen.clone() });
        }
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
            aid, form => fields, error, templates, topics, campaigns, kinds, events => TRIGGER_EVENTS,
            llm => state.config.llm.is_some(),
        },
    ))
}

/// A client error of the rule (invalid, unknown template, no model for an
/// agent...) is shown on the form in the form's words; anything else is an error page.
fn rule_error(e: crate::service::Error) -> UiResult<(StatusCode, String)> {
    form_error(e).map(|(status, message)| (status, humanize(&message)))
}

async fn new_form(State(state): State<AppState>, Scoped { user, id, tenant: row, .. }: Scoped) -> UiResult<Response> {
    form_page(&state, &user, (&id, &row), None, RuleFields::default(), None).await
}

pub async fn create(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let fields = RuleFields::posted(&f);
    let outcome = match fields.rule() {
        Err(message) => Err((StatusCode::UNPROCESSABLE_ENTITY, message)),
        Ok((trigger, actions, fallback)) => {
            let input = NewRule::new(fields.name.clone(), fields.enabled, trigger, actions, fallback);
            match automations::create(&state, &id, input).await {
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
    Path((_, aid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, .. }: Scoped,
) -> UiResult<Response> {
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
    Path((_, aid)): Path<(String, String)>,
    Posted { user, id, tenant: row, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let aid = parse_id(&aid).ok_or(UiError::NotFound)?;
    let fields = RuleFields::posted(&f);
    let outcome = match fields.rule() {
        Err(message) => Err((StatusCode::UNPROCESSABLE_ENTITY, message)),
        Ok((trigger, actions, fallback)) => {
            let patch = RuleChanges::rewrite(fields.name.clone(), trigger, actions, fallback)?;
            match automations::patch_automation(&state, &id, &aid, patch).await {
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
    Path((_, aid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, .. }: Scoped,
) -> UiResult<Response> {
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
    Path((_, aid)): Path<(String, String)>,
    Posted { id, .. }: Posted<Fields>,
) -> UiResult<Response> {
    automations::delete(&state, &id, &aid).await?;
    Ok(see_other(&format!("/ui/t/{id}/automations"), "automation_deleted"))
}
