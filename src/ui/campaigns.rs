//! Campaigns: list, compose, confirm with the audience count, send, detail
//! with a live funnel and figures (`campaign_figures`), pause/resume/cancel.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};

use super::campaign_figures::campaign_figures;
use super::compose_form::ComposeForm;
use super::mail_templates::{parse_variables, refuse_nul, EDITOR_CSP};
use super::operator::Done;
use super::session::CsrfOnly;
use super::tenant_scope::{Posted, Scoped};
use super::{page, see_other, Frame, UiError, UiResult};
use crate::domain::{parse_id, rfc3339};
use crate::error::ApiError;
use crate::service::templates::{self, Draft};
use crate::service::{campaigns, sending, topics};
use crate::state::AppState;
use crate::store::TOPICS_MAX;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/campaigns", get(list).post(send_campaign))
        .route("/ui/t/{tid}/campaigns/new", get(compose).post(compose_again))
        .route("/ui/t/{tid}/campaigns/confirm", post(confirm))
        .route("/ui/t/{tid}/campaigns/{cid}", get(detail))
        .route("/ui/t/{tid}/campaigns/{cid}/live", get(live))
        .route("/ui/t/{tid}/campaigns/{cid}/{action}", post(control))
}

async fn list(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let campaigns = campaigns::list(&state, &id).await?;
    let frame = Frame::new(&user, Some(&row), "campaigns").notice(q.done.as_deref());
    Ok(page(StatusCode::OK, "campaigns.html", &frame, minijinja::context! { campaigns }))
}

#[derive(Deserialize)]
pub struct ComposeQuery {
    /// Start from this template (the template editor's "use in a campaign").
    template: Option<String>,
    /// Send to this topic (a topic page's "write a campaign to this topic").
    topic: Option<String>,
}

async fn compose(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<ComposeQuery>>,
) -> UiResult<Response> {
    let templates = state.store.template_names(&id).await?;
    let chosen = q.template.filter(|t| templates.iter().any(|(id, _)| id == t));
    let form = ComposeForm {
        content: if chosen.is_some() { "template" } else { "inline" }.into(),
        template_id: chosen.unwrap_or_default(),
        html: "<p>Hello {{first_name}},</p>\n<p></p>".into(),
        audience: "all".into(),
        topic_id: q.topic.unwrap_or_default(),
        ..Default::default()
    };
    compose_page(&state, &Frame::new(&user, Some(&row), "campaigns"), &row, form, ComposeExtras::default()).await
}

/// What the compose page shows beside the form after one of its buttons.
#[derive(Default, Serialize)]
struct ComposeExtras {
    /// The content rendered for a sample contact (the Preview button).
    preview: Option<crate::render::Rendered>,
    /// The addresses a test went to (the Send a test button).
    test_sent: Option<Vec<String>>,
    /// Why the preview or the test did not happen.
    error: Option<String>,
}

async fn compose_page(
    state: &AppState,
    frame: &Frame,
    row: &crate::store::TenantRow,
    form: ComposeForm,
    extras: ComposeExtras,
) -> UiResult<Response> {
    let id = &row.id;
    let segments: Vec<(String, String)> = state.store.segments(id).await?.into_iter().map(|s| (s.id, s.name)).collect();
    let templates = state.store.template_names(id).await?;
    let topics = topics::list(state, id, None, TOPICS_MAX as i64).await?;
    let verified = row.domain_verified();
    // Who the mail comes from when the From field is left empty, as the send would choose it.
    let default_from = serde_json::to_value(crate::service::customers::Customer::from(row.clone()))
        .map(|c| c["default_from"].clone())
        .unwrap_or_default();
    let mut res = page(
        StatusCode::OK,
        "compose.html",
        frame,
        minijinja::context! {
            segments, templates, topics, form, verified, default_from, ..minijinja::Value::from_serialize(&extras)
        },
    );
    // The preview frame inherits the page's policy: the editor's, which lets mail's inline styles apply.
    res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(EDITOR_CSP));
    Ok(res)
}

