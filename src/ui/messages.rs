//! Messages one at a time: looked up by id, or listed by recipient address,
//! and each one's timeline; and one transactional email sent from a form
//! (what `POST /customers/{id}/send/single` does).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::form::Fields;
use super::tenant_scope::{Posted, Scoped};
use super::{page, Frame, UiResult};
use crate::domain::{parse_id, rfc3339, EmailAddress};
use crate::service::{campaigns, sending};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/messages", get(messages).post(send_one))
        .route("/ui/t/{tid}/messages/{mid}", get(message))
}

/// Sends one transactional email from the form: inline subject and html, or a
/// template with variables (JSON). Refused input is shown on the form, kept.
async fn send_one(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let template_id = f.filled("template_id").map(str::to_owned);
    let variables = match f.filled("variables") {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<serde_json::Value>(raw)
            .map_err(|e| format!("variables: not JSON ({e})"))
            .and_then(|v| if v.is_object() { Ok(Some(v)) } else { Err("variables: must be a JSON object".to_owned()) }),
    };
    let outcome = match variables {
        Err(message) => Err(crate::error::ApiError::validation(message)),
        Ok(variables) => {
            let inline = template_id.is_none();
            let input = sending::SingleInput {
                to_email: f.get("to").trim().to_owned(),
                subject: inline.then(|| f.get("subject").to_owned()),
                html: inline.then(|| f.get("html").to_owned()),
                text: None,
                template_id,
                variables,
                unsubscribe: f.checked("unsubscribe"),
                reply_to: None,
                from: None,
                tags: None,
            };
            // No request key: the answer is not kept.
            sending::send_single(&state, &id, input, None, |_| String::new())
                .await
                .map_err(crate::error::ApiError::from)
        }
    };
    match outcome {
        Ok(Ok(queued)) => {
            Ok(axum::response::Redirect::to(&format!("/ui/t/{id}/messages/{}", queued.email_id)).into_response())
        }
        // No idempotency key is sent from the form: a repeat cannot happen.
        Ok(Err(_)) => Ok(axum::response::Redirect::to(&format!("/ui/t/{id}/messages")).into_response()),
        Err(e) if e.status().is_client_error() => {
            let frame = Frame::new(&user, Some(&row), "messages");
            let templates = state.store.template_names(&id).await?;
            let sent = minijinja::context! {
                to => f.get("to"), subject => f.get("subject"), html => f.get("html"),
                template_id => f.get("template_id"), variables => f.get("variables"),
                unsubscribe => f.checked("unsubscribe"), error => e.to_string(),
            };
            Ok(page(e.status(), "messages.html", &frame, minijinja::context! { missing => false, templates, sent }))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct Lookup {
    id: Option<String>,
    /// A recipient's address: list the messages sent to it.
    to: Option<String>,
}

/// Messages listed for one address.
const RECIPIENT_MESSAGES: i64 = 100;

/// Look up a message by its id (as the API and webhooks name it), or the
/// messages sent to an address, newest first.
async fn messages(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Lookup>>,
) -> UiResult<Response> {
    let frame = Frame::new(&user, Some(&row), "messages");
    let templates = state.store.template_names(&id).await?;
    if let Some(mid) = q.id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(mid) = parse_id(mid) {
            if state.store.message(&id, &mid).await?.is_some() {
                return Ok(axum::response::Redirect::to(&format!("/ui/t/{id}/messages/{mid}")).into_response());
            }
        }
        return Ok(page(
            StatusCode::NOT_FOUND,
            "messages.html",
            &frame,
            minijinja::context! { missing => true, query => mid, templates },
        ));
    }
    if let Some(to) = q.to.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let address = match EmailAddress::parse(to) {
            Ok(a) => a,
            Err(e) => {
                return Ok(page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "messages.html",
                    &frame,
                    minijinja::context! { to, to_error => e, templates },
                ))
            }
        };
        let contact = state.store.contact_by_email(&id, &address.normalized()).await?;
        let found: Vec<serde_json::Value> = state
            .store
            .messages_to(&id, contact.as_ref().map(|c| c.id.as_str()), &address.to_string(), RECIPIENT_MESSAGES)
            .await?
            .into_iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id, "to": m.to_email, "status": m.status, "campaign_id": m.campaign_id,
                    "created_at": rfc3339(m.created_at), "updated_at": rfc3339(m.updated_at),
                })
            })
            .collect();
        return Ok(page(
            StatusCode::OK,
            "messages.html",
            &frame,
            minijinja::context! { to, found, limit => RECIPIENT_MESSAGES, templates },
        ));
    }
    Ok(page(StatusCode::OK, "messages.html", &frame, minijinja::context! { missing => false, templates }))
}

async fn message(
    State(state): State<AppState>,
    Path((_, mid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, .. }: Scoped,
) -> UiResult<Response> {
    let message = campaigns::message_view(&state, &id, &mid).await?;
    // The campaign it belongs to, by its subject.
    let message = serde_json::to_value(message).unwrap_or_default();
    let campaign = match message["campaign_id"].as_str() {
        Some(cid) => state.store.campaign(&id, cid).await?.map(|c| c.subject),
        None => None,
    };
    let frame = Frame::new(&user, Some(&row), "messages");
    Ok(page(StatusCode::OK, "message.html", &frame, minijinja::context! { message, campaign }))
}
