//! A person's data on request, from the contact's page: the export as a
//! JSON download (GDPR art. 15), and erasure (art. 17) after a confirmation
//! page that works without JavaScript, as the dashboard's deletes do.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::form::Fields;
use super::tenant_scope::{Posted, Scoped};
use super::{page, see_other, Frame, UiError, UiResult};
use crate::domain::{parse_id, ConsentOrigin, ConsentSource};
use crate::service::erasure;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/contacts/{cid}/data.json", get(download))
        .route("/ui/t/{tid}/contacts/{cid}/erase", get(confirm_erase).post(erase))
}

/// The API's export of the contact, as a file.
async fn download(
    State(state): State<AppState>,
    Path((_, cid)): Path<(String, String)>,
    Scoped { id, .. }: Scoped,
) -> UiResult<Response> {
    let export = erasure::export(&state, &id, &cid).await?;
    let body = serde_json::to_vec_pretty(&export).map_err(|_| UiError::NotFound)?;
    let mut res = body.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // The id was parsed as a UUID by the service: a safe file name.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"contact-{}.json\"", export.contact.id)) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

async fn confirm_erase(
    State(state): State<AppState>,
    Path((_, cid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, .. }: Scoped,
) -> UiResult<Response> {
    let cid = parse_id(&cid).ok_or(UiError::NotFound)?;
    let contact = state.store.contact(&id, &cid).await?.ok_or(UiError::NotFound)?;
    let frame = Frame::new(&user, Some(&row), "contacts");
    Ok(page(
        StatusCode::OK,
        "contact_erase.html",
        &frame,
        minijinja::context! { id => contact.id, email => contact.email },
    ))
}

async fn erase(
    State(state): State<AppState>,
    Path((_, cid)): Path<(String, String)>,
    Posted { id, .. }: Posted<Fields>,
) -> UiResult<Response> {
    erasure::erase(&state, &id, &cid, &ConsentOrigin::new(ConsentSource::Dashboard)).await?;
    Ok(see_other(&format!("/ui/t/{id}/contacts"), "contact_erased"))
}
