//! Messages one at a time: looked up by id, or listed by recipient address,
//! and each one's timeline.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{page, scope, Frame, UiResult, UiUser};
use crate::api::campaigns;
use crate::domain::{parse_id, rfc3339, EmailAddress};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/ui/t/{tid}/messages", get(messages)).route("/ui/t/{tid}/messages/{mid}", get(message))
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
    user: UiUser,
    Path(tid): Path<String>,
    Query(q): Query<Lookup>,
) -> UiResult<Response> {
    let (id, row) = scope(&state, &user, &tid).await?;
    let frame = Frame::new(&user, Some(&row), "messages");
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
            minijinja::context! { missing => true, query => mid },
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
                    minijinja::context! { to, to_error => e },
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
            minijinja::context! { to, found, limit => RECIPIENT_MESSAGES },
        ));
    }
    Ok(page(StatusCode::OK, "messages.html", &frame, minijinja::context! { missing => false }))
}

async fn message(
    State(state): State<AppState>,
    user: UiUser,
    Path((tid, mid)): Path<(String, String)>,
) -> UiResult<Response> {
    let (id, row) = scope(&state, &user, &tid).await?;
    let message = campaigns::message_view(&state, &id, &mid).await?;
    let frame = Frame::new(&user, Some(&row), "messages");
    Ok(page(StatusCode::OK, "message.html", &frame, minijinja::context! { message }))
}
