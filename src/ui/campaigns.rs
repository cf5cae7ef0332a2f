//! Campaigns: list, compose, confirm with the audience count, send, detail
//! with a live funnel and figures (`campaign_figures`), pause/resume/cancel.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};

use super::campaign_figures::campaign_figures;
use super::mail_templates::{parse_variables, refuse_nul, EDITOR_CSP};
use super::operator::Done;
use super::session::CsrfOnly;
use super::tenant_scope::{Posted, Scoped};
use super::{page, see_other, Frame, UiError, UiResult};
use crate::domain::{parse_id, rfc3339};
use crate::error::ApiError;
use crate::service::templates::{self, Draft};
use crate::service::{campaigns, sending};
use crate::state::AppState;

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

/// The compose form's fields; the confirmation page carries them on, hidden.
#[derive(Deserialize, Serialize, Default)]
pub struct ComposeForm {
    #[serde(default, skip_serializing)]
    csrf: String,
    /// `inline` (subject, html, text) or `template` (template_id, variables).
    #[serde(default)]
    content: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    html: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    template_id: String,
    /// A JSON object, for a template.
    #[serde(default)]
    variables: String,
    /// `all`, `segment:{id}` or `tag:{tag}`.
    #[serde(default)]
    audience: String,
    #[serde(default)]
    tag: String,
    /// An address on the verified domain; empty: the tenant's default sender.
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DDTHH:MM` (a `datetime-local` input), read as UTC.
    #[serde(default)]
    scheduled_at: String,
    /// The template version the confirmation showed (set by that page), so
    /// the send goes out as confirmed or not at all.
    #[serde(default)]
    template_version: String,
    /// The compose page's own buttons: `preview`, `test` (send a test to
    /// `test_to`); anything else (the confirmation's Back) shows the form again.
    #[serde(default, skip_serializing)]
    action: String,
    /// Up to five addresses for a test send, separated by commas or spaces.
    #[serde(default)]
    test_to: String,
}

impl ComposeForm {
    /// The send request for this form (the API's, as a form). An audience it does not know is
    /// refused, never read as "everyone": a typo must not widen an audience.
    fn send_in(&self) -> Result<sending::CampaignInput, ApiError> {
        refuse_nul(&[
            ("The subject", &self.subject),
            ("The html", &self.html),
            ("The text", &self.text),
            ("The variables", &self.variables),
            ("The tag", &self.tag),
            ("The from address", &self.from),
        ])?;
        let (segment_id, tag) = match (self.audience.as_str(), self.audience.split_once(':')) {
            ("all", _) => (None, None),
            (_, Some(("segment", id))) => (Some(id.to_owned()), None),
            ("tag", _) if !self.tag.trim().is_empty() => (None, Some(self.tag.clone())),
            ("tag", _) => return Err(ApiError::validation("name the tag the campaign goes to")),
            _ => return Err(ApiError::validation("choose who the campaign goes to")),
        };
        let scheduled_at = Some(self.scheduled_at.trim()).filter(|s| !s.is_empty()).map(|s| {
            if s.len() == 16 {
                format!("{s}:00Z")
            } else {
                format!("{s}Z")
            }
        });
        let (subject, html, text, template_id, variables) = if self.content == "template" {
            let id = self.template_id.trim();
            if id.is_empty() {
                return Err(ApiError::validation("choose the template to send"));
            }
            (None, None, None, Some(id.to_owned()), parse_variables(&self.variables)?)
        } else {
            let text = Some(self.text.clone()).filter(|t| !t.trim().is_empty());
            (Some(self.subject.clone()), Some(self.html.clone()), text, None, None)
        };
        Ok(sending::CampaignInput {
            subject,
            html,
            text,
            template_id,
            variables,
            segment_id,
            tag,
            scheduled_at,
            from: Some(self.from.trim().to_owned()).filter(|f| !f.is_empty()),
            ..Default::default()
        })
    }
}

#[derive(Deserialize)]
pub struct ComposeQuery {
    /// Start from this template (the template editor's "use in a campaign").
    template: Option<String>,
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
            segments, templates, form, verified, default_from, ..minijinja::Value::from_serialize(&extras)
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
    let audience_label = match f.audience.split_once(':') {
        Some(("segment", sid)) => {
            let sid = parse_id(sid).ok_or(UiError::NotFound)?;
            let seg = state.store.segment(&id, &sid).await?.ok_or(UiError::NotFound)?;
            format!("segment “{}”", seg.name)
        }
        _ if f.audience == "tag" => format!("contacts tagged “{}”", f.tag.trim()),
        _ => "all subscribed contacts".to_owned(),
    };
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

super::tenant_scope::csrf_field!(ComposeForm);