/// The compose form posted back to itself: the confirmation's Back (the form
/// as it was entered), a preview, or a test send; the form is kept either way.
async fn compose_again(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: Form(f), .. }: Posted<Form<ComposeForm>>,
) -> UiResult<Response> {
    let outcome = match f.action.as_str() {
        "preview" => {
            compose_preview(&state, &id, &f).await.map(|p| ComposeExtras { preview: Some(p), ..Default::default() })
        }
        "test" => {
            compose_test(&state, &id, &f).await.map(|to| ComposeExtras { test_sent: Some(to), ..Default::default() })
        }
        _ => Ok(ComposeExtras::default()),
    };
    let extras = match outcome {
        Ok(extras) => extras,
        Err(e) if e.status().is_client_error() => ComposeExtras { error: Some(e.to_string()), ..Default::default() },
        Err(e) => return Err(e.into()),
    };
    compose_page(&state, &Frame::new(&user, Some(&row), "campaigns"), &row, f, extras).await
}

/// The form's content (inline or a template) for a sample contact.
async fn compose_preview(
    state: &AppState,
    id: &crate::domain::TenantId,
    f: &ComposeForm,
) -> Result<crate::render::Rendered, ApiError> {
    let input = f.send_in()?;
    let preview = sending::PreviewInput {
        subject: input.subject,
        html: input.html,
        text: input.text,
        template_id: input.template_id,
        variables: input.variables,
        contact_id: None,
    };
    Ok(sending::preview(state, id, preview).await?)
}

/// The form sent as a test to `test_to`, through the API's test send.
async fn compose_test(
    state: &AppState,
    id: &crate::domain::TenantId,
    f: &ComposeForm,
) -> Result<Vec<String>, ApiError> {
    refuse_nul(&[("The test addresses", &f.test_to)])?;
    let to: Vec<String> =
        f.test_to.split(|c: char| c == ',' || c.is_whitespace()).filter(|a| !a.is_empty()).map(str::to_owned).collect();
    Ok(sending::send_test(state, id, &to, f.send_in()?).await?.to)
}

/// Checks everything a send checks and counts the audience, without sending.
async fn confirm(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: Form(f), .. }: Posted<Form<ComposeForm>>,
) -> UiResult<Response> {
    let prepared = sending::prepare_campaign(&state, &id, f.send_in()?).await?;
    let recipients =
        sending::audience_count(&state, &id, &prepared.campaign.targeting, prepared.campaign.topic_id.as_deref())
            .await?;
    let mut audience_label = match f.audience.split_once(':') {
        Some(("segment", sid)) => {
            let sid = parse_id(sid).ok_or(UiError::NotFound)?;
            let seg = state.store.segment(&id, &sid).await?.ok_or(UiError::NotFound)?;
            format!("segment “{}”", seg.name)
        }
        _ if f.audience == "tag" => format!("contacts tagged “{}”", f.tag.trim()),
        _ => "all subscribed contacts".to_owned(),
    };
    if let Some(topic) = &prepared.campaign.topic_id {
        let topic = serde_json::to_value(topics::get(&state, &id, topic).await?).unwrap_or_default();
        audience_label.push_str(&format!(", subscribed to the topic “{}”", topic["name"].as_str().unwrap_or_default()));
    }
    let confirmed_version = prepared.campaign.template.as_ref().map(|(_, v)| *v);
    let (template, preview, preview_error) = match &prepared.campaign.template {
        Some((tpl, version)) => {
            let t = state.store.template(&id, tpl, None).await?.ok_or(UiError::NotFound)?;
            // What a recipient gets, for a sample contact: render errors show before the send.
            let c = &prepared.campaign;
            let draft = Draft { subject: &c.subject, html: &c.html, text: c.text.as_deref() };
            let (preview, error) =
                match templates::preview(&state, &id, draft, None, parse_variables(&f.variables)?).await {
                    Ok(r) => (Some(r), None),
                    Err(e) => match ApiError::from(e) {
                        e if e.status().is_client_error() => (None, Some(e.to_string())),
                        e => return Err(e.into()),
                    },
                };
            (Some(format!("“{}”, version {version}", t.name)), preview, error)
        }
        None => (None, None, None),
    };
    let frame = Frame::new(&user, Some(&row), "campaigns");
    let mut res = page(
        StatusCode::OK,
        "confirm_send.html",
        &frame,
        minijinja::context! {
            form => f, recipients, audience_label, template, preview, preview_error, confirmed_version,
            from => prepared.campaign.from_address.clone(), status => prepared.status,
        },
    );
    // The preview frame inherits the page's policy: the editor's, which lets mail's inline styles apply.
    res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(EDITOR_CSP));
    Ok(res)
}

async fn send_campaign(
    State(state): State<AppState>,
    Posted { id, form: Form(f), .. }: Posted<Form<ComposeForm>>,
) -> UiResult<Response> {
    let prepared = sending::prepare_campaign(&state, &id, f.send_in()?).await?;
    // The template was saved again since the confirmation: what would go out
    // is not what was previewed.
    if let (Some((_, now)), Ok(confirmed)) = (&prepared.campaign.template, f.template_version.parse::<i64>()) {
        if *now != confirmed {
            return Err(ApiError::conflict(
                "template_changed",
                format!("the template changed since the confirmation (version {confirmed}, now {now}): review the send again"),
            )
            .into());
        }
    }
    sending::queue_campaign_unkeyed(&state, &id, &prepared).await?;
    Ok(see_other(&format!("/ui/t/{id}/campaigns/{}", prepared.campaign.id), "campaign_queued"))
}

/// Statuses after which nothing changes any more (the page stops polling).
const SETTLED: [&str; 4] = ["sent", "partially_failed", "failed", "cancelled"];

async fn detail(
    State(state): State<AppState>,
    Path((_, cid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let campaign = campaigns::campaign_view(&state, &id, &cid).await?;
    let campaign = serde_json::to_value(campaign).unwrap_or_default();
    let cid = campaign["id"].as_str().unwrap_or_default().to_owned();
    let messages: Vec<serde_json::Value> = state
        .store
        .campaign_messages(&id, &cid, "", 100)
        .await?
        .into_iter()
        .map(|(_, m)| {
            serde_json::json!({
                "id": m.id, "to": m.to_email, "status": m.status, "attempts": m.attempts,
                "last_error": m.last_error, "updated_at": rfc3339(m.updated_at),
            })
        })
        .collect();
    let settled = SETTLED.contains(&campaign["status"].as_str().unwrap_or_default());
    let figures = campaign_figures(&state, &id, &cid).await?;
    // A template's campaign is named by its template too (its subject is the template's source).
    let template = match (campaign["template_id"].as_str(), campaign["template_version"].as_i64()) {
        (Some(tpl), Some(version)) => {
            state.store.template(&id, tpl, Some(version)).await?.map(|t| (t.id, t.name, version))
        }
        _ => None,
    };
    let frame = Frame::new(&user, Some(&row), "campaigns").notice(q.done.as_deref());
    Ok(page(
        StatusCode::OK,
        "campaign.html",
        &frame,
        minijinja::context! { campaign, messages, settled, figures, template },
    ))
}

/// The campaign as JSON (the same as the API's), polled by the detail page,
/// with its funnel and figures exactly as the page draws them.
async fn live(
    State(state): State<AppState>,
    Path((_, cid)): Path<(String, String)>,
    Scoped { id, .. }: Scoped,
) -> UiResult<Response> {
    let campaign = campaigns::campaign_view(&state, &id, &cid).await?;
    let mut v = serde_json::to_value(campaign).unwrap_or_default();
    v["settled"] = SETTLED.contains(&v["status"].as_str().unwrap_or_default()).into();
    let cid = v["id"].as_str().unwrap_or_default().to_owned();
    v["figures"] = serde_json::to_value(campaign_figures(&state, &id, &cid).await?).unwrap_or_default();
    Ok(Json(v).into_response())
}

async fn control(
    State(state): State<AppState>,
    Path((_, cid, action)): Path<(String, String, String)>,
    Posted { id, .. }: Posted<Form<CsrfOnly>>,
) -> UiResult<Response> {
    let done = match action.as_str() {
        "pause" => campaigns::pause(&state, &id, &cid).await.map(|_| "campaign_paused"),
        "resume" => campaigns::resume(&state, &id, &cid).await.map(|_| "campaign_resumed"),
        "cancel" => campaigns::cancel(&state, &id, &cid).await.map(|_| "campaign_cancelled"),
        _ => Err(crate::service::Error::NotFound("action")),
    }?;
    let cid = parse_id(&cid).ok_or(UiError::NotFound)?;
    Ok(see_other(&format!("/ui/t/{id}/campaigns/{cid}"), done))
}
